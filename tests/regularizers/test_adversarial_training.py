"""PGD adversarial training: the inner maximization and the training objective."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from georobust.regularizers.adversarial_training import pgd_objective, pgd_perturb
from georobust.core.attacks import pgd_linf
from georobust.core.train import train


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def linear_model(d=20, k=4, seed=0):
    g = gen(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(d, k))
    with torch.no_grad():
        model[1].weight.copy_(torch.randn(k, d, generator=g))
        model[1].bias.copy_(0.1 * torch.randn(k, generator=g))
    x = 0.1 + 0.8 * torch.rand(200, 1, d, generator=g)
    with torch.no_grad():
        y = model(x).argmax(1)
    return model, x, y


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_perturbation_stays_in_ball_and_box_and_raises_the_loss(norm):
    model, x, y = linear_model()
    eps = 0.05 if norm == "linf" else 0.3
    x_adv = pgd_perturb(model, x, y, eps, steps=10, norm=norm, generator=gen(1))
    d = (x_adv - x).flatten(1)
    size = d.abs().amax(1) if norm == "linf" else d.norm(dim=1)
    assert (size <= eps * (1 + 1e-5)).all()
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert not x_adv.requires_grad
    # the random start it came from (same generator seed, a negligible step)
    rand = pgd_perturb(model, x, y, eps, steps=1, step_size=1e-12, norm=norm, generator=gen(1))
    with torch.no_grad():
        clean = F.cross_entropy(model(x), y, reduction="none")
        adv = F.cross_entropy(model(x_adv), y, reduction="none")
        start = F.cross_entropy(model(rand), y, reduction="none")
    assert (adv > clean).all()
    assert (adv >= start - 1e-6).float().mean() > 0.95


def test_linear_linf_inner_max_matches_the_closed_form_for_two_classes():
    # two classes, margin u = (w_y − w_j)·x + b: CE is increasing in −u, whose ℓ∞ maximum
    # (without the box binding) is reached at x − ε·sign(w_y − w_j): loss there in closed form
    g = gen(3)
    model = nn.Sequential(nn.Flatten(), nn.Linear(10, 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.randn(2, 10, generator=g))
    x = 0.3 + 0.4 * torch.rand(100, 1, 10, generator=g)
    y = torch.randint(0, 2, (100,), generator=g)
    eps = 0.1
    x_adv = pgd_perturb(model, x, y, eps, steps=20, generator=gen(4))
    w = model[1].weight.detach()
    direction = (w[1 - y] - w[y]).sign()[:, None, :]
    with torch.no_grad():
        best = F.cross_entropy(model(x + eps * direction), y, reduction="none")
        got = F.cross_entropy(model(x_adv), y, reduction="none")
    torch.testing.assert_close(got, best, rtol=1e-4, atol=1e-5)


def test_objective_is_the_loss_at_the_attack_and_trains_the_parameters():
    model, x, y = linear_model(seed=5)
    obj = pgd_objective(0.05, steps=5)
    loss, logits = obj(model, x, y, gen(6))
    loss2, _ = obj(model, x, y, gen(6))
    assert loss.item() == loss2.item()  # the generator makes it reproducible
    assert loss.item() > F.cross_entropy(model(x), y).item()
    torch.testing.assert_close(loss, F.cross_entropy(logits, y))
    loss.backward()
    assert model[1].weight.grad is not None and model[1].weight.grad.abs().sum() > 0
    zero, _ = pgd_objective(0.0)(model, x, y, gen(6))
    torch.testing.assert_close(zero, F.cross_entropy(model(x), y))


def two_feature_data(n, seed):
    """Label s = ±1; x1 = 0.5 + 0.3s + 0.3·noise is robust but noisy, x2 = 0.5 + 0.08s +
    0.005·noise is nearly perfect but flips within ℓ∞ distance 0.1."""
    g = gen(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    s = 2 * y - 1
    x1 = 0.5 + 0.3 * s + 0.3 * torch.randn(n, generator=g)
    x2 = 0.5 + 0.08 * s + 0.005 * torch.randn(n, generator=g)
    return torch.stack([x1, x2], 1).clamp(0, 1)[:, None, :], y


def test_adversarial_training_drops_the_non_robust_feature():
    x, y = two_feature_data(1500, 0)
    xt, yt = two_feature_data(500, 1)
    ratio, robust = {}, {}
    for name, obj in (("plain", None), ("pgd", pgd_objective(0.1, steps=5))):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(2, 2))
        train(model, x, y, epochs=8, lr=0.5, batch_size=100, objective=obj, progress=False)
        w = model[1].weight.detach()
        ratio[name] = abs((w[1, 1] - w[0, 1]) / (w[1, 0] - w[0, 0])).item()
        robust[name] = pgd_linf(model, xt, yt, 0.1, steps=20, generator=gen(2)).robust_accuracy
    assert ratio["plain"] > 1.0  # plain training leans on the non-robust feature x2 ...
    assert ratio["pgd"] < 0.2  # ... adversarial training (nearly) ignores it
    assert robust["pgd"] > robust["plain"] + 0.03


@pytest.mark.parametrize("kwargs, match", [
    ({"eps": -1.0}, "eps"), ({"eps": float("nan")}, "eps"), ({"steps": 0}, "steps"),
    ({"step_size": 0.0}, "step_size"), ({"norm": "l1"}, "norm"), ({"warmup": -1}, "warmup"),
    ({"warmup": 1.5}, "warmup"),
])
def test_bad_arguments(kwargs, match):
    args = {"eps": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        pgd_objective(**args)


def test_warmup_ramps_the_budget_with_the_epoch_train_passes(monkeypatch):
    """Epoch e attacks at ε·min(1, (e+1)/warmup) (step scaled alike); no epoch means the full ε."""
    from georobust.regularizers import adversarial_training
    calls = []
    real = adversarial_training.pgd_perturb

    def spy(model, x, y, eps, **kwargs):
        calls.append((round(eps, 12), round(kwargs["step_size"], 12) if kwargs["step_size"] else None))
        return real(model, x, y, eps, **kwargs)

    monkeypatch.setattr(adversarial_training, "pgd_perturb", spy)
    model, x, y = linear_model()
    obj = pgd_objective(0.3, steps=2, step_size=0.03, warmup=3)
    assert [obj.budget(e) for e in (0, 1, 2, 3, None)] == pytest.approx([0.1, 0.2, 0.3, 0.3, 0.3])
    train(model, x[:40], y[:40], epochs=4, lr=0.1, batch_size=40, objective=obj, progress=False)
    assert calls == [(0.1, 0.01), (0.2, 0.02), (0.3, 0.03), (0.3, 0.03)]
    calls.clear()
    pgd_objective(0.3, steps=2, warmup=3)(model, x[:4], y[:4], gen(0))
    assert calls == [(0.3, None)]
