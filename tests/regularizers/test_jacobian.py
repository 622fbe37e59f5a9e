"""Jacobian regularization (Hoffman et al. 2019): exact value, the projection estimator's mean and
variance, gradients through the Jacobian, the objective, bad input."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import fd_gradient_error
from georobust.regularizers.jacobian import jacobian_objective, jacobian_penalty

D, C = 5, 4
DT = torch.float64


pytestmark = pytest.mark.usefixtures("single_thread")


def mlp(seed: int = 0) -> nn.Sequential:
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(D, 7), nn.Tanh(), nn.Linear(7, C)).to(DT)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=DT))
    return model


def inputs(n: int = 6, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, D, generator=torch.Generator().manual_seed(seed), dtype=DT)


def jacobians(model, x):
    return torch.stack([torch.autograd.functional.jacobian(model, xn) for xn in x])  # N×C×D


def test_exact_matches_brute_force():
    model, x = mlp(), inputs()
    J = jacobians(model, x)
    want = 0.5 * J.pow(2).sum((1, 2)).mean()
    torch.testing.assert_close(jacobian_penalty(model, x, exact=True), want, rtol=1e-12, atol=1e-14)


def test_projection_estimator_is_unbiased_with_the_predicted_variance():
    model, x = mlp(), inputs()
    G = jacobians(model, x) @ jacobians(model, x).transpose(1, 2)  # JJᵀ per input
    R = 4000
    xr = x.repeat(R, 1)
    # the penalty of R copies of input i is the mean of R independent draws of ½C‖Jᵀv‖²
    vals = torch.stack([jacobian_penalty(model, xr[i::len(x)], generator=torch.Generator().manual_seed(i)).detach()
                        for i in range(len(x))])  # mean over R draws of ½C‖Jᵀv‖², per input
    exact = 0.5 * torch.diagonal(G, dim1=1, dim2=2).sum(1)
    # Var(C vᵀGv) for v uniform on the sphere = 2(C‖G‖_F² − (tr G)²)/(C + 2)
    var = 2 * (C * G.pow(2).sum((1, 2)) - torch.diagonal(G, dim1=1, dim2=2).sum(1) ** 2) / (C + 2)
    se = 0.5 * var.sqrt() / math.sqrt(R)
    assert (abs(vals - exact) < 5 * se).all()  # 5 SE: a false alarm has probability < 1e-5
    assert (se < 0.05 * exact).all()  # and the test has power


def test_empirical_variance_matches_formula_and_falls_with_nproj():
    model, x = mlp(), inputs(n=1)
    G = jacobians(model, x)[0] @ jacobians(model, x)[0].T
    var = 2 * (C * G.pow(2).sum() - G.trace() ** 2) / (C + 2)
    gen = torch.Generator().manual_seed(0)
    one = torch.stack([2 * jacobian_penalty(model, x, generator=gen) for _ in range(400)]).detach()
    four = torch.stack([2 * jacobian_penalty(model, x, nproj=4, generator=gen) for _ in range(400)]).detach()
    # sample variances of 400 draws are within ±35% of the truth with overwhelming probability
    assert 0.65 < one.var() / var < 1.35
    assert 0.65 < four.var() / (var / 4) < 1.35


def detached_loss(model, x, y, lam):
    """The pitfall: Jᵀv from autograd.grad WITHOUT create_graph; the loss still backpropagates
    (through CE), but the penalty contributes nothing to the gradient."""
    xg = x.clone().requires_grad_(True)
    z = model(xg)
    v = torch.randn(z.shape, generator=torch.Generator().manual_seed(0), dtype=DT)
    v = v / v.norm(dim=1, keepdim=True)
    (g,) = torch.autograd.grad((z * v).sum(), xg, retain_graph=True)
    return F.cross_entropy(z, y) + lam * 0.5 * C * g.pow(2).sum(1).mean()


@pytest.mark.parametrize("exact", [True, False])
def test_gradient_flows_through_the_jacobian(exact):
    model, x = mlp(), inputs()
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    obj = jacobian_objective(0.5, exact=exact)
    loss = lambda: obj(model, x, y, torch.Generator().manual_seed(0))[0]
    assert fd_gradient_error(model, loss, n_checks=3, h=1e-6) < 1e-5
    if not exact:  # the same check fails on the detached variant, whose value is the same estimate
        torch.testing.assert_close(detached_loss(model, x, y, 0.5), loss())
        assert fd_gradient_error(model, lambda: detached_loss(model, x, y, 0.5), n_checks=3, h=1e-6) > 0.05


def test_objective_value_and_logits():
    model, x = mlp(), inputs()
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    loss, z = jacobian_objective(2.0, exact=True)(model, x, y, None)
    torch.testing.assert_close(z, model(x))
    torch.testing.assert_close(loss, F.cross_entropy(model(x), y) + 2.0 * jacobian_penalty(model, x, exact=True))
    loss0, _ = jacobian_objective(0.0)(model, x, y, None)
    torch.testing.assert_close(loss0, F.cross_entropy(model(x), y))


def test_objective_trains_with_the_training_loop():
    from georobust.core.models import build
    from georobust.core.train import train

    g = torch.Generator().manual_seed(0)
    images, labels = torch.rand(32, 1, 28, 28, generator=g), torch.randint(0, 10, (32,), generator=g)
    hist = train(build("linear", seed=0), images, labels, epochs=1, lr=0.01, batch_size=16,
                 progress=False, objective=jacobian_objective(0.1))
    assert math.isfinite(hist[0]["loss"])


@pytest.mark.parametrize("kwargs,word", [({"nproj": 0}, "nproj"), ({"nproj": 1.5}, "nproj"),
                                         ({"num_classes": 3}, "num_classes")])
def test_bad_options(kwargs, word):
    with pytest.raises(ValueError, match=word):
        jacobian_penalty(mlp(), inputs(), **kwargs)


@pytest.mark.parametrize("lam", [-1.0, float("nan"), "1"])
def test_bad_lambda(lam):
    with pytest.raises(ValueError, match="lam"):
        jacobian_objective(lam)


@pytest.mark.parametrize("x", [torch.randn(5, dtype=DT), torch.randn(6, 3, dtype=DT), torch.ones(6, 5, dtype=torch.int64)])
def test_bad_input(x):
    with pytest.raises(ValueError, match="x"):
        jacobian_penalty(mlp(), x)


def test_bad_model_output():
    with pytest.raises(ValueError, match="probabilities"):
        jacobian_penalty(nn.Sequential(nn.Linear(D, 3), nn.Softmax(dim=1)).to(DT), inputs())
    with pytest.raises(ValueError, match="N×c"):
        jacobian_penalty(nn.Sequential(nn.Linear(D, 6), nn.Unflatten(1, (2, 3))).to(DT), inputs())
