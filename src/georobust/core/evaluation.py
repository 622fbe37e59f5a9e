"""Evaluating a trained classifier's robustness: clean accuracy, robust accuracy under ℓ∞ and ℓ2
attacks (our PGD, cross-checked with AutoAttack), accuracy under Gaussian noise, an empirical local
Lipschitz constant, and the cost of a training step.

* :func:`clean_accuracy` — fraction of correctly classified inputs.
* :func:`robust_accuracy` — over a grid of budgets: PGD with restarts
  (:func:`georobust.core.attacks.robust_accuracy_curve`) on every point, and on a subsample AutoAttack
  {Croce & Hein 2020} through ``torchattacks``. A point counts as robust at ε only if *neither*
  attack broke it (the minimum over attacks per point), so the reported curve is an upper bound
  on the true robust accuracy at most as loose as the stronger attack. ``gap`` is the
  largest difference, over the budgets, between PGD alone and PGD + AutoAttack on the subsample:
  how much PGD alone would have overstated robustness there.
* :func:`noise_accuracy` — accuracy on x + σ·N(0, I) (not clipped to the box) averaged over draws.
* :func:`local_lipschitz` — the empirical local Lipschitz constant of Yang et al. (2020),
  (1/n) Σ_i max_{x' ∈ B_r(x_i)} ‖p(x') − p(x_i)‖₁ / ‖x' − x_i‖, p the softmax output, estimated
  from below by projected gradient ascent on the ratio.
* :func:`step_time` — measured wall-clock seconds of one training step (objective, backward,
  SGD update, ``after_step``) on a fixed batch: median over repeats.

Device and dtype follow the inputs; randomness comes from explicit generators.
"""

from __future__ import annotations

import copy
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .train import train_step
from .attacks import NORMS, ascent_direction, project, random_start, robust_accuracy_curve

