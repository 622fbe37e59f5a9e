"""Training objectives for smoothed classifiers: values in limiting cases, gradients, schedules."""

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from georobust.core import models, zoo
from georobust.smoothing.attack import smoothed_nll
from georobust.smoothing.training import (consistency_objective, gaussian_objective, macer_objective,
                                       smoothadv_objective, soft_smoothed_radius, soft_votes_against_hard,
                                       step_seconds, train_generator)
from georobust.core.train import train


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def batch(n=8, seed=0, dtype=torch.float32):
    g = gen(seed + 1000)
    return torch.rand(n, 1, 28, 28, generator=g, dtype=dtype), torch.randint(0, 10, (n,), generator=g)


def noisy_logits_by_hand(model, x, sigma, m, seed):
    """Logits (B, m, C) of f(x_i + σ z_ij) with z drawn as the objectives draw it."""
    z = torch.randn((len(x), m, *x.shape[1:]), generator=gen(seed))
    return torch.stack([model(x + sigma * z[:, j]) for j in range(m)], dim=1), z


OBJECTIVES = {
    "gaussian": lambda: gaussian_objective(0.5),
    "smoothadv": lambda: smoothadv_objective(0.5, 1.0, steps=2, m=2),
    "smoothadv-warmup": lambda: smoothadv_objective(0.5, 1.0, steps=2, m=2, warmup=3),
    "macer": lambda: macer_objective(0.5, k=4, beta=16.0, gamma=8.0, lam=16.0),
    "consistency": lambda: consistency_objective(0.5, m=2, lam=10.0, eta=0.5),
}


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_finite_scalar_with_gradient_on_every_parameter(name):
    model = models.build("small_cnn", seed=0)
    x, y = batch()
    g = torch.Generator().manual_seed(0 * 100_003 + 0 + 50_000)  # as train() seeds epoch 0 of seed 0
    loss, logits = OBJECTIVES[name]()(model, x, y, g)
    assert loss.dim() == 0 and math.isfinite(loss.item())
    assert logits.shape == (len(x), 10)
    loss.backward()
    for p in model.parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_keys_name_method_and_hyperparameters():
    keys = {f().key for f in OBJECTIVES.values()}
    assert len(keys) == len(OBJECTIVES)
    assert macer_objective(0.5, lam=6.0).key != macer_objective(0.5, lam=16.0).key
    assert "sigma=0.25" in consistency_objective(0.25).key


def test_gaussian_objective_is_train_with_noise_sigma():
    x, y = batch(64)
    a, b = models.build("linear", seed=1), models.build("linear", seed=1)
    train(a, x, y, epochs=2, lr=0.1, batch_size=16, seed=3, noise_sigma=0.3, progress=False)
    train(b, x, y, epochs=2, lr=0.1, batch_size=16, seed=3, objective=gaussian_objective(0.3), progress=False)
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q)


def test_consistency_without_regularization_is_the_mean_noisy_cross_entropy():
    model = models.build("small_cnn", seed=2)
    x, y = batch()
    loss, _ = consistency_objective(0.5, m=3, lam=0.0, eta=0.0)(model, x, y, gen(7))
    logits, _ = noisy_logits_by_hand(model, x, 0.5, 3, seed=7)
    by_hand = sum(F.cross_entropy(logits[:, j], y) for j in range(3)) / 3
    torch.testing.assert_close(loss, by_hand)


def test_consistency_terms_by_hand():
    model = models.build("small_cnn", seed=3)
    x, y = batch()
    logits, _ = noisy_logits_by_hand(model, x, 0.25, 2, seed=8)
    probs = logits.softmax(2)
    mean = probs.mean(1)
    ce = F.cross_entropy(logits.flatten(0, 1), y.repeat_interleave(2))
    kl = sum((mean * (mean.log() - probs[:, j].log())).sum(1) for j in range(2)) / 2
    ent = -(mean * mean.log()).sum(1)
    loss, log_mean = consistency_objective(0.25, m=2, lam=10.0, eta=0.5)(model, x, y, gen(8))
    torch.testing.assert_close(loss, ce + (10.0 * kl + 0.5 * ent).mean())
    torch.testing.assert_close(log_mean, mean.log())


def test_consistency_penalty_vanishes_for_a_noise_invariant_model():
    # a model that ignores its input gives the same distribution for every noisy copy: KL = 0
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].bias.copy_(torch.randn(10, generator=gen(1)))
    x, y = batch()
    p = model(x[:1]).softmax(1)[0]
    loss, _ = consistency_objective(0.5, m=4, lam=7.0, eta=0.0)(model, x, y, gen(2))
    torch.testing.assert_close(loss, -p.log()[y].mean())
    loss_eta, _ = consistency_objective(0.5, m=4, lam=7.0, eta=2.0)(model, x, y, gen(2))
    torch.testing.assert_close(loss_eta, -p.log()[y].mean() - 2.0 * (p * p.log()).sum())


