"""Tests of georobust.theory.bounds: radii against SymPy closed forms, Clopper–Pearson against an
independent computation (bisection on binomial tail sums) and against its coverage guarantee,
and argument checking."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import sympy as sp
import torch
from scipy import special, stats

from georobust.theory.bounds import (clopper_pearson_lower, clopper_pearson_upper, cohen_radius,
                              linear_radius, lipschitz_radius, radius_cap, radius_from_votes,
                              smoothed_counts)

mpmath.mp.dps = 40

# -- closed forms, from SymPy ------------------------------------------------------------------
_sigma, _pa, _pb, _n, _alpha = sp.symbols("sigma p_a p_b n alpha", positive=True)


def _phi_inv(p):
    return sp.sqrt(2) * sp.erfinv(2 * p - 1)


_R_TWO = sp.lambdify((_sigma, _pa, _pb), _sigma / 2 * (_phi_inv(_pa) - _phi_inv(_pb)), "mpmath")
_R_ONE = sp.lambdify((_sigma, _pa), _sigma * _phi_inv(_pa), "mpmath")
_CAP = sp.lambdify((_sigma, _n, _alpha), _sigma * _phi_inv(_alpha ** (1 / _n)), "mpmath")


def _mp(x):
    return mpmath.mpf(float(x))


def test_cohen_radius_two_sided_matches_sympy():
    rng = np.random.default_rng(0)
    sigma = rng.uniform(0.01, 3.0, 300)
    pa = rng.uniform(0.5, 1.0, 300)
    pb = pa * rng.uniform(0.0, 1.0, 300)
    got = cohen_radius(sigma, pa, pb)
    ref = np.array([float(_R_TWO(_mp(s), _mp(a), _mp(b))) for s, a, b in zip(sigma, pa, pb)])
    np.testing.assert_allclose(got, ref, rtol=1e-10)


def test_cohen_radius_one_sided_matches_sympy_and_scipy():
    rng = np.random.default_rng(1)
    sigma = rng.uniform(0.01, 3.0, 300)
    pa = np.concatenate([rng.uniform(0.5, 1.0, 290), 1 - np.logspace(-2, -12, 10)])
    got = cohen_radius(sigma, pa)
    ref = np.array([float(_R_ONE(_mp(s), _mp(a))) for s, a in zip(sigma, pa)])
    np.testing.assert_allclose(got, ref, rtol=1e-9)
    # SciPy's erfinv (not the normal quantile the package uses)
    np.testing.assert_allclose(got, sigma * np.sqrt(2) * special.erfinv(2 * pa - 1), rtol=1e-8)


def test_one_sided_is_two_sided_with_complement():
    pa = np.linspace(0.01, 0.999, 50)
    np.testing.assert_allclose(cohen_radius(0.7, pa), cohen_radius(0.7, pa, 1 - pa), rtol=1e-12, atol=1e-15)


def test_cohen_radius_sign_and_limits():
    assert cohen_radius(1.0, 0.5) == 0.0
    assert cohen_radius(1.0, 0.3, 0.3) == 0.0
    assert cohen_radius(1.0, 0.3, 0.4) < 0          # bounds do not separate: no certificate
    assert cohen_radius(1.0, 0.4) < 0
    assert cohen_radius(1.0, 1.0) == np.inf
    assert isinstance(cohen_radius(1.0, 0.9), float)
    assert cohen_radius([0.5, 1.0], [[0.9], [0.99]]).shape == (2, 2)
    # linear in sigma
    assert cohen_radius(2.0, 0.9) == pytest.approx(2 * cohen_radius(1.0, 0.9), rel=1e-15)


def test_cohen_radius_tight_for_halfspace():
    # exact vote of a half-space at distance d: Phi(d / sigma); the radius is d (d / sigma <= 5,
    # beyond which Phi(d / sigma) is too close to 1 for double precision to invert it accurately)
    for sigma in (0.12, 0.5, 1.0):
        d = sigma * np.linspace(0.01, 5.0, 40)
        np.testing.assert_allclose(cohen_radius(sigma, stats.norm.cdf(d / sigma)), d, rtol=1e-8)


# -- Clopper–Pearson, independently: bisection on binomial tails -------------------------------
def _bisect(fun, lo=0.0, hi=1.0, iters=200):
    """Root of a function that is < 0 at lo and >= 0 at hi."""
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if fun(mid) < 0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _cp_lower_reference(k, n, alpha):
    """Smallest p with P[Bin(n, p) >= k] >= alpha (scipy.stats.binom, bisection)."""
    if k == 0:
        return 0.0
    return _bisect(lambda p: stats.binom.sf(k - 1, n, p) - alpha)


def _cp_upper_reference(k, n, alpha):
    """Largest p with P[Bin(n, p) <= k] >= alpha."""
    if k == n:
        return 1.0
    return _bisect(lambda p: alpha - stats.binom.cdf(k, n, p))


def _tail_sum(k, n, p):
    """P[Bin(n, p) >= k] as an exact sum, in 40-digit arithmetic."""
    p = mpmath.mpf(p)
    return mpmath.fsum(math.comb(n, j) * p ** j * (1 - p) ** (n - j) for j in range(k, n + 1))


CASES = [(0, 10), (1, 10), (5, 10), (10, 10), (1, 1), (37, 100), (99, 100), (100, 100),
         (9990, 10_000), (123_456, 200_000), (199_999, 200_000)]


@pytest.mark.parametrize("k,n", CASES)
@pytest.mark.parametrize("alpha", [0.05, 0.001, 1e-6])
def test_clopper_pearson_against_binomial_bisection(k, n, alpha):
    assert clopper_pearson_lower(k, n, alpha) == pytest.approx(_cp_lower_reference(k, n, alpha), abs=1e-10)
    assert clopper_pearson_upper(k, n, alpha) == pytest.approx(_cp_upper_reference(k, n, alpha), abs=1e-10)


@pytest.mark.parametrize("k,n", [(1, 10), (5, 10), (37, 100), (99, 100), (100, 100), (150, 200)])
def test_clopper_pearson_lower_against_exact_sums(k, n):
    alpha = 0.01
    lo = float(clopper_pearson_lower(k, n, alpha))
    # at the bound the upper tail is exactly alpha; slightly below, it is smaller
    assert float(_tail_sum(k, n, lo)) == pytest.approx(alpha, rel=1e-8)
    assert float(_tail_sum(k, n, lo * (1 - 1e-6))) < alpha


def test_clopper_pearson_all_successes_is_alpha_to_one_over_n():
    for n in (1, 10, 1000, 100_000):
        for alpha in (0.05, 0.001):
            assert clopper_pearson_lower(n, n, alpha) == pytest.approx(alpha ** (1 / n), rel=1e-12)
            assert clopper_pearson_upper(0, n, alpha) == pytest.approx(1 - alpha ** (1 / n), rel=1e-9)


def test_clopper_pearson_vectorized_and_ordered():
    k = np.arange(0, 51)
    lo = clopper_pearson_lower(k, 50, 0.01)
    hi = clopper_pearson_upper(k, 50, 0.01)
    assert lo.shape == hi.shape == (51,)
    assert np.all(np.diff(lo) > 0) and np.all(np.diff(hi) > 0)
    assert np.all(lo <= k / 50) and np.all(k / 50 <= hi)


# -- coverage: a binomial test over many simulated draws ----------------------------------------
TRIALS = 20_000
REJECT = 1e-6  # p-value below which the failure rate is declared larger than alpha


def _excess_failure_pvalue(bound, fails_if, p, n, alpha, seed):
    """p-value of 'the bound fails more often than alpha', over TRIALS draws k ~ Bin(n, p)."""
    k = np.random.default_rng(seed).binomial(n, p, TRIALS)
    fails = int(np.sum(fails_if(bound(k, n, alpha), p)))
    return stats.binomtest(fails, TRIALS, alpha, alternative="greater").pvalue


COVERAGE = [(0.02, 50), (0.3, 50), (0.5, 200), (0.9, 200), (0.995, 1000), (0.7, 13)]


@pytest.mark.parametrize("p,n", COVERAGE)
@pytest.mark.parametrize("alpha", [0.05, 0.2])
def test_clopper_pearson_lower_coverage(p, n, alpha):
    seed = int(p * 1e4) * 1000 + n
    assert _excess_failure_pvalue(clopper_pearson_lower, np.greater, p, n, alpha, seed) > REJECT


@pytest.mark.parametrize("p,n", COVERAGE)
@pytest.mark.parametrize("alpha", [0.05, 0.2])
def test_clopper_pearson_upper_coverage(p, n, alpha):
    seed = int(p * 1e4) * 1000 + n + 7
    assert _excess_failure_pvalue(clopper_pearson_upper, np.less, p, n, alpha, seed) > REJECT


def test_coverage_test_has_power():
    """The same harness rejects bounds that do not hold at level alpha."""
    alpha, p, n = 0.05, 0.3, 50

    def point_estimate(k, n_, a):
        return k / n_

    def too_loose_level(k, n_, a):
        return clopper_pearson_lower(k, n_, 4 * a)

    assert _excess_failure_pvalue(point_estimate, np.greater, p, n, alpha, 1) < REJECT
    assert _excess_failure_pvalue(too_loose_level, np.greater, p, n, alpha, 2) < REJECT


def test_certified_radius_coverage():
    """P[certified radius > sigma Phi^{-1}(p)] <= alpha over the draw of the votes."""
    alpha, p, n, sigma = 0.05, 0.9, 100, 0.5
    k = np.random.default_rng(3).binomial(n, p, TRIALS)
    fails = int(np.sum(radius_from_votes(k, n, sigma, alpha) > cohen_radius(sigma, p)))
    assert stats.binomtest(fails, TRIALS, alpha, alternative="greater").pvalue > REJECT
    assert radius_from_votes(90, 100, sigma, alpha) == pytest.approx(
        cohen_radius(sigma, clopper_pearson_lower(90, 100, alpha)), rel=1e-15)


# -- radius_cap -------------------------------------------------------------------------------
def test_radius_cap_matches_sympy():
    for sigma in (0.12, 0.5, 1.0):
        for n in (1, 2, 100, 10_000, 1_000_000):
            for alpha in (0.05, 0.001):
                ref = float(_CAP(_mp(sigma), n, _mp(alpha)))
                assert radius_cap(sigma, n, alpha) == pytest.approx(ref, rel=1e-9, abs=1e-15)


def test_radius_cap_is_all_votes_certificate():
    for n in (10, 1000, 100_000):
        cap = radius_cap(0.25, n, 0.001)
        assert cap == pytest.approx(radius_from_votes(n, n, 0.25, 0.001), rel=1e-12)
        assert radius_from_votes(n - 1, n, 0.25, 0.001) < cap
    caps = radius_cap(1.0, np.array([1e2, 1e3, 1e4, 1e5, 1e6]), 0.001)
    assert np.all(np.diff(caps) > 0)
    # n = 1, alpha = 1/2: alpha^{1/n} = 1/2, no certificate at all
    assert radius_cap(1.0, 1, 0.5) == 0.0


# -- linear_radius ------------------------------------------------------------------------------
def test_linear_radius_is_distance_to_hyperplane():
    rng = np.random.default_rng(4)
    for d in (1, 2, 10, 100):
        w, b = rng.standard_normal(d), float(rng.standard_normal())
        xs = rng.standard_normal((20, d))
        got = linear_radius(w, b, xs)
        assert got.shape == (20,)
        for x, dist in zip(xs, got):
            foot = x - (w @ x + b) * w / (w @ w)      # orthogonal projection onto the hyperplane
            assert w @ foot + b == pytest.approx(0.0, abs=1e-10)
            assert dist == pytest.approx(np.linalg.norm(x - foot), rel=1e-10)
            assert linear_radius(w, b, x) == pytest.approx(dist, rel=1e-14)
        # scale invariance of the hyperplane
        np.testing.assert_allclose(linear_radius(3 * w, 3 * b, xs), got, rtol=1e-12)


def test_linear_radius_equals_cohen_radius_with_exact_vote():
    rng = np.random.default_rng(5)
    sigma = 0.5
    for d in (1, 3, 50):
        w = rng.standard_normal(d)
        x = sigma * rng.standard_normal(d)
        b = sigma * np.linalg.norm(w) * float(rng.standard_normal())
        p_a = stats.norm.cdf(abs(w @ x + b) / (sigma * np.linalg.norm(w)))
        assert cohen_radius(sigma, p_a) == pytest.approx(linear_radius(w, b, x), rel=1e-9)


# -- smoothed_counts ----------------------------------------------------------------------------
def _linear(w, b):
    wt = torch.as_tensor(w)
    return lambda z: (z @ wt + b > 0).long()


def test_smoothed_counts_matches_exact_vote():
    sigma, n = 0.5, 40_000
    w, b = np.array([1.0, -2.0, 0.5]), 0.3
    xs = np.array([[0.0, 0.0, 0.0], [0.5, 0.1, -0.2], [-0.3, 0.4, 1.0]])
    counts = smoothed_counts(_linear(w, b), xs, sigma, n, torch.Generator().manual_seed(0))
    assert counts.shape == (3, 2) and np.all(counts.sum(1) == n)
    exact = stats.norm.cdf((xs @ w + b) / (sigma * np.linalg.norm(w)))  # P[class 1]
    lo = clopper_pearson_lower(counts[:, 1], n, 1e-6)
    hi = clopper_pearson_upper(counts[:, 1], n, 1e-6)
    assert np.all((lo <= exact) & (exact <= hi))


def test_smoothed_counts_reproducible_and_batched():
    f = _linear(np.array([1.0, 1.0]), 0.0)
    x = np.array([0.2, -0.1])
    a = smoothed_counts(f, x, 1.0, 5000, torch.Generator().manual_seed(7))
    b = smoothed_counts(f, x, 1.0, 5000, torch.Generator().manual_seed(7))
    c = smoothed_counts(f, x, 1.0, 5000, torch.Generator().manual_seed(8))
    assert a.shape == (2,) and a.sum() == 5000
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    # chunking does not change the counts' distribution: tiny batches still count every draw
    d = smoothed_counts(f, x, 1.0, 1001, torch.Generator().manual_seed(7), batch_size=10)
    assert d.sum() == 1001


def test_smoothed_counts_rejects_bad_labels_and_arguments():
    gen = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="labels"):
        smoothed_counts(lambda z: torch.full((z.shape[0],), 2), np.zeros(2), 1.0, 10, gen)
    with pytest.raises(ValueError, match=r"\bsigma\b"):
        smoothed_counts(_linear(np.ones(2), 0.0), np.zeros(2), 0.0, 10, gen)
    with pytest.raises(ValueError, match=r"\bn\b"):
        smoothed_counts(_linear(np.ones(2), 0.0), np.zeros(2), 1.0, 0, gen)
    with pytest.raises(ValueError, match=r"\bx\b"):
        smoothed_counts(_linear(np.ones(2), 0.0), np.zeros((1, 1, 2)), 1.0, 10, gen)


# -- lipschitz_radius ---------------------------------------------------------------------------
def test_lipschitz_radius():
    assert lipschitz_radius(1.0, 2.0) == pytest.approx(0.25)
    assert lipschitz_radius(-1.0, 2.0) == 0.0
    with pytest.raises(ValueError, match="lipschitz"):
        lipschitz_radius(1.0, 0.0)


# -- bad input: a ValueError that names the parameter -------------------------------------------
@pytest.mark.parametrize("sigma", [0.0, -1.0, np.nan, np.inf, [0.5, -0.1]])
def test_bad_sigma(sigma):
    with pytest.raises(ValueError, match=r"\bsigma\b"):
        cohen_radius(sigma, 0.9)
    with pytest.raises(ValueError, match=r"\bsigma\b"):
        radius_cap(sigma, 100, 0.001)
    with pytest.raises(ValueError, match=r"\bsigma\b"):
        radius_from_votes(90, 100, sigma, 0.001)


@pytest.mark.parametrize("p", [-0.1, 1.1, np.nan, [0.5, 2.0]])
def test_bad_probabilities(p):
    with pytest.raises(ValueError, match=r"\bp_a_lower\b"):
        cohen_radius(1.0, p)
    with pytest.raises(ValueError, match=r"\bp_b_upper\b"):
        cohen_radius(1.0, 0.9, p)


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.5, 1.5, np.nan, [0.05, 0.1]])
def test_bad_alpha(alpha):
    for fn in (clopper_pearson_lower, clopper_pearson_upper):
        with pytest.raises(ValueError, match=r"\balpha\b"):
            fn(5, 10, alpha)
    with pytest.raises(ValueError, match=r"\balpha\b"):
        radius_cap(1.0, 100, alpha)
    with pytest.raises(ValueError, match=r"\balpha\b"):
        radius_from_votes(5, 10, 1.0, alpha)


@pytest.mark.parametrize("n", [0, -3, 0.5, 2.5])
def test_bad_n(n):
    for fn in (clopper_pearson_lower, clopper_pearson_upper):
        with pytest.raises(ValueError, match=r"\bn\b"):
            fn(0, n, 0.05)
    if n < 1:
        with pytest.raises(ValueError, match=r"\bn\b"):
            radius_cap(1.0, n, 0.05)


@pytest.mark.parametrize("k", [-1, 11, 2.5])
def test_bad_k(k):
    for fn in (clopper_pearson_lower, clopper_pearson_upper):
        with pytest.raises(ValueError, match=r"\bk\b"):
            fn(k, 10, 0.05)


def test_bad_w():
    with pytest.raises(ValueError, match=r"\bw\b"):
        linear_radius(np.zeros(3), 1.0, np.ones(3))
    with pytest.raises(ValueError, match=r"\bw\b"):
        linear_radius(np.ones((2, 2)), 1.0, np.ones(2))
