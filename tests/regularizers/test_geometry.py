"""The geometry chapter's identities: every check passes on the true identity and fails when the
identity is altered; the numerical tools agree with the closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
import torch

from georobust.regularizers import geometry as g
from georobust.regularizers.iso import fisher_chart, helmert_basis, iso_penalty

CS = (3, 4)


# -- every check passes on the true identities ------------------------------------------------
@pytest.mark.parametrize("c", CS)
@pytest.mark.parametrize("name", list(g.CHECKS))
def test_true_identities_pass(name, c):
    assert g.CHECKS[name](c) is True


def test_checks_hold_for_two_classes():
    for check in g.CHECKS.values():
        assert check(2) is True


@pytest.mark.parametrize("c, pole", [(3, 1)])  # pole 0: above, for c = 3 and 4
def test_chart_invariance_for_another_pole(c, pole):
    assert g.check_chart_invariance(c, pole=pole)


# -- ... and fails on altered ones ------------------------------------------------------------
def _fails(check, *args, **kwargs):
    with pytest.raises(AssertionError) as err:
        check(*args, **kwargs)
    return str(err.value)


@pytest.mark.parametrize("c", CS)
@pytest.mark.parametrize("mu", [
    lambda th: [sp.sqrt(x) for x in th],              # sqrt(theta): the sphere of radius 1
    lambda th: [2 * x for x in th],                   # no square root
    lambda th: [2 * sp.sqrt(x) + x for x in th],      # a perturbed map
])
def test_sphere_isometry_fails_for_a_wrong_map(mu, c):
    _fails(g.check_sphere_isometry, c, sphere_map=mu)


def test_sphere_isometry_fails_for_a_wrong_radius():
    msg = _fails(g.check_sphere_isometry, 3, radius=1)
    assert "sphere of radius 1" in msg and "false" in msg


def test_sqrt_theta_is_an_isometry_only_up_to_scale():
    # right sphere for it, wrong metric: the pullback is a quarter of Fisher's
    msg = _fails(g.check_sphere_isometry, 3, sphere_map=lambda th: [sp.sqrt(x) for x in th], radius=1)
    assert "pullback" in msg


@pytest.mark.parametrize("c", CS)
@pytest.mark.parametrize("dist", [
    lambda a, b: sp.acos(sum(sp.sqrt(x * y) for x, y in zip(a, b))),             # factor 2 missing
    lambda a, b: 2 * sp.acos(sum(x * y for x, y in zip(a, b))),                  # no square root
    lambda a, b: 2 * sp.sqrt(sum((sp.sqrt(x) - sp.sqrt(y)) ** 2 for x, y in zip(a, b))),  # chord
    lambda a, b: sp.sqrt(sum((x - y) ** 2 for x, y in zip(a, b))),               # Euclidean
    lambda a, b: 2 * sp.acos(sum(sp.sqrt(x * y) for x, y in zip(a, b))) + (a[0] - b[0]) ** 2,
])
def test_fisher_rao_distance_fails_for_a_wrong_formula(dist, c):
    _fails(g.check_fisher_rao_distance, c, distance=dist)


def test_each_part_of_the_distance_check_can_fail():
    # zero on the diagonal
    assert "d(theta, theta) = 0" in _fails(
        g.check_fisher_rao_distance, 3, distance=lambda a, b: 2 * sp.acos(sum(x * y for x, y in zip(a, b))))
    # symmetry
    assert "symmetric" in _fails(g.check_fisher_rao_distance, 3, distance=lambda a, b: g.fisher_rao_expr(a, b)
                                 + (sp.sqrt(a[0]) - sp.sqrt(b[0])) * a[1])
    # the eikonal equation (a metric, zero on the diagonal and symmetric, but half the distance)
    assert "grad d" in _fails(g.check_fisher_rao_distance, 3, distance=lambda a, b: g.fisher_rao_expr(a, b) / 2)


@pytest.mark.parametrize("c", CS)
def test_delta_fails_for_a_wrong_formula(c):
    _fails(g.check_delta, c, delta=lambda th: 2 * sp.acos(sum(sp.sqrt(x) for x in th) / len(th)))
    _fails(g.check_delta, c, delta=lambda th: sp.acos(sum(sp.sqrt(x / len(th)) for x in th)))


@pytest.mark.parametrize("c", CS)
@pytest.mark.parametrize("rho", [
    lambda t: 1 / (1 + sum((x / 2) ** 2 for x in t)),   # factor 2 missing
    lambda t: 2 / (1 + sum(x ** 2 for x in t)),         # t instead of t/2
    lambda t: 4 / (1 + sum((x / 2) ** 2 for x in t)) ** 2,  # rho squared
])
def test_conformal_factor_fails_for_a_wrong_rho(rho, c):
    assert "rho^2 I" in _fails(g.check_stereographic_conformal_factor, c, rho=rho)


@pytest.mark.parametrize("c", CS)
@pytest.mark.parametrize("chart", [
    lambda s: [x / (1 - s[-1]) for x in s[:-1]],          # factor 2 missing
    lambda s: [2 * x ** 2 / (1 - s[-1]) for x in s[:-1]],  # theta instead of sqrt(theta)
    lambda s: [2 * x / (1 + s[-1]) for x in s[:-1]],       # projected from the other pole
])
def test_conformal_factor_fails_for_a_wrong_chart(chart, c):
    assert "chart(inverse(t)) = t" in _fails(g.check_stereographic_conformal_factor, c, chart=chart)


@pytest.mark.parametrize("c", CS)
@pytest.mark.parametrize("rho_simplex", [
    lambda s: 1 - s[-1] ** 2,   # 1 - theta_c
    lambda s: 1 + s[-1],
    lambda s: (1 - s[-1]) ** 2,
])
def test_rho_on_simplex_fails_for_a_wrong_value(rho_simplex, c):
    _fails(g.check_rho_simplifies, c, rho_simplex=rho_simplex)


def test_rho_on_simplex_fails_for_a_wrong_conformal_factor():
    _fails(g.check_rho_simplifies, 3, rho=lambda t: 2 / (1 + sum(x ** 2 for x in t)))


@pytest.mark.parametrize("c", CS)
@pytest.mark.parametrize("frame", [lambda r: 1, lambda r: r ** 2, lambda r: sp.sqrt(r)])
def test_chart_invariance_fails_for_a_wrong_frame(frame, c):
    # only rho * J is a change of orthonormal frame; J alone (the paper's A) or rho^2 J are not
    assert "orthogonal" in _fails(g.check_chart_invariance, c, pole=0, frame=frame)


@pytest.mark.parametrize("c", CS)
def test_penalty_relation_fails_for_a_wrong_power_of_rho(c):
    def wrong_invariant(A, rho, delta, eps):  # rho instead of rho^2
        return eps ** 2 * sp.sqrt(sum(x ** 2 for x in rho * A - delta ** 2 / eps ** 2 * sp.eye(A.shape[0])))

    def wrong_paper(A, rho, delta, eps):  # delta^2/(rho eps^2)
        return eps ** 2 * sp.sqrt(sum(x ** 2 for x in A - delta ** 2 / (rho * eps ** 2) * sp.eye(A.shape[0])))

    _fails(g.check_penalty_relation, c, invariant=wrong_invariant)
    _fails(g.check_penalty_relation, c, paper=wrong_paper)


def test_assert_zero_refutes_at_a_point_and_proves_otherwise():
    x = sp.Symbol("x", positive=True)
    pts = [{x: sp.Rational(1, 3)}]
    g._assert_zero(sp.sin(x) ** 2 + sp.cos(x) ** 2 - 1, pts, "pythagoras")
    with pytest.raises(AssertionError, match="false"):
        g._assert_zero(sp.sin(x) ** 2 - sp.cos(x) ** 2, pts, "not an identity")


@pytest.mark.parametrize("bad", [1, 0, 2.0, True, "3"])
def test_bad_number_of_classes(bad):
    with pytest.raises(ValueError, match="integer >= 2"):
        g.check_rho_simplifies(bad)


@pytest.mark.parametrize("pole", [2, -1, 1.0])
def test_bad_pole(pole):
    with pytest.raises(ValueError, match="pole"):
        g.check_chart_invariance(3, pole=pole)


# -- numerical tools --------------------------------------------------------------------------
def _random_simplex(rng, n, c):
    return rng.dirichlet(np.ones(c), size=n)


def test_numeric_distance_matches_the_symbolic_formula():
    rng = np.random.default_rng(0)
    p, q = _random_simplex(rng, 2, 4)
    th, th2 = sp.symbols("a1:5", positive=True), sp.symbols("b1:5", positive=True)
    expr = g.fisher_rao_expr(th, th2)
    value = float(expr.subs({**dict(zip(th, p)), **dict(zip(th2, q))}))
    assert g.fisher_rao(p, q) == pytest.approx(value, rel=1e-12)
    assert g.delta(p) == pytest.approx(float(g.delta_expr(list(p))), rel=1e-12)


def test_geodesic_length_and_numeric_shortest_path():
    p, q = np.array([0.7, 0.2, 0.1]), np.array([0.05, 0.25, 0.7])
    d = g.fisher_rao(p, q)
    assert g.fisher_length(g.great_circle(p, q, 2000)) == pytest.approx(d, rel=1e-6)
    straight = np.linspace(0, 1, 2001)[:, None] * (q - p) + p
    assert g.fisher_length(straight) > d * (1 + 1e-4)  # the Euclidean segment is not a geodesic here
    length, path = g.shortest_path(p, q, 48)
    assert length == pytest.approx(d, rel=1e-3) and length < g.fisher_length(straight)
    np.testing.assert_allclose(path, g.great_circle(p, q, 48), atol=2e-3)


def test_boundary_distance():
    rng = np.random.default_rng(2)
    p2 = _random_simplex(rng, 50, 2)
    np.testing.assert_allclose(g.boundary_distance(p2), g.delta(p2), rtol=1e-10, atol=1e-12)  # c = 2: the centre
    p = _random_simplex(rng, 50, 3)
    assert np.all(g.boundary_distance(p) < g.delta(p))
    # brute force: the nearest point where the top class ties with another
    x = p[0]
    k = int(np.argmax(x))
    best = np.inf
    for j in range(3):
        if j == k:
            continue
        u = np.linspace(0, 1, 20001)
        pts = np.zeros((u.size, 3))
        pts[:, k] = pts[:, j] = u / 2
        pts[:, 3 - k - j] = 1 - u
        ok = pts[:, k] >= pts[:, 3 - k - j]
        best = min(best, g.fisher_rao(x, pts[ok]).min())
    assert g.boundary_distance(x) == pytest.approx(best, abs=1e-6)


def test_geodesic_circle_is_at_the_right_distance():
    p = np.array([0.6, 0.3, 0.1])
    pts = g.geodesic_circle(p, 0.5, 200)
    ok = ~np.isnan(pts).any(-1)
    assert ok.sum() > 50
    np.testing.assert_allclose(g.fisher_rao(p, pts[ok]), 0.5, atol=1e-12)
    np.testing.assert_allclose(pts[ok].sum(-1), 1.0, atol=1e-12)
    centre = np.full(3, 1 / 3)
    pts_c = g.geodesic_circle(centre, 0.3, 50)
    np.testing.assert_allclose(g.fisher_rao(centre, pts_c), 0.3, atol=1e-12)


def test_to_plane_vertices():
    np.testing.assert_allclose(g.to_plane(np.eye(3)), [[0, 0], [1, 0], [0.5, math.sqrt(3) / 2]])


def test_package_chart_has_conformal_factor_rho():
    # the package's dt/dz (iso.fisher_chart) against the metric: the Fisher metric pulled back to the
    # logits is diag(p) - pp^T, so rho^2 (TU)(U^T C U)^-1 (TU)^T = I, U a basis of the tangent space
    z = torch.randn(5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    _, T, rho, d2 = fisher_chart(z)
    p = torch.softmax(z, -1)
    C = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
    U = helmert_basis(4, torch.float64)
    Tu, Cu = T @ U, U.T @ C @ U
    M = rho[:, None, None] ** 2 * Tu @ torch.linalg.solve(Cu, Tu.transpose(1, 2))
    torch.testing.assert_close(M, torch.eye(3, dtype=torch.float64).expand(5, 3, 3), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(d2, torch.as_tensor(g.delta(p.numpy()) ** 2), rtol=1e-12, atol=1e-14)


def test_permuting_classes_changes_the_paper_penalty_not_the_invariant_one():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4)).double()
    x = 2 * torch.randn(12, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    perm = [3, 1, 2, 0]  # the pole (last class) becomes class 0's
    permuted = g.permute_classes(model, perm)
    with torch.no_grad():
        torch.testing.assert_close(permuted(x), model(x)[:, perm])
    kw = dict(eps=1.0, reduction="none")
    inv, inv_p = iso_penalty(model, x, invariant=True, **kw), iso_penalty(permuted, x, invariant=True, **kw)
    pap, pap_p = iso_penalty(model, x, **kw), iso_penalty(permuted, x, **kw)
    torch.testing.assert_close(inv_p, inv, rtol=1e-9, atol=1e-12)
    p = torch.softmax(model(x), -1).detach()
    torch.testing.assert_close(pap, inv / (1 - p[:, 3].sqrt()) ** 2, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(pap_p, inv / (1 - p[:, 0].sqrt()) ** 2, rtol=1e-9, atol=1e-12)
    assert (pap_p / pap - 1).abs().max() > 0.05


def test_permute_classes_rejects_a_non_permutation():
    with pytest.raises(ValueError, match="permutation"):
        g.permute_classes(torch.nn.Identity(), [0, 0, 1])
