"""Data-dependent smoothing: SPD geometry against its defining identities, the optimizers' gradients
against autograd and finite differences, and DDRS / ANCER against the authors' packages."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from georobust.smoothing.data_dependent import (ancer_objective, ddrs_objective, optimize_ancer, optimize_ddrs,
                                                optimize_rddrs, rddrs_euclidean_gradient, rddrs_objective, spd)
from georobust.smoothing.data_dependent.surrogate import draw_standard


def random_spd(d, seed, low=0.3, high=2.0, batch=()):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(batch + (d, d), generator=g, dtype=torch.float64))
    lam = low + (high - low) * torch.rand(batch + (d,), generator=g, dtype=torch.float64)
    return (q * lam.unsqueeze(-2)) @ q.transpose(-1, -2)


def random_sym(d, seed, batch=()):
    g = torch.Generator().manual_seed(seed)
    return spd.sym(torch.randn(batch + (d, d), generator=g, dtype=torch.float64))


def tiny_model(seed=0, side=4, classes=3):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(side * side, 12), nn.Tanh(), nn.Linear(12, classes)).double()


# --------------------------------------------------------------------------- SPD geometry
def test_affine_exp_and_log_are_inverse_and_the_distance_is_the_norm_of_the_log():
    c, v = random_spd(5, 0, batch=(3,)), 0.5 * random_sym(5, 1, batch=(3,))
    y = spd.affine_exp(c, v)
    assert torch.allclose(spd.affine_log(c, y), v, atol=1e-10)
    assert torch.all(torch.linalg.eigvalsh(y) > 0)
    # d(C, Exp_C(tV)) = t·‖C^{-1/2} V C^{-1/2}‖_F (geodesics have constant speed)
    ihalf = spd.eig_apply(c, torch.rsqrt)
    speed = (ihalf @ v @ ihalf).flatten(1).norm(dim=1)
    for t in (0.3, 1.0):
        assert torch.allclose(spd.affine_distance(c, spd.affine_exp(c, t * v)), t * speed, atol=1e-10)
    # invariance under congruence: d(ACAᵀ, AYAᵀ) = d(C, Y)
    a = torch.randn(5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(spd.affine_distance(a @ c @ a.T, a @ y @ a.T), spd.affine_distance(c, y), atol=1e-8)


def test_affine_gradient_satisfies_its_defining_identity():
    """g_C(grad F, V) = tr(C⁻¹ grad C⁻¹ V) = ⟨∇F, V⟩ for every symmetric V."""
    c = random_spd(4, 3)
    g = torch.randn(4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(4))  # not symmetric
    grad = spd.affine_gradient(c, g)
    ci = torch.linalg.inv(c)
    for seed in range(5):
        v = random_sym(4, 10 + seed)
        assert torch.trace(ci @ grad @ ci @ v) == pytest.approx(float((g * v).sum()), rel=1e-10)


def test_log_euclidean_gradient_is_the_gradient_of_f_composed_with_exp():
    l_mat = random_sym(5, 5)
    target = random_spd(5, 6)

    def f(l):  # any smooth function of C = exp(L)
        c = torch.linalg.matrix_exp(l)
        return (c * target).sum() + torch.logdet(c + torch.eye(5, dtype=torch.float64))

    l_var = l_mat.clone().requires_grad_(True)
    (auto,) = torch.autograd.grad(f(l_var), l_var)
    c_var = torch.linalg.matrix_exp(l_mat).requires_grad_(True)
    (grad_c,) = torch.autograd.grad((c_var * target).sum() + torch.logdet(c_var + torch.eye(5, dtype=torch.float64)),
                                    c_var)
    ours = spd.log_euclidean_gradient(l_mat, grad_c)
    assert torch.allclose(ours, spd.sym(auto), atol=1e-8)
    # repeated eigenvalues (L = 0): the divided differences become e^l
    assert torch.allclose(spd.log_euclidean_gradient(torch.zeros(3, 3, dtype=torch.float64), spd.sym(grad_c[:3, :3])),
                          spd.sym(grad_c[:3, :3]), atol=1e-12)


def test_the_two_metrics_take_the_same_first_step_from_an_isotropic_start():
    sigma, lr, g = 0.4, 0.7, random_sym(6, 7)
    c = sigma * torch.eye(6, dtype=torch.float64)
    affine = spd.affine_exp(c, lr * spd.affine_gradient(c, g))
    log_c = spd.spd_log(c)
    log_euclid = spd.spd_exp(log_c + lr * spd.log_euclidean_gradient(log_c, g))
    assert torch.allclose(affine, log_euclid, atol=1e-12)
    # but not from an anisotropic start
    c2 = random_spd(6, 8)
    a2 = spd.affine_exp(c2, lr * spd.affine_gradient(c2, g))
    l2 = spd.spd_log(c2)
    assert not torch.allclose(a2, spd.spd_exp(l2 + lr * spd.log_euclidean_gradient(l2, g)), atol=1e-3)


def test_clamp_eigenvalues_projects_onto_the_superset_condition():
    c = random_spd(5, 9, low=0.1, high=1.0, batch=(2,))
    floor = torch.tensor([0.5, 0.2], dtype=torch.float64)
    out = spd.clamp_eigenvalues(c, floor)
    lam_in, lam_out = torch.linalg.eigvalsh(c), torch.linalg.eigvalsh(out)
    assert torch.allclose(lam_out, torch.maximum(lam_in, floor[:, None]), atol=1e-10)
    # eigenvectors kept: out commutes with c
    assert torch.allclose(out @ c, c @ out, atol=1e-10)


def test_geomstats_agrees_when_it_imports():
    try:
        from geomstats.geometry.spd_matrices import SPDAffineMetric, SPDMatrices  # noqa: F401
    except Exception as err:  # geomstats 2.8 imports numpy.trapz, removed in NumPy 2
        pytest.skip(f"geomstats does not import next to this NumPy: {type(err).__name__}: {err}")
    space = SPDMatrices(4, equip=False)
    space.equip_with_metric(SPDAffineMetric)
    c, v = random_spd(4, 0).numpy(), (0.5 * random_sym(4, 1)).numpy()
    assert np.allclose(space.metric.exp(v, c), spd.affine_exp(torch.tensor(c), torch.tensor(v)).numpy(), atol=1e-8)


# --------------------------------------------------------------------------- objectives and optimizers
def test_rddrs_gradient_matches_autograd_of_the_objective_on_fixed_draws():
    model = tiny_model()
    xs = 0.3 * torch.randn(2, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    c = 0.3 * random_spd(16, 1, low=0.5, high=1.5, batch=(2,))
    z = draw_standard(xs, 64, torch.Generator().manual_seed(1))
    kappa = 0.5
    grad, value = rddrs_euclidean_gradient(model, xs, c, z, z, kappa=kappa, chunk=20)
    c_var = c.clone().requires_grad_(True)
    obj = rddrs_objective(model, xs, c_var, z, kappa=kappa)
    assert torch.allclose(obj.detach(), value, atol=1e-12)
    (auto,) = torch.autograd.grad(obj.sum(), c_var)
    for seed in range(3):  # directional derivatives along symmetric directions
        v = random_sym(16, 20 + seed, batch=(2,))
        assert float((grad * v).sum()) == pytest.approx(float((auto * v).sum()), rel=1e-7, abs=1e-10)


def test_antithetic_gradient_samples_keep_the_mean_and_cut_the_variance():
    """The cheaper RDDRS: gradient draws in pairs (z, -z). Over many repetitions, the projection of
    the gradient estimate on a fixed direction has the mean of a 100,000-draw reference (z-test)
    with either draw, and a smaller variance with the pairs."""
    model = tiny_model(seed=3)
    xs = 0.3 * torch.randn(1, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    c = 0.4 * random_spd(16, 2, low=0.5, high=1.5, batch=(1,))
    z_value = draw_standard(xs, 2000, torch.Generator().manual_seed(6))
    v = random_sym(16, 7, batch=(1,))

    def projection(z_grad):
        grad, _ = rddrs_euclidean_gradient(model, xs, c, z_value, z_grad, chunk=100_000)
        return float((grad * v).sum())

    reference = projection(draw_standard(xs, 100_000, torch.Generator().manual_seed(8)))
    gen = torch.Generator().manual_seed(9)
    plain = np.array([projection(draw_standard(xs, 16, gen)) for _ in range(300)])
    paired = np.array([projection(draw_standard(xs, 16, gen, antithetic=True)) for _ in range(300)])
    for est in (plain, paired):
        assert abs(est.mean() - reference) < 4.5 * est.std(ddof=1) / np.sqrt(len(est))
    assert paired.var(ddof=1) < 0.5 * plain.var(ddof=1), (paired.var(), plain.var())
    z = draw_standard(xs, 7, torch.Generator().manual_seed(0), antithetic=True)
    assert z.shape == (1, 7, 16) and torch.equal(z[:, 4:], -z[:, :3])


def test_optimizers_increase_their_objectives_and_keep_the_superset_condition():
    model = tiny_model(1)
    xs = 0.5 * torch.randn(3, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    z_eval = draw_standard(xs, 4000, torch.Generator().manual_seed(9))
    sigma0 = torch.full((3,), 0.3, dtype=torch.float64)
    sig = optimize_ddrs(model, xs, sigma0, iterations=30, samples=200, lr=0.02, generator=torch.Generator().manual_seed(4))
    assert ddrs_objective(model, xs, sig, z_eval).sum() > ddrs_objective(model, xs, sigma0, z_eval).sum()
    theta = optimize_ancer(model, xs, sig, iterations=30, samples=200, lr=0.02, generator=torch.Generator().manual_seed(5))
    assert theta.shape == xs.shape and torch.all(theta.flatten(1) >= sig[:, None] - 1e-12)
    start = sig[:, None].expand(3, 16)
    assert ancer_objective(model, xs, theta.flatten(1), z_eval).sum() > ancer_objective(model, xs, start, z_eval).sum()
    for metric in ("affine", "log_euclidean"):
        c, trace = optimize_rddrs(model, xs, sig, iterations=6, samples=200, grad_samples=400, lr=1.0, kappa=0.0,
                                  metric=metric, generator=torch.Generator().manual_seed(6))
        assert trace.shape == (6, 3)
        assert torch.all(torch.linalg.eigvalsh(c) >= sig[:, None] - 1e-9)
        c0 = sig.reshape(3, 1, 1) * torch.eye(16, dtype=torch.float64)
        assert rddrs_objective(model, xs, c, z_eval).sum() > rddrs_objective(model, xs, c0, z_eval).sum()


def test_the_trust_region_bounds_each_step_in_the_metric_distance():
    model = tiny_model(2)
    xs = 0.5 * torch.randn(2, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    c0 = 0.3 * torch.eye(16, dtype=torch.float64).expand(2, 16, 16)
    for metric in ("affine", "log_euclidean"):
        moved = {}
        for step in (None, 0.05):
            c, _ = optimize_rddrs(model, xs, 0.3, iterations=1, samples=50, grad_samples=50, lr=50.0, metric=metric,
                                  generator=torch.Generator().manual_seed(2), antithetic=True, max_step=step)
            moved[step] = spd.affine_distance(c0, c)  # from σI both metrics give the same distance
        assert torch.all(moved[0.05] <= 0.05 + 1e-9), moved
        assert torch.all(moved[None] > 0.05), moved  # the control: without it the step is longer


@pytest.mark.parametrize("call,match", [
    (lambda m, x: optimize_ddrs(m, x, -0.1), "sigma0 must be > 0"),
    (lambda m, x: optimize_ancer(m, x, 0.0), "sigma_iso must be > 0"),
    (lambda m, x: optimize_rddrs(m, x, 0.2, metric="bures"), "metric must be one of"),
    (lambda m, x: optimize_rddrs(m, x, 0.2, samples=0), "samples >= 1"),
    (lambda m, x: optimize_rddrs(m, x, 0.2, max_step=0.0), "max_step must be > 0"),
    (lambda m, x: optimize_ddrs(m, x[0, 0, 0], 0.2), "xs must be a floating-point tensor"),
])
def test_bad_optimizer_input_is_refused_by_name(call, match):
    with pytest.raises(ValueError, match=match):
        call(tiny_model(), torch.zeros(2, 1, 4, 4, dtype=torch.float64))


# --------------------------------------------------------------------------- the authors' packages
class _FixedNoise:
    """A ddsmoothing Certificate whose noise is a given sequence of standard draws times θ."""

    def __init__(self, draws):
        from ddsmoothing.certificate import L2Certificate
        self.inner = L2Certificate(1, device="cpu")
        self.draws = list(draws)

    def sample_noise(self, batch, repeated_theta):
        return self.draws.pop(0).reshape(batch.shape) * repeated_theta

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_ddrs_and_ancer_match_the_authors_packages_step_by_step():
    pytest.importorskip("ddsmoothing", reason="ddsmoothing-python (test-only extra) is not installed")
    pytest.importorskip("ancer", reason="ancer-python (test-only extra) is not installed")
    from ancer.optimization import optimize_ancer as their_ancer
    from ddsmoothing.optimization import optimize_isotropic_dds as their_ddrs

    model = tiny_model(2)
    soft = nn.Sequential(model, nn.Softmax(dim=1))  # the authors' networks end in a softmax
    xs = 0.4 * torch.randn(3, 1, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    steps, samples = 4, 50
    gen = torch.Generator().manual_seed(11)
    draws = [draw_standard(xs, samples, gen) for _ in range(steps)]
    sigma0 = torch.tensor([0.2, 0.3, 0.4], dtype=torch.float64)

    ours = optimize_ddrs(model, xs, sigma0, iterations=steps, samples=samples, lr=0.05, clamp=(0.001, 0.999),
                         generator=torch.Generator().manual_seed(11))
    theirs = their_ddrs(soft, xs, _FixedNoise(draws), 0.05, sigma0.clone(), steps, samples, device="cpu")
    assert torch.allclose(ours, theirs.detach().abs(), atol=1e-10)

    theta0 = ours.reshape(3, 1, 1, 1).expand(3, 1, 4, 4).clone()
    ours_t = optimize_ancer(model, xs, ours, iterations=steps, samples=samples, lr=0.04, kappa=2.0,
                            generator=torch.Generator().manual_seed(11))
    theirs_t = their_ancer(soft, xs, _FixedNoise(draws), 0.04, theta0, steps, samples, 2.0, device="cpu")
    assert torch.allclose(ours_t, theirs_t.detach(), atol=1e-10)


# --------------------------------------------------------------------------- soundness
from georobust.smoothing.data_dependent import (PartitionSmooth, VoronoiPartition, ideal_ddrs, memory_certify,  # noqa: E402
                                                naive_violations, stripe_probabilities)


def test_the_per_input_certificate_is_not_a_certificate_of_the_data_dependent_classifier():
    """Exact probabilities, no sampling: at x = 0.2 the ideal DDRS picks a large σ and certifies class 0
    on an interval containing 0, where it picks a small σ and predicts class 1."""
    xs = np.linspace(-1.0, 1.0, 401)
    sigmas = np.linspace(0.05, 1.0, 191)
    sigma, cls, radius = ideal_ddrs(stripe_probabilities(xs[:, None], sigmas[None, :], 0.5), sigmas)
    i, j = np.argmin(np.abs(xs - 0.2)), np.argmin(np.abs(xs))
    assert cls[i] == 0 and cls[j] == 1 and radius[i] > 0.2 and sigma[i] > sigma[j]
    assert any(a == i and b == j for a, b, _ in naive_violations(xs, cls, radius))
    # with one fixed σ the same procedure is Cohen's certificate and never violates
    for s in (0.25, 1.0):
        _, c_fixed, r_fixed = ideal_ddrs(stripe_probabilities(xs[:, None], np.array([[s]]), 0.5), np.array([s]))
        assert naive_violations(xs, c_fixed, r_fixed) == []


def test_memory_certify_follows_the_authors_rule_and_depends_on_order():
    pts = np.array([[0.0, 0.0], [1.0, 0.0], [0.3, 0.0]])
    cls = np.array([0, 1, 1])
    rad = np.array([0.5, 0.4, 0.2])
    c, r, ch = memory_certify(pts, cls, rad)
    # input 1 does not meet input 0's ball (1.0 >= 0.5 + 0.4); input 2 lies inside it: takes class 0, radius 0.5 - 0.3
    assert c.tolist() == [0, 1, 0] and r == pytest.approx([0.5, 0.4, 0.2]) and ch.tolist() == [False, False, True]
    c2, r2, ch2 = memory_certify(pts, cls, rad, order=[2, 1, 0])
    # in reverse order input 0 meets input 2's ball (0.3 < 0.2 + 0.5) outside it: radius 0.3 - 0.2
    assert c2.tolist() == [0, 1, 1] and r2 == pytest.approx([0.1, 0.4, 0.2]) and ch2.tolist() == [True, False, False]
    with pytest.raises(ValueError, match="order must be a permutation"):
        memory_certify(pts, cls, rad, order=[0, 0, 1])


def test_voronoi_distance_to_boundary_matches_a_brute_force_search():
    rng = np.random.default_rng(0)
    part = VoronoiPartition(rng.standard_normal((4, 2)))
    xs = torch.tensor(rng.standard_normal((30, 2)))
    dist = part.distance_to_boundary(xs).numpy()
    cells = part.cell(xs).numpy()
    angles = np.linspace(0, 2 * np.pi, 3600, endpoint=False)
    dirs = np.stack([np.cos(angles), np.sin(angles)], 1)
    for x, k, d in zip(xs.numpy(), cells, dist):
        inside = part.cell(torch.tensor(x + 0.999 * d * dirs)).numpy()
        outside = part.cell(torch.tensor(x + 1.01 * d * dirs)).numpy()
        assert np.all(inside == k) and np.any(outside != k)


def test_partition_smoothing_is_sound_on_half_spaces():
    """G = f for a half-space (every cell's smoothing is the half-space itself): wrong certificates
    (wrong class, or radius beyond the distance to the boundary) at most α of the time."""
    from scipy import stats as st
    from smoothing.test_noises import HalfSpace, not_above
    rng = np.random.default_rng(1)
    d, alpha = 3, 0.1
    w = rng.standard_normal(d)
    model = HalfSpace(w, 0.0)
    part = VoronoiPartition(rng.standard_normal((3, d)))
    scales = [torch.tensor([0.3, 0.5, 0.4], dtype=torch.float64), torch.tensor([0.6, 0.2, 0.3], dtype=torch.float64),
              torch.tensor([0.4, 0.4, 0.4], dtype=torch.float64)]
    sm = PartitionSmooth(model, 2, part, scales)
    xs = torch.tensor(rng.standard_normal((600, d)) * 0.3)
    classes, gaps, cells, radius = sm.certify_batch(xs, 30, 200, alpha, 4096, torch.Generator().manual_seed(0))
    margin = xs.numpy() @ w
    true_cls = (margin > 0).astype(int)
    exact = np.abs(margin) / np.linalg.norm(w)
    cls = classes.numpy()
    fails = int(np.sum(((cls != -1) & (cls != true_cls)) | ((cls == true_cls) & (radius.numpy() > exact))))
    assert not_above(fails, len(xs), alpha) > 1e-3
    assert torch.all(radius <= part.distance_to_boundary(xs) + 1e-12)
    assert st.binomtest(int((cls == true_cls).sum()), len(xs)).pvalue < 1e-6  # it certifies something
    with pytest.raises(ValueError, match="one scale per cell"):
        PartitionSmooth(model, 2, part, scales[:2])
