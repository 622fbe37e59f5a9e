"""RDDRS: a per-input full covariance, optimized on the manifold of SPD matrices (Labarbarie,
Hajri & Arnaudon, "Riemannian data-dependent randomized smoothing for neural networks
certification", 2022), with the affine-invariant metric as published and the log-Euclidean metric
the paper names as the alternative (Arsigny et al.).

Noise C z, z ~ N(0, I_d), C SPD (the certificate is :class:`~georobust.smoothing.anisotropic.
AnisotropicSmooth` with scale C). Objective, as in the authors' code (``code/riemannian.py``):
F(C) = R·det(C)^{1/d} + κ·R·λ_min(C), R = Φ⁻¹(p₁) − Φ⁻¹(p₂) the proxy gap of the soft smoothed
classifier over ``samples`` draws. Its Euclidean gradient is
∇F = ∇R·(P + κK) + R·(P/d·C⁻¹ + κ·v vᵀ), P = det(C)^{1/d}, K = λ_min(C) with unit eigenvector v,
and ∇R = ∇p₁/φ(Φ⁻¹p₁) − ∇p₂/φ(Φ⁻¹p₂) with ∇p_c = E[∇_u softmax_c f(u)|_{u=x+Cz} zᵀ] estimated
from ``grad_samples`` separate draws (the paper: 20,000; the probabilities in the 1/φ factors come
from the ``samples`` draws, as in the code). A step is C ← Exp_C(lr·C·sym(∇F)·C) (affine) or
log C ← log C + lr·Dexp*(sym ∇F) (log-Euclidean), then the eigenvalues are raised to at least
σ_DDRS (the superset condition: the ellipsoid contains the DDRS ball). Defaults follow the code:
lr 1, κ = 1e-8, 98 steps, 100 samples, 20,000 gradient samples.

The cheaper setting: ``antithetic=True`` draws the gradient samples in pairs (z, −z). The
estimator of ∇p_c stays unbiased (each draw is N(0, I)), and its largest noise term — the network's
output at x itself times a mean-zero z — cancels within each pair, so far fewer gradient samples
give the variance of many independent ones (measured in the chapter, with the loss in proxy radius).

The same caveat as DDRS and ANCER: C depends on x; the code applies no memory-based step.
"""

from __future__ import annotations

import torch

from . import spd
from .surrogate import check_batch, draw_standard, evaluating, proxy_gap, soft_smoothed

__all__ = ["METRICS", "rddrs_objective", "rddrs_euclidean_gradient", "optimize_rddrs"]

METRICS = ("affine", "log_euclidean")


def _terms(c, decomposition=None):
    """P = det(C)^{1/d}, K = λ_min(C) and their Euclidean gradients P/d·C⁻¹ and v vᵀ
    (``decomposition``: C's (eigenvalues, eigenvectors) if already known)."""
    lam, u = torch.linalg.eigh(spd.sym(c)) if decomposition is None else decomposition
    d = c.shape[-1]
    p = torch.exp(torch.log(lam).mean(-1))
    k = lam[..., 0]
    grad_p = (p / d).reshape(-1, 1, 1) * ((u / lam.unsqueeze(-2)) @ u.transpose(-1, -2))
    v = u[..., :, 0]
    return p, k, grad_p, v.unsqueeze(-1) * v.unsqueeze(-2)


def _shorten(step, max_step):
    """``step`` (B, d, d) scaled down, per input, to Frobenius norm at most ``max_step`` (None: as is)."""
    if max_step is None:
        return step
    norm = torch.linalg.matrix_norm(step).reshape(-1, 1, 1)
    return step * torch.clamp(max_step / norm.clamp_min(1e-300), max=1.0)


def _compose(lam, u):
    return (u * lam.unsqueeze(-2)) @ u.transpose(-1, -2)


def rddrs_objective(model, xs, c, z, kappa=1e-8, clamp=(0.001, 0.999)):
    """F(C) = R·det(C)^{1/d} + κ·R·λ_min(C) per input, for noise C z (z: (B, m, d))."""
    probs = soft_smoothed(model, xs, z @ c.to(xs.dtype))
    gap, _, _ = proxy_gap(probs, clamp)
    p, k, _, _ = _terms(c)
    return gap.to(c.dtype) * (p + kappa * k)


