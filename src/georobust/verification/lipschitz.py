"""Lipschitz upper bounds of feed-forward networks, the certified radii they give, and the exact
robust radius of a linear classifier.

* :func:`spectral_norm` — the ℓ2 operator norm of an affine layer (``Linear``, ``ConvNd``,
  ``AvgPoolNd``, ``BatchNorm`` in eval mode) on a given input shape, by power iteration on JᵀJ
  (the adjoint Jᵀ by reverse-mode autodiff, so no layer needs a hand-written transpose); or exactly, by
  the SVD of the layer's unfolded matrix (:func:`operator_matrix`), for small layers.
* :func:`lipschitz_bound` — an upper bound on the ℓ2 Lipschitz constant of an ``nn.Sequential``:
  the product of its layers' constants (ReLU, LeakyReLU, Tanh, Flatten, Identity, eval-mode
  Dropout and non-overlapping max-pooling are 1-Lipschitz, Sigmoid is 1/4-Lipschitz). Layers it
  cannot bound raise :class:`UnsupportedLayerError`.
* :func:`certified_radius` — the margin certificate m/(2L) (:func:`georobust.theory.bounds.lipschitz_radius`)
  of each example: the prediction cannot change within that ℓ2 distance.
* :func:`linear_exact_radius` — the exact ℓ2 distance from x to the nearest point a linear
  classifier labels otherwise, in R^d (closed form) or inside a box such as [0, 1]^d (a convex
  problem solved by a one-dimensional search).

Power iteration approaches the largest singular value from below: after finitely many steps its
estimate is a *lower* bound on that layer's norm. A certificate needs the exact value or an upper
bound, so use ``method="exact"`` where the layer is small enough to unfold, or check the power
iteration against it.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..theory.bounds import lipschitz_radius

AFFINE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
          nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
ONE_LIPSCHITZ = (nn.ReLU, nn.Tanh, nn.Flatten, nn.Unflatten, nn.Identity)


class UnsupportedLayerError(ValueError):
    """A layer whose Lipschitz constant :func:`lipschitz_bound` cannot bound."""


def _double(layer: nn.Module) -> nn.Module:
    return copy.deepcopy(layer).to(torch.float64)


def _device(layer: nn.Module) -> torch.device:
    p = next(iter(layer.parameters()), None)
    if p is None:
        p = next(iter(layer.buffers()), None)
    return p.device if p is not None else torch.device("cpu")


def _check_shape(input_shape) -> tuple[int, ...]:
    shape = tuple(int(s) for s in input_shape)
    if not shape or any(s < 1 for s in shape):
        raise ValueError(f"input_shape must be a non-empty tuple of positive sizes (without the batch); got {input_shape!r}")
    return shape


def operator_matrix(layer: nn.Module, input_shape) -> torch.Tensor:
    """The matrix (float64, out_dim × in_dim) of the linear part of an affine ``layer`` acting on
    inputs of shape ``input_shape`` (without the batch dimension): column i is layer(e_i) − layer(0).

    Memory grows as in_dim × out_dim: meant for small layers and tests.
    """
    shape = _check_shape(input_shape)
    layer64 = _double(layer).eval()
    device = _device(layer64)
    d = math.prod(shape)
    with torch.no_grad():
        zero = layer64(torch.zeros((1, *shape), dtype=torch.float64, device=device)).flatten(1)
        cols = []
        for start in range(0, d, 1024):
            stop = min(start + 1024, d)
            basis = torch.zeros((stop - start, d), dtype=torch.float64, device=device)
            basis[torch.arange(stop - start), torch.arange(start, stop)] = 1.0
            cols.append(layer64(basis.view(-1, *shape)).flatten(1) - zero)
    return torch.cat(cols).T.contiguous()


@dataclass(frozen=True)
class PowerIteration:
    """Result of :func:`power_iteration`: the estimate σ (a lower bound on the operator norm),
    the number of iterations run and whether the relative change fell below the tolerance."""

    sigma: float
    iterations: int
    converged: bool


def power_iteration(layer: nn.Module, input_shape, *, iters: int = 500, tol: float = 1e-9,
                    generator: torch.Generator | None = None) -> PowerIteration:
    """Largest singular value of the linear part of ``layer`` on ``input_shape`` by power iteration.

    Each step computes u = Jv = layer(v) − layer(0) (J is the layer's Jacobian, constant for an
    affine layer) and w = Jᵀu by reverse-mode autodiff (``torch.autograd.grad`` through one retained
    graph), in float64, and sets v = w/‖w‖. It stops when
    σ = ‖Jv‖ changes by less than ``tol`` relative, or after ``iters`` steps. The estimate never
    exceeds the true norm.
    """
    shape = _check_shape(input_shape)
    if not isinstance(iters, int) or iters < 1:
        raise ValueError(f"iters must be an integer >= 1; got {iters!r}")
    if not tol > 0:
        raise ValueError(f"tol must be > 0; got {tol!r}")
    layer64 = _double(layer).eval()
    device = _device(layer64)
    if generator is None:
        generator = torch.Generator(device=device).manual_seed(0)
    x0 = torch.zeros((1, *shape), dtype=torch.float64, device=device, requires_grad=True)
    with torch.enable_grad():
        out0 = layer64(x0)  # one graph, kept: J is the same at every point of an affine layer
    f0 = out0.detach()

    def jv(v):  # the linear part of the affine map
        with torch.no_grad():
            return layer64(v) - f0

    def jtu(u):  # reverse-mode autodiff: the adjoint
        return torch.autograd.grad(out0, x0, u, retain_graph=True)[0]

    v = torch.randn((1, *shape), generator=generator, device=device, dtype=torch.float64)
    v = v / v.norm()
    sigma, converged, it = 0.0, False, 0
    for it in range(1, iters + 1):
        u = jv(v)
        new = u.norm().item()
        w = jtu(u)
        wn = w.norm()
        if wn == 0:  # J v = 0: v in the kernel (or J = 0)
            sigma = new
            converged = True
            break
        v = w / wn
        if abs(new - sigma) <= tol * max(new, 1e-300):
            sigma, converged = new, True
            break
        sigma = new
    sigma = max(sigma, jv(v).norm().item())
    return PowerIteration(sigma, it, converged)


def spectral_norm(layer: nn.Module, input_shape, *, method: str = "power", iters: int = 500,
                  tol: float = 1e-9, generator: torch.Generator | None = None) -> float:
    """ℓ2 operator norm of the linear part of an affine ``layer`` on ``input_shape``.

    ``method="power"``: :func:`power_iteration` (a lower estimate that converges to the norm);
    ``method="exact"``: the largest singular value of :func:`operator_matrix`.
    """
    if method == "power":
        return power_iteration(layer, input_shape, iters=iters, tol=tol, generator=generator).sigma
    if method == "exact":
        a = operator_matrix(layer, input_shape)
        small = a @ a.T if a.shape[0] <= a.shape[1] else a.T @ a  # same top eigenvalue, smaller matrix
        return math.sqrt(max(torch.linalg.eigvalsh(small)[-1].item(), 0.0))
    raise ValueError(f"method must be 'power' or 'exact'; got {method!r}")


@dataclass(frozen=True)
class LipschitzBound:
    """An upper bound ``value`` on the ℓ2 Lipschitz constant of a network and its factors: one
    ``(index, layer name, constant, input shape)`` per layer."""

    value: float
    factors: tuple[tuple[int, str, float, tuple[int, ...]], ...]


def _layer_constant(layer: nn.Module, index: int, shape, method, iters, tol, generator) -> float:
    name = type(layer).__name__
    if isinstance(layer, nn.Sequential):
        return lipschitz_bound(layer, shape, method=method, iters=iters, tol=tol, generator=generator).value
    if isinstance(layer, AFFINE):
        if isinstance(layer, nn.modules.batchnorm._BatchNorm) and layer.training:
            raise UnsupportedLayerError(
                f"layer {index} ({name}) is in training mode, where it depends on the batch; call model.eval() first")
        if isinstance(layer, (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)) and getattr(layer, "divisor_override", None):
            raise UnsupportedLayerError(f"layer {index} ({name}) has divisor_override, which is not handled")
        return spectral_norm(layer, shape, method=method, iters=iters, tol=tol, generator=generator)
    if isinstance(layer, ONE_LIPSCHITZ):
        return 1.0
    if isinstance(layer, nn.LeakyReLU):
        return max(1.0, abs(layer.negative_slope))
    if isinstance(layer, nn.Sigmoid):
        return 0.25
    if isinstance(layer, nn.Dropout):
        if layer.training and layer.p > 0:
            raise UnsupportedLayerError(
                f"layer {index} ({name}) is in training mode, where it is random; call model.eval() first")
        return 1.0
    if isinstance(layer, (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)):
        n = {nn.MaxPool1d: 1, nn.MaxPool2d: 2, nn.MaxPool3d: 3}[type(layer)]
        as_tuple = lambda v: tuple(v) if isinstance(v, (tuple, list)) else (v,) * n  # noqa: E731
        k, s, dil = as_tuple(layer.kernel_size), as_tuple(layer.stride or layer.kernel_size), as_tuple(layer.dilation)
        if any(dd != 1 for dd in dil) or any(ss < kk for ss, kk in zip(s, k)):
            raise UnsupportedLayerError(
                f"layer {index} ({name}, kernel {k}, stride {s}, dilation {dil}) has overlapping windows; "
                "only non-overlapping max-pooling (stride >= kernel, dilation 1) is 1-Lipschitz")
        return 1.0
    raise UnsupportedLayerError(
        f"layer {index} ({name}) is not handled by lipschitz_bound; handled: affine layers "
        f"({', '.join(c.__name__ for c in AFFINE)}), {', '.join(c.__name__ for c in ONE_LIPSCHITZ)}, "
        "LeakyReLU, Sigmoid, Dropout (eval), non-overlapping MaxPool and nested Sequential")


def lipschitz_bound(model: nn.Sequential, input_shape, *, method: str = "power", iters: int = 500,
                    tol: float = 1e-9, generator: torch.Generator | None = None) -> LipschitzBound:
    """Upper bound on the ℓ2 → ℓ2 Lipschitz constant of the feed-forward ``model`` on inputs of
    shape ``input_shape`` (without the batch): the product of its layers' constants.

    The composition of an L1- and an L2-Lipschitz map is L1·L2-Lipschitz, so the product bounds the
    network's constant. With ``method="power"`` the affine layers' norms come from power iteration
    (see the module note: exact only in the limit); ``method="exact"`` unfolds each affine layer.
    Raises :class:`UnsupportedLayerError` (a ValueError) naming the first layer it cannot bound.
    """
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"model must be an nn.Sequential; got {type(model).__name__}")
    if method not in ("power", "exact"):
        raise ValueError(f"method must be 'power' or 'exact'; got {method!r}")
    shape = _check_shape(input_shape)
    device = _device(model)
    if generator is None:
        generator = torch.Generator(device=device).manual_seed(0)
    total, factors = 1.0, []
    probe = torch.zeros((1, *shape), dtype=torch.float64, device=device)
    for index, layer in enumerate(model):
        c = _layer_constant(layer, index, tuple(probe.shape[1:]), method, iters, tol, generator)
        factors.append((index, type(layer).__name__, c, tuple(probe.shape[1:])))
        total *= c
        with torch.no_grad():
            probe = _double(layer).eval()(probe)
    return LipschitzBound(total, tuple(factors))


def margins(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """z_y − max_{j≠y} z_j per row: positive exactly when the prediction is the label (ties: 0)."""
    if logits.dim() != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(f"logits must be N×K and labels N; got {tuple(logits.shape)} and {tuple(labels.shape)}")
    true = logits.gather(1, labels[:, None]).squeeze(1)
    mask = torch.nn.functional.one_hot(labels, logits.shape[1]).bool()
    return true - logits.masked_fill(mask, float("-inf")).amax(1)


@torch.no_grad()
def certified_radius(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, lipschitz: float,
                     batch_size: int = 1000) -> np.ndarray:
    """Lipschitz margin certificate of each example: max(m, 0)/(2L), m the margin of the label.

    If the model is L-Lipschitz in ℓ2, no perturbation of norm below the returned radius changes
    the prediction from the label (radius 0: misclassified, nothing certified). Computed on the
    model's device with :func:`georobust.theory.bounds.lipschitz_radius`; returns a NumPy array.
    """
    device = _device(model)
    was_training = model.training
    model.eval()
    try:
        m = torch.cat([margins(model(images[i:i + batch_size].to(device)), labels[i:i + batch_size].to(device)).cpu()
                       for i in range(0, len(labels), batch_size)]) if len(labels) else torch.zeros(0)
    finally:
        model.train(was_training)
    return lipschitz_radius(m.double().numpy(), lipschitz)


def linear_exact_radius(weight: torch.Tensor, bias: torch.Tensor, x: torch.Tensor, labels: torch.Tensor,
                        box: tuple[float, float] | None = None, iters: int = 64,
                        chunk: int = 128) -> np.ndarray:
    """Exact ℓ2 robust radius of the linear classifier argmax_j (w_jᵀx + b_j) at each row of x.

    The points labelled j rather than y form the half-space {x' : (w_y − w_j)ᵀx' + b_y − b_j ≤ 0},
    so the radius is the distance to the nearest of these half-spaces: with ``box=None`` (all of
    R^d) it is min_j (z_y − z_j)/‖w_y − w_j‖; with ``box=(lo, hi)`` the half-spaces are intersected
    with the box, and the distance to each is found from the KKT point x'(λ) = clip(x − λa, lo, hi),
    λ ≥ 0 found by bisection (``iters`` halvings, in float64; the point returned is always feasible,
    so the radius is never underestimated by more than rounding). Misclassified rows get 0; a class
    no point of the box reaches contributes ∞. Returns float64 NumPy radii.
    """
    w = weight.detach().to(torch.float64).cpu()
    b = bias.detach().to(torch.float64).cpu()
    x = x.detach().to(torch.float64).cpu().flatten(1)
    y = labels.detach().cpu()
    if w.dim() != 2 or b.shape != w.shape[:1] or x.shape[1] != w.shape[1] or y.shape != x.shape[:1]:
        raise ValueError(f"shapes do not match: weight {tuple(w.shape)}, bias {tuple(b.shape)}, "
                         f"x {tuple(x.shape)}, labels {tuple(y.shape)}")
    if box is not None:
        lo, hi = float(box[0]), float(box[1])
        if not lo < hi:
            raise ValueError(f"box must be (lo, hi) with lo < hi; got {box!r}")
        if len(x) and (x.min() < lo or x.max() > hi):
            raise ValueError("x must lie in the box")
    out = []
    for s in range(0, len(x), chunk):
        xs, ys = x[s:s + chunk], y[s:s + chunk]
        a = w[ys][:, None, :] - w[None, :, :]              # n × K × d: w_y − w_j
        beta = b[ys][:, None] - b[None, :]                  # n × K
        g = torch.einsum("nkd,nd->nk", a, xs) + beta        # z_y − z_j at x
        own = torch.nn.functional.one_hot(ys, w.shape[0]).bool()
        if box is None:
            dist = g.clamp_min(0) / a.norm(dim=2)
        else:
            dist = _box_halfspace_distance(xs, a, beta, g, lo, hi, iters)
        dist = dist.masked_fill(own, float("inf"))
        out.append(dist.amin(1))
    return torch.cat(out).numpy() if out else np.zeros(0)


def _box_halfspace_distance(x, a, beta, g0, lo, hi, iters):
    """min ‖x' − x‖ over x' in [lo, hi]^d with aᵀx' + β ≤ 0 (batched over n × K)."""
    xe = x[:, None, :]
    corner = torch.where(a > 0, torch.full_like(a, lo), torch.where(a < 0, torch.full_like(a, hi), xe))
    g_min = torch.einsum("nkd,nkd->nk", a, corner) + beta   # the least aᵀx' + β over the box
    # Beyond λ_max every coordinate with a_i != 0 is clipped: x'(λ_max) is the minimizing corner.
    with torch.no_grad():
        reach = torch.where(a > 0, (xe - lo) / a, torch.where(a < 0, (xe - hi) / a, torch.zeros_like(a)))
    lam_hi = reach.amax(2).clamp_min(0) * (1 + 1e-12) + 1e-300
    lam_lo = torch.zeros_like(lam_hi)

    def g_at(lam):
        return torch.einsum("nkd,nkd->nk", a, (xe - lam[..., None] * a).clamp(lo, hi)) + beta

    for _ in range(iters):
        mid = 0.5 * (lam_lo + lam_hi)
        feasible = g_at(mid) <= 0
        lam_hi = torch.where(feasible, mid, lam_hi)
        lam_lo = torch.where(feasible, lam_lo, mid)
    point = (xe - lam_hi[..., None] * a).clamp(lo, hi)
    dist = (point - xe).norm(dim=2)
    dist = torch.where(g0 <= 0, torch.zeros_like(dist), dist)
    return torch.where(g_min > 0, torch.full_like(dist, float("inf")), dist)
