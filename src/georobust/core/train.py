"""A plain supervised training loop: SGD, seeds, progress bars, resumable checkpoints.

:func:`train` runs epochs of SGD (Nesterov momentum, step decay) with an optional Gaussian data
augmentation (noise σ, as Cohen et al. 2019 train base classifiers for smoothing). The shuffling
and the noise of epoch e come from generators seeded with (seed, e), so a run interrupted and
resumed from its checkpoint gives the same model as an uninterrupted one. Checkpoints are written
atomically at the end of each epoch and loaded with ``weights_only=True``.
"""

from __future__ import annotations

import functools
import inspect
import os
import time
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from tqdm.auto import tqdm

from . import budget


def save_checkpoint(path: str | os.PathLike, **state) -> Path:
    """``torch.save(state)`` to ``path`` atomically (write to a temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """A checkpoint written by :func:`save_checkpoint`, loaded with ``weights_only=True``."""
    return torch.load(path, map_location=map_location, weights_only=True)


@torch.no_grad()
def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> float:
    """Clean accuracy of ``model`` on (images, labels), on the model's device."""
    device = next(model.parameters()).device
    model.eval()
    correct = 0
    for i in range(0, len(labels), batch_size):
        pred = model(images[i:i + batch_size].to(device)).argmax(1)
        correct += (pred.cpu() == labels[i:i + batch_size]).sum().item()
    return correct / max(len(labels), 1)


def bind_epoch(objective: Callable | None, epoch: int) -> Callable | None:
    """``objective`` with ``epoch`` bound if it declares an ``epoch`` keyword parameter (an
    objective with a schedule, e.g. a budget that ramps up), else ``objective`` itself.

    Called once per epoch by :func:`train` (and once per method by cost measurements), so the
    signature is not inspected on every step.
    """
    if objective is None:
        return None
    try:
        declares = "epoch" in inspect.signature(objective).parameters
    except (TypeError, ValueError):  # builtins and some C callables have no signature
        declares = False
    return functools.partial(objective, epoch=epoch) if declares else objective


def linear_warmup(value: float, epoch: int | None, warmup: int) -> float:
    """A budget ramped up linearly over ``warmup`` epochs: value·min(1, (epoch+1)/warmup) in
    epoch ``epoch`` (0-based); ``value`` itself when ``warmup`` is 0 or no epoch is given."""
    return value if warmup == 0 or epoch is None else value * min(1.0, (epoch + 1) / warmup)


def train_step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, *,
               objective: Callable | None = None, noise_sigma: float = 0.0,
               generator: torch.Generator | None = None,
               after_step: Callable[[nn.Module], None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step exactly as :func:`train` takes it; returns (loss, logits).

    ``objective(model, x, y, generator) -> (loss, logits)`` if given, else cross-entropy on ``x``
    plus Gaussian noise of std ``noise_sigma`` drawn from ``generator``; then backward, the
    optimizer step and ``after_step(model)`` under ``no_grad``. An objective with a schedule gets
    its epoch bound beforehand (:func:`bind_epoch`). Cost benchmarks time this function, so they
    measure the step that training runs.
    """
    if objective is not None:
        loss, out = objective(model, x, y, generator)
    else:
        if noise_sigma > 0:
            x = x + noise_sigma * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        out = model(x)
        loss = nn.functional.cross_entropy(out, y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if after_step is not None:
        with torch.no_grad():
            after_step(model)
    return loss, out


def train(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, epochs: int, lr: float,
          batch_size: int = 128, seed: int = 0, momentum: float = 0.9, weight_decay: float = 0.0,
          milestones: tuple[int, ...] = (), gamma: float = 0.1, noise_sigma: float = 0.0,
          checkpoint: str | os.PathLike | None = None, progress: bool = True,
          desc: str = "train", objective: Callable | None = None,
          after_step: Callable[[nn.Module], None] | None = None,
          after_epoch: Callable[[list[dict]], None] | None = None) -> list[dict]:
    """Train ``model`` in place (on its device) and return the per-epoch history.

    ``objective(model, x, y, generator) -> (loss, logits)`` replaces the default cross-entropy
    (on inputs with Gaussian noise of std ``noise_sigma``); ``generator`` is the epoch's seeded
    generator on the model's device, for any randomness the objective needs (noise draws, attack
    starts). An objective that declares an ``epoch`` keyword also gets the 0-based epoch (also
    after a resumed run), for schedules such as a budget that ramps up. ``after_step(model)``
    runs after every optimizer step (e.g. a Parseval retraction).
    If ``checkpoint`` exists the run resumes from it; it is rewritten after every epoch, then
    ``after_epoch(history)`` is called (e.g. to write a manifest) and the time budget is checked
    (:func:`georobust.core.budget.check`: past the deadline, :class:`~georobust.core.budget.BudgetExhausted`
    is raised at this epoch boundary, and a rerun resumes from the checkpoint).
    """
    for name, value, ok in (("epochs", epochs, epochs >= 1), ("lr", lr, lr > 0),
                            ("batch_size", batch_size, batch_size >= 1), ("noise_sigma", noise_sigma, noise_sigma >= 0)):
        if not ok:
            raise ValueError(f"{name} must be {'>= 1' if name in ('epochs', 'batch_size') else '> 0' if name == 'lr' else '>= 0'}; got {value!r}")
    if len(images) != len(labels):
        raise ValueError(f"images and labels differ in length: {len(images)} != {len(labels)}")
    device = next(model.parameters()).device
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, nesterov=momentum > 0,
                          weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(milestones), gamma=gamma)
    history: list[dict] = []
    start = 0
    if checkpoint is not None and Path(checkpoint).exists():
        state = load_checkpoint(checkpoint, map_location=device)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start, history = int(state["epoch"]), list(state["history"])
    n = len(labels)
    for epoch in range(start, epochs):
        model.train()
        order_gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
        noise_gen = torch.Generator(device=device).manual_seed(seed * 100_003 + epoch + 50_000)
        order = torch.randperm(n, generator=order_gen)
        epoch_objective = bind_epoch(objective, epoch)
        t0, total, correct, seen = time.perf_counter(), 0.0, 0, 0
        bar = tqdm(range(0, n, batch_size), desc=f"{desc} {epoch + 1}/{epochs}", disable=not progress, leave=False)
        for i in bar:
            idx = order[i:i + batch_size]
            x, y = images[idx].to(device), labels[idx].to(device)
            loss, out = train_step(model, opt, x, y, objective=epoch_objective, noise_sigma=noise_sigma,
                                   generator=noise_gen, after_step=after_step)
            total += loss.item() * len(y)
            correct += (out.argmax(1) == y).sum().item()
            seen += len(y)
            bar.set_postfix(loss=f"{total / seen:.3f}")
        sched.step()
        history.append({"epoch": epoch + 1, "loss": total / seen, "train_acc": correct / seen,
                        "seconds": time.perf_counter() - t0})
        if checkpoint is not None:
            save_checkpoint(checkpoint, model=model.state_dict(), optimizer=opt.state_dict(),
                            scheduler=sched.state_dict(), epoch=epoch + 1, history=history)
            if after_epoch is not None:
                after_epoch(history)
            if epoch + 1 < epochs:
                budget.check(f"epoch {epoch + 1}/{epochs} of {desc} (checkpoint {checkpoint})")
    return history