TORCHATTACKS_HINT = "pip install --no-deps torchattacks==3.5.1"


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Predicted labels of ``model`` (put in eval mode) on ``x``."""
    model.eval()
    if len(x) == 0:
        return torch.zeros(0, dtype=torch.long, device=x.device)
    return torch.cat([model(x[i:i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])


def clean_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    """Fraction of ``x`` that ``model`` labels as ``y``."""
    if len(x) != len(y):
        raise ValueError(f"x and y differ in length: {len(x)} != {len(y)}")
    return float((predict(model, x, batch_size) == y).double().mean()) if len(y) else float("nan")


# ------------------------------------------------------------------------------ AutoAttack
def _torchattacks():
    try:
        import torchattacks
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(f"the AutoAttack cross-check needs torchattacks: {TORCHATTACKS_HINT}") from err
    return torchattacks


def autoattack_success(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, norm: str = "linf",
                       version: str = "apgd", steps: int = 100, seed: int = 0) -> torch.Tensor:
    """Per point: did AutoAttack (torchattacks) find a misclassified point in the ball?

    ``version="standard"``: torchattacks' ``AutoAttack`` (APGD-CE, APGD-T, FAB-T, Square; note
    that torchattacks 3.5.1 runs its APGDs there with 10 steps, not the reference 100);
    ``version="apgd"``: the cheaper APGD-CE followed by APGD-T (targeted DLR), ``steps``
    iterations each, one restart. A returned point counts only if it is a witness: inside the
    ball (up to 1e-5 relative), inside [0, 1] and misclassified.
    """
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}; got {norm!r}")
    if version not in ("standard", "apgd"):
        raise ValueError(f"version must be 'standard' or 'apgd'; got {version!r}")
    ta = _torchattacks()
    model.eval()
    with torch.no_grad():
        success = model(x).argmax(1) != y
    if eps == 0 or len(x) == 0:
        return success
    tnorm = "Linf" if norm == "linf" else "L2"
    num_classes = int(model(x[:1]).shape[1])
    if version == "standard":
        attacks = [ta.AutoAttack(model, norm=tnorm, eps=eps, version="standard", n_classes=num_classes, seed=seed)]
    else:
        attacks = [ta.APGD(model, norm=tnorm, eps=eps, steps=steps, n_restarts=1, seed=seed, loss="ce"),
                   ta.APGDT(model, norm=tnorm, eps=eps, steps=steps, n_restarts=1, seed=seed, n_classes=num_classes)]
    for attack in attacks:
        todo = (~success).nonzero().squeeze(1)
        if len(todo) == 0:
            break
        adv = attack(x[todo], y[todo]).detach().to(x.dtype)
        dist = (adv - x[todo]).flatten(1)
        dist = dist.abs().amax(1) if norm == "linf" else dist.norm(dim=1)
        inside = (dist <= eps * (1 + 1e-5) + 1e-7) & (adv.flatten(1).amin(1) >= 0) & (adv.flatten(1).amax(1) <= 1)
        with torch.no_grad():
            wrong = model(adv).argmax(1) != y[todo]
        success[todo[wrong & inside]] = True
    return success


@dataclass(frozen=True)
class RobustAccuracy:
    """Robust accuracy over a grid of budgets for one norm.

    ``accuracy[i]``: fraction of all points broken by neither PGD nor (on the subsample)
    AutoAttack at ``eps[i]``; ``pgd_accuracy``: PGD alone on all points; on the subsample of the
    first ``n_checked`` points: ``sub_pgd`` (PGD alone) and ``sub_both`` (PGD, then AutoAttack on
    the points PGD left); ``gap = max_i (sub_pgd[i] − sub_both[i])`` ≥ 0.
    """

    norm: str
    eps: tuple[float, ...]
    accuracy: tuple[float, ...]
    pgd_accuracy: tuple[float, ...]
    n_checked: int
    sub_pgd: tuple[float, ...]
    sub_both: tuple[float, ...]

    @property
    def gap(self) -> float:
        return max((p - b for p, b in zip(self.sub_pgd, self.sub_both)), default=float("nan"))


def robust_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps_grid, *, norm: str = "linf",
                    steps: int = 40, restarts: int = 1, generator: torch.Generator | None = None,
                    n_autoattack: int = 0, autoattack_version: str = "apgd", autoattack_steps: int = 100,
                    seed: int = 0, progress: bool = False) -> RobustAccuracy:
    """Robust accuracy of ``model`` on (x, y) at each budget of ``eps_grid`` in ``norm``.

    PGD (``steps``, ``restarts``, random starts from ``generator``) runs on every point; then
    AutoAttack (:func:`autoattack_success`) on those of the first ``n_autoattack`` points (pass a
    random order) that PGD did not break — the others are broken already, so the per-point
    minimum over the two attacks needs no more. A point broken at a budget counts as broken at
    every larger one (the balls are nested).
    """
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}; got {norm!r}")
    if isinstance(n_autoattack, bool) or not isinstance(n_autoattack, int) or n_autoattack < 0:
        raise ValueError(f"n_autoattack must be an integer >= 0; got {n_autoattack!r}")
    curve = robust_accuracy_curve(model, x, y, eps_grid, norm=norm, steps=steps, restarts=restarts,
                                  generator=generator, progress=progress, desc=f"PGD {norm}")
    grid = curve.eps
    pgd_broken = torch.stack([curve.broken_at <= e for e in grid])  # budgets × points
    broken = pgd_broken.clone()
    k = min(n_autoattack, len(x))
    aa_seen = torch.zeros(k, dtype=torch.bool)  # broken by AutoAttack at a budget so far
    for i, eps in enumerate(grid):
        todo = (~aa_seen & ~pgd_broken[i, :k]).nonzero().squeeze(1)
        if len(todo) and eps > 0:
            idx = todo.to(x.device)
            hit = autoattack_success(model, x[idx], y[idx], eps, norm, autoattack_version,
                                     autoattack_steps, seed).cpu()
            aa_seen[todo[hit]] = True
        broken[i, :k] |= aa_seen

    def frac(b):
        return tuple(float(1 - b[i].double().mean()) if b.shape[1] else float("nan") for i in range(len(grid)))

    return RobustAccuracy(norm, grid, frac(broken), frac(pgd_broken), k, frac(pgd_broken[:, :k]),
                          frac(broken[:, :k]))


# ------------------------------------------------------------------------------ noise
@torch.no_grad()
def noise_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, sigmas, *, draws: int = 1,
                   generator: torch.Generator | None = None, batch_size: int = 1000) -> tuple[float, ...]:
    """Accuracy on x + σ·ε, ε ~ N(0, I) (not clipped), averaged over ``draws`` draws, per σ."""
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
        raise ValueError(f"draws must be an integer >= 1; got {draws!r}")
    if any(not s >= 0 for s in sigmas):
        raise ValueError(f"sigmas must be >= 0; got {sigmas!r}")
    out = []
    for sigma in sigmas:
        correct = 0
        for _ in range(draws):
            noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            correct += int((predict(model, x + float(sigma) * noise, batch_size) == y).sum())
        out.append(correct / (draws * len(y)) if len(y) else float("nan"))
    return tuple(out)


# ------------------------------------------------------------------------------ local Lipschitz
def local_lipschitz(model: nn.Module, x: torch.Tensor, radius: float, *, norm: str = "linf", steps: int = 10,
                    step_size: float | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Per point, a lower estimate of L_r(x) = max_{x' ∈ B_r(x) ∩ [0,1]^d} ‖p(x') − p(x)‖₁ / ‖x' − x‖
    (p = softmax of the logits, ‖·‖ the ``norm`` of the ball; Yang et al. 2020).

    Projected gradient ascent on the output change ‖p(x') − p(x)‖₁ (which pushes x' to the edge of
    the ball, where for small r the ratio is largest; ascending the ratio itself oscillates in
    ℓ∞) from a uniform random start in the ball, ``steps`` steps of size ``step_size`` (default
    2.5·r/steps); the largest *ratio* over the iterates is returned. A lower bound on L_r(x),
    which itself bounds the local Lipschitz constant of p on the ball from below.
    """
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}; got {norm!r}")
    if not radius > 0:
        raise ValueError(f"radius must be > 0; got {radius!r}")
    model.eval()
    alpha = float(step_size) if step_size is not None else 2.5 * radius / steps
    x = x.detach()
    with torch.no_grad():
        p0 = F.softmax(model(x), dim=1)
    tiny = torch.finfo(x.dtype).tiny

    delta = project(x, random_start(x.shape, radius, norm, generator, x.device, x.dtype), radius, norm)
    best = torch.zeros(len(x), dtype=x.dtype, device=x.device)
    for step in range(steps + 1):
        delta.requires_grad_(True)
        change = (F.softmax(model(x + delta), dim=1) - p0).abs().sum(1)
        with torch.no_grad():
            dist = delta.flatten(1)
            dist = dist.abs().amax(1) if norm == "linf" else dist.norm(dim=1)
            ratio = change / dist.clamp_min(tiny)
            best = torch.maximum(best, torch.where(dist > 0, ratio, torch.zeros_like(ratio)))
        if step == steps:
            break
        grad, = torch.autograd.grad(change.sum(), delta)
        with torch.no_grad():
            delta = project(x, delta.detach() + alpha * ascent_direction(grad, norm), radius, norm)
    return best.detach()


