"""A feed-forward ReLU network as the list of affine maps between its ReLUs, in float64, and the
two cheap bounds on its pre-activations: interval bound propagation and CROWN.

* :func:`affine_form` — ``nn.Sequential`` of ``Linear``, ``Conv2d``, ``ReLU`` and ``Flatten`` as
  [(W₁, b₁), …, (W_L, b_L)] acting on the flattened input, a ReLU between consecutive maps
  (consecutive affine layers are composed; a convolution is unfolded into its matrix by applying
  it to the basis vectors). Any other layer raises :class:`UnsupportedLayerError` naming it.
* :func:`input_box` — the ℓ∞ ball of radius ε around x intersected with an optional domain box.
* :func:`ibp` — interval bound propagation (Gowal et al., "On the Effectiveness of Interval Bound
  Propagation for Training Verifiably Robust Models", 2018): boxes through each affine map with
  |W|; sound bounds on every pre-activation.
* :func:`crown` — CROWN (Zhang, Weng, Chen, Hsieh & Daniel, "Efficient Neural Network Robustness
  Certification with General Activation Functions", NeurIPS 2018): for every layer in turn, a
  linear lower (and upper) bound of each pre-activation in terms of the input, obtained by
  back-substituting linear relaxations of the unstable ReLUs of the layers before — upper: the
  chord u(z − l)/(u − l); lower: slope 1 if u ≥ −l else 0 (their adaptive choice) — then
  minimized over the input set (a box: by coordinates; an ℓ2 ball: by the dual norm).

Every bound here is sound: for every input in the set, the true pre-activation lies in [l, u].
For networks whose unfolded matrices are too large, :mod:`.matrix_free` computes the same CROWN
bounds without them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .lipschitz import UnsupportedLayerError

SUPPORTED = (nn.Linear, nn.Conv2d, nn.ReLU, nn.Flatten)


@dataclass
class AffineForm:
    """The maps (W_k, b_k), k = 1..L, with ReLU between consecutive ones, on flattened inputs."""

    weights: list[np.ndarray]
    biases: list[np.ndarray]
    input_shape: tuple[int, ...]

    @property
    def depth(self) -> int:
        return len(self.weights)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Logits of inputs ``x`` (N, d) (flattened), in float64."""
        z = np.atleast_2d(x)
        for k, (w, b) in enumerate(zip(self.weights, self.biases)):
            z = z @ w.T + b
            if k < self.depth - 1:
                z = np.maximum(z, 0.0)
        return z


