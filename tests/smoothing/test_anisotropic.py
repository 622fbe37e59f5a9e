"""Anisotropic Gaussian smoothing (``AnisotropicSmooth``): statistical soundness and the geometry
of its certificate.

On a half-space f(z) = [wᵀz + b > 0] the smoothed classifier with noise Cz is the half-space
itself, and P[f(x + Cz) = 1] = Φ(m / ‖Cw‖) with m = wᵀx + b, so the exact gap is |m| / ‖Cw‖ (C
symmetric) and the region {δ : ‖C⁻¹δ‖ < gap} is correct exactly when it does not contain the
boundary point δ_b = −m Σw / ‖Cw‖² (the Mahalanobis-closest point of the boundary, at
‖C⁻¹δ_b‖ = |m| / ‖Cw‖). A wrong certificate is a wrong class or a region containing δ_b; its
rate must be ≤ α, and equal to the exact Clopper–Pearson rate (the certificate is tight there).
Controls that must be rejected: the point estimate instead of the lower bound, and C used where
C⁻¹ belongs (the region {δ : ‖Cδ‖ < gap}).
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
import torch
from scipy import stats

from georobust.smoothing import ABSTAIN, Smooth, certify_from_counts
from georobust.smoothing.anisotropic import (AnisotropicSmooth, as_scale, proxy_radius, radius_l2,
                                             region_contains, scale_matrix)
from georobust.smoothing.smooth import _child_seeds
from georobust.theory.bounds import clopper_pearson_lower
from smoothing.test_noises import HalfSpace, not_above

SIGNIFICANCE = 0.001
D = 5


def random_spd(d, low, high, seed):
    """A random SPD matrix with eigenvalues spread in [low, high]."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return torch.tensor(q @ np.diag(np.linspace(low, high, d)) @ q.T)


SCALES = {
    "diagonal": torch.tensor(np.linspace(0.3, 0.7, D)),
    "full": random_spd(D, 0.3, 0.7, seed=0),
}


