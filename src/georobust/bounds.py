"""Certified radii and the confidence bounds they are computed from.

* :func:`cohen_radius` — the ℓ2 radius of Gaussian randomized smoothing (Cohen, Rosenfeld &
  Kolter 2019, Theorem 1): if P[f(x+ε)=A] ≥ p̲_A ≥ p̄_B ≥ max_{c≠A} P[f(x+ε)=c] with
  ε ~ N(0, σ²I), then g(x+δ) = A for all ‖δ‖₂ < R = (σ/2)(Φ⁻¹(p̲_A) − Φ⁻¹(p̄_B)).
* :func:`clopper_pearson_lower` / :func:`clopper_pearson_upper` — exact one-sided binomial
  confidence bounds (Clopper & Pearson 1934), from SciPy's Beta quantiles.
* :func:`radius_cap` — the largest radius n samples can certify: σΦ⁻¹(α^{1/n}).
* :func:`linear_radius` — the exact ℓ2 distance |wᵀx + b| / ‖w‖ to a linear decision boundary.
* :func:`lipschitz_radius` — the margin certificate ε / (2L) of an L-Lipschitz logit map.
"""

from __future__ import annotations

import numpy as np
from scipy import stats


def _check_sigma(sigma):
    s = np.asarray(sigma, dtype=float)
    if not np.all(s > 0):
        raise ValueError(f"sigma must be > 0; got {sigma!r}")
    return s


def _check_prob(name, p):
    a = np.asarray(p, dtype=float)
    if not np.all((a >= 0) & (a <= 1)):
        raise ValueError(f"{name} must be a probability in [0, 1]; got {p!r}")
    return a


def _check_alpha(alpha):
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1); got {alpha!r}")


def cohen_radius(sigma, p_a_lower, p_b_upper=None):
    """Certified ℓ2 radius of the Gaussian-smoothed classifier (Cohen et al. 2019, Thm. 1).

    ``R = (σ/2)(Φ⁻¹(p_a_lower) − Φ⁻¹(p_b_upper))``; with ``p_b_upper`` omitted it is taken as
    ``1 − p_a_lower`` and ``R = σ Φ⁻¹(p_a_lower)``. Broadcasts over arrays. A negative value means
    no certificate (the bounds do not separate A from B). Guarantee: if the bounds hold, the
    smoothed classifier predicts A on the whole open ball of radius R.
    """
    s = _check_sigma(sigma)
    pa = _check_prob("p_a_lower", p_a_lower)
    if p_b_upper is None:
        r = s * stats.norm.ppf(pa)
    else:
        pb = _check_prob("p_b_upper", p_b_upper)
        r = 0.5 * s * (stats.norm.ppf(pa) - stats.norm.ppf(pb))
    return r[()] if np.ndim(r) == 0 else r


def clopper_pearson_lower(k, n, alpha):
    """One-sided (1−α) Clopper–Pearson lower bound on a binomial proportion from k successes in n.

    ``B(α; k, n−k+1)``, the α-quantile of a Beta distribution; 0 when k = 0. With probability at
    least 1−α over the draw of k ~ Bin(n, p), the bound is ≤ p.
    """
    _check_alpha(alpha)
    k, n = np.asarray(k), np.asarray(n)
    if np.any(n < 1) or np.any(k < 0) or np.any(k > n):
        raise ValueError(f"need 0 <= k <= n and n >= 1; got k={k!r}, n={n!r}")
    with np.errstate(invalid="ignore"):
        lo = stats.beta.ppf(alpha, k, n - k + 1)
    lo = np.where(k == 0, 0.0, lo)
    return lo[()] if np.ndim(lo) == 0 else lo


def clopper_pearson_upper(k, n, alpha):
    """One-sided (1−α) Clopper–Pearson upper bound: ``B(1−α; k+1, n−k)``; 1 when k = n."""
    _check_alpha(alpha)
    k, n = np.asarray(k), np.asarray(n)
    if np.any(n < 1) or np.any(k < 0) or np.any(k > n):
        raise ValueError(f"need 0 <= k <= n and n >= 1; got k={k!r}, n={n!r}")
    with np.errstate(invalid="ignore"):
        hi = stats.beta.ppf(1 - alpha, k + 1, n - k)
    hi = np.where(k == n, 1.0, hi)
    return hi[()] if np.ndim(hi) == 0 else hi


def radius_cap(sigma, n, alpha):
    """Largest radius CERTIFY can return with n samples at level α: ``σ Φ⁻¹(α^{1/n})``.

    Even when all n samples vote for A, the Clopper–Pearson lower bound is α^{1/n} < 1.
    """
    _check_alpha(alpha)
    n = np.asarray(n, dtype=float)
    if np.any(n < 1):
        raise ValueError(f"n must be >= 1; got {n!r}")
    return cohen_radius(sigma, np.power(alpha, 1.0 / n))


def linear_radius(w, b, x):
    """Exact ℓ2 distance from x to the hyperplane wᵀx + b = 0: ``|wᵀx + b| / ‖w‖``.

    ``x`` may be a batch (rows). For the binary linear classifier sign(wᵀx + b), no perturbation
    smaller than this changes the prediction and one of exactly this size does.
    """
    w = np.asarray(w, dtype=float)
    norm = np.linalg.norm(w)
    if norm == 0:
        raise ValueError("w must be non-zero")
    return np.abs(np.asarray(x, dtype=float) @ w + b) / norm


def lipschitz_radius(margin, lipschitz):
    """Margin certificate: a logit map that is L-Lipschitz (ℓ2 → ℓ∞ per logit) with top-logit
    margin m keeps its prediction on the ball of radius ``m / (2L)``.

    Each logit moves by at most L‖δ‖, so the margin shrinks by at most 2L‖δ‖.
    """
    lip = np.asarray(lipschitz, dtype=float)
    if np.any(lip <= 0):
        raise ValueError(f"lipschitz must be > 0; got {lipschitz!r}")
    return np.maximum(np.asarray(margin, dtype=float), 0.0) / (2.0 * lip)
