"""Linear interpolation between models, path barriers and the separated-step trainer."""

import numpy as np
import pytest
import torch
from torch import nn

from georobust.core import models
from georobust.regularizers.interpolation import SeparatedStep, barrier, interpolate, path_barriers, path_metrics
from georobust.regularizers.iso import iso_penalty


def _data(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)


def test_endpoints_reproduce_the_two_models():
    a, b = models.build("small_cnn", seed=0).eval(), models.build("small_cnn", seed=1).eval()
    x, _ = _data()
    for t, ref in ((0.0, a), (1.0, b)):
        m = interpolate(a, b, t)
        for (k, p), q in zip(m.state_dict().items(), ref.state_dict().values()):
            assert torch.equal(p, q), k
        assert torch.equal(m(x), ref(x))
    # the midpoint is the average, and different from both ends
    mid = interpolate(a, b, 0.5)
    w = "0.weight"
    assert torch.allclose(mid.state_dict()[w], (a.state_dict()[w] + b.state_dict()[w]) / 2)
    assert not torch.allclose(mid(x), a(x)) and not torch.allclose(mid(x), b(x))


def test_interpolation_leaves_the_models_alone_and_checks_shapes():
    a, b = models.build("small_cnn", seed=0), models.build("small_cnn", seed=1)
    before = {k: v.clone() for k, v in a.state_dict().items()}
    interpolate(a, b, 0.3)
    assert all(torch.equal(before[k], v) for k, v in a.state_dict().items())
    with pytest.raises(ValueError):
        interpolate(a, models.build("lenet", seed=0), 0.5)
    with pytest.raises(ValueError):
        interpolate(a, b, float("nan"))


def test_path_between_identical_models_is_flat():
    a = models.build("small_cnn", seed=3)
    b = models.build("small_cnn", seed=3)
    x, y = _data()
    calls = []
    m = path_metrics(a, b, x, y, np.linspace(0, 1, 5), robust=lambda mod: calls.append(1) or 0.25)
    assert len(calls) == 5
    np.testing.assert_allclose(m["loss"], m["loss"][0], rtol=1e-6)
    assert np.all(m["acc"] == m["acc"][0])
    bars = path_barriers(m)
    assert bars["loss"] < 1e-6 and bars["acc"] == 0 and bars["robust_acc"] == 0


def test_path_between_different_models_ends_at_their_metrics():
    a, b = models.build("small_cnn", seed=0), models.build("small_cnn", seed=1)
    x, y = _data()
    m = path_metrics(a, b, x, y, [0.0, 0.5, 1.0])
    for i, ref in ((0, a), (2, b)):
        with torch.no_grad():
            z = ref.eval()(x)
        assert m["loss"][i] == pytest.approx(nn.functional.cross_entropy(z, y).item(), rel=1e-5)
        assert m["acc"][i] == pytest.approx((z.argmax(1) == y).float().mean().item())


def test_barrier_on_a_toy_path():
    ts = [0.0, 0.25, 0.5, 0.75, 1.0]
    # loss from 1 to 3 (line: 1, 1.5, 2, 2.5, 3) with a bump of 1.5 at t = 0.5
    assert barrier(ts, [1.0, 1.5, 3.5, 2.5, 3.0]) == (pytest.approx(1.5), 0.5)
    # accuracy from 0.9 to 0.5 (line: 0.9, 0.8, 0.7, 0.6, 0.5) dipping to 0.2 at t = 0.75
    assert barrier(ts, [0.9, 0.8, 0.6, 0.2, 0.5], maximize=True) == (pytest.approx(0.4), 0.75)
    # below the line everywhere (a convex path): no barrier, reached at an end
    assert barrier(ts, [1.0, 0.5, 0.2, 0.5, 1.0])[0] == 0.0
    # the excess is measured against the line between the ends, not the larger end
    assert barrier([0, 0.5, 1], [0.0, 1.0, 2.0])[0] == pytest.approx(0.0)
    with pytest.raises(ValueError):
        barrier([0.0, 0.6, 0.5, 1.0], [0, 0, 0, 0])
    with pytest.raises(ValueError):
        barrier([0.0, 1.0], [0.0, float("nan")])


