"""Certificates of Gaussian smoothing that came before (or beside) the Neyman–Pearson one, as
functions of the class probabilities, for comparison with Cohen et al.'s radius.

Each takes bounds p_A (lower) and p_B (upper) on the top two class probabilities of f(x + ε),
ε ~ N(0, σ²I), and returns an ℓ2 radius within which the smoothed classifier keeps class A.

* :func:`pixeldp_radius` — PixelDP (Lecuyer, Atlidakis, Geambasu, Hsu & Jana, IEEE S&P 2019):
  the Gaussian mechanism with noise σ = L·√(2 ln(1.25/δ))/ε is (ε, δ)-differentially private for
  ℓ2 changes of size L (ε ≤ 1), and the robustness condition p_A ≥ e^{2ε} p_B + (1 + e^ε) δ then
  certifies radius L. At a fixed σ, the radius is the best L over (ε, δ). Read from the authors'
  code (columbia/pixeldp, ``models/utils/robustness.py`` and ``_dp_mult``).
* :func:`renyi_radius` — Li, Chen, Wang & Carin (NeurIPS 2019): R² = sup_{α>1} −(2σ²/α)
  log(1 − p_A − p_B + 2((p_A^{1−α} + p_B^{1−α})/2)^{1/(1−α)}), from the Rényi divergence
  D_α(N(x, σ²I) ‖ N(x+δ, σ²I)) = α‖δ‖²/(2σ²). Read from the authors' code (Bai-Li/STN-Code,
  ``bound.py``), which takes the sup over a grid of α in [1.01, 2]; here the sup is over all α > 1.
* :func:`kl_radius` — the simplest divergence certificate (binary form), derived here from the
  data-processing inequality, in the spirit of the f-divergence framework of Dvijotham et al.
  (ICLR 2020), whose exact statement could not be checked: KL(N(x,σ²I) ‖ N(x+δ,σ²I)) = ‖δ‖²/(2σ²)
  ≥ kl(p_A(x) ‖ p_A(x+δ)), so p_A(x+δ) > 1/2 whenever ‖δ‖²/(2σ²) < kl(ρ ‖ 1/2), ρ ≤ p_A(x).
* :func:`neyman_pearson_radius` — Cohen et al.'s (σ/2)(Φ⁻¹(p_A) − Φ⁻¹(p_B)), for reference.

Why the Neyman–Pearson radius dominates each: for p_A + p_B ≤ 1 it is the exact worst case over
all base classifiers with those probabilities (Cohen et al. 2019, Theorem 2), so a sound
certificate that uses no more information than (p_A, p_B) cannot exceed it. The tests check the
domination numerically on a grid, which also checks the three formulas for gross errors.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize
from scipy.special import xlogy

from .bounds import _check_prob, _check_sigma, cohen_radius


def _pair(p_a, p_b):
    pa = _check_prob("p_a", p_a)
    pb = 1.0 - pa if p_b is None else _check_prob("p_b", p_b)
    if np.any(pa + pb > 1 + 1e-12):
        raise ValueError(f"p_a + p_b must be <= 1 (they bound two different classes); got {p_a!r}, {p_b!r}")
    return np.broadcast_arrays(np.asarray(pa, dtype=float), np.asarray(pb, dtype=float))


def _out(r):
    return r[()] if np.ndim(r) == 0 else r


def neyman_pearson_radius(sigma, p_a, p_b=None):
    """Cohen et al.'s (σ/2)(Φ⁻¹(p_A) − Φ⁻¹(p_B)), 0 where it is not positive (p_B default 1 − p_A)."""
    s = float(_check_sigma(sigma))
    pa, pb = _pair(p_a, p_b)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = cohen_radius(s, pa, pb)
    return _out(np.where(pa > pb, np.nan_to_num(r, posinf=np.inf), 0.0))


def kl_radius(sigma, p_a):
    """σ√(2 kl(ρ ‖ 1/2)) for ρ = p_A > 1/2 (0 otherwise): the KL data-processing certificate.

    kl(ρ ‖ 1/2) = ρ log(2ρ) + (1 − ρ) log(2(1 − ρ)) is at most log 2, so this radius never exceeds
    σ√(2 log 2) ≈ 1.18σ, however confident the vote."""
    s = float(_check_sigma(sigma))
    pa = np.asarray(_check_prob("p_a", p_a), dtype=float)
    kl = xlogy(pa, 2 * pa) + xlogy(1 - pa, 2 * (1 - pa))
    return _out(np.where(pa > 0.5, s * np.sqrt(2 * np.maximum(kl, 0.0)), 0.0))


