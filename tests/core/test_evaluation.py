"""Evaluation helpers, checked against linear models whose answers are known in closed form."""

import math
import sys

import numpy as np
import pytest
import torch
from torch import nn

from georobust.core import evaluation as ev
from georobust.verification.lipschitz import linear_exact_radius


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def linear_problem(n=200, d=20, k=4, seed=0):
    g = gen(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(d, k))
    with torch.no_grad():
        model[1].weight.copy_(torch.randn(k, d, generator=g))
        model[1].bias.copy_(0.1 * torch.randn(k, generator=g))
    x = 0.3 + 0.4 * torch.rand(n, 1, 4, d // 4, generator=g)  # image-shaped: torchattacks expects N×C×H×W
    with torch.no_grad():
        y = model(x).argmax(1)
    y[: n // 10] = (y[: n // 10] + 1) % k  # 10% misclassified
    return model, x, y


def linf_distance(model, x, y):
    w, b = model[1].weight.detach().double(), model[1].bias.detach().double()
    z = x.flatten(1).double() @ w.T + b
    dist = (z.gather(1, y[:, None]) - z) / (w[y][:, None, :] - w[None]).abs().sum(-1).clamp_min(1e-300)
    dist[torch.arange(len(y)), y] = float("inf")
    return dist.amin(1).clamp_min(0).numpy()


def test_clean_accuracy():
    model, x, y = linear_problem()
    assert ev.clean_accuracy(model, x, y, batch_size=7) == pytest.approx(0.9)
    with pytest.raises(ValueError, match="length"):
        ev.clean_accuracy(model, x, y[:-1])


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_robust_accuracy_is_sound_and_autoattack_never_weakens_it(norm):
    model, x, y = linear_problem(n=120, seed=1)
    if norm == "linf":
        r = linf_distance(model, x, y)
        grid = [0.0, 0.01, 0.02]
    else:
        r = linear_exact_radius(model[1].weight.detach(), model[1].bias.detach(), x, y)
        r = np.where(np.isfinite(r), r, np.inf)
        grid = [0.0, 0.1, 0.2]
    res = ev.robust_accuracy(model, x, y, grid, norm=norm, steps=20, generator=gen(2), n_autoattack=40,
                             autoattack_steps=20)
    assert res.eps == tuple(grid) and res.n_checked == 40
    assert res.accuracy[0] == pytest.approx(0.9)
    for i, eps in enumerate(grid):
        exact = float((r > eps).mean())
        assert exact - 1e-12 <= res.accuracy[i] <= res.pgd_accuracy[i]  # sound, and never above PGD alone
        assert float((r[:40] > eps).mean()) - 1e-12 <= res.sub_both[i] <= res.sub_pgd[i]
    assert all(a >= b for a, b in zip(res.accuracy, res.accuracy[1:]))
    assert res.gap >= 0
    # AutoAttack alone: its hits are witnesses, and it finds the clearly vulnerable points
    for eps in grid[1:]:
        hit = ev.autoattack_success(model, x, y, eps, norm, steps=20).numpy()
        assert not hit[r > eps].any()
        assert hit[r < 0.8 * eps].all()


def test_autoattack_missing_gives_the_install_hint(monkeypatch):
    model, x, y = linear_problem(n=10)
    monkeypatch.setitem(sys.modules, "torchattacks", None)
    with pytest.raises(ImportError, match="pip install --no-deps torchattacks==3.5.1"):
        ev.autoattack_success(model, x, y, 0.1)


def test_noise_accuracy_matches_the_gaussian_closed_form_for_two_classes():
    # two classes: x + σn is labelled y iff u + σ(w_y − w_j)·n > 0, probability Φ(u / (σ‖w_y − w_j‖))
    g = gen(3)
    model = nn.Sequential(nn.Flatten(), nn.Linear(10, 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.randn(2, 10, generator=g))
        model[1].bias.zero_()
    x = torch.rand(300, 1, 10, generator=g)
    y = torch.randint(0, 2, (300,), generator=g)
    w = model[1].weight.detach().double()
    dw = w[y] - w[1 - y]
    u = (x.flatten(1).double() * dw).sum(1)
    sigmas = [0.0, 0.1, 0.5]
    got = ev.noise_accuracy(model, x, y, sigmas, draws=200, generator=gen(4))
    for sigma, acc in zip(sigmas, got):
        if sigma == 0:
            expected = float((u > 0).double().mean())
        else:
            z = u / (sigma * dw.norm(dim=1))
            expected = float((0.5 * (1 + torch.erf(z / math.sqrt(2)))).mean())
        assert acc == pytest.approx(expected, abs=0.01)  # sd of the estimate < 0.002


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_local_lipschitz_of_a_logistic_model(norm):
    # logits (w·x, −w·x): p₁ = sigmoid(2w·x), ‖p(x') − p(x)‖₁ = 2|Δp₁| ≤ 2·¼·2|w·δ| ≤ ‖w‖_*·‖δ‖,
    # with ‖w‖_* = ‖w‖₁ (ℓ∞ ball) or ‖w‖₂ (ℓ2 ball); near the boundary and for a small radius the
    # constant approaches that bound
    g = gen(5)
    w = torch.randn(10, generator=g)
    model = nn.Sequential(nn.Flatten(), nn.Linear(10, 2, bias=False)).double()  # float64: ratios of tiny differences
    with torch.no_grad():
        model[1].weight.copy_(torch.stack([w, -w]))
    w = w.double()
    x = 0.3 + 0.4 * torch.rand(50, 1, 10, generator=g, dtype=torch.float64)
    x = x - ((x.flatten(1) @ w) / (w @ w))[:, None, None] * w  # onto the boundary w·x = 0
    keep = (x.flatten(1).amin(1) > 0.05) & (x.flatten(1).amax(1) < 0.95)
    x = x[keep]
    assert len(x) >= 5
    dual = w.abs().sum() if norm == "linf" else w.norm()
    radius = 1e-3 / float(dual)
    est = ev.local_lipschitz(model, x, radius, norm=norm, steps=10, generator=gen(6))
    assert (est <= dual * (1 + 1e-4)).all()
    assert (est >= 0.97 * dual).all()
    saturated = nn.Sequential(nn.Flatten(), nn.Linear(10, 2)).double()  # logit gap 8 at the same points
    with torch.no_grad():
        saturated[1].weight.copy_(torch.stack([w, -w]))
        saturated[1].bias.copy_(torch.tensor([4.0, -4.0]))
    flat = ev.local_lipschitz(saturated, x, radius, norm=norm, generator=gen(6))
    assert (flat < 0.01 * dual).all() and (flat > 0).all()


def test_step_time_measures_without_changing_the_model():
    model, x, y = linear_problem(n=64)
    before = [p.clone() for p in model.parameters()]
    calls = []

    def objective(m, xb, yb, generator):
        calls.append(1)
        out = m(xb)
        return nn.functional.cross_entropy(out, yb), out

    t = ev.step_time(model, x, y, objective=objective, repeats=3, warmup=1)
    assert t > 0 and len(calls) == 4
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    with pytest.raises(ValueError, match="repeats"):
        ev.step_time(model, x, y, repeats=0)


def test_mean_std():
    assert ev.mean_std([1.0, 3.0]) == pytest.approx((2.0, math.sqrt(2)))
    assert ev.mean_std([5.0]) == (5.0, 0.0)


def test_tsv_round_trip(tmp_path):
    cols = ("method", "seed", "value")
    rows = [{"method": "iso", "seed": 0, "value": 0.25}, {"method": "pgd", "seed": 1, "value": 1e-5}]
    path = tmp_path / "a" / "log.tsv"
    ev.write_tsv(path, {"data": "x\ty"}, cols, rows)
    meta, back = ev.read_tsv(path, cols)
    assert meta == {"data": "x\ty"} and back == rows
    assert not list(path.parent.glob(".*tmp"))
    with pytest.raises(ValueError, match="columns"):
        ev.read_tsv(path, ("method", "seed"))
