"""Trained models, cached by their full training configuration.

Chapters that need the same trained model (a LeNet trained with Gaussian noise σ = 0.25 on the
same data, say) get it from :func:`trained`, which trains it once and keeps the checkpoint in
``$GEOROBUST_CACHE/models/`` (default ``~/.cache/georobust/models``) under a hash of everything
that determines the weights. An interrupted training resumes from its last epoch. Checkpoints are
written atomically and loaded with ``weights_only=True``.

Models that took hours (the paper profile's) are kept in the repository instead, so that a run
continues on another machine: given a ``store`` folder (``data/models/<chapter>/paper/``) and a
``name``, the checkpoint is ``<store>/<name>.pt`` (weights, optimizer and schedule, so training
resumes from its last epoch) with a manifest ``<store>/<name>.json``: the full training
configuration, the md5 of the training data, the checkpoint's sha256, the commit, the epochs
done and the history. A stored model whose manifest disagrees with the requested configuration
(or data, or whose file does not match its sha256) is refused with an error naming what differs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Callable

import torch

from . import models
from .train import load_checkpoint, train


def cache_dir() -> Path:
    return Path(os.environ.get("GEOROBUST_CACHE", Path.home() / ".cache" / "georobust")) / "models"


def data_md5(images: torch.Tensor, labels: torch.Tensor) -> str:
    """md5 of the training data as the model sees it (float32 images, int64 labels, in order)."""
    h = hashlib.md5()
    h.update(images.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    h.update(labels.detach().to("cpu", torch.int64).contiguous().numpy().tobytes())
    return h.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).parent, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class StoredModelMismatch(RuntimeError):
    """A committed model was trained with another configuration than the one asked for."""


def read_manifest(store: str | os.PathLike, name: str) -> dict | None:
    """The manifest of the stored model ``name`` (None if there is none)."""
    path = Path(store) / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _check_stored(store: Path, name: str, config: dict, md5: str) -> dict | None:
    manifest = read_manifest(store, name)
    if manifest is None:
        if (store / f"{name}.pt").exists():
            raise StoredModelMismatch(f"the stored model {store / (name + '.pt')} has no manifest {name}.json, so "
                                      "nothing says how it was trained; restore the manifest from git or delete the file")
        return None
    old = manifest.get("config", {})
    want = json.loads(json.dumps(config, sort_keys=True, default=str))
    keys = sorted(k for k in set(old) | set(want) if old.get(k) != want.get(k))
    if manifest.get("data_md5") != md5:
        keys.append("data (md5 of the training images and labels)")
    if keys:
        detail = "; ".join(f"{k}: stored {old.get(k)!r}, asked {want.get(k)!r}" for k in keys if k in old or k in want)
        raise StoredModelMismatch(
            f"the stored model {store / (name + '.pt')} was trained with another configuration "
            f"(differs in: {', '.join(keys)}{'; ' + detail if detail else ''}); delete {name}.pt and {name}.json "
            "to retrain it, or run with overrides (an overridden run does not use the stored models)")
    pt = store / f"{name}.pt"
    if pt.exists() and file_sha256(pt) != manifest.get("sha256"):
        raise StoredModelMismatch(f"the stored model {pt} does not match the sha256 in its manifest {name}.json "
                                  "(a partial copy, or a file replaced by hand); restore it from git or delete both")
    return manifest


def _write_manifest(store: Path, name: str, config: dict, md5: str, epochs: int, history: list[dict]) -> None:
    pt = store / f"{name}.pt"
    record = {"name": name, "config": json.loads(json.dumps(config, sort_keys=True, default=str)),
              "data_md5": md5, "sha256": file_sha256(pt), "epochs_done": len(history), "epochs": epochs,
              "complete": len(history) >= epochs, "commit": _commit(), "torch": torch.__version__,
              "history": history}
    tmp = store / f".{name}.json.tmp"
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, store / f"{name}.json")


def config_key(config: dict) -> str:
    """A short stable hash of a JSON-serializable training configuration."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def trained(model_name: str, images: torch.Tensor, labels: torch.Tensor, *, data_name: str, epochs: int,
            lr: float, batch_size: int = 128, seed: int = 0, milestones: tuple[int, ...] = (),
            noise_sigma: float = 0.0, objective: Callable | None = None, objective_key: str | None = None,
            after_step: Callable | None = None, device: torch.device | str = "cpu", progress: bool = True,
            desc: str | None = None, return_history: bool = False, store: str | os.PathLike | None = None,
            name: str | None = None):
    """The model ``model_name`` trained on (images, labels) — from the cache if it was trained before.

    With ``return_history=True`` returns ``(model, history)``: the per-epoch records of the run that
    trained it (``[{epoch, loss, train_acc, seconds}]``), kept in the checkpoint.

    ``objective_key`` must describe ``objective`` and ``after_step`` (method and hyperparameters):
    it is part of the cache key, so two different objectives never share a checkpoint.

    ``store`` and ``name``: keep the checkpoint as ``<store>/<name>.pt`` with its manifest (see
    the module's docstring) instead of in the cache; a stored model trained with another
    configuration raises :class:`StoredModelMismatch` naming the settings that differ; a model of
the same configuration already in the cache (trained before it had a store) is copied into the
store and continues from there. Training
    stops at an epoch boundary when the time budget is used up (:mod:`georobust.core.budget`).
    """
    if (store is None) != (name is None):
        raise ValueError("store and name go together: give both (a committed model) or neither (the cache)")
    if (objective is not None or after_step is not None) and not objective_key:
        raise ValueError("objective_key must describe the objective/after_step (it is part of the cache key)")
    config = {
        "model": model_name, "data": data_name, "n": len(labels), "epochs": epochs, "lr": lr,
        "batch_size": batch_size, "seed": seed, "milestones": list(milestones), "noise_sigma": noise_sigma,
        "objective": objective_key or "cross-entropy",
        "labels_sum": int(labels.sum()), "images_sum": round(float(images.double().sum()), 3),
    }
    after_epoch = None
    if store is not None:
        store = Path(store)
        if not name or any(c in name for c in "/\\ ") or name.startswith("."):
            raise ValueError(f"name must be a plain file stem without spaces or slashes; got {name!r}")
        md5 = data_md5(images, labels)
        _check_stored(store, name, config, md5)
        path = store / f"{name}.pt"

        def after_epoch(history):
            _write_manifest(store, name, config, md5, epochs, history)

        cached = cache_dir() / f"{model_name}-{config_key(config)}.pt"
        if not path.exists() and cached.exists():  # trained (or begun) in the cache before: adopt it
            store.mkdir(parents=True, exist_ok=True)
            tmp = store / f".{name}.pt.tmp"
            shutil.copyfile(cached, tmp)
            os.replace(tmp, path)
            after_epoch(list(load_checkpoint(path)["history"]))
    else:
        path = cache_dir() / f"{model_name}-{config_key(config)}.pt"
    model = models.build(model_name, seed=seed).to(device)
    state = load_checkpoint(path, map_location=device) if path.exists() else None
    if state is not None and state.get("epoch", 0) >= epochs:
        model.load_state_dict(state["model"])
        history = list(state["history"])
    else:
        history = train(model, images, labels, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
                        milestones=milestones, noise_sigma=noise_sigma, objective=objective,
                        after_step=after_step, checkpoint=path, progress=progress, desc=desc or model_name,
                        after_epoch=after_epoch)
    model.eval()
    return (model, history) if return_history else model
