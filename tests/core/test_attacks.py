"""ℓ2 PGD against linear models, whose exact robust radius is known."""

import numpy as np
import pytest
import torch
from torch import nn

from georobust.core.attacks import pgd_l2, random_ball
from georobust.verification.lipschitz import linear_exact_radius


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def linear_problem(n=300, d=20, k=4, seed=0, dtype=torch.float32):
    """A random linear classifier and points in [0.3, 0.7]^d labelled by it, so that every ℓ2 ball
    of radius <= 0.3 around a point lies inside [0, 1]^d and the exact radius is the closed form."""
    g = gen(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(d, k)).to(dtype)
    with torch.no_grad():
        model[1].weight.copy_(torch.randn(k, d, generator=g))
        model[1].bias.copy_(0.1 * torch.randn(k, generator=g))
    x = (0.3 + 0.4 * torch.rand(n, 1, d, generator=g)).to(dtype)
    with torch.no_grad():
        y = model(x).argmax(1)
    r = linear_exact_radius(model[1].weight, model[1].bias, x, y)
    return model, x, y, r


@pytest.mark.parametrize("loss", ["ce", "margin"])
def test_pgd_finds_every_clearly_vulnerable_point_and_no_robust_one(loss):
    model, x, y, r = linear_problem()
    eps = 0.25
    res = pgd_l2(model, x, y, eps, steps=30, restarts=1, generator=gen(1), loss=loss)
    s = res.success.numpy()
    vulnerable = r < 0.8 * eps  # the exact distance to another class is clearly below eps
    robust = r > eps
    assert vulnerable.sum() > 20 and robust.sum() > 20  # the test has cases of both kinds
    assert s[vulnerable].all()
    assert not s[robust].any()
    # every success is a witness: inside the ball, inside the box, misclassified
    norms = (res.x_adv - x).flatten(1).norm(dim=1)
    torch.testing.assert_close(norms, res.norm)
    assert (res.norm[res.success] <= eps * (1 + 1e-5)).all()
    assert res.x_adv.min() >= 0 and res.x_adv.max() <= 1
    with torch.no_grad():
        assert (model(res.x_adv[res.success]).argmax(1) != y[res.success]).all()
    assert res.robust_accuracy == pytest.approx(1 - s.mean())


def test_pgd_never_leaves_the_ball_on_a_box_constrained_problem():
    # points near the faces of the box with a large budget: projection and clipping both act
    g = gen(2)
    model, _, _, _ = linear_problem(d=30, seed=3)
    x = torch.rand(200, 1, 30, generator=g).round()  # corners of the box
    x = (x + 0.05 * torch.rand(x.shape, generator=g)).clamp(0, 1)
    with torch.no_grad():
        y = model(x).argmax(1)
    y[:50] = (y[:50] + 1) % 4  # some misclassified points
    for eps in (0.1, 0.5, 2.0):
        res = pgd_l2(model, x, y, eps, steps=20, restarts=2, generator=gen(4), loss="margin")
        assert res.success[:50].all()
        assert (res.norm <= eps * (1 + 1e-5)).all()
        assert res.x_adv.min() >= 0 and res.x_adv.max() <= 1
        exact = linear_exact_radius(model[1].weight, model[1].bias, x, y, box=(0.0, 1.0))
        assert not res.success.numpy()[exact > eps * (1 + 1e-5)].any()


def test_zero_budget_reports_clean_errors_only():
    model, x, y, _ = linear_problem(n=50)
    y = y.clone()
    y[:7] = (y[:7] + 1) % 4
    res = pgd_l2(model, x, y, 0.0, generator=gen())
    assert res.success.tolist() == [True] * 7 + [False] * 43
    assert torch.equal(res.x_adv, x) and (res.norm == 0).all()


