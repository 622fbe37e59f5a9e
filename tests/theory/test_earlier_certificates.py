"""The earlier certificates (PixelDP, Rényi, KL): the divergences they rest on, checked with SymPy;
domination by the Neyman–Pearson radius on a grid of (p_A, p_B); soundness on half-spaces,
where the exact radius is known; and planted errors that the checks catch."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
from scipy import stats

from georobust.theory import earlier_certificates as ec


def grid(m=36):
    a, b = np.meshgrid(np.linspace(0.3, 0.99999, m), np.linspace(0.0, 0.7, m))
    keep = (a + b <= 1) & (a > b)
    return a[keep], b[keep]


def test_gaussian_kl_and_renyi_divergences_of_a_shift():
    x, mu = sp.symbols("x mu", real=True)
    s, a = sp.symbols("sigma alpha", positive=True)
    p = sp.exp(-x**2 / (2 * s**2)) / sp.sqrt(2 * sp.pi * s**2)
    q = sp.exp(-(x - mu)**2 / (2 * s**2)) / sp.sqrt(2 * sp.pi * s**2)
    kl = sp.integrate(sp.expand(p * (sp.log(p) - sp.log(q)), force=True), (x, -sp.oo, sp.oo))
    assert sp.simplify(kl - mu**2 / (2 * s**2)) == 0
    # Rényi of order α: log ∫ p^α q^{1−α} / (α − 1) = α μ² / (2σ²), checked at several α
    for alpha in (sp.Rational(3, 2), 2, 5):
        integral = sp.integrate(sp.powsimp(p**alpha * q**(1 - alpha), force=True), (x, -sp.oo, sp.oo))
        renyi = sp.log(sp.simplify(integral)) / (alpha - 1)
        assert sp.simplify(sp.expand_log(renyi, force=True) - alpha * mu**2 / (2 * s**2)) == 0


@pytest.mark.parametrize("name", ["renyi", "pixeldp", "kl"])
def test_neyman_pearson_dominates_each_earlier_certificate(name):
    a, b = grid()
    if name == "kl":
        b = 1 - a  # the binary form only
    other = {"renyi": lambda: ec.renyi_radius(0.7, a, b), "pixeldp": lambda: ec.pixeldp_radius(0.7, a, b),
             "kl": lambda: ec.kl_radius(0.7, a)}[name]()
    npr = ec.neyman_pearson_radius(0.7, a, b)
    assert np.all(other <= npr + 1e-9), np.max(other - npr)
    assert np.mean(other > 0) > 0.5  # and they do certify something: the comparison is not vacuous


def test_the_domination_check_catches_planted_errors():
    a, b = grid()
    npr = ec.neyman_pearson_radius(0.7, a, b)
    # the Rényi bound without the 1/α, or PixelDP with e^ε instead of e^{2ε}, would beat the exact worst case
    no_alpha = np.array([0.7 * math.sqrt(2 * max(ec._renyi_objective(0.0, x, max(y, 1e-300)) * 2.0, 0))
                         for x, y in zip(a, b)])
    assert np.any(no_alpha > npr + 1e-6)
    assert np.any(ec.kl_radius(0.7 * 2, a) > ec.neyman_pearson_radius(0.7, a) + 1e-6)  # a σ off by 2


def test_certificates_are_sound_on_half_spaces_with_exact_probabilities():
    """For f = [wᵀz + c > 0] at distance t·σ from the boundary, p_A = Φ(t) exactly and the true
    radius is tσ: every certificate computed from the exact p_A must stay within it."""
    sigma = 0.7
    t = np.linspace(0.05, 4.0, 60)
    p_a = stats.norm.cdf(t)
    true_r = sigma * t
    for fn in (lambda p: ec.renyi_radius(sigma, p), lambda p: ec.pixeldp_radius(sigma, p),
               lambda p: ec.kl_radius(sigma, p)):
        assert np.all(fn(p_a) <= true_r + 1e-9)
    assert np.allclose(ec.neyman_pearson_radius(sigma, p_a), true_r)


def test_limits_as_the_vote_becomes_unanimous():
    p = np.array([0.9, 0.999, 0.999999])
    assert np.all(ec.kl_radius(1.0, p) < math.sqrt(2 * math.log(2)))
    assert ec.kl_radius(1.0, 1.0) == pytest.approx(math.sqrt(2 * math.log(2)))
    assert np.all(np.diff(ec.renyi_radius(1.0, p)) > 0)  # Rényi keeps growing, as NP does
    assert np.all(ec.pixeldp_radius(1.0, p) < 1.0 / math.sqrt(2 * math.log(1.25)))  # ε ≤ 1, δ < 1


def test_bad_inputs_are_refused_by_name():
    with pytest.raises(ValueError, match="p_a must be a probability"):
        ec.renyi_radius(1.0, 1.2)
    with pytest.raises(ValueError, match="p_a \\+ p_b must be <= 1"):
        ec.pixeldp_radius(1.0, 0.8, 0.5)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        ec.kl_radius(0.0, 0.8)
    with pytest.raises(ValueError, match="eps_max must be a finite number > 0"):
        ec.pixeldp_radius(1.0, 0.8, eps_max=0)