def _unfold(layer: nn.Module, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """Matrix and bias of an affine ``layer`` acting on inputs of ``shape`` (no batch dimension)."""
    lay = layer.to(torch.float64)
    d = int(np.prod(shape))
    with torch.no_grad():
        zero = lay(torch.zeros((1,) + shape, dtype=torch.float64))
        basis = torch.eye(d, dtype=torch.float64).reshape((d,) + shape)
        cols = lay(basis) - zero
    out_shape = tuple(zero.shape[1:])
    return cols.reshape(d, -1).T.numpy().copy(), zero.reshape(-1).numpy().copy(), out_shape


def supported_layers(model: nn.Module) -> list[nn.Module]:
    """The layers of ``model`` (an ``nn.Sequential``, or a single layer), refusing by name any that
    is not Linear, Conv2d, ReLU or Flatten."""
    layers = list(model) if isinstance(model, nn.Sequential) else [model]
    for i, layer in enumerate(layers):
        if not isinstance(layer, SUPPORTED):
            raise UnsupportedLayerError(
                f"layer {i} ({type(layer).__name__}) is not supported by the verifiers; they take "
                "nn.Sequential networks of Linear, Conv2d, ReLU and Flatten")
    return layers


def affine_form(model: nn.Module, input_shape) -> AffineForm:
    """The network ``model`` (an ``nn.Sequential`` of Linear, Conv2d, ReLU, Flatten; a single
    Linear is allowed) as affine maps between ReLUs, for inputs of ``input_shape``."""
    import copy

    layers = supported_layers(model)
    shape = tuple(int(s) for s in input_shape)
    weights, biases = [], []
    cur_w = cur_b = None
    for i, layer in enumerate(layers):
        if isinstance(layer, nn.Flatten):
            shape = (int(np.prod(shape)),)
            continue
        if isinstance(layer, nn.ReLU):
            if cur_w is None:
                raise UnsupportedLayerError(f"layer {i} (ReLU) must follow an affine layer (Linear or Conv2d)")
            weights.append(cur_w)
            biases.append(cur_b)
            cur_w = cur_b = None
            continue
        w, b, shape = _unfold(copy.deepcopy(layer), shape)
        cur_w, cur_b = (w, b) if cur_w is None else (w @ cur_w, w @ cur_b + b)
    if cur_w is None:
        raise UnsupportedLayerError("the network must end with an affine layer (Linear or Conv2d), not a ReLU")
    weights.append(cur_w)
    biases.append(cur_b)
    return AffineForm(weights, biases, tuple(int(s) for s in input_shape))


def input_box(x: np.ndarray, eps: float, domain=None) -> tuple[np.ndarray, np.ndarray]:
    """[x − ε, x + ε] ∩ [lo, hi] (``domain`` = (lo, hi) or None), flattened."""
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    lo, hi = x - eps, x + eps
    if domain is not None:
        lo, hi = np.maximum(lo, domain[0]), np.minimum(hi, domain[1])
    return lo, hi


def _affine_box(w, b, lo, hi):
    mid, rad = (lo + hi) / 2, (hi - lo) / 2
    center = w @ mid + b
    spread = np.abs(w) @ rad
    return center - spread, center + spread


def ibp(form: AffineForm, lo: np.ndarray | None, hi: np.ndarray | None, spec: np.ndarray | None = None,
        first=None):
    """Interval bounds on every pre-activation for inputs in the box [lo, hi].

    Returns a list of (l_k, u_k), k = 1..L; with ``spec`` (m × n_L), the last entry bounds
    spec @ z_L instead of z_L (the spec folded into the last map, as IBP-trained networks do).
    ``first``: bounds (l_1, u_1) of the first pre-activations computed otherwise (e.g. exactly, for
    an ℓ2 ball); the box is then not used, and the first map is taken as already bounded."""
    bounds, start = [], 0
    a_lo, a_hi = lo, hi
    if first is not None:
        if form.depth == 1 and spec is not None:
            raise ValueError("first bounds of a single-layer network cannot take a spec; fold it into the bounds")
        bounds, start = [first], 1
        a_lo, a_hi = np.maximum(first[0], 0.0), np.maximum(first[1], 0.0)
    for k in range(start, form.depth):
        w, b = form.weights[k], form.biases[k]
        if k == form.depth - 1 and spec is not None:
            w, b = spec @ w, spec @ b
        l, u = _affine_box(w, b, a_lo, a_hi)
        bounds.append((l, u))
        a_lo, a_hi = np.maximum(l, 0.0), np.maximum(u, 0.0)
    return bounds


def _relu_relaxation(l, u):
    """CROWN's linear bounds a_low·z ≤ relu(z) ≤ a_up·z + c_up for z in [l, u]."""
    a_up = np.where(l >= 0, 1.0, np.where(u <= 0, 0.0, u / np.where(u > l, u - l, 1.0)))
    c_up = np.where((l < 0) & (u > 0), -a_up * l, 0.0)
    a_low = np.where(l >= 0, 1.0, np.where(u <= 0, 0.0, (u >= -l).astype(float)))
    return a_low, a_up, c_up


def _concretize(a, c, x0, lo, hi, eps, norm, lower: bool):
    """min (lower) or max of a·x + c over the input set: the box [lo, hi] (ℓ∞) or the ℓ2 ball."""
    if norm == "l2":
        center = a @ x0 + c
        return center - eps * np.linalg.norm(a, axis=1) if lower else center + eps * np.linalg.norm(a, axis=1)
    mid, rad = (lo + hi) / 2, (hi - lo) / 2
    center = a @ mid + c
    return center - np.abs(a) @ rad if lower else center + np.abs(a) @ rad


def _backsub(form, bounds, k, w_top, b_top, lower: bool):
    """Linear function (A, c) of the input bounding w_top·z_k + b_top from below (or above),
    using the ReLU relaxations of layers 1..k−1 with pre-activation ``bounds``."""
    a, c = w_top, b_top.copy()
    for j in range(k, 0, -1):  # through map j (1-based), then the ReLU after map j-1
        w, b = form.weights[j - 1], form.biases[j - 1]
        c = c + a @ b
        a = a @ w
        if j == 1:
            break
        l, u = bounds[j - 2]
        a_low, a_up, c_up = _relu_relaxation(l, u)
        pos, neg = np.maximum(a, 0.0), np.minimum(a, 0.0)
        if lower:  # a·relu(z) ≥ pos·(a_low z) + neg·(a_up z + c_up)
            c = c + neg @ c_up
            a = pos * a_low + neg * a_up
        else:
            c = c + pos @ c_up
            a = pos * a_up + neg * a_low
    return a, c


def crown(form: AffineForm, x0: np.ndarray, eps: float, norm: str = "linf", domain=None,
          spec: np.ndarray | None = None):
    """CROWN bounds on every pre-activation (list of (l_k, u_k)), for inputs in the ℓ∞ ball of
    radius ε around x0 intersected with ``domain``, or the ℓ2 ball (``domain`` then ignored, which is
    sound: the ball contains its intersection with the domain). With ``spec`` the last entry bounds
    spec @ z_L, back-substituted as one linear function (tighter than bounding z_L first)."""
    x0 = np.asarray(x0, dtype=np.float64).reshape(-1)
    lo, hi = input_box(x0, eps, domain if norm == "linf" else None)
    bounds = []
    for k in range(1, form.depth + 1):
        w_top = np.eye(form.weights[k - 1].shape[0])
        b_top = np.zeros(w_top.shape[0])
        if k == form.depth and spec is not None:
            w_top, b_top = spec, np.zeros(spec.shape[0])
        a, c = _backsub(form, bounds, k, w_top, b_top, lower=True)
        l = _concretize(a, c, x0, lo, hi, eps, norm, lower=True)
        a, c = _backsub(form, bounds, k, w_top, b_top, lower=False)
        u = _concretize(a, c, x0, lo, hi, eps, norm, lower=False)
        bounds.append((l, u))
    return bounds
