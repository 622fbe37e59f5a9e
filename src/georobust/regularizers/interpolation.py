"""Linear paths between trained networks, their barriers, and a separated-step ISO trainer.

**Linear mode connectivity.** Two solutions θ_a, θ_b of the same architecture are joined by the
segment θ(t) = (1 − t)θ_a + tθ_b, t ∈ [0, 1] (Garipov et al. 2018; Frankle et al. 2020). Along it
one evaluates a metric m(t) (loss, error, robust error). The *barrier* is the largest excess of the
metric over the straight line between its end values,

    B = max_t [ m(t) − ((1 − t) m(0) + t m(1)) ]      (for a metric to be minimized),

the definition of Entezari et al. (2022); for a metric to be maximized (accuracy) the sign is
flipped, so a barrier is always ≥ 0 on a grid that contains both ends, and 0 for a path on which
the metric is never worse than linear. A clear barrier says that the two solutions lie in separate
basins (separate local minima as seen along the segment); no barrier says they are linearly
connected, i.e. in one basin, whatever their differences in other measurements. A barrier is a
property of the *segment*: two solutions may still be joined by a curved low-loss path (Garipov
et al.), so "separate basins" means "not linearly connected".

Every floating-point parameter *and buffer* is interpolated (integer buffers, e.g. BatchNorm's
batch counter, are taken from θ_a); the two models must have the same state-dict keys and shapes.

**Separated steps.** :class:`SeparatedStep` splits the ISO objective (1 − η)·CE + η·α into two
updates per batch, in the spirit of Parseval networks' retraction after each SGD step (Cisse et al.
2017): the optimizer's step on (1 − η)·CE, then a plain gradient step θ ← θ − lr·η∇α on the
*updated* parameters and the same batch. Its ``objective`` and ``after_step`` plug into
:func:`georobust.core.train.train`.
"""

from __future__ import annotations

import copy
import math
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


# --------------------------------------------------------------------------- interpolation
def _check_compatible(sa: dict, sb: dict) -> None:
    if sa.keys() != sb.keys():
        raise ValueError(f"the two models have different parameters: {sorted(set(sa) ^ set(sb))}")
    for k in sa:
        if sa[k].shape != sb[k].shape:
            raise ValueError(f"parameter {k!r} has shape {tuple(sa[k].shape)} in one model and "
                             f"{tuple(sb[k].shape)} in the other")


def interpolate(model_a: nn.Module, model_b: nn.Module, t: float, out: nn.Module | None = None) -> nn.Module:
    """The model with θ(t) = (1 − t)θ_a + tθ_b (a copy of ``model_a``'s structure, or ``out``).

    ``t`` may lie outside [0, 1] (extrapolation). At t = 0 and t = 1 the float tensors are exactly
    θ_a and θ_b. The result is in eval mode.
    """
    if not math.isfinite(t):
        raise ValueError(f"t must be a finite number; got {t!r}")
    sa, sb = model_a.state_dict(), model_b.state_dict()
    _check_compatible(sa, sb)
    state = {}
    for k, a in sa.items():
        b = sb[k].to(a.device)
        if a.is_floating_point():
            state[k] = a.clone() if t == 0 else b.clone() if t == 1 else torch.lerp(a, b, float(t))
        else:
            state[k] = a.clone()
    model = out if out is not None else copy.deepcopy(model_a)
    model.load_state_dict(state)
    return model.eval()


def barrier(ts: Sequence[float], values: Sequence[float], maximize: bool = False) -> tuple[float, float]:
    """(B, t*): the barrier of a metric along a path and where it is reached.

    ``ts``: increasing positions including 0 and 1; ``values``: the metric at each. For a metric to
    be minimized (``maximize=False``: loss, error) B = max_t [m(t) − ((1 − t)m(0) + t m(1))]; for
    one to be maximized (accuracy) B = max_t [((1 − t)m(0) + t m(1)) − m(t)]. B ≥ 0 (the ends
    contribute 0). NaN values raise.
    """
    t = np.asarray(ts, dtype=float)
    v = np.asarray(values, dtype=float)
    if t.ndim != 1 or t.shape != v.shape or len(t) < 2:
        raise ValueError(f"ts and values must be 1-D of the same length >= 2; got {t.shape} and {v.shape}")
    if not np.all(np.diff(t) > 0) or t[0] != 0 or t[-1] != 1:
        raise ValueError("ts must increase strictly from 0 to 1")
    if not np.all(np.isfinite(v)):
        raise ValueError("values must be finite")
    line = (1 - t) * v[0] + t * v[-1]
    excess = (line - v) if maximize else (v - line)
    i = int(np.argmax(excess))
    return float(max(excess[i], 0.0)), float(t[i])