def test_restarts_only_help_and_are_reproducible():
    model, x, y, r = linear_problem(n=400, seed=5)
    eps = 0.3
    one = pgd_l2(model, x, y, eps, steps=3, restarts=1, generator=gen(7), loss="ce")
    again = pgd_l2(model, x, y, eps, steps=3, restarts=1, generator=gen(7), loss="ce")
    assert torch.equal(one.success, again.success) and torch.equal(one.x_adv, again.x_adv)
    many = pgd_l2(model, x, y, eps, steps=3, restarts=4, generator=gen(7), loss="ce")
    assert (many.success | ~one.success).all()  # the first restart is the same run
    assert many.success.sum() >= one.success.sum()
    assert not many.success.numpy()[r > eps].any()


def test_dtype_and_batching_follow_the_input():
    model, x, y, r = linear_problem(n=120, dtype=torch.float64, seed=8)
    res = pgd_l2(model, x, y, 0.2, steps=20, generator=gen(9), batch_size=7)
    assert res.x_adv.dtype == torch.float64 and res.norm.dtype == torch.float64
    assert res.success.numpy()[r < 0.15].all() and not res.success.numpy()[r > 0.2].any()


def test_random_ball_is_inside_the_ball_and_reaches_its_edge():
    pts = random_ball(torch.Size((5000, 3)), 2.0, gen(10), "cpu", torch.float64)
    norms = pts.norm(dim=1)
    assert norms.max() <= 2.0 + 1e-12
    # uniform in a 3-ball: P(‖p‖ <= 2·t) = t³
    assert (norms <= 1.0).double().mean().item() == pytest.approx(1 / 8, abs=0.02)


@pytest.mark.parametrize("kwargs, match", [
    ({"eps": -0.1}, "eps"),
    ({"eps": float("nan")}, "eps"),
    ({"steps": 0}, "steps"),
    ({"restarts": 0}, "restarts"),
    ({"step_size": 0.0}, "step_size"),
    ({"loss": "hinge"}, "loss"),
    ({"batch_size": 0}, "batch_size"),
])
def test_bad_arguments(kwargs, match):
    model, x, y, _ = linear_problem(n=10)
    args = {"eps": 0.1, **kwargs}
    eps = args.pop("eps")
    with pytest.raises(ValueError, match=match):
        pgd_l2(model, x, y, eps, **args)


def test_bad_inputs():
    model, x, y, _ = linear_problem(n=10)
    with pytest.raises(ValueError, match="one label per row"):
        pgd_l2(model, x, y[:9], 0.1)
    with pytest.raises(ValueError, match="one label per row"):
        pgd_l2(model, x, y[:, None], 0.1)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        pgd_l2(model, x + 1.0, y, 0.1)
    with pytest.raises(ValueError, match="floating point"):
        pgd_l2(model, (x * 0).long(), y, 0.1)
    with pytest.raises(ValueError, match="batch"):
        pgd_l2(model, x[0, 0], y, 0.1)


def test_robust_accuracy_curve_is_monotone_and_sound():
    from georobust.core.attacks import robust_accuracy_curve

    model, x, y, r = linear_problem(n=300, seed=12)
    y = y.clone()
    y[:30] = (y[:30] + 1) % 4
    r = linear_exact_radius(model[1].weight, model[1].bias, x, y)
    curve = robust_accuracy_curve(model, x, y, [0.2, 0.0, 0.1, 0.3], steps=30, generator=gen(13),
                                  loss="margin", progress=False)
    assert curve.eps == (0.0, 0.1, 0.2, 0.3)
    assert curve.accuracy[0] == pytest.approx(0.9)  # ε = 0: clean accuracy
    assert all(a >= b for a, b in zip(curve.accuracy, curve.accuracy[1:]))
    for eps, acc in zip(curve.eps, curve.accuracy):
        exact = float((r > eps).mean())
        assert acc >= exact  # an attack can only overestimate robust accuracy
        assert acc <= float((r > 0.8 * eps).mean()) + 1e-12  # and finds every clearly vulnerable point
    broken = curve.broken_at.numpy()
    assert np.all(broken[np.isfinite(broken)] >= r[np.isfinite(broken)] - 1e-5)
    with pytest.raises(ValueError, match="eps_grid"):
        robust_accuracy_curve(model, x, y, [-0.1, 0.2], progress=False)


# ---------------------------------------------------------------- ℓ∞ PGD

