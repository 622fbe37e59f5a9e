"""ISO (Shi-Garrier et al. 2024): charts, the exact penalty against a brute-force computation from
the formula, gradients through the Jacobian, the randomized estimators, bad input."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import fd_gradient_error
from georobust.regularizers import iso
from georobust.regularizers.iso import (euclidean_chart, fisher_chart, helmert_basis, iso_euclidean_penalty,
                           iso_objective, iso_penalty)

D, EPS = 5, 0.7
DT = torch.float64


pytestmark = pytest.mark.usefixtures("single_thread")


def mlp(c: int, seed: int = 0) -> nn.Sequential:
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(D, 7), nn.Tanh(), nn.Linear(7, c)).to(DT)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.6 * torch.randn(p.shape, generator=g, dtype=DT))
    return model


def inputs(n: int = 6, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, D, generator=torch.Generator().manual_seed(seed), dtype=DT)


# --------------------------------------------------------------------------- brute force
def brute_fisher(model, x, eps=EPS, invariant=False, radius=1.0):
    """α from the paper's formulas, one input at a time, J from autograd.functional.jacobian."""
    out = []
    for xn in x:
        def tmap(v):
            p = F.softmax(model(v), -1)
            return 2 * p[:-1].sqrt() / (1 - p[-1].sqrt())
        J = torch.autograd.functional.jacobian(tmap, xn)
        t = tmap(xn)
        p = F.softmax(model(xn), -1)
        rho = 2 / (1 + (t / 2).pow(2).sum())
        delta = radius * 2 * torch.arccos((p / len(p)).sqrt().sum())  # the target radius
        m = len(p) - 1
        if invariant:
            B = rho ** 2 * J @ J.T - delta ** 2 / eps ** 2 * torch.eye(m, dtype=DT)
        else:
            B = J @ J.T - delta ** 2 / (rho ** 2 * eps ** 2) * torch.eye(m, dtype=DT)
        out.append(eps ** 2 * torch.linalg.matrix_norm(B))
    return torch.stack(out)


def brute_euclidean(model, x, eps=EPS):
    """The ablation from its definition, with a QR basis of 1^⊥ (not Helmert's)."""
    out = []
    for xn in x:
        c = model(xn).shape[0]
        Q, _ = torch.linalg.qr(torch.cat([torch.ones(c, 1, dtype=DT), torch.randn(c, c - 1, dtype=DT,
                               generator=torch.Generator().manual_seed(5))], 1))
        U = Q[:, 1:]
        J = U.T @ torch.autograd.functional.jacobian(lambda v: F.softmax(model(v), -1), xn)
        p = F.softmax(model(xn), -1)
        d2 = (p - 1 / c).pow(2).sum()
        out.append(eps ** 2 * torch.linalg.matrix_norm(J @ J.T - d2 / eps ** 2 * torch.eye(c - 1, dtype=DT)))
    return torch.stack(out)


# --------------------------------------------------------------------------- charts
def test_rho_equals_one_minus_sqrt_theta_c_numerically():
    z = torch.randn(200, 6, dtype=DT, generator=torch.Generator().manual_seed(0)) * 4
    t, _, rho, _ = fisher_chart(z)
    p = F.softmax(z, -1)
    torch.testing.assert_close(rho, 2 / (1 + (t / 2).pow(2).sum(1)), rtol=1e-12, atol=0)
    torch.testing.assert_close(rho, 1 - p[:, -1].sqrt(), rtol=1e-10, atol=0)
    # the direct formula 1 - sqrt(p_c) loses every digit when p_c -> 1; the chart does not
    z = torch.tensor([[0.0, 0.0, 40.0]], dtype=DT)
    _, _, rho, _ = fisher_chart(z)
    exact = 2 * math.exp(-40) / (1 + math.sqrt(1 - 2 * math.exp(-40)))  # (1 - θc)/(1 + √θc), to 1e-17
    assert rho.item() == pytest.approx(exact, rel=1e-9)


def test_rho_identity_symbolically():
    sympy = pytest.importorskip("sympy")
    s1, s2, s3 = sympy.symbols("s1 s2 s3", positive=True)  # s_i = √θ_i, Σ s_i² = 1
    t_sq = (4 * s1 ** 2 + 4 * s2 ** 2) / (1 - s3) ** 2
    expr = 2 / (1 + t_sq / 4) - (1 - s3)
    assert sympy.simplify(expr.subs(s1 ** 2, 1 - s2 ** 2 - s3 ** 2)) == 0


