"""The four verifiers of a ReLU network against ground truth.

Ground truth: small networks with 2-D inputs, whose margins are evaluated on a dense grid of the
ε-box. The grid minimum is an upper bound of the true minimum margin, and the true minimum is at
most a Lipschitz slack below it. So: every method's lower bound must stay below the grid minimum
(sound); MILP must come within the slack of it (complete); each relaxation must stay below MILP;
and with the same intermediate bounds the LP must be at least CROWN and IBP. auto_LiRPA, the
authors' package, cannot be installed next to this torch (see ``test_auto_lirpa_cross_check``); an
independent interval propagation written with torch's own layers stands in for the IBP check.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from georobust.verification import (UnsupportedLayerError, affine_form, exact_linf_radius, margin_bounds,
                                    verify)
from georobust.verification.relu_network import crown, ibp, input_box

METHODS = ("milp", "lp", "crown", "ibp")


def small_net(seed, hidden=12, depth=2, classes=3):
    g = torch.Generator().manual_seed(seed)
    layers, d = [], 2
    for _ in range(depth):
        lin = nn.Linear(d, hidden)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(lin.weight.shape, generator=g))
            lin.bias.copy_(0.3 * torch.randn(lin.bias.shape, generator=g))
        layers += [lin, nn.ReLU()]
        d = hidden
    out = nn.Linear(d, classes)
    with torch.no_grad():
        out.weight.copy_(torch.randn(out.weight.shape, generator=g) / math.sqrt(d))
        out.bias.zero_()
    return nn.Sequential(*layers, out).double()


def grid_margins(net, x, label, eps, points=301, domain=None):
    g = np.linspace(-eps, eps, points)
    xx, yy = np.meshgrid(g + float(x[0]), g + float(x[1]))
    pts = np.stack([xx.ravel(), yy.ravel()], 1)
    if domain is not None:
        pts = np.clip(pts, *domain)
    with torch.no_grad():
        z = net(torch.tensor(pts)).numpy()
    others = [j for j in range(z.shape[1]) if j != label]
    return np.array([(z[:, label] - z[:, j]).min() for j in others]), g[1] - g[0]


def lipschitz_slack(net, spacing):
    """A Lipschitz bound of every margin (ℓ∞ → |·|) times the half-diagonal of a grid cell in ℓ∞."""
    lin = [m for m in net if isinstance(m, nn.Linear)]
    bound = 1.0
    for m in lin[:-1]:
        bound *= np.abs(m.weight.detach().numpy()).sum(1).max()  # ℓ∞ operator norm
    w = lin[-1].weight.detach().numpy()
    bound *= max(np.abs(w[i] - w[j]).sum() for i in range(len(w)) for j in range(len(w)))
    return bound * spacing / 2


CASES = [(seed, eps) for seed in range(6) for eps in (0.02, 0.1, 0.35)]


@pytest.mark.parametrize("seed,eps", CASES)
def test_sound_complete_and_ordered_on_2d_networks(seed, eps):
    net = small_net(seed)
    rng = np.random.default_rng(seed)
    x = torch.tensor(rng.uniform(-1, 1, size=2))
    with torch.no_grad():
        label = int(net(x[None]).argmax())
    truth, spacing = grid_margins(net, x, label, eps)
    slack = lipschitz_slack(net, spacing)
    got = {m: margin_bounds(net, x, label, eps, method=m) for m in METHODS}
    for m in METHODS:
        assert np.all(got[m] <= truth + 1e-7), (m, got[m], truth)  # sound
    assert np.all(got["milp"] >= truth - slack - 1e-7), (got["milp"], truth, slack)  # complete
    for m in ("lp", "crown", "ibp"):
        assert np.all(got[m] <= got["milp"] + 1e-7), m
    assert np.all(got["lp"] >= got["crown"] - 1e-7) and np.all(got["lp"] >= got["ibp"] - 1e-7)
    for m in METHODS:
        verdict = verify(net, x, label, eps, method=m)
        if truth.min() < 0:
            assert not verdict, m  # never verifies a box with a counterexample
    if truth.min() > slack:
        assert verify(net, x, label, eps, method="milp")


def test_the_domain_box_is_respected():
    net = small_net(3)
    x = torch.tensor([0.95, -0.9], dtype=torch.float64)
    with torch.no_grad():
        label = int(net(x[None]).argmax())
    domain = (-1.0, 1.0)
    truth, spacing = grid_margins(net, x, label, 0.3, domain=domain)
    slack = lipschitz_slack(net, spacing)
    for m in METHODS:
        got = margin_bounds(net, x, label, 0.3, method=m, domain=domain)
        assert np.all(got <= truth + 1e-7), m
    exact = margin_bounds(net, x, label, 0.3, method="milp", domain=domain)
    assert np.all(exact >= truth - slack - 1e-7)
    assert np.all(exact >= margin_bounds(net, x, label, 0.3, method="milp") - 1e-9)  # a smaller set


def test_l2_bounds_are_sound():
    net = small_net(4)
    x = torch.tensor([0.2, -0.4], dtype=torch.float64)
    with torch.no_grad():
        label = int(net(x[None]).argmax())
    eps = 0.3
    r, t = np.meshgrid(np.linspace(0, eps, 200), np.linspace(0, 2 * np.pi, 400))
    pts = np.stack([0.2 + r.ravel() * np.cos(t.ravel()), -0.4 + r.ravel() * np.sin(t.ravel())], 1)
    with torch.no_grad():
        z = net(torch.tensor(pts)).numpy()
    truth = np.array([(z[:, label] - z[:, j]).min() for j in range(3) if j != label])
    for m in ("crown", "ibp"):
        assert np.all(margin_bounds(net, x, label, eps, norm="l2", method=m) <= truth + 1e-7), m
    # the ℓ2 ball is inside the ℓ∞ box of the same radius: its bounds are at least the ℓ∞ ones
    assert np.all(margin_bounds(net, x, label, eps, norm="l2", method="crown")
                  >= margin_bounds(net, x, label, eps, norm="linf", method="crown") - 1e-9)


def test_convolutions_are_unfolded_exactly_and_bounded_soundly():
    g = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 3, 3, stride=1, padding=1), nn.ReLU(), nn.Conv2d(3, 2, 2, stride=2),
                        nn.ReLU(), nn.Flatten(), nn.Linear(8, 4)).double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    form = affine_form(net, (1, 4, 4))
    xs = torch.rand((50, 1, 4, 4), generator=g, dtype=torch.float64)
    with torch.no_grad():
        assert np.allclose(form.forward(xs.reshape(50, -1).numpy()), net(xs).numpy(), atol=1e-12)
    x, eps = xs[0], 0.1
    with torch.no_grad():
        label = int(net(x[None]).argmax())
    samples = x + eps * (2 * torch.rand((20000, 1, 4, 4), generator=g, dtype=torch.float64) - 1)
    with torch.no_grad():
        z = net(samples).numpy()
    sampled = np.array([(z[:, label] - z[:, j]).min() for j in range(4) if j != label])
    for m in METHODS:
        assert np.all(margin_bounds(net, x, label, eps, method=m) <= sampled + 1e-7), m


def torch_interval_bounds(net, lo, hi):
    """Interval propagation with torch's own layers: an independent IBP (center/radius form)."""
    mid, rad = (lo + hi) / 2, (hi - lo) / 2
    for layer in net:
        if isinstance(layer, nn.Linear):
            mid, rad = layer(mid), rad @ layer.weight.abs().T
        elif isinstance(layer, nn.Conv2d):
            abs_conv = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride,
                                 layer.padding, bias=False).double()
            with torch.no_grad():
                abs_conv.weight.copy_(layer.weight.abs())
            mid, rad = layer(mid), abs_conv(rad)
        elif isinstance(layer, nn.ReLU):
            l, u = torch.relu(mid - rad), torch.relu(mid + rad)
            mid, rad = (l + u) / 2, (u - l) / 2
        else:
            mid, rad = layer(mid), layer(rad)
    return mid - rad, mid + rad