def trials(scale, p_values, repeats, seed=1):
    """Inputs at exact smoothed probabilities p (alternating sides) of a random half-space."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(D)
    c = scale_matrix(scale, D).numpy()
    cw = np.linalg.norm(c @ w)
    pts, cls, gaps = [], [], []
    for j, p in enumerate(p_values):
        side = 1 if j % 2 == 0 else -1
        m = side * stats.norm.ppf(p) * cw  # margin wᵀx + b with b = 0
        base = rng.standard_normal(D)
        base -= (base @ w) / (w @ w) * w  # orthogonal to w: the margin is set by the w component
        pts.append(base + m * w / (w @ w))
        cls.append(1 if side > 0 else 0)
        gaps.append(stats.norm.ppf(p))
    xs = torch.tensor(np.repeat(pts, repeats, axis=0))
    margins = xs.numpy() @ w
    boundary = -(margins[:, None] * (c @ c @ w)[None, :]) / cw ** 2  # δ_b for each row
    return HalfSpace(w, 0.0), xs, np.repeat(cls, repeats), np.repeat(gaps, repeats), torch.tensor(boundary)


def wrong(classes, gaps, true_cls, scale, boundary):
    classes, gaps = np.asarray(classes), np.asarray(gaps)
    inside = region_contains(scale, np.where(classes == true_cls, gaps, 0.0), boundary).numpy()
    return int(np.sum(((classes != ABSTAIN) & (classes != true_cls)) | ((classes == true_cls) & inside)))


@pytest.mark.parametrize("kind", ["diagonal", "full"])
def test_certified_region_is_sound_tight_and_the_controls_fail(kind):
    scale = SCALES[kind]
    alpha, n0, n, repeats = 0.1, 50, 300, 60
    p_values = np.linspace(0.7, 0.97, 10)
    model, xs, true_cls, exact_gap, boundary = trials(scale, p_values, repeats)
    sm = AnisotropicSmooth(model, 2, scale)
    classes, gaps = sm.certify_batch(xs, n0, n, alpha, 4096, torch.Generator().manual_seed(3))
    count = len(xs)
    fails = wrong(classes, gaps, true_cls, scale, boundary)
    assert not_above(fails, count, alpha) > SIGNIFICANCE, f"{kind}: {fails}/{count} wrong at alpha={alpha}"
    # a wrong region is exactly a gap above the exact one
    ok = np.asarray(classes) == true_cls
    assert np.array_equal(region_contains(scale, np.where(ok, gaps, 0.0), boundary).numpy(),
                          ok & (gaps.numpy() > exact_gap))
    # tight: the rate equals the exact Clopper–Pearson rate
    k = np.arange(n + 1)
    lo = clopper_pearson_lower(k, n, alpha)
    exact_rate = np.mean([stats.binom.pmf(k, n, p)[lo > p].sum() for p in p_values])
    assert stats.binomtest(fails, count, exact_rate).pvalue > SIGNIFICANCE, (kind, fails, count, exact_rate)

    counts = sm.sample_counts(xs, _child_seeds(torch.Generator().manual_seed(3), count), n0, n, 4096)
    # control 1: the point estimate in place of the lower bound
    c_hat = counts[:, 0].argmax(1)
    p_hat = np.minimum(counts[np.arange(count), 1, c_hat] / n, 1 - 1e-12)
    c_point = np.where(p_hat > 0.5, c_hat, ABSTAIN)
    g_point = np.where(p_hat > 0.5, stats.norm.ppf(p_hat), 0.0)
    assert not_above(wrong(c_point, g_point, true_cls, scale, boundary), count, alpha) < 1e-6
    # control 2: C where C⁻¹ belongs, i.e. the region {δ : ‖Cδ‖ < gap}
    c_mat = scale_matrix(scale, D)
    inverse = torch.linalg.inv(c_mat)
    inverse = 0.5 * (inverse + inverse.T)
    assert not_above(wrong(classes, gaps, true_cls, inverse, boundary), count, alpha) < 1e-6


def test_noise_has_covariance_c_c_transpose():
    c = SCALES["full"]
    sm = AnisotropicSmooth(HalfSpace(np.ones(D), 0.0), 2, c)
    out = torch.empty(20000, D, dtype=torch.float64)
    sm._draw(out, torch.Generator().manual_seed(0))
    # every direction: vᵀε / ‖Cv‖ is standard normal
    rng = np.random.default_rng(0)
    for _ in range(5):
        v = torch.tensor(rng.standard_normal(D))
        proj = (out @ v) / (c @ v).norm()
        assert stats.kstest(proj.numpy(), "norm").pvalue > SIGNIFICANCE
    emp = torch.cov(out.T)
    assert torch.allclose(emp, c @ c, atol=0.02)
    # a planted bug (C⁻¹ instead of C) is seen by the same test
    bad = out @ torch.linalg.inv(c) @ torch.linalg.inv(c)
    v = torch.tensor(rng.standard_normal(D))
    assert stats.kstest(((bad @ v) / (c @ v).norm()).numpy(), "norm").pvalue < 1e-6


def test_isotropic_scale_is_cohens_certificate():
    model = HalfSpace(np.arange(1.0, D + 1), 0.3)
    xs = torch.tensor(np.random.default_rng(0).standard_normal((12, D)) * 0.3)
    sigma = 0.4
    c1, g1 = AnisotropicSmooth(model, 2, sigma).certify_batch(xs, 20, 500, 0.01, 256, torch.Generator().manual_seed(5))
    c2, r2 = Smooth(model, 2, sigma).certify_batch(xs, 20, 500, 0.01, 256, torch.Generator().manual_seed(5))
    assert torch.equal(c1, c2)
    assert np.allclose(radius_l2(sigma, g1.numpy()), r2.numpy())
    # a diagonal scale of equal entries and the matrix σI give the same certificates
    c3, g3 = AnisotropicSmooth(model, 2, torch.full((D,), sigma, dtype=torch.float64)).certify_batch(
        xs, 20, 500, 0.01, 256, torch.Generator().manual_seed(5))
    assert torch.equal(c1, c3) and torch.allclose(g1, g3)


def test_per_input_scales_equal_one_smoother_per_input():
    model = HalfSpace(np.ones(D), -0.1)
    xs = torch.tensor(np.random.default_rng(1).standard_normal((4, D)) * 0.2)
    scales = [random_spd(D, 0.2, 0.6 + 0.1 * i, seed=i) for i in range(4)]
    sm = AnisotropicSmooth(model, 2, scales[0])
    cb, gb = sm.certify_batch(xs, 10, 300, 0.01, 64, torch.Generator().manual_seed(2), scales=scales)
    seeds = _child_seeds(torch.Generator().manual_seed(2), 4)
    for i in range(4):
        counts = AnisotropicSmooth(model, 2, scales[i]).sample_counts(xs[i:i + 1], seeds[i:i + 1], 10, 300, 64)
        c, g = certify_from_counts(counts[:, 0], counts[:, 1], 0.01, 1.0)
        assert int(cb[i]) == int(c[0]) and float(gb[i]) == pytest.approx(float(g[0]))


def test_radius_l2_is_the_largest_inscribed_ball_and_proxy_the_equal_volume_ball():
    c = SCALES["full"]
    gap = 1.7
    # every direction u: the boundary of the ellipsoid is at gap / ‖C⁻¹u‖ ≥ radius_l2, with equality somewhere
    rng = np.random.default_rng(0)
    u = rng.standard_normal((20000, D))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    u = np.vstack([u, np.linalg.eigh(c.numpy())[1].T])  # include the eigenvectors
    reach = gap / np.linalg.norm(np.linalg.solve(c.numpy(), u.T), axis=0)
    assert reach.min() == pytest.approx(radius_l2(c, gap), rel=1e-9)
    assert np.all(reach >= radius_l2(c, gap) * (1 - 1e-12))
    # the proxy radius: det(C)^{1/d}·gap, ≥ the ℓ2 radius, equal for isotropic C
    assert proxy_radius(c, gap) == pytest.approx(np.linalg.det(c.numpy()) ** (1 / D) * gap)
    assert proxy_radius(c, gap) > radius_l2(c, gap)
    assert proxy_radius(0.3, gap) == radius_l2(0.3, gap) == pytest.approx(0.3 * gap)
    # inside/outside along the smallest axis
    lam, vec = np.linalg.eigh(c.numpy())
    edge = torch.tensor(vec[:, 0] * lam[0] * gap)
    assert bool(region_contains(c, gap, edge * 0.999)) and not bool(region_contains(c, gap, edge * 1.001))


def test_sympy_whitening_and_volume_in_two_dimensions():
    """The two steps of the proof, symbolically for a 2×2 SPD C = [[a, b], [b, c]]."""
    a, b, c, t1, t2, g = sp.symbols("a b c t1 t2 g", real=True)
    cm = sp.Matrix([[a, b], [b, c]])
    delta = sp.Matrix([t1, t2])
    # whitening: with u = C⁻¹δ, C u = δ, so shifting x by δ shifts the whitened input by u
    u = cm.inv() * delta
    assert sp.simplify(cm * u - delta) == sp.zeros(2, 1)
    # volume: the ellipse {C u : ‖u‖ < g} has area π g² |det C|, the disc of radius det(C)^{1/2} g the same
    area_ellipse = sp.pi * g ** 2 * cm.det()
    r_proxy = sp.sqrt(cm.det()) * g
    assert sp.simplify(sp.pi * r_proxy ** 2 - area_ellipse) == 0
    # the inscribed disc: ‖C⁻¹δ‖² ≤ ‖δ‖² / λ_min² — check at a numeric SPD instance exactly
    inst = {a: sp.Rational(2), b: sp.Rational(1, 2), c: sp.Rational(1)}
    lam_min = min(cm.subs(inst).eigenvals())
    q = (u.T * u)[0].subs(inst)
    # on the circle ‖δ‖ = 1 the minimum of 1/q is λ_min²: 1/q − λ_min² ≥ 0 with equality at the eigenvector
    theta = sp.symbols("theta", real=True)
    on_circle = sp.simplify(q.subs({t1: sp.cos(theta), t2: sp.sin(theta)}))
    vals = [float(1 / on_circle.subs(theta, th)) for th in np.linspace(0, np.pi, 721)]
    assert min(vals) == pytest.approx(float(lam_min ** 2), rel=1e-4)
    assert min(vals) >= float(lam_min ** 2) - 1e-12


@pytest.mark.parametrize("bad,match", [
    (0.0, "sigma must be finite and > 0"),
    (-0.5, "sigma must be finite and > 0"),
    (torch.tensor([0.5, 0.0, 0.5, 0.5, 0.5]), "finite and > 0"),
    (torch.tensor([[1.0, 2.0], [0.0, 1.0]]), "not symmetric"),
    (torch.tensor([[1.0, 0.0], [0.0, -1.0]]), "smallest eigenvalue"),
    (torch.tensor([[1.0, 1.0], [1.0, 1.0]]), "singular"),
    ("wide", "scale must be a number"),
])
def test_bad_scales_are_refused_by_name(bad, match):
    with pytest.raises(ValueError, match=match):
        as_scale(bad)


def test_wrong_shaped_scale_is_refused():
    model = HalfSpace(np.ones(D), 0.0)
    with pytest.raises(ValueError, match="scale"):
        AnisotropicSmooth(model, 2, torch.ones(D + 1) * 0.5, input_shape=(D,))
    sm = AnisotropicSmooth(model, 2, torch.ones(D + 1) * 0.5)
    with pytest.raises(ValueError, match="scale has 6 coordinates"):
        sm.certify(torch.zeros(D, dtype=torch.float64), 10, 10, 0.1, 10)
    sm = AnisotropicSmooth(model, 2, SCALES["full"])
    with pytest.raises(ValueError, match="scales must have shape"):
        sm.certify_batch(torch.zeros(2, D, dtype=torch.float64), 10, 10, 0.1, 10, scales=torch.ones(2, D))
    with pytest.raises(ValueError, match="gap must be >= 0"):
        radius_l2(0.5, -1.0)
