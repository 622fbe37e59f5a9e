"""Spectral norms, Lipschitz bounds, margin certificates and exact linear radii."""

import numpy as np
import pytest
import torch
from scipy import optimize
from torch import nn

from georobust.theory import bounds
from georobust.verification.lipschitz import (UnsupportedLayerError, certified_radius, linear_exact_radius,
                                 lipschitz_bound, margins, operator_matrix, power_iteration, spectral_norm)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_linear_spectral_norm_equals_matrix_norm():
    torch.manual_seed(0)
    layer = nn.Linear(30, 12)
    expected = torch.linalg.matrix_norm(layer.weight.detach().double(), 2).item()
    assert spectral_norm(layer, (30,), method="power", iters=2000, tol=1e-13) == pytest.approx(expected, rel=1e-6)
    assert spectral_norm(layer, (30,), method="exact") == pytest.approx(expected, rel=1e-10)


def test_operator_matrix_reproduces_conv():
    torch.manual_seed(1)
    conv = nn.Conv2d(2, 3, 3, stride=2, padding=1).double()
    a = operator_matrix(conv, (2, 6, 6))
    assert a.shape == (3 * 3 * 3, 2 * 6 * 6)
    x = torch.randn(4, 2, 6, 6, dtype=torch.float64)
    with torch.no_grad():
        expected = (conv(x) - conv.bias.view(1, -1, 1, 1)).flatten(1)
    torch.testing.assert_close(x.flatten(1) @ a.T, expected)


@pytest.mark.parametrize("conv, shape", [
    (nn.Conv2d(2, 3, 3, stride=2, padding=1), (2, 6, 6)),
    (nn.Conv2d(1, 4, 4, stride=1, padding=0), (1, 7, 7)),
    (nn.Conv1d(3, 2, 5, padding=2), (3, 11)),
])
def test_power_iteration_on_conv_matches_unfolded_svd(conv, shape):
    torch.manual_seed(2)
    conv.reset_parameters()
    exact = torch.linalg.svdvals(operator_matrix(conv, shape))[0].item()
    res = power_iteration(conv, shape, iters=3000, tol=1e-13, generator=gen(3))
    assert res.sigma <= exact * (1 + 1e-12)  # power iteration never overshoots
    assert res.sigma == pytest.approx(exact, rel=1e-6)
    assert spectral_norm(conv, shape, method="exact") == pytest.approx(exact, rel=1e-10)


def test_power_iteration_is_a_lower_estimate_when_stopped_early():
    torch.manual_seed(4)
    layer = nn.Linear(50, 50)
    exact = torch.linalg.matrix_norm(layer.weight.detach().double(), 2).item()
    res = power_iteration(layer, (50,), iters=2, generator=gen())
    assert res.iterations == 2 and not res.converged
    assert res.sigma <= exact * (1 + 1e-12)


def test_conv_spectral_norm_depends_on_input_shape():
    # zero padding: the operator on a 1-pixel image is a single tap, on a larger one all taps
    conv = nn.Conv2d(1, 1, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
    assert spectral_norm(conv, (1, 1, 1), method="exact") == pytest.approx(1.0)
    assert spectral_norm(conv, (1, 8, 8), method="exact") > 5.0


def small_net():
    torch.manual_seed(5)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, stride=1, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, stride=2, padding=1), nn.LeakyReLU(0.1),
        nn.Flatten(), nn.Linear(6 * 2 * 2, 10), nn.Tanh(), nn.Linear(10, 3),
    ).double().eval()