def test_ibp_matches_an_independent_torch_implementation():
    g = torch.Generator().manual_seed(1)
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(32, 5), nn.ReLU(),
                        nn.Linear(5, 3)).double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    x = torch.rand((1, 4, 4), generator=g, dtype=torch.float64)
    lo, hi = input_box(x.numpy(), 0.05)
    ours = ibp(affine_form(net, (1, 4, 4)), lo, hi)[-1]
    with torch.no_grad():
        ref = torch_interval_bounds(net, torch.tensor(lo).reshape(1, 1, 4, 4), torch.tensor(hi).reshape(1, 1, 4, 4))
    assert np.allclose(ours[0], ref[0].numpy().ravel(), atol=1e-10)
    assert np.allclose(ours[1], ref[1].numpy().ravel(), atol=1e-10)


def test_crown_on_one_unstable_neuron_by_hand():
    """y = relu(x₁), out = [y, 0.5]: on x₁ ∈ [−1, 2] CROWN's lower slope is 1 (u ≥ −l), so its bound
    on out₀ − out₁ is min(x₁) − 0.5 = −1.5, and its upper bound the chord 2(x₁ + 1)/3 → 2 − 0.5."""
    net = nn.Sequential(nn.Linear(1, 1), nn.ReLU(), nn.Linear(1, 2)).double()
    with torch.no_grad():
        net[0].weight.fill_(1.0)
        net[0].bias.fill_(0.0)
        net[2].weight.copy_(torch.tensor([[1.0], [0.0]]))
        net[2].bias.copy_(torch.tensor([0.0, 0.5]))
    form = affine_form(net, (1,))
    spec = np.array([[1.0, -1.0]])
    (l, u), = crown(form, np.array([0.5]), 1.5, spec=spec)[-1:]
    assert l[0] == pytest.approx(-1.5) and u[0] == pytest.approx(1.5)
    assert margin_bounds(net, torch.tensor([0.5], dtype=torch.float64), 0, 1.5, method="milp")[0] == pytest.approx(-0.5)
    assert margin_bounds(net, torch.tensor([0.5], dtype=torch.float64), 0, 1.5, method="lp")[0] == pytest.approx(-0.5)