# ------------------------------------------------------------------------------ cost
def step_time(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, objective: Callable | None = None,
              after_step: Callable | None = None, noise_sigma: float = 0.0, lr: float = 0.01,
              repeats: int = 5, warmup: int = 1, generator: torch.Generator | None = None) -> float:
    """Median wall-clock seconds of one SGD training step on the batch (x, y), as
    :func:`georobust.core.train.train` takes it (objective or cross-entropy with noise, backward,
    update, ``after_step``), on a copy of ``model`` (the model itself is not changed)."""
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an integer >= 1; got {repeats!r}")
    net = copy.deepcopy(model).train()
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    sync = torch.cuda.synchronize if x.device.type == "cuda" else (lambda: None)
    times = []
    for i in range(warmup + repeats):
        sync()
        t0 = time.perf_counter()
        train_step(net, opt, x, y, objective=objective, noise_sigma=noise_sigma, generator=generator,
                   after_step=after_step)
        sync()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value) of a list of numbers."""
    values = [float(v) for v in values]
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


# ------------------------------------------------------------------------------ logs
def write_tsv(path, meta: dict, columns: tuple[str, ...], rows: list[dict]) -> None:
    """Write ``meta`` as '# key<TAB>value' lines, a header and one tab-separated line per row,
    atomically (a temporary file renamed over ``path``). Values are written with ``str``."""
    import os
    from pathlib import Path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"# {k}\t{v}" for k, v in meta.items()]
    lines.append("\t".join(columns))
    lines += ["\t".join(str(r[c]) for c in columns) for r in rows]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_tsv(path, columns: tuple[str, ...]) -> tuple[dict, list[dict]]:
    """(meta, rows) back from :func:`write_tsv`; numbers are parsed (int, then float), metadata
    values stay strings. Raises if the header is not ``columns`` or there are no rows."""
    from pathlib import Path

    def parse(value):
        for kind in (int, float):
            try:
                return kind(value)
            except ValueError:
                pass
        return value

    meta, rows, header = {}, [], None
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            key, value = line[2:].split("\t", 1)
            meta[key] = value
        elif header is None:
            header = tuple(line.split("\t"))
            if header != tuple(columns):
                raise ValueError(f"{path}: unexpected columns {header}; expected {tuple(columns)}")
        elif line:
            rows.append({c: parse(v) for c, v in zip(columns, line.split("\t"))})
    if not rows:
        raise ValueError(f"{path}: no rows")
    return meta, rows