def test_quadratic_toy_model_has_the_predicted_barrier():
    """A one-parameter model whose loss along the segment is known in closed form."""

    class Scalar(nn.Module):
        def __init__(self, w):
            super().__init__()
            self.w = nn.Parameter(torch.tensor([float(w)]))

        def forward(self, x):  # logits (0, s) with s = 8w(1 - w) - 1: class 1 wins for w in (0.146, 0.854)
            s = 8 * self.w * (1 - self.w) - 1
            return torch.stack([torch.zeros_like(x[:, 0]), s.expand(len(x))], 1)

    a, b = Scalar(0.0), Scalar(1.0)
    x, y = torch.zeros(4, 1), torch.zeros(4, dtype=torch.long)
    ts = np.linspace(0, 1, 11)
    m = path_metrics(a, b, x, y, ts)
    s = 8 * ts * (1 - ts) - 1  # logit of the wrong class along the path: -1 at the ends, 1 at t = 0.5
    np.testing.assert_allclose(m["loss"], np.log1p(np.exp(s)), rtol=1e-5)  # CE of class 0
    # equal ends: barrier = softplus(1) - softplus(-1) = 1, at t = 0.5
    assert barrier(ts, m["loss"]) == (pytest.approx(1.0, rel=1e-5), 0.5)
    assert np.array_equal(m["acc"], (s < 0).astype(float))  # wrong for t = 0.2 ... 0.8
    assert path_barriers(m)["acc"] == pytest.approx(1.0)


def test_separated_step_takes_a_penalty_step_on_the_updated_weights():
    x, y = _data(16)
    eps, eta, lr = 4.2, 0.5, 0.05
    model = models.build("small_cnn", seed=0)
    pen = lambda m, xx, g: iso_penalty(m, xx, eps, "exact")  # noqa: E731
    step = SeparatedStep(pen, eta, lr)
    loss, z = step.objective(model, x, y)
    assert loss.item() == pytest.approx((1 - eta) * nn.functional.cross_entropy(z, y).item())
    ref = models.build("small_cnn", seed=0)
    ref.load_state_dict(model.state_dict())
    grads = torch.autograd.grad(eta * pen(ref, x, None), list(ref.parameters()))
    with torch.no_grad():
        step.after_step(model)  # as train() calls it
    for p, q, g in zip(model.parameters(), ref.parameters(), grads):
        torch.testing.assert_close(p, q - lr * g)
    assert any(g.abs().sum() > 0 for g in grads)
    # eta = 0: no penalty step
    before = [p.clone() for p in model.parameters()]
    zero = SeparatedStep(pen, 0.0, lr)
    zero.objective(model, x, y)
    zero.after_step(model)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before))


def test_separated_step_trains_and_lowers_the_penalty():
    from georobust.core.train import train

    x, y = _data(64, seed=1)
    eps = 4.2
    pen = lambda m, xx, g: iso_penalty(m, xx, eps, "exact")  # noqa: E731
    model = models.build("small_cnn", seed=0)
    with torch.no_grad():
        start = pen(model, x, None).item()
    step = SeparatedStep(pen, 1.0, 0.01)
    train(model, x, y, epochs=3, lr=0.01, batch_size=32, objective=step.objective,
          after_step=step.after_step, progress=False)
    with torch.no_grad():
        assert pen(model, x, None).item() < start


@pytest.mark.parametrize("bad", ["value", "gradient"])
def test_a_non_finite_penalty_step_is_skipped_and_counted(bad):
    """Near the Fisher chart's pole the penalty's gradient overflows; the step must leave the
    weights finite (and unchanged) instead of turning them into NaN."""
    x, y = _data(8)
    model = models.build("small_cnn", seed=0)

    def pen(m, xx, g):
        out = m(xx).sum()
        if bad == "value":
            return out * float("inf")
        return out + (m(xx)[0, 0] * 0).sqrt()  # a finite value (sqrt(0) = 0) whose gradient is NaN

    step = SeparatedStep(pen, 0.5, 0.1)
    if bad == "gradient":
        probe = pen(model, x, None)
        grads = torch.autograd.grad(probe, list(model.parameters()))
        assert torch.isfinite(probe) and not all(bool(torch.isfinite(g).all()) for g in grads)
    step.objective(model, x, y)
    before = [p.clone() for p in model.parameters()]
    step.after_step(model)
    assert step.skipped == 1
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before))
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())
