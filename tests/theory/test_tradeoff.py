"""The trade-off reading of certificates: closed forms against the Neyman–Pearson construction on
fine cells, every radius of the book recovered as the largest shift a trade-off bound certifies,
PixelDP's condition as an instance of the (ε, δ) trade-off, and argument checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
from scipy import stats

from georobust.theory import earlier_certificates as ec
from georobust.theory import radii
from georobust.theory import tradeoff as T

A = np.array([0.0, 0.01, 0.1, 0.3, 0.5, 0.8, 0.99, 1.0])
EDGES = np.linspace(-12, 12, 24001)


def cells(dist, shift):
    return np.diff(dist.cdf(EDGES)), np.diff(dist.cdf(EDGES - shift))


@pytest.mark.parametrize("noise", ["gaussian", "laplace", "uniform"])
def test_shift_tradeoff_is_the_neyman_pearson_boundary(noise):
    sigma, t = 0.6, 0.45
    dist = {"gaussian": stats.norm(scale=sigma), "laplace": stats.laplace(scale=sigma / math.sqrt(2)),
            "uniform": stats.uniform(loc=-sigma * math.sqrt(3), scale=2 * sigma * math.sqrt(3))}[noise]
    p, q = cells(dist, t)
    assert np.allclose(T.exact_tradeoff(p, q, A), T.shift_tradeoff(noise, sigma, t, A), atol=1e-3)  # cell width 1e-3
    # a wrong scale (the scale parameter read as the standard deviation) is told apart
    if noise != "gaussian":
        wrong = T.shift_tradeoff(noise, sigma * (math.sqrt(2) if noise == "laplace" else math.sqrt(3)), t, A)
        assert np.max(np.abs(T.exact_tradeoff(p, q, A) - wrong)) > 0.02


def test_gaussian_tradeoff_gives_cohens_radius_symbolically():
    z, mu, za, zb = sp.symbols("z mu z_A z_B", real=True)
    phi = lambda u: (1 + sp.erf(u / sp.sqrt(2))) / 2  # noqa: E731
    # the two identities used: Φ(−z) = 1 − Φ(z) and Φ⁻¹(1 − p) = −Φ⁻¹(p) (erfinv is odd)
    assert sp.simplify(phi(-z) + phi(z) - 1) == 0
    assert sp.erf(-z) == -sp.erf(z)  # erf odd, so its inverse is odd: Φ⁻¹(1 − p) = −Φ⁻¹(p)
    # with them, G_μ(1 − p_A) = Φ(z_A − μ) and 1 − G_μ(p_B) = Φ(z_B + μ); Φ is increasing, so the
    # boundary is z_A − μ = z_B + μ: μ = (z_A − z_B)/2, Cohen's radius in units of σ
    assert sp.solve(sp.Eq(za - mu, zb + mu), mu) == [(za - zb) / 2]
    a_, b_ = 0.83, 0.11
    m = (stats.norm.ppf(a_) - stats.norm.ppf(b_)) / 2
    assert T.gaussian_tradeoff(m, 1 - a_) == pytest.approx(1 - T.gaussian_tradeoff(m, b_), abs=1e-12)


@pytest.mark.parametrize("pa,pb", [(0.9, None), (0.7, 0.2), (0.999, None), (0.55, 0.3)])
def test_largest_certified_shift_recovers_each_radius(pa, pb):
    sigma = 0.5
    gauss = T.largest_certified(lambda t: (lambda a: T.gaussian_tradeoff(t / sigma, a)), pa, pb)
    assert gauss == pytest.approx(ec.neyman_pearson_radius(sigma, pa, pb), rel=1e-9)
    if pb is None:
        for noise, fn in (("laplace", radii.laplace_l1_radius), ("uniform", radii.uniform_l1_radius)):
            r = T.largest_certified(lambda t: (lambda a: T.shift_tradeoff(noise, sigma, t, a)), pa)
            assert r == pytest.approx(fn(sigma, pa), rel=1e-9)


def test_pixeldp_condition_implies_the_dp_tradeoff_certificate():
    """PixelDP's p_A > e^{2ε}p_B + (1+e^ε)δ is a sufficient condition for f_{ε,δ}(1−p_A) > 1 − f_{ε,δ}(p_B);
    the converse fails: the trade-off reading certifies strictly more (p_A, p_B) pairs."""
    rng = np.random.default_rng(0)
    implied = extra = 0
    for _ in range(5000):
        eps, delta = rng.uniform(0.01, 1), rng.uniform(0, 0.3)
        pa = rng.uniform(0.3, 1)
        pb = rng.uniform(0, 1 - pa)
        pixeldp = pa > math.exp(2 * eps) * pb + (1 + math.exp(eps)) * delta
        by_f = bool(T.certifies(lambda a: T.dp_tradeoff(eps, delta, a), pa, pb))
        assert by_f or not pixeldp, (eps, delta, pa, pb)
        implied += pixeldp
        extra += by_f and not pixeldp
    assert implied > 1000 and extra > 50


def test_the_gaussian_mechanism_tradeoff_dominates_its_dp_guarantee():
    """At σ = L√(2 ln(1.25/δ))/ε (ε ≤ 1) the exact trade-off G_{L/σ} lies above f_{ε,δ}: the DP guarantee
    is a valid but loose lower bound, which is why PixelDP certifies less than Neyman–Pearson."""
    a = np.linspace(0, 1, 401)
    for eps in (0.2, 0.5, 1.0):
        for delta in (1e-5, 0.01, 0.1):
            mu = eps / math.sqrt(2 * math.log(1.25 / delta))  # L/σ
            assert np.all(T.gaussian_tradeoff(mu, a) >= T.dp_tradeoff(eps, delta, a) - 1e-12)


def test_bad_arguments_are_refused_by_name():
    with pytest.raises(ValueError, match="a must be a type I error level"):
        T.gaussian_tradeoff(1.0, 1.5)
    with pytest.raises(ValueError, match="mu must be >= 0"):
        T.gaussian_tradeoff(-1.0, 0.5)
    with pytest.raises(ValueError, match="t must be >= 0"):
        T.shift_tradeoff("laplace", 1.0, -0.1, 0.5)
    with pytest.raises(ValueError, match="noise must be one of"):
        T.shift_tradeoff("cauchy", 1.0, 0.1, 0.5)
    with pytest.raises(ValueError, match="delta must be in"):
        T.dp_tradeoff(1.0, 2.0, 0.5)
    with pytest.raises(ValueError, match="p and q must be"):
        T.exact_tradeoff([0.5, 0.5], [1.0], 0.1)
