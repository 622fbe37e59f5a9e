"""The differentiable surrogate every data-dependent optimizer ascends.

The soft smoothed classifier ψ(x) = E_z[softmax f(x + Cz)] (Monte Carlo over ``samples`` draws,
reparameterized so that gradients reach the noise parameters), its top two probabilities p₁ ≥ p₂
and the **proxy gap** Φ⁻¹(p₁) − Φ⁻¹(p₂), with the probabilities clamped into [lo, hi] inside Φ⁻¹
as the authors do (DDRS's released package and ANCER: [0.001, 0.999]; the RDDRS repository's
DDRS step: [0.02, 0.98]). The radius surrogates are (σ/2)·gap (DDRS), det(C)^{1/d}·gap and
λ_min(C)·gap (ANCER's and RDDRS's volume and ℓ2 terms).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch.distributions import Normal

__all__ = ["soft_smoothed", "proxy_gap", "draw_standard", "check_batch", "evaluating"]


@contextmanager
def evaluating(model):
    """``model`` in eval mode for the block, and back in training mode afterwards if it was."""
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    try:
        yield model
    finally:
        if was_training:
            model.train()


def check_batch(xs, name="xs"):
    if not isinstance(xs, torch.Tensor) or not xs.is_floating_point() or xs.ndim < 2:
        raise ValueError(f"{name} must be a floating-point tensor of shape (B, *input_shape); got "
                         f"{type(xs).__name__ if not isinstance(xs, torch.Tensor) else tuple(xs.shape)}")
    return xs


def draw_standard(xs, samples, generator, antithetic: bool = False):
    """z ~ N(0, I) of shape (B, samples, d), d = elements of one input, from ``generator``.

    ``antithetic``: draw ⌈samples/2⌉ and append their negatives (z, −z). Each draw is still
    N(0, I), so every Monte Carlo mean over them keeps its expectation; for an estimator
    E[g(x + Cz) zᵀ] the pairs cancel the even part of g — its constant term g(x), which alone adds
    mean-zero noise g(x) zᵀ — the control variate of a cheaper gradient."""
    d = xs[0].numel()
    if not antithetic:
        return torch.randn((len(xs), samples, d), generator=generator, device=xs.device, dtype=xs.dtype)
    half = torch.randn((len(xs), (samples + 1) // 2, d), generator=generator, device=xs.device, dtype=xs.dtype)
    return torch.cat([half, -half], 1)[:, :samples]


def soft_smoothed(model, xs, noise):
    """ψ: mean softmax of ``model`` over x + noise; ``noise`` (B, m, d) → probabilities (B, C)."""
    b, m, _ = noise.shape
    batch = (xs.reshape(b, 1, -1) + noise).reshape((b * m,) + tuple(xs.shape[1:]))
    return torch.softmax(model(batch), dim=1).reshape(b, m, -1).mean(1)


def proxy_gap(probs, clamp=(0.001, 0.999)):
    """Φ⁻¹(p₁) − Φ⁻¹(p₂) of the top two probabilities (clamped into ``clamp``), per row, with the
    top-two classes: returns (gap (B,), classes (B, 2), clamped values (B, 2))."""
    vals, classes = torch.topk(probs, 2, dim=1)
    vals = vals.clamp(*clamp)
    normal = Normal(torch.zeros((), dtype=probs.dtype, device=probs.device),
                    torch.ones((), dtype=probs.dtype, device=probs.device))
    inv = normal.icdf(vals)
    return inv[:, 0] - inv[:, 1], classes, vals