def test_exact_radius_by_bisection_matches_the_grid():
    net = small_net(2)
    x = torch.tensor([0.1, 0.2], dtype=torch.float64)
    with torch.no_grad():
        label = int(net(x[None]).argmax())
    r = exact_linf_radius(net, x, label, hi=2.0, tol=1e-4)
    assert 0 < r < 2.0
    inside, _ = grid_margins(net, x, label, r - 2e-4)
    outside = margin_bounds(net, x, label, r + 2e-4, method="milp")
    assert inside.min() > 0 and outside.min() < 0


def test_auto_lirpa_cross_check():
    pytest.importorskip("auto_LiRPA", reason="auto-lirpa 0.3 (PyPI) requires torch<1.13 and does not import "
                                             "with this torch (numpy.lib.arraysetops, torch.onnx internals)")


def test_bad_inputs_are_refused_by_name():
    net = small_net(0)
    x = torch.zeros(2, dtype=torch.float64)
    with pytest.raises(UnsupportedLayerError, match="layer 1 \\(Tanh\\)"):
        verify(nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 2)).double(), x, 0, 0.1)
    with pytest.raises(ValueError, match="eps must be a finite number >= 0"):
        verify(net, x, 0, -0.1)
    with pytest.raises(ValueError, match="label must be a class index in \\[0, 3\\)"):
        verify(net, x, 3, 0.1)
    with pytest.raises(ValueError, match="method must be one of"):
        verify(net, x, 0, 0.1, method="beta-crown")
    with pytest.raises(ValueError, match="norm 'l2' is not supported by method 'milp'"):
        verify(net, x, 0, 0.1, norm="l2", method="milp")
    with pytest.raises(ValueError, match="domain must be"):
        verify(net, x, 0, 0.1, domain=(1.0, 0.0))
