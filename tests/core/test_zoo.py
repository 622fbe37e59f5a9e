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


# --------------------------------------------------------------------------- committed models
import json

import pytest

from georobust.core import budget


def _kw(s, **extra):
    return dict(data_name=s.name, epochs=3, lr=0.05, batch_size=32, progress=False) | extra


def test_stored_model_has_a_manifest_and_is_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOROBUST_CACHE", str(tmp_path / "cache"))
    s = data.load_subset("train").take(96)
    store = tmp_path / "store"
    a = zoo.trained("linear", s.images, s.labels, **_kw(s), store=store, name="lin")
    manifest = json.loads((store / "lin.json").read_text())
    assert manifest["complete"] and manifest["epochs_done"] == 3 and manifest["config"]["lr"] == 0.05
    assert manifest["sha256"] == zoo.file_sha256(store / "lin.pt")
    assert manifest["data_md5"] == zoo.data_md5(s.images, s.labels)
    assert not (tmp_path / "cache").exists()  # the store, not the cache
    mtime = (store / "lin.pt").stat().st_mtime_ns
    b = zoo.trained("linear", s.images, s.labels, **_kw(s), store=store, name="lin")
    assert (store / "lin.pt").stat().st_mtime_ns == mtime
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))


def test_mismatched_stored_model_is_refused_by_name(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOROBUST_CACHE", str(tmp_path / "cache"))
    s = data.load_subset("train").take(96)
    store = tmp_path / "store"
    zoo.trained("linear", s.images, s.labels, **_kw(s, epochs=1), store=store, name="lin")
    with pytest.raises(zoo.StoredModelMismatch, match=r"differs in: lr; lr: stored 0.05, asked 0.1"):
        zoo.trained("linear", s.images, s.labels, **_kw(s, epochs=1, lr=0.1), store=store, name="lin")
    with pytest.raises(zoo.StoredModelMismatch, match="milestones, noise_sigma"):
        zoo.trained("linear", s.images, s.labels, **_kw(s, epochs=1), milestones=(1,), noise_sigma=0.5,
                    store=store, name="lin")
    other = s.images.clone()
    other[0, 0, 0, 0] += 0.5
    other[1, 0, 0, 0] -= 0.5  # same sum, other data
    with pytest.raises(zoo.StoredModelMismatch, match="data"):
        zoo.trained("linear", other, s.labels, **_kw(s, epochs=1), store=store, name="lin")
    (store / "lin.pt").write_bytes((store / "lin.pt").read_bytes() + b"x")
    with pytest.raises(zoo.StoredModelMismatch, match="sha256"):
        zoo.trained("linear", s.images, s.labels, **_kw(s, epochs=1), store=store, name="lin")
    (store / "lin.json").unlink()
    with pytest.raises(zoo.StoredModelMismatch, match="no manifest"):
        zoo.trained("linear", s.images, s.labels, **_kw(s, epochs=1), store=store, name="lin")
    with pytest.raises(ValueError, match="store and name go together"):
        zoo.trained("linear", s.images, s.labels, **_kw(s, epochs=1), store=store)


def test_training_stopped_by_the_budget_resumes_to_the_uninterrupted_model(tmp_path, monkeypatch):
    """A budget of 0 minutes stops after every epoch; rerunning until done gives the same weights,
    history and manifest as one uninterrupted run."""
    monkeypatch.setenv("GEOROBUST_CACHE", str(tmp_path / "cache"))
    s = data.load_subset("train").take(96)
    full = zoo.trained("small_cnn", s.images, s.labels, **_kw(s), store=tmp_path / "a", name="m")
    stops = 0
    while True:
        try:
            with budget.budget(0):
                part = zoo.trained("small_cnn", s.images, s.labels, **_kw(s), store=tmp_path / "b", name="m")
            break
        except budget.BudgetExhausted as err:
            stops += 1
            assert "epoch" in str(err) and "run the same command again" in str(err)
            done = json.loads((tmp_path / "b" / "m.json").read_text())
            assert done["epochs_done"] == stops and not done["complete"]
    assert stops == 2  # epochs 1 and 2 end at the budget; the last epoch finishes the model
    assert all(torch.equal(x, y) for x, y in zip(full.parameters(), part.parameters()))
    a, b = (json.loads((tmp_path / d / "m.json").read_text()) for d in ("a", "b"))
    assert a["sha256"] != "" and [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]


def test_a_model_begun_in_the_cache_is_adopted_by_the_store(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOROBUST_CACHE", str(tmp_path / "cache"))
    s = data.load_subset("train").take(96)
    with pytest.raises(budget.BudgetExhausted), budget.budget(0):
        zoo.trained("linear", s.images, s.labels, **_kw(s))  # one epoch in the cache
    m = zoo.trained("linear", s.images, s.labels, **_kw(s), store=tmp_path / "store", name="lin")
    manifest = json.loads((tmp_path / "store" / "lin.json").read_text())
    assert manifest["complete"] and len(manifest["history"]) == 3
    ref = zoo.trained("linear", s.images, s.labels, **_kw(s), store=tmp_path / "ref", name="lin")
    assert all(torch.equal(x, y) for x, y in zip(m.parameters(), ref.parameters()))


def test_budget_rejects_negative_minutes_and_bad_deadlines(monkeypatch):
    with pytest.raises(ValueError, match="budget minutes"):
        with budget.budget(-1):
            pass
    monkeypatch.setenv(budget.ENV, "soon")
    with pytest.raises(ValueError, match="GEOROBUST_DEADLINE"):
        budget.check("x")
    monkeypatch.delenv(budget.ENV)
    budget.check("x")  # no deadline: nothing happens