def test_fisher_metric_is_rho_squared_identity_in_t():
    # inverse chart: sphere of radius 2 (μ = 2√θ), stereographic projection from (0, …, 0, 2)
    def theta_of_t(t):
        n2 = t.pow(2).sum()
        mu = torch.cat([8 * t / (4 + n2), (2 * (n2 - 4) / (n2 + 4)).reshape(1)])
        return mu ** 2 / 4
    z = torch.tensor([0.3, -1.2, 0.8, 0.1], dtype=DT)
    t, _, rho, _ = fisher_chart(z[None])
    theta = theta_of_t(t[0])
    torch.testing.assert_close(theta, F.softmax(z, -1), rtol=1e-12, atol=1e-14)
    Dm = torch.autograd.functional.jacobian(theta_of_t, t[0])  # c×m
    metric = Dm.T @ torch.diag(1 / theta) @ Dm
    torch.testing.assert_close(metric, rho[0] ** 2 * torch.eye(3, dtype=DT), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("chart", [fisher_chart, euclidean_chart])
def test_chart_derivative_matches_autograd(chart):
    z = torch.randn(3, 5, dtype=DT, generator=torch.Generator().manual_seed(2))
    _, T, _, _ = chart(z)
    for n in range(3):
        J = torch.autograd.functional.jacobian(lambda v: chart(v[None])[0][0], z[n])
        torch.testing.assert_close(T[n], J, rtol=1e-10, atol=1e-12)


def test_delta_is_fisher_rao_distance_and_smooth_at_centre():
    z = torch.randn(4, 5, dtype=DT, generator=torch.Generator().manual_seed(3))
    _, _, _, d2 = fisher_chart(z)
    p = F.softmax(z, -1)
    torch.testing.assert_close(d2, (2 * torch.arccos((p / 5).sqrt().sum(1))) ** 2, rtol=1e-10, atol=1e-14)
    zc = torch.zeros(2, 5, dtype=DT, requires_grad=True)  # the centre: arccos'(1) is infinite
    _, _, _, d2 = fisher_chart(zc + 1e-3 * torch.arange(5, dtype=DT))
    (g,) = torch.autograd.grad(d2.sum(), zc)
    assert torch.isfinite(g).all()
    U = helmert_basis(5, DT)
    torch.testing.assert_close(U.T @ U, torch.eye(4, dtype=DT))
    torch.testing.assert_close(U.T @ torch.ones(5, dtype=DT), torch.zeros(4, dtype=DT))


# --------------------------------------------------------------------------- exact values
@pytest.mark.parametrize("c", [3, 4])
def test_exact_penalty_matches_brute_force(c):
    model, x = mlp(c), inputs()
    want = brute_fisher(model, x)
    torch.testing.assert_close(iso_penalty(model, x, EPS, reduction="none"), want, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(iso_penalty(model, x, EPS), want.mean(), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(iso_penalty(model, x, EPS, squared=True), want.pow(2).mean(), rtol=1e-10, atol=1e-12)


def test_invariant_variant_matches_brute_force():
    model, x = mlp(4), inputs()
    torch.testing.assert_close(iso_penalty(model, x, EPS, invariant=True, reduction="none"),
                               brute_fisher(model, x, invariant=True), rtol=1e-10, atol=1e-12)


def test_euclidean_ablation_matches_brute_force():
    model, x = mlp(4), inputs()
    torch.testing.assert_close(iso_euclidean_penalty(model, x, EPS, reduction="none"),
                               brute_euclidean(model, x), rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- gradients
def detached_iso(model, x, eps=EPS):
    """The pitfall: J̃ from autograd.grad WITHOUT create_graph (value right, gradient wrong)."""
    xg = x.clone().requires_grad_(True)
    t, _, rho, d2 = fisher_chart(model(xg))
    rows = [torch.autograd.grad(t[:, i].sum(), xg, retain_graph=True)[0] for i in range(t.shape[1])]
    J = torch.stack(rows, 1)
    A = J @ J.transpose(1, 2)
    B = A - (d2 / (rho ** 2 * eps ** 2))[:, None, None] * torch.eye(t.shape[1], dtype=DT)
    return (eps ** 2 * torch.linalg.matrix_norm(B)).mean()


def seeded(seed):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("method,metric", [("exact", "fisher"), ("exact", "euclidean"), ("fast", "fisher"),
                                           ("jvp", "fisher"), ("exact", "invariant")])
def test_gradient_flows_through_the_jacobian(method, metric):
    model, x = mlp(4), inputs()
    kw = {"invariant": True} if metric == "invariant" else {"metric": metric}
    fn = lambda: iso_penalty(model, x, EPS, method, num_samples=3, num_probes=3, generator=seeded(0), **kw)
    assert fd_gradient_error(model, fn) < 1e-5


def test_gradient_check_catches_a_detached_jacobian():
    model, x = mlp(4), inputs()
    torch.testing.assert_close(detached_iso(model, x), iso_penalty(model, x, EPS), rtol=1e-10, atol=1e-12)
    assert fd_gradient_error(model, lambda: iso_penalty(model, x, EPS)) < 1e-5
    assert fd_gradient_error(model, lambda: detached_iso(model, x)) > 0.05


# --------------------------------------------------------------------------- randomized estimators
def test_fast_with_all_samples_is_exact():
    model, x = mlp(4), inputs()
    torch.testing.assert_close(iso_penalty(model, x, EPS, "fast", num_samples=6, generator=seeded(1)),
                               iso_penalty(model, x, EPS), rtol=1e-10, atol=1e-12)


def _fast_all_draws(model, x, k, gram=None):
    """The fast estimate for every draw of k inputs out of N (randperm draws each equally often)."""
    chart = iso.CHARTS["fisher"]
    return torch.stack([iso._fast(model, x, EPS, chart, False, None, k, None, idx=torch.tensor(s), gram=gram)[0]
                        for s in itertools.combinations(range(len(x)), k)]).detach()


def test_fast_control_variate_is_unbiased_for_a_fixed_gram():
    model, x = mlp(4), inputs()
    gram = torch.tensor([[2.0, 0.3, 0.0], [0.3, 1.0, 0.1], [0.0, 0.1, 0.5]], dtype=DT)  # any Ĝ
    exact = iso_penalty(model, x, EPS).detach()
    torch.testing.assert_close(_fast_all_draws(model, x, 2, gram).mean(), exact, rtol=1e-12, atol=1e-14)


def test_fast_estimator_mean_against_exact():
    model, x = mlp(4), inputs(n=7)
    exact = iso_penalty(model, x, EPS).detach()
    draws = _fast_all_draws(model, x, 2)
    expected = draws.mean()  # the estimator's exact expectation, by enumeration
    # Ĝ taken from the draw itself leaves an O(1/k) bias: here about 1%, bounded at 3%
    assert abs(expected / exact - 1) < 0.03
    # the generator draws subsets uniformly: R draws average to the expectation within 5 SE
    R, gen = 60, seeded(3)
    vals = torch.stack([iso_penalty(model, x, EPS, "fast", num_samples=2, generator=gen) for _ in range(R)]).detach()
    assert abs(vals.mean() - expected) < 5 * draws.std() / math.sqrt(R)
    # and the control variate helps: its spread is far below that of a plain mean over 2 inputs
    alpha = iso_penalty(model, x, EPS, reduction="none").detach()
    plain = torch.stack([alpha[list(s)].mean() for s in itertools.combinations(range(7), 2)])
    assert draws.std() < 0.5 * plain.std()


def test_jvp_estimator_is_unbiased_for_alpha_squared():
    model, x = mlp(4), inputs()
    exact_sq = iso_penalty(model, x, EPS, reduction="none", squared=True).detach()
    R = 2000  # R copies of each input in one batch: R independent draws of its estimate
    vals = iso_penalty(model, x.repeat(R, 1), EPS, "jvp", num_probes=3, generator=seeded(4),
                       reduction="none", squared=True).detach().reshape(R, len(x))
    # 5 standard errors of the mean of R independent draws: a false alarm has probability < 1e-6
    se = vals.std(0) / math.sqrt(R)
    assert (abs(vals.mean(0) - exact_sq) < 5 * se).all()
    assert (se < 0.1 * exact_sq).all()  # and the test has power


# --------------------------------------------------------------------------- objective
@pytest.mark.parametrize("method", ["exact", "fast", "jvp"])
def test_objective_combines_ce_and_penalty(method):
    model, x = mlp(4), inputs()
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    obj = iso_objective(EPS, 0.3, method, num_samples=3, num_probes=3)
    loss, logits = obj(model, x, y, seeded(5))
    torch.testing.assert_close(logits, model(x), rtol=1e-12, atol=1e-12)  # same order as x
    pen = iso_penalty(model, x, EPS, method, num_samples=3, num_probes=3, generator=seeded(5))
    torch.testing.assert_close(loss, 0.7 * F.cross_entropy(model(x), y) + 0.3 * pen, rtol=1e-10, atol=1e-12)
    loss0, _ = iso_objective(EPS, 0.0)(model, x, y, seeded(5))
    torch.testing.assert_close(loss0, F.cross_entropy(model(x), y))


def test_objective_trains_with_the_training_loop():
    from georobust.core.models import build
    from georobust.core.train import train

    g = torch.Generator().manual_seed(0)
    images, labels = torch.rand(32, 1, 28, 28, generator=g), torch.randint(0, 10, (32,), generator=g)
    model = build("linear", seed=0)
    before = [p.detach().clone() for p in model.parameters()]
    hist = train(model, images, labels, epochs=1, lr=0.01, batch_size=16, progress=False,
                 objective=iso_objective(4.2, 0.5, "fast"))
    assert math.isfinite(hist[0]["loss"])
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("eps", [0, -1.0, float("nan"), float("inf"), "1", True])
def test_bad_eps(eps):
    with pytest.raises(ValueError, match="eps"):
        iso_penalty(mlp(3), inputs(), eps)
    with pytest.raises(ValueError, match="eps"):
        iso_objective(eps, 0.5)


@pytest.mark.parametrize("eta", [-0.1, 1.5, float("nan"), None])
def test_bad_eta(eta):
    with pytest.raises(ValueError, match="eta"):
        iso_objective(1.0, eta)


@pytest.mark.parametrize("kwargs,word", [({"method": "sketch"}, "method"), ({"metric": "l1"}, "metric"),
                                         ({"method": "fast", "num_samples": 0}, "num_samples"),
                                         ({"method": "jvp", "num_probes": 1}, "num_probes"),
                                         ({"reduction": "sum"}, "reduction"),
                                         ({"method": "fast", "reduction": "none"}, "fast"),
                                         ({"num_classes": 5}, "num_classes"), ({"num_classes": 1}, "num_classes")])
def test_bad_options(kwargs, word):
    with pytest.raises(ValueError, match=word):
        iso_penalty(mlp(3), inputs(), 1.0, **kwargs)


@pytest.mark.parametrize("model,word", [
    (nn.Sequential(nn.Linear(D, 3), nn.Softmax(dim=1)), "probabilities"),
    (nn.Linear(D, 1), "c >= 2"),
    (nn.Sequential(nn.Linear(D, 6), nn.Unflatten(1, (2, 3))), "N×c"),
])
def test_bad_model_output(model, word):
    with pytest.raises(ValueError, match=word):
        iso_penalty(model.to(DT), inputs(), 1.0)


@pytest.mark.parametrize("x", [torch.randn(6, dtype=DT), torch.randn(6, 4, dtype=DT),
                               torch.zeros(6, 5, dtype=torch.long), [[0.0] * 5]])
def test_bad_input(x):
    with pytest.raises(ValueError, match="x"):
        iso_penalty(mlp(3), x, 1.0)


def test_bad_labels():
    obj = iso_objective(1.0, 0.5, "exact")
    with pytest.raises(ValueError, match="y"):
        obj(mlp(3), inputs(), torch.zeros(5, dtype=torch.long), None)
    with pytest.raises(ValueError, match="y"):
        obj(mlp(3), inputs(), torch.zeros(6), None)


@pytest.mark.parametrize("invariant", [False, True])
def test_half_delta_target_matches_its_definition(invariant):
    """target="half-delta" is ε²‖A − (δ/2)²/(ρ²ε²) I‖ (and its invariant form), from the definition."""
    model, x = mlp(4), inputs()
    got = iso_penalty(model, x, EPS, "exact", invariant=invariant, target="half-delta", reduction="none")
    torch.testing.assert_close(got, brute_fisher(model, x, invariant=invariant, radius=0.5))
    plain = iso_penalty(model, x, EPS, "exact", invariant=invariant, reduction="none")
    assert not torch.allclose(got, plain)  # the two targets are different penalties
    sq = iso_penalty(model, x, EPS, "exact", invariant=invariant, target="half-delta", squared=True, reduction="none")
    torch.testing.assert_close(sq, got ** 2)
    with pytest.raises(ValueError, match="target must be one of delta, half-delta"):
        iso_penalty(model, x, EPS, target="quarter")
