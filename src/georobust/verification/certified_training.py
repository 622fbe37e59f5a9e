"""Certified training: differentiable bounds on a network's margins, and the training objectives
built on them.

* :func:`ibp_margins` — interval bound propagation in torch (Gowal et al., "On the Effectiveness of
  Interval Bound Propagation for Training Verifiably Robust Models", 2018), center/radius form,
  with the margin specification folded into the last layer (as they do): a lower bound on
  z[y] − z[j] for every class j, for every input of a batch. The same bound as
  ``georobust.verification.margin_bounds(..., method="ibp")`` (tested), differentiable in the weights.
* :func:`crown_ibp_margins` — CROWN-IBP (Zhang et al., "Towards Stable and Efficient Training of
  Verifiably Robust Neural Networks", arXiv:1906.06316): IBP bounds for the hidden layers, then one
  CROWN backward pass from the margins to the input (convolutions transposed with
  ``torch.nn.grad.conv2d_input``). Equal to :func:`.matrix_free.crown_matrix_free` given the same IBP
  hidden bounds (tested).
* :class:`CertifiedObjective` — the training objective κ·CE(f(x), y) + (1 − κ)·CE(z̲, y), z̲ the
  worst-case logits (z̲_y = 0, z̲_j = −margin lower bound), after ``warmup`` epochs of natural
  training, with ε ramped linearly over the next ``ramp`` epochs and κ from 1 to ``kappa_end``
  over the same ramp; for CROWN-IBP the bound mixes
  β·CROWN-IBP + (1 − β)·IBP with β from 1 to 0 over the ramp (the schedules of the two papers).

Supported networks: ``nn.Sequential`` of ``Linear``, ``Conv2d``, ``ReLU``, ``Flatten``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .lipschitz import UnsupportedLayerError
from .relu_network import supported_layers


def _spec(y: torch.Tensor, num_classes: int, dtype) -> torch.Tensor:
    """C (B, K, K): row j is e_y − e_j (row y is zero, whose margin is 0)."""
    eye = torch.eye(num_classes, dtype=dtype, device=y.device)
    return eye[y].unsqueeze(1) - eye.unsqueeze(0)


def _input_box(x, eps, domain):
    lo, hi = x - eps, x + eps
    if domain is not None:
        lo, hi = lo.clamp(min=domain[0]), hi.clamp(max=domain[1])
    return lo, hi


def _ibp_hidden(layers, lo, hi):
    """Center/radius IBP through all layers but the last affine one; returns the pre-activation
    bounds of every ReLU (in order) and the center/radius entering the last affine layer."""
    mid, rad = (lo + hi) / 2, (hi - lo) / 2
    pre = []
    for layer in layers[:-1]:
        if isinstance(layer, nn.Linear):
            mid, rad = layer(mid), rad @ layer.weight.abs().T
        elif isinstance(layer, nn.Conv2d):
            mid = layer(mid)
            rad = F.conv2d(rad, layer.weight.abs(), None, layer.stride, layer.padding, layer.dilation, layer.groups)
        elif isinstance(layer, nn.ReLU):
            l, u = mid - rad, mid + rad
            pre.append((l, u))
            l, u = l.clamp(min=0), u.clamp(min=0)
            mid, rad = (l + u) / 2, (u - l) / 2
        else:  # Flatten
            mid, rad = layer(mid), layer(rad)
    return pre, mid, rad


def ibp_margins(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, domain=(0.0, 1.0)) -> torch.Tensor:
    """Lower bounds (B, K) on z[y] − z[j] over the ℓ∞ ball of radius ``eps`` ∩ ``domain`` (column y is 0)."""
    layers = supported_layers(model)
    last = layers[-1]
    if not isinstance(last, nn.Linear):
        raise UnsupportedLayerError("certified training needs a network that ends with a Linear layer")
    _, mid, rad = _ibp_hidden(layers, *_input_box(x, eps, domain))
    spec = _spec(y, last.out_features, x.dtype)          # (B, K, K)
    w = spec @ last.weight                                # (B, K, n)
    b = spec @ last.bias
    center = (w @ mid.unsqueeze(-1)).squeeze(-1) + b
    return center - (w.abs() @ rad.unsqueeze(-1)).squeeze(-1)


def crown_ibp_margins(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, domain=(0.0, 1.0)) -> torch.Tensor:
    """CROWN-IBP lower bounds (B, K) on z[y] − z[j]: IBP for the hidden pre-activations, one CROWN
    backward pass (chord above, slope 1 if u ≥ −l else 0 below) from the margins to the input box."""
    layers = supported_layers(model)
    lo, hi = _input_box(x, eps, domain)
    pre, _, _ = _ibp_hidden(layers, lo, hi)
    last = layers[-1]
    if not isinstance(last, nn.Linear):
        raise UnsupportedLayerError("certified training needs a network that ends with a Linear layer")
    a = _spec(y, last.out_features, x.dtype)               # coefficients on the current layer's output
    const = torch.zeros(a.shape[:2], dtype=x.dtype, device=x.device)
    shapes = _shapes(layers, x.shape[1:], x.dtype, x.device)
    relu_i = len(pre)
    for k in range(len(layers) - 1, -1, -1):
        layer = layers[k]
        if isinstance(layer, nn.Linear):
            const = const + a @ layer.bias
            a = a @ layer.weight
        elif isinstance(layer, nn.Conv2d):
            bsz, m = a.shape[:2]
            out_shape = shapes[k + 1]
            a4 = a.reshape(bsz * m, *out_shape)
            const = const + (a4.sum((2, 3)) @ layer.bias).reshape(bsz, m)
            a = torch.nn.grad.conv2d_input((bsz * m,) + tuple(shapes[k]), layer.weight, a4, layer.stride,
                                           layer.padding, layer.dilation, layer.groups).reshape(bsz, m, -1)
        elif isinstance(layer, nn.ReLU):
            relu_i -= 1
            l, u = (t.reshape(len(x), -1) for t in pre[relu_i])
            unstable = (l < 0) & (u > 0)
            a_up = torch.where(l >= 0, torch.ones_like(u), torch.where(unstable, u / (u - l).clamp(min=1e-12),
                                                                     torch.zeros_like(u)))
            c_up = torch.where(unstable, -a_up * l, torch.zeros_like(u))
            a_low = torch.where(l >= 0, torch.ones_like(u), torch.where(unstable, (u >= -l).to(u.dtype),
                                                                      torch.zeros_like(u)))
            a = a.reshape(a.shape[0], a.shape[1], -1)
            pos, neg = a.clamp(min=0), a.clamp(max=0)
            const = const + (neg * c_up.unsqueeze(1)).sum(-1)
            a = pos * a_low.unsqueeze(1) + neg * a_up.unsqueeze(1)
        else:  # Flatten: coefficients are kept flat
            a = a.reshape(a.shape[0], a.shape[1], -1)
    a = a.reshape(a.shape[0], a.shape[1], -1)
    mid, rad = ((lo + hi) / 2).reshape(len(x), -1), ((hi - lo) / 2).reshape(len(x), -1)
    return (a @ mid.unsqueeze(-1)).squeeze(-1) - (a.abs() @ rad.unsqueeze(-1)).squeeze(-1) + const


def _shapes(layers, input_shape, dtype, device):
    """Shape (without batch) of the input of every layer, and of the output of the last."""
    shapes = [tuple(input_shape)]
    with torch.no_grad():
        z = torch.zeros((1,) + tuple(input_shape), dtype=dtype, device=device)
        for layer in layers:
            z = layer(z)
            shapes.append(tuple(z.shape[1:]))
    return shapes


@dataclass(frozen=True)
class CertifiedObjective:
    """IBP or CROWN-IBP training (see the module docstring); ``objective(model, x, y, generator, epoch)``."""

    eps: float
    method: str = "ibp"
    ramp: int = 10
    kappa_end: float = 0.5
    domain: tuple = (0.0, 1.0)
    warmup: int = 0

    def __post_init__(self):
        if self.method not in ("ibp", "crown-ibp"):
            raise ValueError(f"method must be 'ibp' or 'crown-ibp'; got {self.method!r}")
        if not (isinstance(self.eps, (int, float)) and self.eps >= 0 and math.isfinite(self.eps)):
            raise ValueError(f"eps must be a finite number >= 0; got {self.eps!r}")
        if not (isinstance(self.ramp, int) and self.ramp >= 1):
            raise ValueError(f"ramp must be an integer >= 1; got {self.ramp!r}")
        if not (isinstance(self.warmup, int) and self.warmup >= 0):
            raise ValueError(f"warmup must be an integer >= 0; got {self.warmup!r}")
        if not 0 <= self.kappa_end <= 1:
            raise ValueError(f"kappa_end must be in [0, 1]; got {self.kappa_end!r}")

    @property
    def key(self) -> str:
        return (f"certified(method={self.method!r}, eps={self.eps!r}, warmup={self.warmup}, ramp={self.ramp}, "
                f"kappa_end={self.kappa_end!r}, domain={tuple(self.domain)!r})")

    def schedule(self, epoch: int | None) -> tuple[float, float, float]:
        """(ε, κ, β) of epoch ``epoch`` (0-based): natural training (ε = 0) for ``warmup`` epochs, then
        linear over the next ``ramp`` epochs."""
        if epoch is not None and epoch < self.warmup:
            return 0.0, 1.0, 1.0
        t = 1.0 if epoch is None else min(1.0, (epoch - self.warmup + 1) / self.ramp)
        return self.eps * t, 1.0 - (1.0 - self.kappa_end) * t, 1.0 - t

    def __call__(self, model, x, y, generator=None, epoch=None):
        eps, kappa, beta = self.schedule(epoch)
        logits = model(x)
        if eps == 0:
            return F.cross_entropy(logits, y), logits
        bound = ibp_margins(model, x, y, eps, self.domain)
        if self.method == "crown-ibp" and beta > 0:
            bound = beta * crown_ibp_margins(model, x, y, eps, self.domain) + (1 - beta) * bound
        worst = -bound  # z̲_j − z̲_y with z̲_y = 0
        loss = kappa * F.cross_entropy(logits, y) + (1 - kappa) * F.cross_entropy(worst, y)
        return loss, logits