def test_macer_without_hinge_is_the_soft_smoothed_cross_entropy():
    model = models.build("small_cnn", seed=4)
    x, y = batch()
    logits, z = noisy_logits_by_hand(model, x, 0.5, 5, seed=9)
    by_hand = -torch.log(logits.softmax(2).mean(1)[torch.arange(len(y)), y] + 1e-10).mean()
    loss, _ = macer_objective(0.5, k=5, beta=16.0, gamma=8.0, lam=0.0)(model, x, y, gen(9))
    torch.testing.assert_close(loss, by_hand)
    # the same quantity as the attack's smoothed loss (up to the 1e-10 inside the logarithm)
    torch.testing.assert_close(loss, smoothed_nll(model, x, y, z, 0.5).mean(), atol=1e-6, rtol=1e-5)


def test_macer_hinge_by_hand_on_a_confident_model():
    # scale the last layer so that the β-softmax is confident and the radius is finite and < γ
    model = models.build("small_cnn", seed=5)
    x, _ = batch(16)
    with torch.no_grad():
        y = model(x).argmax(1)  # labels = the model's own predictions: most rows are "correct"
    sigma, k, beta, gamma, lam = 0.25, 6, 4.0, 8.0, 3.0
    logits, _ = noisy_logits_by_hand(model, x, sigma, k, seed=10)
    ce = -torch.log(logits.softmax(2).mean(1)[torch.arange(len(y)), y] + 1e-10)
    radius, correct = soft_smoothed_radius(logits, y, sigma, beta)
    xi = 2 * radius / sigma
    hinge = torch.where(correct & (xi <= gamma), gamma - xi, torch.zeros_like(xi))
    assert correct.sum() >= 4 and (hinge > 0).sum() >= 4  # the test exercises the hinge
    loss, _ = macer_objective(sigma, k=k, beta=beta, gamma=gamma, lam=lam)(model, x, y, gen(10))
    torch.testing.assert_close(loss, (ce + lam * sigma / 2 * hinge).mean())
    # γ below every ξ: the hinge is inactive and MACER is the soft smoothed cross-entropy
    small = float(xi[correct].min().detach()) * 0.5
    loss0, _ = macer_objective(sigma, k=k, beta=beta, gamma=small, lam=lam)(model, x, y, gen(10))
    torch.testing.assert_close(loss0, ce.mean())


def test_macer_gradient_is_finite_when_a_probability_saturates():
    model = models.build("small_cnn", seed=6)
    with torch.no_grad():
        model[-1].weight.mul_(200.0)  # β-softmax probabilities round to 0 and 1
    x, _ = batch()
    with torch.no_grad():
        y = model(x).argmax(1)
    loss, _ = macer_objective(0.1, k=4, beta=16.0)(model, x, y, gen(0))
    loss.backward()
    assert math.isfinite(loss.item())
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_soft_radius_tends_to_cohens_radius_of_the_vote_frequencies():
    g = gen(3)
    logits = torch.randn(5, 400, 4, generator=g, dtype=torch.float64)
    logits[:, :, 0] += 1.0  # class 0 wins most votes
    y = torch.zeros(5, dtype=torch.long)
    votes = F.one_hot(logits.argmax(2), 4).double().mean(1)
    top2 = votes.topk(2, dim=1).values
    cohen = 0.5 * 0.5 * (torch.special.ndtri(top2[:, 0]) - torch.special.ndtri(top2[:, 1]))
    radius, correct = soft_smoothed_radius(logits, y, sigma=0.5, beta=1e6)
    assert correct.all()
    torch.testing.assert_close(radius, cohen)
    radius_soft, _ = soft_smoothed_radius(logits, y, sigma=0.5, beta=1.0)
    assert (radius_soft < radius).all()  # here, with β = 1, the soft votes are less decisive


def test_smoothadv_inner_attack_increases_the_smoothed_loss():
    model = models.build("small_cnn", seed=7)
    x, _ = batch(16)
    with torch.no_grad():
        y = model(x).argmax(1)
    obj = smoothadv_objective(0.25, eps=2.0, steps=5, m=3)
    g = gen(11)
    loss_adv, _ = obj(model, x, y, g)
    logits, z = noisy_logits_by_hand(model, x, 0.25, 3, seed=11)
    loss_clean = F.cross_entropy(logits.flatten(0, 1), y.repeat_interleave(3))
    assert loss_adv > loss_clean + 0.01
    # and at eps = 0 it is the mean cross-entropy of the noisy copies (= consistency, λ = η = 0)
    loss0, _ = smoothadv_objective(0.25, eps=0.0, steps=5, m=3)(model, x, y, gen(11))
    torch.testing.assert_close(loss0, loss_clean)
    assert model.training  # the attack ran in eval mode and restored the mode