def rddrs_euclidean_gradient(model, xs, c, z_value, z_grad, kappa=1e-8, clamp=(0.001, 0.999), chunk=2000,
                             decomposition=None):
    """(∇F, F): the Euclidean gradient of the objective at C (B, d, d) and its value.

    R and the 1/φ(Φ⁻¹p) factors from the draws ``z_value`` (B, m, d); ∇p_c from ``z_grad``
    (B, M, d), processed ``chunk`` draws at a time; ``decomposition``: C's eigendecomposition if known."""
    with torch.no_grad():
        gap, classes, vals = proxy_gap(soft_smoothed(model, xs, z_value @ c.to(xs.dtype)), clamp)
    normal = torch.distributions.Normal(0.0, 1.0)
    dens = torch.exp(normal.log_prob(normal.icdf(vals.double())))  # φ(Φ⁻¹ p)
    weights = torch.stack([1 / dens[:, 0], -1 / dens[:, 1]], 1).to(xs.dtype)  # (B, 2)
    total = z_grad.shape[1]
    grad_r = torch.zeros_like(c)
    rows = torch.arange(len(xs), device=xs.device)
    for start in range(0, total, chunk):
        zc = z_grad[:, start:start + chunk]
        cv = c.to(xs.dtype).clone().requires_grad_(True)
        probs = soft_smoothed(model, xs, zc @ cv)
        picked = probs[rows.unsqueeze(1), classes]  # (B, 2)
        loss = (weights * picked).sum() * (zc.shape[1] / total)
        (g,) = torch.autograd.grad(loss, cv)
        grad_r += g.to(c.dtype)
    p, k, grad_p, grad_k = _terms(c, decomposition)
    r = gap.to(c.dtype).reshape(-1, 1, 1)
    grad = grad_r * (p + kappa * k).reshape(-1, 1, 1) + r * (grad_p + kappa * grad_k)
    return spd.sym(grad), gap.to(c.dtype) * (p + kappa * k)


def optimize_rddrs(model, xs, sigma_iso, iterations: int = 98, samples: int = 100, grad_samples: int = 20000,
                   lr: float = 1.0, kappa: float = 1e-8, metric: str = "affine", clamp=(0.001, 0.999),
                   generator=None, chunk: int = 2000, progress=None, antithetic: bool = False,
                   max_step: float | None = None):
    """C (B, d, d), float64, for every row of ``xs``, from C₀ = σ_DDRS·I (``sigma_iso``: number or
    (B,)), by Riemannian gradient ascent in ``metric`` ("affine" or "log_euclidean"), projected
    onto {C ⪰ σ_DDRS·I} after each step. Returns also the objective's trace (iterations, B).
    ``antithetic``: gradient samples drawn in pairs (z, −z) (:func:`~.surrogate.draw_standard`).
    ``max_step``: if given, each step moves C at most this far in the metric's own distance — the
    affine-invariant ‖C^{-1/2} V C^{-1/2}‖_F or the log-Euclidean ‖Δ log C‖_F — by shortening the
    step (a trust region; the published method has none)."""
    xs = check_batch(xs)
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}; got {metric!r}")
    if max_step is not None and not max_step > 0:
        raise ValueError(f"max_step must be > 0 or None; got {max_step}")
    if iterations < 0 or samples < 1 or grad_samples < 1 or lr < 0 or kappa < 0 or chunk < 1:
        raise ValueError("iterations >= 0, samples >= 1, grad_samples >= 1, lr >= 0, kappa >= 0 and chunk >= 1 "
                         f"are required; got {iterations}, {samples}, {grad_samples}, {lr}, {kappa}, {chunk}")
    b, d = len(xs), xs[0].numel()
    floor = torch.as_tensor(sigma_iso, dtype=torch.float64, device=xs.device).expand(b).clone()
    if not torch.all(floor > 0):
        raise ValueError(f"sigma_iso must be > 0; got min {float(floor.min())}")
    # C is carried with its eigendecomposition (λ, U): each step then needs one eigh (log-Euclidean)
    # or two (affine-invariant), and the superset projection acts on λ directly
    lam = floor.reshape(b, 1).expand(b, d).clone()
    u = torch.eye(d, dtype=torch.float64, device=xs.device).expand(b, d, d).clone()
    c = _compose(lam, u)
    trace = []
    with evaluating(model):
        for _ in range(iterations):
            z_value = draw_standard(xs, samples, generator)
            z_grad = draw_standard(xs, grad_samples, generator, antithetic)
            grad, value = rddrs_euclidean_gradient(model, xs, c, z_value, z_grad, kappa, clamp, chunk, (lam, u))
            trace.append(value)
            if metric == "affine":
                half = _compose(lam.sqrt(), u)
                ihalf = _compose(lam.rsqrt(), u)
                step = _shorten(spd.sym(ihalf @ (lr * spd.affine_gradient(c, grad)) @ ihalf), max_step)
                lam, u = torch.linalg.eigh(spd.sym(half @ spd.spd_exp(step) @ half))
            else:
                log_c = _compose(lam.log(), u)
                moved = log_c + _shorten(lr * spd.log_euclidean_gradient(log_c, grad, (lam.log(), u)), max_step)
                log_lam, u = torch.linalg.eigh(spd.sym(moved))
                lam = log_lam.exp()
            lam = torch.maximum(lam, floor.reshape(b, 1))  # the superset projection
            c = _compose(lam, u)
            if progress is not None:
                progress()
    return c.detach(), (torch.stack(trace) if trace else torch.zeros(0, b, dtype=torch.float64))