def _grid_max(f, grid, xatol):
    """max of f over an interval: the best point of ``grid``, refined by a bounded scalar search
    between its neighbours (the larger of the two values)."""
    vals = np.array([f(g) for g in grid])
    k = int(np.argmax(vals))
    lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, len(grid) - 1)]
    res = optimize.minimize_scalar(lambda g: -f(g), bounds=(lo, hi), method="bounded", options={"xatol": xatol})
    return max(vals[k], -res.fun)


def _renyi_objective(log_alpha_minus_1, pa, pb):
    a = 1.0 + math.exp(log_alpha_minus_1)
    # ((p_A^{1−α} + p_B^{1−α})/2)^{1/(1−α)}, in logs (p^{1−α} overflows for large α)
    log_mean = np.logaddexp((1 - a) * math.log(pa), (1 - a) * math.log(pb)) - math.log(2.0)
    inner = 1 - pa - pb + 2 * math.exp(log_mean / (1 - a))
    return -math.log(inner) / a if inner > 0 else -np.inf


def renyi_radius(sigma, p_a, p_b=None):
    """Li et al.'s Rényi-divergence radius σ√(2 sup_{α>1} −(1/α) log(1 − p_A − p_B +
    2((p_A^{1−α} + p_B^{1−α})/2)^{1/(1−α)})), 0 where the sup is not positive.

    The sup over α is taken on a grid of log(α − 1) from −8 to 8 and refined by a bounded scalar
    search around the best grid point. p_B = 0 is replaced by 1e-300 (the bound tends to a limit)."""
    s = float(_check_sigma(sigma))
    pa, pb = _pair(p_a, p_b)
    out = np.zeros(pa.shape, dtype=float)
    grid = np.linspace(-8.0, 8.0, 161)
    for idx in np.ndindex(pa.shape):
        a_, b_ = float(pa[idx]), max(float(pb[idx]), 1e-300)
        if a_ <= b_:
            continue
        best = _grid_max(lambda g: _renyi_objective(g, a_, b_), grid, 1e-10)
        out[idx] = s * math.sqrt(2 * best) if best > 0 else 0.0
    return _out(out)


def pixeldp_radius(sigma, p_a, p_b=None, eps_max: float = 1.0):
    """PixelDP's ℓ2 radius at noise σ: max over ε ∈ (0, eps_max] and δ ∈ (0, 1) of
    L = σε/√(2 ln(1.25/δ)) subject to p_A ≥ e^{2ε} p_B + (1 + e^ε) δ (0 if no (ε, δ) qualifies).

    For a fixed ε the best δ is the largest the condition allows, δ = (p_A − e^{2ε} p_B)/(1 + e^ε)
    (L increases with δ), so the search is over ε only. ``eps_max = 1`` is the range in which the
    Gaussian mechanism's σ = L√(2 ln(1.25/δ))/ε is proven (ε < 1 in Dwork & Roth's statement; the
    authors' code searches ε ∈ (0, 1])."""
    s = float(_check_sigma(sigma))
    if not (isinstance(eps_max, (int, float)) and 0 < eps_max < math.inf):
        raise ValueError(f"eps_max must be a finite number > 0; got {eps_max!r}")
    pa, pb = _pair(p_a, p_b)
    out = np.zeros(pa.shape, dtype=float)
    for idx in np.ndindex(pa.shape):
        a_, b_ = float(pa[idx]), float(pb[idx])
        if a_ <= b_:
            continue
        top = eps_max if b_ == 0 else min(eps_max, 0.5 * math.log(a_ / b_))

        def radius(eps):
            delta = min((a_ - math.exp(2 * eps) * b_) / (1 + math.exp(eps)), 1.0 - 1e-12)
            return s * eps / math.sqrt(2 * math.log(1.25 / delta)) if delta > 0 else 0.0

        out[idx] = max(_grid_max(radius, np.linspace(0, top, 401)[1:], 1e-12), 0.0)
    return _out(out)