def test_smoothadv_warmup_schedule_and_epoch_from_train():
    obj = smoothadv_objective(0.5, eps=1.0, steps=1, m=1, warmup=4)
    assert [obj.eps_at(e) for e in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    x, y = batch(12)
    seen, plain = [], []

    def recording(model, xb, yb, generator, epoch=None):
        seen.append(epoch)
        out = model(xb)
        return F.cross_entropy(out, yb), out

    def without_epoch(model, xb, yb, generator):  # objectives without the keyword still work
        plain.append(1)
        out = model(xb)
        return F.cross_entropy(out, yb), out

    train(models.build("linear", seed=0), x, y, epochs=3, lr=0.1, batch_size=4, seed=2, objective=recording,
          progress=False)
    train(models.build("linear", seed=0), x, y, epochs=1, lr=0.1, batch_size=4, seed=2, objective=without_epoch,
          progress=False)
    assert seen == [0] * 3 + [1] * 3 + [2] * 3 and plain == [1] * 3


def test_smoothadv_uses_the_budget_of_the_epoch(monkeypatch):
    """The warm-up reaches the attack: the ℓ2 PGD runs with ε·min(1, (e+1)/warmup) at epoch e."""
    from georobust.smoothing import training as smooth_training
    budgets = []
    real = smooth_training.pgd_on_smoothed

    def spy(*args, eps, **kwargs):
        budgets.append(float(eps[0]))
        return real(*args, eps=eps, **kwargs)

    monkeypatch.setattr(smooth_training, "pgd_on_smoothed", spy)
    obj = smoothadv_objective(0.5, eps=1.0, steps=1, m=1, warmup=4)
    model = models.build("linear", seed=0)
    x, y = batch(4)
    for epoch in (0, 1, 5, None):
        obj(model, x, y, gen(0), epoch=epoch)
    assert budgets == [0.25, 0.5, 1.0, 1.0]


def test_smoothadv_warmup_survives_a_resumed_run(tmp_path):
    x, y = batch(12)
    seen = []

    def recording(model, xb, yb, generator, epoch=None):
        seen.append(epoch)
        out = model(xb)
        return F.cross_entropy(out, yb), out

    ckpt = tmp_path / "run.pt"
    train(models.build("linear", seed=0), x, y, epochs=2, lr=0.1, batch_size=12, seed=1, objective=recording,
          checkpoint=ckpt, progress=False)
    train(models.build("linear", seed=0), x, y, epochs=4, lr=0.1, batch_size=12, seed=1, objective=recording,
          checkpoint=ckpt, progress=False)
    assert seen == [0, 1, 2, 3]


@pytest.mark.parametrize("factory, kwargs, name", [
    (gaussian_objective, {"sigma": 0.0}, "sigma"),
    (smoothadv_objective, {"sigma": 0.5, "eps": -1.0}, "eps"),
    (smoothadv_objective, {"sigma": 0.5, "eps": 1.0, "steps": 0}, "steps"),
    (smoothadv_objective, {"sigma": 0.5, "eps": 1.0, "m": 0}, "m"),
    (smoothadv_objective, {"sigma": 0.5, "eps": 1.0, "warmup": -1}, "warmup"),
    (macer_objective, {"sigma": -0.5}, "sigma"),
    (macer_objective, {"sigma": 0.5, "k": 0}, "k"),
    (macer_objective, {"sigma": 0.5, "beta": 0.0}, "beta"),
    (macer_objective, {"sigma": 0.5, "gamma": 0.0}, "gamma"),
    (macer_objective, {"sigma": 0.5, "lam": -1.0}, "lam"),
    (consistency_objective, {"sigma": float("inf")}, "sigma"),
    (consistency_objective, {"sigma": 0.5, "m": 1.5}, "m"),
    (consistency_objective, {"sigma": 0.5, "eta": -0.1}, "eta"),
])
def test_bad_hyperparameters(factory, kwargs, name):
    with pytest.raises(ValueError, match=name):
        factory(**kwargs)


def test_a_cached_objective_model_comes_back_with_its_history(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOROBUST_CACHE", str(tmp_path))
    x, y = batch(40)
    kw = dict(data_name="random", epochs=2, lr=0.1, batch_size=20, seed=0, progress=False)
    obj = consistency_objective(0.5, m=2, lam=1.0, eta=0.0)
    net = zoo.trained("linear", x, y, objective=obj, objective_key=obj.key, **kw)
    calls = []

    def never(model, xb, yb, generator):
        calls.append(1)
        raise AssertionError("the model should come from the cache")

    # same configuration key as zoo.trained: loaded, not retrained, with the history of that run
    net2, history = zoo.trained("linear", x, y, objective=never, objective_key=obj.key, return_history=True, **kw)
    assert not calls
    assert [h["epoch"] for h in history] == [1, 2] and all(h["seconds"] > 0 for h in history)
    for p, q in zip(net.parameters(), net2.parameters()):
        assert torch.equal(p, q)
    # a different key trains a new model
    _, history2 = zoo.trained("linear", x, y, noise_sigma=0.5, return_history=True, **kw)
    assert len(history2) == 2
    assert len(list((tmp_path / "models").glob("*.pt"))) == 2


def test_train_generator_is_the_generator_train_passes():
    x, y = batch(8)
    seeds = []

    def recording(model, xb, yb, generator):
        seeds.append(generator.initial_seed())
        out = model(xb)
        return F.cross_entropy(out, yb), out

    train(models.build("linear", seed=0), x, y, epochs=2, lr=0.1, batch_size=8, seed=4, objective=recording,
          progress=False)
    assert seeds == [train_generator(4, 0).initial_seed(), train_generator(4, 1).initial_seed()]


def test_step_seconds_times_every_method_and_leaves_the_models_alone():
    x, y = batch(32)
    model = models.build("linear", seed=0)
    before = [p.detach().clone() for p in model.parameters()]
    calls = {"a": 0, "b": 0}

    def counting(name, objective, size):
        def run(m, xb, yb, generator, epoch=None):
            calls[name] += 1
            assert len(xb) == size and epoch == 5
            assert generator.initial_seed() == train_generator(3, 5).initial_seed()
            return objective(m, xb, yb, generator)
        return run

    times = step_seconds({"a": (model, counting("a", gaussian_objective(0.5), 8)),
                          "b": (model, counting("b", consistency_objective(0.5, m=2), 4), 4)},
                         x, y, batch_size=8, lr=0.1, rounds=4, seed=3, epoch=5, warmup_rounds=2)
    assert calls == {"a": 6, "b": 6}  # warm-up rounds run but are not counted
    assert sorted(times) == ["a", "b"] and all(len(v) == 4 and min(v) > 0 for v in times.values())
    assert all(torch.equal(p, q) for p, q in zip(before, model.parameters()))
    with pytest.raises(ValueError, match="rounds"):
        step_seconds({"a": (model, gaussian_objective(0.5))}, x, y, batch_size=8, lr=0.1, rounds=0)


def test_smoothadv_uses_the_same_draws_in_the_attack_and_the_update():
    # record the inputs of every forward pass: attack steps see x_t + σz, the update x' + σz, so
    # with shared draws their difference is the same for the m copies of an example
    seen = []

    class Recorder(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = models.build("small_cnn", seed=8)

        def forward(self, x):
            seen.append(x.detach().clone())
            return self.net(x)

    model = Recorder()
    x, y = batch(4)
    smoothadv_objective(0.5, eps=1.0, steps=3, m=3)(model, x, y, gen(12))
    assert len(seen) == 4  # 3 attack steps + the update
    diff = (seen[-1] - seen[-2]).view(4, 3, -1)
    torch.testing.assert_close(diff, diff[:, :1].expand_as(diff))
    assert diff.abs().max() > 0  # the last step moved the point


def test_soft_votes_against_hard_approach_the_hard_votes():
    g = gen(4)
    logits = torch.randn(6, 300, 5, generator=g, dtype=torch.float64)
    logits[:, :, 2] += 1.5
    y = torch.full((6,), 2)
    out = soft_votes_against_hard(logits, y, 0.25, [1.0, 16.0, 1e6])
    assert out["images"] == 6 and out["k"] == 300 and out["n_split"] == 6
    tv = [row["tv"] for row in out["rows"]]
    gaps = [row["radius_gap"] for row in out["rows"]]
    assert tv[0] > tv[1] > tv[2] and tv[2] < 1e-9
    assert gaps[0] > gaps[2] and gaps[2] < 1e-6
    assert out["rows"][2]["agree"] == 1.0
    # unanimous votes: Cohen's radius at the frequencies is infinite, so no radius is compared
    const = torch.zeros(3, 50, 4, dtype=torch.float64)
    const[:, :, 1] = 5.0
    out = soft_votes_against_hard(const, torch.ones(3, dtype=torch.long), 0.5, [1.0])
    assert out["n_split"] == 0 and math.isnan(out["rows"][0]["radius_gap"])
