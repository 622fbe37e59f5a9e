"""DDRS: a per-input isotropic σ_x (Alfarra, Bibi, Torr & Ghanem, "Data Dependent Randomized
Smoothing", UAI 2022).

For each input, gradient ascent on the Monte Carlo surrogate of Cohen's radius,
R(σ) = (σ/2)(Φ⁻¹(p₁) − Φ⁻¹(p₂)) with (p₁, p₂) the top two probabilities of the soft smoothed
classifier E_z softmax f(x + σz) over ``samples`` fresh draws per step (reparameterized, so the
gradient reaches σ), probabilities clamped inside Φ⁻¹, plain steps σ ← σ + lr·∂R/∂σ — the
authors' algorithm (their released ``ddsmoothing`` package, ``optimize_isotropic_dds``, and the
RDDRS repository's ``dds.py``, which uses lr 1e-4, 100 steps, 100 samples, clamp [0.02, 0.98]).

No guarantee: σ_x is a heuristic choice. Certifying x with σ_x afterwards certifies the smoothed
classifier *with that σ*, not a classifier whose σ depends on the point
(:mod:`georobust.smoothing.data_dependent.soundness`).
"""

from __future__ import annotations

import torch

from .surrogate import check_batch, draw_standard, evaluating, proxy_gap, soft_smoothed

__all__ = ["ddrs_objective", "optimize_ddrs"]


def ddrs_objective(model, xs, sigma, z, clamp=(0.02, 0.98)):
    """R(σ) = (σ/2)·gap per input, for noise σ·z (z of shape (B, m, d)); differentiable in σ."""
    probs = soft_smoothed(model, xs, sigma.reshape(-1, 1, 1) * z)
    gap, _, _ = proxy_gap(probs, clamp)
    return sigma.reshape(-1) / 2 * gap


def optimize_ddrs(model, xs, sigma0, iterations: int = 100, samples: int = 100, lr: float = 1e-4,
                  clamp=(0.02, 0.98), generator=None, progress=None):
    """σ_x for every row of ``xs`` (B, *input_shape), starting from ``sigma0`` (number or (B,)).

    Each step draws z ~ N(0, I) of shape (B, samples, d) from ``generator`` and takes
    σ ← σ + lr·∇_σ Σ_b R_b(σ_b) (the inputs do not interact, so this is per-input ascent).
    Returns |σ| (B,), detached (σz and −σz have the same law). ``progress``: an optional callable
    called after each step (e.g. a tqdm ``update``)."""
    xs = check_batch(xs)
    if iterations < 0 or samples < 1 or lr < 0:
        raise ValueError(f"iterations >= 0, samples >= 1 and lr >= 0 are required; got {iterations}, {samples}, {lr}")
    sigma = torch.as_tensor(sigma0, dtype=xs.dtype, device=xs.device).expand(len(xs)).clone()
    if not torch.all(sigma > 0):
        raise ValueError(f"sigma0 must be > 0; got min {float(sigma.min())}")
    with evaluating(model):
        for _ in range(iterations):
            z = draw_standard(xs, samples, generator)
            sig = sigma.clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(ddrs_objective(model, xs, sig, z, clamp).sum(), sig)
            sigma = sigma + lr * grad
            if progress is not None:
                progress()
    return sigma.abs().detach()
