"""The model cache: same configuration -> same checkpoint, different configuration -> retrained."""

import torch

from georobust.core import data, zoo


def test_cached_model_is_reused_and_keyed_by_configuration(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOROBUST_CACHE", str(tmp_path))
    s = data.load_subset("train").take(128)
    kw = dict(data_name=s.name, epochs=1, lr=0.05, progress=False)
    a = zoo.trained("linear", s.images, s.labels, **kw)
    files = list((tmp_path / "models").glob("*.pt"))
    assert len(files) == 1
    mtime = files[0].stat().st_mtime_ns
    b = zoo.trained("linear", s.images, s.labels, **kw)
    assert files[0].stat().st_mtime_ns == mtime  # not retrained
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    zoo.trained("linear", s.images, s.labels, **{**kw, "noise_sigma": 0.25})
    assert len(list((tmp_path / "models").glob("*.pt"))) == 2


def test_objective_needs_a_key():
    import pytest

    with pytest.raises(ValueError, match="objective_key"):
        zoo.trained("linear", torch.zeros(2, 1, 28, 28), torch.zeros(2, dtype=torch.long), data_name="x",
                    epochs=1, lr=0.1, objective=lambda *a: None)


def test_history_is_returned_from_the_run_and_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOROBUST_CACHE", str(tmp_path))
    s = data.load_subset("train").take(64)
    kw = dict(data_name=s.name, epochs=2, lr=0.05, progress=False, return_history=True)
    _, fresh = zoo.trained("linear", s.images, s.labels, **kw)
    _, cached = zoo.trained("linear", s.images, s.labels, **kw)
    assert [h["epoch"] for h in fresh] == [1, 2] and cached == fresh