@torch.no_grad()
def _loss_acc(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int):
    device = next(model.parameters()).device
    total, correct = 0.0, 0
    for i in range(0, len(labels), batch_size):
        x, y = images[i:i + batch_size].to(device), labels[i:i + batch_size].to(device)
        z = model(x)
        total += F.cross_entropy(z, y, reduction="sum").item()
        correct += (z.argmax(1) == y).sum().item()
    n = max(len(labels), 1)
    return total / n, correct / n


def path_metrics(model_a: nn.Module, model_b: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                 ts: Sequence[float], robust: Callable[[nn.Module], float] | None = None,
                 batch_size: int = 1000) -> dict[str, np.ndarray]:
    """Cross-entropy, accuracy and (optionally) robust accuracy of θ(t) on (images, labels) for t in ``ts``.

    ``robust(model) -> float`` measures robust accuracy (e.g. a PGD attack with a fixed generator);
    it is called on each interpolated model in eval mode. Returns arrays ``t``, ``loss``, ``acc``
    and, with ``robust``, ``robust_acc``.
    """
    out = {"t": np.asarray(ts, dtype=float), "loss": [], "acc": []}
    if robust is not None:
        out["robust_acc"] = []
    work = copy.deepcopy(model_a)
    for t in out["t"]:
        m = interpolate(model_a, model_b, float(t), out=work)
        loss, acc = _loss_acc(m, images, labels, batch_size)
        out["loss"].append(loss)
        out["acc"].append(acc)
        if robust is not None:
            out["robust_acc"].append(float(robust(m)))
    return {k: np.asarray(v, dtype=float) for k, v in out.items()}


def path_barriers(metrics: dict[str, np.ndarray]) -> dict[str, float]:
    """Barriers of :func:`path_metrics`' output: ``loss`` (minimized), ``acc`` and ``robust_acc`` (maximized)."""
    res = {"loss": barrier(metrics["t"], metrics["loss"])[0],
           "acc": barrier(metrics["t"], metrics["acc"], maximize=True)[0]}
    if "robust_acc" in metrics:
        res["robust_acc"] = barrier(metrics["t"], metrics["robust_acc"], maximize=True)[0]
    return res


# --------------------------------------------------------------------------- separated steps
class SeparatedStep:
    """ISO training in two steps per batch: optimizer step on (1 − η)·CE, then a plain step on η·α.

    ``penalty(model, x, generator) -> scalar`` is the regularizer (e.g.
    ``lambda m, x, g: iso_penalty(m, x, eps, "fast", generator=g)``), ``eta`` ∈ [0, 1] its weight
    and ``lr`` the step size of the penalty step. Pass ``objective`` and ``after_step`` to
    :func:`georobust.core.train.train`; the objective remembers the batch (and the generator) that the
    penalty step then uses. With η = 0 the penalty step is skipped (plain cross-entropy training).
    ``last_penalty`` holds the penalty value before the most recent penalty step.

    A penalty step whose value or gradient is not finite is skipped and counted in ``skipped``:
    near the pole of the Fisher chart (a network saturated on the last class, ρ = 1 − √θ_c → 0)
    the chart's derivative overflows in float32, and one such step would turn every weight into
    NaN for the rest of training.
    """

    def __init__(self, penalty: Callable, eta: float, lr: float):
        if not 0 <= eta <= 1:
            raise ValueError(f"eta must be in [0, 1]; got {eta!r}")
        if not lr > 0:
            raise ValueError(f"lr must be > 0; got {lr!r}")
        self.penalty, self.eta, self.lr = penalty, float(eta), float(lr)
        self._batch = None
        self.last_penalty = float("nan")
        self.skipped = 0

    def objective(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator=None):
        """(1 − η)·CE on the batch (the optimizer's step); remembers the batch for :meth:`after_step`."""
        self._batch = (x, generator)
        z = model(x)
        return (1 - self.eta) * F.cross_entropy(z, y), z

    def after_step(self, model: nn.Module) -> None:
        """θ ← θ − lr·η∇α(θ; x) on the remembered batch (called by ``train`` under no_grad)."""
        if self.eta == 0 or self._batch is None:
            return
        x, generator = self._batch
        params = [p for p in model.parameters() if p.requires_grad]
        with torch.enable_grad():
            value = self.penalty(model, x, generator)
            grads = torch.autograd.grad(self.eta * value, params, allow_unused=True)
        self.last_penalty = float(value.detach())
        self._batch = None
        if not math.isfinite(self.last_penalty) or any(g is not None and not bool(torch.isfinite(g).all())
                                                       for g in grads):
            self.skipped += 1
            return
        with torch.no_grad():
            for p, g in zip(params, grads):
                if g is not None:
                    p.sub_(self.lr * g)