@pytest.mark.parametrize("method", ["power", "exact"])
def test_bound_dominates_empirical_ratios(method):
    net = small_net()
    bound = lipschitz_bound(net, (1, 8, 8), method=method, iters=500)
    assert len(bound.factors) == len(net)
    assert bound.value == pytest.approx(np.prod([f[2] for f in bound.factors]))
    g = gen(6)
    x = torch.rand(2000, 1, 8, 8, generator=g, dtype=torch.float64)
    for scale in (1.0, 1e-2, 1e-4):  # far pairs and nearly-local pairs
        y = x + scale * torch.randn(x.shape, generator=g, dtype=torch.float64)
        with torch.no_grad():
            ratio = (net(x) - net(y)).norm(dim=1) / (x - y).flatten(1).norm(dim=1)
        assert ratio.max().item() <= bound.value
    # and against pairs pushed towards the worst direction by gradient ascent on the ratio
    x0 = x[:32].clone()
    d = (1e-3 * torch.randn(x0.shape, generator=g, dtype=torch.float64)).requires_grad_(True)
    opt = torch.optim.Adam([d], lr=1e-3)
    for _ in range(100):
        r = (net(x0 + d) - net(x0)).norm(dim=1) / d.flatten(1).norm(dim=1)
        opt.zero_grad()
        (-r.sum()).backward()
        opt.step()
    with torch.no_grad():
        r = (net(x0 + d) - net(x0)).norm(dim=1) / d.flatten(1).norm(dim=1)
    assert r.max().item() <= bound.value


def test_bound_of_linear_model_is_its_spectral_norm():
    torch.manual_seed(7)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 5))
    expected = torch.linalg.matrix_norm(net[1].weight.detach().double(), 2).item()
    assert lipschitz_bound(net, (1, 4, 4), method="exact").value == pytest.approx(expected, rel=1e-10)


def test_sigmoid_and_nested_sequential():
    torch.manual_seed(8)
    inner = nn.Sequential(nn.Linear(4, 4), nn.Sigmoid())
    net = nn.Sequential(inner, nn.Linear(4, 2))
    b = lipschitz_bound(net, (4,), method="exact")
    expected = (0.25 * torch.linalg.matrix_norm(inner[0].weight.detach().double(), 2)
                * torch.linalg.matrix_norm(net[1].weight.detach().double(), 2)).item()
    assert b.value == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("layer, match", [
    (nn.MaxPool2d(3, stride=1), "overlapping"),
    (nn.Softplus(), "not handled"),
    (nn.Upsample(scale_factor=2), "not handled"),
])
def test_unsupported_layers_raise(layer, match):
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), layer, nn.Flatten())
    with pytest.raises(UnsupportedLayerError, match=match) as err:
        lipschitz_bound(net, (1, 6, 6))
    assert "layer 1" in str(err.value)


def test_training_mode_layers_raise_and_bad_arguments():
    net = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5), nn.Linear(3, 2))
    with pytest.raises(UnsupportedLayerError, match="training mode"):
        lipschitz_bound(net.train(), (3,))
    assert lipschitz_bound(net.eval(), (3,)).value > 0
    with pytest.raises(TypeError, match="nn.Sequential"):
        lipschitz_bound(nn.Linear(3, 3), (3,))
    with pytest.raises(ValueError, match="method"):
        lipschitz_bound(net, (3,), method="svd")
    with pytest.raises(ValueError, match="input_shape"):
        lipschitz_bound(net, (0,))
    with pytest.raises(ValueError, match="iters"):
        power_iteration(nn.Linear(3, 3), (3,), iters=0)


def test_certified_radius_is_margin_over_2L_and_holds():
    net = small_net()
    lip = lipschitz_bound(net, (1, 8, 8), method="exact").value
    g = gen(9)
    x = torch.rand(300, 1, 8, 8, generator=g, dtype=torch.float64)
    with torch.no_grad():
        logits = net(x)
    y = logits.argmax(1)
    y[:50] = (y[:50] + 1) % 3  # some misclassified points: radius 0
    r = certified_radius(net, x, y, lip)
    m = margins(logits, y).numpy()
    np.testing.assert_allclose(r, bounds.lipschitz_radius(m, lip))
    assert np.all(r[:50] == 0) and np.all(r[50:] > 0)
    # the prediction does not change anywhere inside the certified ball (random directions)
    for _ in range(20):
        d = torch.randn(x.shape, generator=g, dtype=torch.float64)
        d = d / d.flatten(1).norm(dim=1).view(-1, 1, 1, 1) * torch.from_numpy(0.999 * r).view(-1, 1, 1, 1)
        with torch.no_grad():
            assert torch.equal(net(x[50:] + d[50:]).argmax(1), y[50:])


