"""ANCER: a per-input diagonal covariance (Eiras, Alfarra, Kumar, Torr, Dokania, Ghanem & Bibi,
"ANCER: Anisotropic Certification via Sample-wise Volume Maximization", TMLR 2022).

For each input, projected Adam ascent on θ ∈ ℝ^d_{>0} (noise θ ⊙ z) of the proxy objective
(∏θ_i)^{1/d}·gap + κ·min_i θ_i·gap, gap = Φ⁻¹(p₁) − Φ⁻¹(p₂) of the soft smoothed classifier (top
two probabilities, clamped into [0.001, 0.999]); after each step θ is projected back above its
initial value θ₀ = σ_DDRS (the "superset" condition, so the certified ellipsoid contains the
DDRS ball). As in the authors' package (``ancer-python``, ``optimize_ancer``): defaults κ = 2,
100 steps, 100 samples; the RDDRS repository's MNIST run uses lr 1 (ANCER's own default 0.04).

Certificate: :class:`~georobust.smoothing.anisotropic.AnisotropicSmooth` with scale θ gives the
ellipsoid {δ : ‖δ/θ‖ < gap}; its ℓ2 radius is min θ·gap, its proxy radius (∏θ)^{1/d}·gap. The
same caveat as DDRS applies (θ depends on x).
"""

from __future__ import annotations

import torch

from .surrogate import check_batch, draw_standard, evaluating, proxy_gap, soft_smoothed

__all__ = ["ancer_objective", "optimize_ancer"]


def ancer_objective(model, xs, theta, z, kappa: float = 2.0, clamp=(0.001, 0.999)):
    """(∏θ)^{1/d}·gap + κ·min θ·gap per input; ``theta`` (B, d), ``z`` (B, m, d)."""
    probs = soft_smoothed(model, xs, theta.unsqueeze(1) * z)
    gap, _, _ = proxy_gap(probs, clamp)
    geo = torch.exp(torch.log(theta).mean(1))
    return geo * gap + kappa * theta.min(1).values * gap


def optimize_ancer(model, xs, sigma_iso, iterations: int = 100, samples: int = 100, lr: float = 0.04,
                   kappa: float = 2.0, clamp=(0.001, 0.999), generator=None, progress=None):
    """θ (B, *input_shape) for every row of ``xs``, from θ₀ = ``sigma_iso`` (number or (B,)),
    by Adam (lr) on −Σ_b objective_b, projected onto θ ≥ θ₀ after each step."""
    xs = check_batch(xs)
    if iterations < 0 or samples < 1 or lr < 0 or kappa < 0:
        raise ValueError("iterations >= 0, samples >= 1, lr >= 0 and kappa >= 0 are required; got "
                         f"{iterations}, {samples}, {lr}, {kappa}")
    b, d = len(xs), xs[0].numel()
    start = torch.as_tensor(sigma_iso, dtype=xs.dtype, device=xs.device).expand(b).reshape(b, 1).expand(b, d).clone()
    if not torch.all(start > 0):
        raise ValueError(f"sigma_iso must be > 0; got min {float(start.min())}")
    theta = start.clone().requires_grad_(True)
    opt = torch.optim.Adam([theta], lr=lr)
    with evaluating(model):
        for _ in range(iterations):
            z = draw_standard(xs, samples, generator)
            loss = -ancer_objective(model, xs, theta, z, kappa, clamp).sum()
            opt.zero_grad()
            (grad,) = torch.autograd.grad(loss, theta)
            theta.grad = grad
            opt.step()
            with torch.no_grad():
                torch.maximum(theta, start, out=theta)
            if progress is not None:
                progress()
    return theta.detach().reshape(xs.shape)
