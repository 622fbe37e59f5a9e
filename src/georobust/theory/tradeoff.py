"""One statement behind every certificate of randomized smoothing: a lower bound on the trade-off
function of the test between the noise at x and the noise at x + δ.

For distributions P (the noise around x) and Q (around x + δ), the trade-off function is
T(P, Q)(a) = inf{β_φ : α_φ ≤ a} over tests φ, with α_φ = E_P[φ] (type I error) and
β_φ = 1 − E_Q[φ] (type II error) — the lower boundary of the tests' error pairs (Dong, Roth &
Su, "Gaussian Differential Privacy", J. R. Stat. Soc. B 2022). By the Neyman–Pearson lemma it is
attained by likelihood-ratio tests.

* :func:`certifies` — the unified certificate: if T(P_x, P_{x+δ}) ≥ f pointwise and
  f(1 − p_A) > 1 − f(p_B), the smoothed classifier predicts A at x + δ. (Test φ = 1 − [f = A]:
  α ≤ 1 − p_A, so Q(f = A) = β ≥ f(1 − p_A); test φ = [f = B]: α ≤ p_B, so Q(f = B) ≤ 1 − f(p_B).)
* :func:`gaussian_tradeoff` — G_μ(a) = Φ(Φ⁻¹(1 − a) − μ), the exact trade-off of N(0, 1) vs
  N(μ, 1); for N(x, Σ) vs N(x + δ, Σ), μ is the Mahalanobis (Fisher–Rao) distance ‖Σ^{−1/2}δ‖.
* :func:`shift_tradeoff` — F(F⁻¹(1 − a) − t): the exact trade-off of a one-coordinate shift by t of
  a product noise with symmetric log-concave coordinates (Gaussian, Laplace, uniform), whose
  likelihood ratio is monotone.
* :func:`dp_tradeoff` — f_{ε,δ}(a) = max(0, 1 − δ − e^ε a, e^{−ε}(1 − δ − a)): the trade-off
  that (ε, δ)-differential privacy guarantees (Dong, Roth & Su 2022).
* :func:`largest_certified` — the largest parameter t of a family of trade-off lower bounds
  f_t (decreasing in t) that still certifies, by bisection: Cohen's radius for G_{t/σ}.
* :func:`exact_tradeoff` — T(P, Q) of two discrete distributions (or two distributions on the same
  cells) by the Neyman–Pearson construction, for checks.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
from scipy.special import ndtr, ndtri

from .radii import check_noise, laplace_scale, uniform_half_width


def _level(a):
    arr = np.asarray(a, dtype=float)
    if not np.all((arr >= 0) & (arr <= 1)):
        raise ValueError(f"a must be a type I error level in [0, 1]; got {a!r}")
    return arr


def _out(r):
    return r[()] if np.ndim(r) == 0 else r


def gaussian_tradeoff(mu, a):
    """G_μ(a) = Φ(Φ⁻¹(1 − a) − μ) for μ ≥ 0 (G_0(a) = 1 − a: the distributions are the same)."""
    mu = np.asarray(mu, dtype=float)
    if not np.all(mu >= 0):
        raise ValueError(f"mu must be >= 0; got {mu!r}")
    a = _level(a)
    with np.errstate(divide="ignore"):
        return _out(ndtr(ndtri(1 - a) - mu))


def shift_tradeoff(noise: str, sigma: float, t, a):
    """F(F⁻¹(1 − a) − t): the exact trade-off between a product noise of per-coordinate standard
    deviation σ and the same noise shifted by t ≥ 0 along one coordinate (Gaussian: along any
    direction, with t the ℓ2 length of the shift)."""
    noise = check_noise(noise)
    t = np.asarray(t, dtype=float)
    if not np.all(t >= 0):
        raise ValueError(f"t must be >= 0; got {t!r}")
    a = _level(a)
    if noise == "gaussian":
        return gaussian_tradeoff(t / sigma, a)
    if noise == "laplace":
        b = laplace_scale(sigma)
        with np.errstate(divide="ignore"):
            q = np.where(1 - a >= 0.5, -b * np.log(2 * np.maximum(a, 1e-300)), b * np.log(2 * np.maximum(1 - a, 1e-300)))
        u = q - t
        with np.errstate(over="ignore"):
            return _out(np.where(u >= 0, 1 - 0.5 * np.exp(-np.abs(u) / b), 0.5 * np.exp(-np.abs(u) / b)))
    lam = uniform_half_width(sigma)
    q = -lam + 2 * lam * (1 - a)
    return _out(np.clip((q - t + lam) / (2 * lam), 0.0, 1.0))


def dp_tradeoff(eps: float, delta: float, a):
    """f_{ε,δ}(a) = max(0, 1 − δ − e^ε a, e^{−ε}(1 − δ − a)), the trade-off guaranteed by
    (ε, δ)-differential privacy (Dong, Roth & Su 2022)."""
    if not (isinstance(eps, (int, float)) and eps >= 0 and math.isfinite(eps)):
        raise ValueError(f"eps must be a finite number >= 0; got {eps!r}")
    if not (isinstance(delta, (int, float)) and 0 <= delta <= 1):
        raise ValueError(f"delta must be in [0, 1]; got {delta!r}")
    a = _level(a)
    return _out(np.maximum.reduce([np.zeros_like(a), 1 - delta - math.exp(eps) * a,
                                   math.exp(-eps) * (1 - delta - a)]))


def certifies(f: Callable, p_a, p_b=None):
    """True where the trade-off lower bound ``f`` certifies class A: f(1 − p_A) > 1 − f(p_B)
    (p_B defaults to 1 − p_A, the binary form: then the condition is f(1 − p_A) > 1/2)."""
    pa = _level(p_a)
    pb = 1 - pa if p_b is None else _level(p_b)
    if p_b is None:
        return _out(np.asarray(f(1 - pa)) > 0.5)
    return _out(np.asarray(f(1 - pa)) > 1 - np.asarray(f(pb)))


def largest_certified(family: Callable, p_a, p_b=None, t_max: float = 1e3, iters: int = 200) -> float:
    """sup{t ∈ [0, t_max] : ``family(t)`` certifies (p_A, p_B)}, by bisection; ``family(t)`` returns
    a trade-off lower bound that decreases in t (a larger shift is easier to detect). 0 if t = 0
    does not certify."""
    if not certifies(family(0.0), p_a, p_b):
        return 0.0
    if certifies(family(t_max), p_a, p_b):
        return float(t_max)
    lo, hi = 0.0, float(t_max)
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if certifies(family(mid), p_a, p_b) else (lo, mid)
    return lo


def exact_tradeoff(p, q, a):
    """T(P, Q)(a) for distributions given as masses ``p`` and ``q`` on the same cells: the
    Neyman–Pearson test rejects the cells of largest ratio q/p first (randomizing on the last),
    and β = 1 − Q(rejected). Exact for discrete distributions; for continuous ones on fine cells,
    up to the variation of the ratio within a cell."""
    p, q = np.asarray(p, dtype=float).ravel(), np.asarray(q, dtype=float).ravel()
    if p.shape != q.shape or np.any(p < 0) or np.any(q < 0):
        raise ValueError("p and q must be nonnegative masses on the same cells")
    p, q = p / p.sum(), q / q.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(p > 0, q / p, np.inf)
    order = np.argsort(-ratio, kind="stable")  # reject where Q is most likely relative to P
    cp = np.concatenate([[0.0], np.cumsum(p[order])])
    cq = np.concatenate([[0.0], np.cumsum(q[order])])
    a = _level(a)
    k = np.clip(np.searchsorted(cp, a, side="right") - 1, 0, len(p) - 1)
    pk = p[order][k]
    frac = np.where(pk > 0, (a - cp[k]) / np.where(pk > 0, pk, 1), 0.0)
    power = cq[k] + np.clip(frac, 0, 1) * q[order][k]
    # cells with p = 0 (ratio ∞) are rejected at no cost: they come first in the order
    return _out(np.clip(1 - power, 0.0, 1.0))
