"""Tests of georobust.theory.radii: each radius derived again with SymPy, its tightness checked along
its worst direction, and the worst direction itself checked by solving the Neyman–Pearson problem
exactly (on a fine grid of cells with exact masses) for every direction of a 2-D threat sphere."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
from scipy import stats

from georobust.theory import radii
from georobust.theory import tradeoff as T

SIGMA = 0.7


# --------------------------------------------------------------------------- SymPy derivations
def test_laplace_l1_radius_is_the_inverse_cdf_and_tight():
    s, b, rho, t = sp.symbols("s b rho t", positive=True)
    upper_tail = sp.exp(-s / b) / 2  # P[ε > s] for s > 0, Laplace(b)
    sol = sp.solve(sp.Eq(1 - upper_tail, rho), s)
    assert len(sol) == 1
    r_sym = sp.lambdify((b, rho), sol[0], "numpy")
    p = np.linspace(0.5001, 0.9999, 50)
    assert np.allclose(radii.laplace_l1_radius(SIGMA, p), r_sym(SIGMA / math.sqrt(2), p), rtol=1e-12)
    # standard deviation of Laplace(b) is b·√2: the parametrization used
    x = sp.symbols("x", real=True)
    var = 2 * sp.integrate(x**2 * sp.exp(-x / b) / (2 * b), (x, 0, sp.oo))
    assert sp.simplify(sp.sqrt(var) - sp.sqrt(2) * b) == 0
    # tight: the half-space [x₁ ≤ R] has probability exactly ρ at 0 (and F(0) = 1/2 after the shift R)
    assert sp.simplify((1 - upper_tail).subs(s, sol[0]) - rho) == 0
    # the monotone likelihood ratio behind the proof: log p(x − t) − log p(x) is nondecreasing in x
    llr = sp.Piecewise((-t / b, x <= 0), ((2 * x - t) / b, x <= t), (t / b, True))
    for a_, b_ in [(-3, -1), (-1, 0.2), (0.2, 0.4), (0.4, 3)]:
        vals = [llr.subs({t: 0.5, b: 1}).subs(x, v) for v in np.linspace(a_, b_, 7)]
        assert all(float(v2) >= float(v1) for v1, v2 in zip(vals, vals[1:]))


def test_uniform_radii_follow_from_the_mass_that_leaves_the_cube():
    lam, rho, t, d = sp.symbols("lambda rho t d", positive=True)
    # ℓ1, along an axis: the shifted cube loses the slab of mass t/(2λ); solve ρ − t/(2λ) = 1/2
    r1 = sp.solve(sp.Eq(rho - t / (2 * lam), sp.Rational(1, 2)), t)[0]
    assert sp.simplify(r1 - 2 * lam * (rho - sp.Rational(1, 2))) == 0
    # ℓ∞, along the diagonal: it loses 1 − (1 − t/(2λ))^d; solve ρ − that = 1/2
    rinf = sp.solve(sp.Eq(rho - (1 - (1 - t / (2 * lam))**d), sp.Rational(1, 2)), t)
    f_inf = sp.lambdify((lam, rho, d), rinf[0], "numpy")
    p = np.linspace(0.51, 0.999, 30)
    lam_v = SIGMA * math.sqrt(3)
    for dim in (1, 2, 784):
        assert np.allclose(radii.uniform_linf_radius(SIGMA, p, dim), f_inf(lam_v, p, dim), rtol=1e-10)
    assert np.allclose(radii.uniform_l1_radius(SIGMA, p), 2 * lam_v * (p - 0.5))
    # the ℓ∞ radius for d = 1 is the ℓ1 radius, and the standard deviation of U[−λ, λ] is λ/√3
    assert np.allclose(radii.uniform_linf_radius(SIGMA, p, 1), radii.uniform_l1_radius(SIGMA, p))
    x = sp.symbols("x", real=True)
    assert sp.simplify(sp.sqrt(sp.integrate(x**2 / (2 * lam), (x, -lam, lam))) - lam / sp.sqrt(3)) == 0
    # the product bound used over the ℓ1 ball: ∏(1 − a_i) ≥ 1 − Σ a_i for a_i in [0, 1]
    a = np.random.default_rng(0).uniform(0, 1, size=(1000, 5)) / 5
    assert np.all(np.prod(1 - a, 1) >= 1 - a.sum(1) - 1e-15)


def test_gaussian_radii_in_l1_and_linf_are_those_of_the_inscribing_l2_ball():
    p = np.linspace(0.51, 0.999, 20)
    r2 = radii.gaussian_radius(SIGMA, p, "l2")
    assert np.allclose(r2, SIGMA * stats.norm.ppf(p))
    assert np.allclose(radii.gaussian_radius(SIGMA, p, "l1"), r2)
    assert np.allclose(radii.gaussian_radius(SIGMA, p, "linf", dim=784), r2 / 28)
    t, d = sp.symbols("t d", positive=True)
    assert sp.simplify(sp.sqrt(d * t**2) - t * sp.sqrt(d)) == 0  # ‖t·1‖₂ = t√d: the diagonal is tight


def test_radii_are_zero_without_a_majority_and_infinite_or_capped_at_one():
    for fn in (radii.laplace_l1_radius, radii.uniform_l1_radius):
        assert fn(SIGMA, 0.5) == 0.0 and fn(SIGMA, 0.2) == 0.0
    assert radii.laplace_l1_radius(SIGMA, 1.0) == np.inf
    assert radii.uniform_l1_radius(SIGMA, 1.0) == pytest.approx(SIGMA * math.sqrt(3))
    assert radii.uniform_linf_radius(SIGMA, 1.0, 3) == pytest.approx(2 * SIGMA * math.sqrt(3) * (1 - 0.5**(1 / 3)))
    assert radii.noise_radius("gaussian", SIGMA, 0.4) == 0.0


# --------------------------------------------------------------------------- worst directions, exactly
def _np_lower_bound(p_mass, q_mass, rho):
    """min Q(A) over events with P(A) = ρ: the trade-off function at type I error 1 − ρ."""
    return T.exact_tradeoff(p_mass, q_mass, 1 - rho)


def _cell_masses(cdf, edges, shift):
    return np.diff(cdf(edges - shift))


@pytest.mark.parametrize("noise", ["laplace", "uniform"])
def test_the_axis_is_the_worst_l1_direction_and_attains_the_bound(noise):
    if noise == "laplace":
        law = stats.laplace(scale=SIGMA / math.sqrt(2))
        edges = np.linspace(-14 * SIGMA, 14 * SIGMA, 2401)
    else:
        lam = SIGMA * math.sqrt(3)
        law = stats.uniform(loc=-lam, scale=2 * lam)
        edges = np.linspace(-3 * lam, 3 * lam, 2401)
    rho = 0.8
    r = radii.noise_radius(noise, SIGMA, rho, "l1")
    p1 = _cell_masses(law.cdf, edges, 0.0)
    p2d = np.outer(p1, p1)
    values = []
    for angle in np.linspace(0, 1, 9):  # δ = r·(1 − a, a): the ℓ1 sphere's quarter
        d1, d2 = r * (1 - angle), r * angle
        q2d = np.outer(_cell_masses(law.cdf, edges, d1), _cell_masses(law.cdf, edges, d2))
        values.append(_np_lower_bound(p2d, q2d, rho))
    values = np.array(values)
    # on the ℓ1 sphere of the radius, the worst case is at the axes, where it is exactly 1/2 ...
    assert values[0] == pytest.approx(0.5, abs=3e-3) and values[-1] == pytest.approx(0.5, abs=3e-3)
    # ... and every other direction keeps more than 1/2: the bound is not reached there
    assert np.all(values >= 0.5 - 3e-3)
    assert values[4] > 0.5 + 0.01


def test_the_diagonal_is_the_worst_linf_direction_for_uniform_noise():
    lam = SIGMA * math.sqrt(3)
    law = stats.uniform(loc=-lam, scale=2 * lam)
    edges = np.linspace(-3 * lam, 3 * lam, 2401)
    rho = 0.85
    r = radii.uniform_linf_radius(SIGMA, rho, 2)
    p1 = _cell_masses(law.cdf, edges, 0.0)
    p2d = np.outer(p1, p1)
    vals = []
    for a in np.linspace(0, 1, 6):  # δ = r·(1, a): one face of the ℓ∞ sphere
        q2d = np.outer(_cell_masses(law.cdf, edges, r), _cell_masses(law.cdf, edges, r * a))
        vals.append(_np_lower_bound(p2d, q2d, rho))
    assert vals[-1] == pytest.approx(0.5, abs=3e-3)  # the corner (diagonal) attains 1/2
    assert np.all(np.diff(vals) < 1e-9) and vals[0] > 0.5 + 0.01  # and it is the worst


def test_implied_radii_follow_the_inclusions_of_norm_balls():
    p, d = np.array([0.6, 0.9, 0.999]), 784
    r1 = radii.laplace_l1_radius(SIGMA, p)
    assert np.allclose(radii.implied_radius("laplace", SIGMA, p, "l2", d), r1 / 28)
    assert np.allclose(radii.implied_radius("laplace", SIGMA, p, "linf", d), r1 / d)
    assert np.allclose(radii.implied_radius("laplace", SIGMA, p, "l1", d), r1)
    u1, uinf = radii.uniform_l1_radius(SIGMA, p), radii.uniform_linf_radius(SIGMA, p, d)
    assert np.allclose(radii.implied_radius("uniform", SIGMA, p, "l2", d), np.maximum(u1 / 28, uinf))
    assert np.allclose(radii.implied_radius("gaussian", SIGMA, p, "l2", d), radii.gaussian_radius(SIGMA, p))
    # sound: every point of the implied ℓ2 ball lies in the certified ℓ1 ball
    rng = np.random.default_rng(1)
    v = rng.normal(size=(500, d))
    v *= (radii.implied_radius("laplace", SIGMA, 0.9, "l2", d) / np.linalg.norm(v, axis=1))[:, None]
    assert np.all(np.abs(v).sum(1) <= radii.laplace_l1_radius(SIGMA, 0.9) * (1 + 1e-12))
    with pytest.raises(ValueError, match="norm must be one of"):
        radii.implied_radius("laplace", SIGMA, 0.9, "l0", d)
