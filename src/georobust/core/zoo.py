"""Trained models, cached by their full training configuration.

Chapters that need the same trained model (a LeNet trained with Gaussian noise σ = 0.25 on the
same data, say) get it from :func:`trained`, which trains it once and keeps the checkpoint in
``$GEOROBUST_CACHE/models/`` (default ``~/.cache/georobust/models``) under a hash of everything
that determines the weights. An interrupted training resumes from its last epoch. Checkpoints are
written atomically and loaded with ``weights_only=True``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable

import torch

from . import models
from .train import load_checkpoint, train


def cache_dir() -> Path:
    return Path(os.environ.get("GEOROBUST_CACHE", Path.home() / ".cache" / "georobust")) / "models"


def config_key(config: dict) -> str:
    """A short stable hash of a JSON-serializable training configuration."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def trained(model_name: str, images: torch.Tensor, labels: torch.Tensor, *, data_name: str, epochs: int,
            lr: float, batch_size: int = 128, seed: int = 0, milestones: tuple[int, ...] = (),
            noise_sigma: float = 0.0, objective: Callable | None = None, objective_key: str | None = None,
            after_step: Callable | None = None, device: torch.device | str = "cpu", progress: bool = True,
            desc: str | None = None, return_history: bool = False):
    """The model ``model_name`` trained on (images, labels) — from the cache if it was trained before.

    With ``return_history=True`` returns ``(model, history)``: the per-epoch records of the run that
    trained it (``[{epoch, loss, train_acc, seconds}]``), kept in the checkpoint.

    ``objective_key`` must describe ``objective`` and ``after_step`` (method and hyperparameters):
    it is part of the cache key, so two different objectives never share a checkpoint.
    """
    if (objective is not None or after_step is not None) and not objective_key:
        raise ValueError("objective_key must describe the objective/after_step (it is part of the cache key)")
    config = {
        "model": model_name, "data": data_name, "n": len(labels), "epochs": epochs, "lr": lr,
        "batch_size": batch_size, "seed": seed, "milestones": list(milestones), "noise_sigma": noise_sigma,
        "objective": objective_key or "cross-entropy",
        "labels_sum": int(labels.sum()), "images_sum": round(float(images.double().sum()), 3),
    }
    path = cache_dir() / f"{model_name}-{config_key(config)}.pt"
    model = models.build(model_name, seed=seed).to(device)
    state = load_checkpoint(path, map_location=device) if path.exists() else None
    if state is not None and state.get("epoch", 0) >= epochs:
        model.load_state_dict(state["model"])
        history = list(state["history"])
    else:
        history = train(model, images, labels, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
                        milestones=milestones, noise_sigma=noise_sigma, objective=objective,
                        after_step=after_step, checkpoint=path, progress=progress, desc=desc or model_name)
    model.eval()
    return (model, history) if return_history else model
