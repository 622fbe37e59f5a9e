"""Models and the training loop: shapes, seeds, resumable checkpoints loaded with weights_only."""

import pytest
import torch

from georobust.core import data, models, train


@pytest.fixture(scope="module")
def small():
    s = data.load_subset("train").take(256)
    return s.images, s.labels


@pytest.mark.parametrize("name, n_params", [("lenet", 431_080), ("small_cnn", None), ("linear", 7_850)])
def test_models_map_images_to_ten_logits(name, n_params):
    m = models.build(name, seed=0)
    assert m(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    if n_params is not None:
        assert sum(p.numel() for p in m.parameters()) == n_params


def test_same_seed_same_weights_and_global_rng_untouched():
    state = torch.random.get_rng_state()
    a, b = models.build("small_cnn", seed=5), models.build("small_cnn", seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    c = models.build("small_cnn", seed=6)
    assert not all(torch.equal(x, y) for x, y in zip(a.parameters(), c.parameters()))


def test_training_reduces_the_loss(small):
    m = models.build("linear", seed=0)
    hist = train.train(m, *small, epochs=3, lr=0.1, batch_size=32, progress=False)
    assert hist[-1]["loss"] < hist[0]["loss"]
    assert train.evaluate(m, *small) > 0.5


def test_resumed_run_equals_uninterrupted_run(small, tmp_path):
    kw = dict(epochs=3, lr=0.05, batch_size=64, seed=1, noise_sigma=0.25, milestones=(2,), progress=False)
    full = models.build("small_cnn", seed=0)
    train.train(full, *small, **kw)
    ckpt = tmp_path / "run.pt"
    part = models.build("small_cnn", seed=0)
    train.train(part, *small, **{**kw, "epochs": 2}, checkpoint=ckpt)  # "interrupted" after 2 epochs
    resumed = models.build("small_cnn", seed=0)
    hist = train.train(resumed, *small, **kw, checkpoint=ckpt)
    assert [h["epoch"] for h in hist] == [1, 2, 3]
    for x, y in zip(full.parameters(), resumed.parameters()):
        torch.testing.assert_close(x, y)


def test_checkpoint_loads_with_weights_only(tmp_path):
    path = train.save_checkpoint(tmp_path / "c.pt", model=models.build("linear", seed=0).state_dict(), epoch=1)
    assert not list(tmp_path.glob(".*tmp"))
    state = train.load_checkpoint(path)
    assert state["epoch"] == 1


@pytest.mark.parametrize("kw, word", [({"epochs": 0}, "epochs"), ({"lr": 0.0}, "lr"), ({"batch_size": 0}, "batch_size"),
                                      ({"noise_sigma": -1.0}, "noise_sigma")])
def test_bad_training_arguments(small, kw, word):
    args = dict(epochs=1, lr=0.1)
    args.update(kw)
    with pytest.raises(ValueError, match=word):
        train.train(models.build("linear"), *small, **args, progress=False)


def test_unknown_model_is_named():
    with pytest.raises(ValueError, match="model must be one of lenet, small_cnn, linear"):
        models.build("resnet")


class _NotAWeight:
    pass


def test_checkpoint_with_arbitrary_objects_is_refused(tmp_path):
    torch.save({"payload": _NotAWeight()}, tmp_path / "unsafe.pt")
    with pytest.raises(Exception, match="weights_only|Unsupported global"):
        train.load_checkpoint(tmp_path / "unsafe.pt")


def test_objective_and_after_step_hooks(small):
    calls = {"objective": 0, "after": 0}

    def objective(model, x, y, generator):
        calls["objective"] += 1
        assert isinstance(generator, torch.Generator)
        out = model(x)
        return torch.nn.functional.cross_entropy(out, y), out

    def after(model):
        calls["after"] += 1
        assert not torch.is_grad_enabled()

    train.train(models.build("linear", seed=0), *small, epochs=1, lr=0.1, batch_size=64, progress=False,
                objective=objective, after_step=after)
    assert calls == {"objective": 4, "after": 4}