def linf_exact_distance(model, x, y):
    """Exact ℓ∞ distance (in R^d) from x to the region a linear model labels j ≠ y, minimised over j:
    min_j (z_y − z_j)/‖w_y − w_j‖₁ (Hölder: the ℓ1 norm is the dual of ℓ∞)."""
    w, b = model[1].weight.detach().double(), model[1].bias.detach().double()
    z = x.flatten(1).double() @ w.T + b
    gaps = z.gather(1, y[:, None]) - z
    dual = (w[y][:, None, :] - w[None, :, :]).abs().sum(-1)
    dist = gaps / dual.clamp_min(1e-300)
    dist[torch.arange(len(y)), y] = float("inf")
    return dist.amin(1).numpy()


@pytest.mark.parametrize("loss", ["ce", "margin"])
def test_pgd_linf_finds_clearly_vulnerable_points_and_stays_in_the_ball(loss):
    from georobust.core.attacks import pgd_linf

    model, x, y, _ = linear_problem(n=300, d=20, seed=14)
    r = linf_exact_distance(model, x, y)
    eps = float(np.quantile(r, 0.5))
    assert eps < 0.3  # the whole ℓ∞ ball lies inside [0, 1]^d, so the R^d distance is the exact one
    res = pgd_linf(model, x, y, eps, steps=30, generator=gen(15), loss=loss)
    s = res.success.numpy()
    vulnerable, robust = r < 0.8 * eps, r > eps
    assert vulnerable.sum() > 20 and robust.sum() > 20
    assert s[vulnerable].all()
    assert not s[robust].any()
    linf = (res.x_adv - x).flatten(1).abs().amax(1)
    torch.testing.assert_close(linf, res.norm)
    assert (res.norm <= eps * (1 + 1e-6)).all()
    assert res.x_adv.min() >= 0 and res.x_adv.max() <= 1
    with torch.no_grad():
        assert (model(res.x_adv[res.success]).argmax(1) != y[res.success]).all()


def test_pgd_linf_respects_the_box_near_its_faces():
    from georobust.core.attacks import pgd_linf

    g = gen(16)
    model, _, _, _ = linear_problem(d=30, seed=17)
    x = (torch.rand(200, 1, 30, generator=g).round() + 0.05 * torch.rand(200, 1, 30, generator=g)).clamp(0, 1)
    with torch.no_grad():
        y = model(x).argmax(1)
    for eps in (0.02, 0.2, 0.6):
        res = pgd_linf(model, x, y, eps, steps=10, restarts=2, generator=gen(18))
        assert (res.norm <= eps * (1 + 1e-6)).all()
        assert res.x_adv.min() >= 0 and res.x_adv.max() <= 1
    assert res.success.any()


def test_linf_is_stronger_than_l2_at_the_same_budget_on_a_linear_model():
    # ‖δ‖∞ ≤ ε contains ‖δ‖₂ ≤ ε: the ℓ∞ attack must break at least the points the ℓ2 one breaks
    from georobust.core.attacks import pgd

    model, x, y, _ = linear_problem(n=200, seed=19)
    l2 = pgd(model, x, y, 0.1, norm="l2", steps=30, generator=gen(20))
    linf = pgd(model, x, y, 0.1, norm="linf", steps=30, generator=gen(20))
    assert (linf.success | ~l2.success).all()
    assert linf.success.sum() > l2.success.sum()
    with pytest.raises(ValueError, match="norm"):
        pgd(model, x, y, 0.1, norm="l1")


def test_robust_accuracy_curve_linf():
    from georobust.core.attacks import robust_accuracy_curve

    model, x, y, _ = linear_problem(n=200, seed=21)
    r = linf_exact_distance(model, x, y)
    curve = robust_accuracy_curve(model, x, y, [0.0, 0.01, 0.03], norm="linf", steps=30,
                                  generator=gen(22), progress=False)
    for eps, acc in zip(curve.eps, curve.accuracy):
        assert float((r > eps).mean()) <= acc <= float((r > 0.8 * eps).mean()) + 1e-12