def random_linear(k=4, d=6, seed=10):
    g = gen(seed)
    w = torch.randn(k, d, generator=g, dtype=torch.float64)
    b = 0.3 * torch.randn(k, generator=g, dtype=torch.float64)
    x = 0.2 + 0.6 * torch.rand(200, d, generator=g, dtype=torch.float64)
    return w, b, x


def test_linear_exact_radius_without_box_is_the_closed_form():
    w, b, x = random_linear()
    z = x @ w.T + b
    y = z.argmax(1)
    y[:20] = (y[:20] + 1) % 4
    r = linear_exact_radius(w, b, x, y)
    expected = []
    for i in range(len(x)):
        others = [j for j in range(4) if j != y[i]]
        expected.append(max(min((z[i, y[i]] - z[i, j]).item() / (w[y[i]] - w[j]).norm().item() for j in others), 0.0))
    np.testing.assert_allclose(r, expected, rtol=1e-12)
    assert np.all(r[:20] == 0)
    # moving by r along the worst direction reaches a boundary: the radius is attained, not just a bound
    i = 50
    j = min((j for j in range(4) if j != y[i]), key=lambda j: (z[i, y[i]] - z[i, j]) / (w[y[i]] - w[j]).norm())
    a = w[y[i]] - w[j]
    xp = x[i] - r[i] * a / a.norm()
    zp = xp @ w.T + b
    assert (zp[y[i]] - zp[j]).abs().item() < 1e-9


def test_linear_exact_radius_in_a_box_matches_a_generic_solver():
    w, b, x = random_linear(k=3, d=5, seed=11)
    x = x[:15]
    y = (x @ w.T + b).argmax(1)
    r_free = linear_exact_radius(w, b, x, y)
    r_box = linear_exact_radius(w, b, x, y, box=(0.0, 1.0))
    assert np.all(r_box >= r_free - 1e-12)  # the box only removes candidate points
    for i in range(len(x)):
        best = np.inf
        for j in range(3):
            if j == y[i]:
                continue
            a = (w[y[i]] - w[j]).numpy()
            beta = (b[y[i]] - b[j]).item()
            xi = x[i].numpy()
            if beta + np.minimum(a * 0, a * 1).sum() > 0:
                continue  # no point of the box is labelled j
            res = optimize.minimize(lambda v: 0.5 * np.sum((v - xi) ** 2), xi, jac=lambda v: v - xi,
                                    bounds=[(0, 1)] * 5, method="SLSQP",
                                    constraints=[{"type": "ineq", "fun": lambda v: -(a @ v + beta), "jac": lambda v: -a}],
                                    options={"ftol": 1e-14, "maxiter": 500})
            assert res.success
            best = min(best, np.linalg.norm(res.x - xi))
        assert r_box[i] == pytest.approx(best, rel=1e-5, abs=1e-7)


def test_linear_exact_radius_unreachable_class_is_infinite():
    # class 1 needs x_0 > 2, impossible in [0, 1]: the only way out is class 2, at distance 0.7
    w = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    b = torch.tensor([0.0, -2.0, -0.9], dtype=torch.float64)
    x = torch.tensor([[0.5, 0.2]], dtype=torch.float64)
    r = linear_exact_radius(w, b, x, torch.tensor([0]), box=(0.0, 1.0))
    assert r[0] == pytest.approx(0.7, rel=1e-12)
    b2 = torch.tensor([0.0, -2.0, -1.5], dtype=torch.float64)
    assert np.isinf(linear_exact_radius(w, b2, x, torch.tensor([0]), box=(0.0, 1.0))[0])
    assert np.isfinite(linear_exact_radius(w, b2, x, torch.tensor([0]))[0])


def test_linear_exact_radius_bad_inputs():
    w, b, x = random_linear()
    y = torch.zeros(len(x), dtype=torch.long)
    with pytest.raises(ValueError, match="shapes"):
        linear_exact_radius(w, b, x[:, :3], y)
    with pytest.raises(ValueError, match="box"):
        linear_exact_radius(w, b, x, y, box=(1.0, 0.0))
    with pytest.raises(ValueError, match="box"):
        linear_exact_radius(w, b, x + 1.0, y, box=(0.0, 1.0))
