"""Randomized smoothing over a data set: resumable per-example logs of CERTIFY and PREDICT, and
the numbers read from them.

* :func:`certify_dataset` — CERTIFY (Cohen et al. 2019) on every image, logged as
  ``idx label predict radius correct time`` (tab-separated); :func:`read_log`;
  :func:`certify_dataset_alphas` — the same at several alphas from one sampling pass.
* :func:`predict_dataset` — PREDICT on every image, logged as ``idx label predict correct time``;
  :func:`read_predict_log`.
* :func:`require_log`, :func:`is_complete` — a log that must hold every example (to redraw a
  chapter from logs); :func:`attack_targets` — the correctly certified points an attack beyond
  the certified radius is aimed at.
* :func:`certified_accuracy`, :func:`average_certified_radius`, :func:`abstention_rate`.

Both logs resume: lines are appended and flushed after each example (or group), a torn last line
of an interrupted run is dropped when the log is reopened, and example idx draws its noise from a
seed derived from (first draw of ``generator``, idx), so a resumed log equals an uninterrupted one.
Past the deadline of a time budget (:mod:`georobust.core.budget`) they stop after a flushed line
by raising :class:`~georobust.core.budget.BudgetExhausted`.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import numpy as np
import torch

from ..core import budget
from .smooth import ABSTAIN, Smooth, _child_seeds, _model_device, certify_from_counts

LOG_COLUMNS = ("idx", "label", "predict", "radius", "correct", "time")
RADIUS_FORMAT = ".6g"  # radii are logged to 6 significant digits
PREDICT_COLUMNS = ("idx", "label", "predict", "correct", "time")


def _example_seed(base: int, idx: int) -> int:
    return int(np.random.SeedSequence([base, idx]).generate_state(1, np.uint64)[0] >> np.uint64(2))


def read_log(path) -> dict[str, np.ndarray]:
    """A certification log as numpy arrays keyed by :data:`LOG_COLUMNS` (complete lines only)."""
    rows = []
    with open(path) as fh:
        lines = fh.read().split("\n")
    if not lines or lines[0].split("\t") != list(LOG_COLUMNS):
        raise ValueError(f"log_path {path} is not a certification log (first line must be "
                         f"{chr(9).join(LOG_COLUMNS)!r})")
    for line in lines[1:-1]:  # the last element follows the final newline: empty or a torn write
        parts = line.split("\t")
        try:
            if len(parts) == len(LOG_COLUMNS):
                rows.append(tuple(kind(v) for kind, v in zip((int, int, int, float, int, float), parts)))
        except ValueError:
            continue
    cols = list(zip(*rows)) if rows else [()] * len(LOG_COLUMNS)
    kinds = (np.int64, np.int64, np.int64, np.float64, np.int64, np.float64)
    return {name: np.asarray(col, dtype=kind) for name, col, kind in zip(LOG_COLUMNS, cols, kinds)}


def _format_row(idx, label, pred, radius, correct, seconds):
    return f"{idx}\t{label}\t{pred}\t{radius:{RADIUS_FORMAT}}\t{correct}\t{seconds:.4f}\n"


def _prepare_log(path: Path) -> set[int]:
    """Create the log (header only) or keep its complete lines; return the indices already done."""
    header = "\t".join(LOG_COLUMNS) + "\n"
    if path.exists():
        done = read_log(path)
        text = header + "".join(_format_row(*row) for row in zip(*done.values()))
        if path.read_text() == text:
            return set(done["idx"].tolist())
    else:
        done, text = None, header
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return set() if done is None else set(done["idx"].tolist())


def certify_dataset(smooth: Smooth, images: torch.Tensor, labels, log_path, n0: int, n: int, alpha: float,
                    batch_size: int, generator=None, progress: bool = True) -> dict[str, np.ndarray]:
    """CERTIFY every image and log ``idx label predict radius correct time`` (tab-separated).

    Lines are appended and flushed (fsync) after each group of examples; a torn last line of an
    interrupted run is dropped when the log is reopened. A rerun with the same arguments skips
    the indices already in the log and, with a generator seeded the same way, writes the same
    lines an uninterrupted run would (example idx draws its noise from a seed derived from
    (first draw of ``generator``, idx)). ``time`` is the wall-clock seconds per example. Images
    are moved to the base classifier's device. Returns :func:`read_log` of the finished log.
    """
    smooth._check_sampling(n0, n, alpha, batch_size)
    return _certify_logs(smooth, images, labels, {alpha: log_path}, n0, n, batch_size, generator, progress)[alpha]


def certify_dataset_alphas(smooth: Smooth, images: torch.Tensor, labels, log_paths: dict, n0: int, n: int,
                           batch_size: int, generator=None, progress: bool = True) -> dict[float, dict]:
    """:func:`certify_dataset` at several failure probabilities from one sampling pass:
    ``log_paths`` maps each alpha to its log. Every log gets exactly the lines that
    ``certify_dataset(..., log_paths[alpha], n0, n, alpha, batch_size, generator)`` with a generator
    seeded the same way would write (the same noise, so the same counts; only the Clopper–Pearson
    bound differs), except the ``time`` column, which is the sampling time shared by all of them.
    Resumes each log where it stopped. Returns alpha -> :func:`read_log` of its finished log."""
    if not log_paths:
        raise ValueError("log_paths must map at least one alpha to a log path")
    for alpha in log_paths:
        smooth._check_sampling(n0, n, alpha, batch_size)
    if len({Path(p).resolve() for p in log_paths.values()}) != len(log_paths):
        raise ValueError("log_paths must give every alpha its own log file")
    return _certify_logs(smooth, images, labels, dict(log_paths), n0, n, batch_size, generator, progress)


def _certify_logs(smooth, images, labels, log_paths, n0, n, batch_size, generator, progress):
    if len(images) != len(labels):
        raise ValueError(f"images and labels differ in length: {len(images)} != {len(labels)}")
    labels = torch.as_tensor(labels).cpu().tolist()
    paths = {alpha: Path(p) for alpha, p in log_paths.items()}
    done = {alpha: _prepare_log(path) for alpha, path in paths.items()}
    base = _child_seeds(generator, 1)[0]
    todo = [i for i in range(len(labels)) if any(i not in d for d in done.values())]
    device = _model_device(smooth.base_classifier) or images.device
    group = max(1, 8 * batch_size // (n0 + n))
    from tqdm.auto import tqdm

    with contextlib.ExitStack() as stack, tqdm(total=len(labels), initial=len(labels) - len(todo),
                                                disable=not progress, desc="certify") as bar:
        handles = {alpha: stack.enter_context(open(path, "a")) for alpha, path in paths.items()}
        for s in range(0, len(todo), group):
            idx = todo[s:s + group]
            t0 = time.perf_counter()
            xs = smooth._as_batch(images[idx].to(device), single=False)
            counts = smooth.sample_counts(xs, [_example_seed(base, i) for i in idx], n0, n, batch_size)
            seconds = (time.perf_counter() - t0) / len(idx)
            for alpha, fh in handles.items():
                pred, rad = certify_from_counts(counts[:, 0], counts[:, 1], alpha, smooth.sigma, smooth.noise)
                fh.write("".join(_format_row(i, labels[i], int(p), float(r), int(int(p) == labels[i]), seconds)
                                 for i, p, r in zip(idx, pred.tolist(), rad.tolist()) if i not in done[alpha]))
                fh.flush()
                os.fsync(fh.fileno())
            bar.update(len(idx))
            if s + group < len(todo):
                budget.check(f"{len(labels) - len(todo) + s + len(idx)} of {len(labels)} examples of "
                             + ", ".join(str(p) for p in paths.values()))
    return {alpha: read_log(path) for alpha, path in paths.items()}


# --------------------------------------------------------------------------- PREDICT over a data set
def read_predict_log(path) -> dict[str, np.ndarray]:
    """A PREDICT log as numpy arrays keyed by :data:`PREDICT_COLUMNS` (complete lines only)."""
    lines = Path(path).read_text().split("\n")
    if lines[0].split("\t") != list(PREDICT_COLUMNS):
        raise ValueError(f"{path} is not a PREDICT log (first line must be {chr(9).join(PREDICT_COLUMNS)!r})")
    rows = []
    for line in lines[1:-1]:  # the last element follows the final newline: empty or a torn write
        parts = line.split("\t")
        if len(parts) == len(PREDICT_COLUMNS):
            try:
                rows.append((int(parts[0]), int(parts[1]), int(parts[2]), int(parts[3]), float(parts[4])))
            except ValueError:
                continue
    cols = list(zip(*rows)) if rows else [()] * len(PREDICT_COLUMNS)
    kinds = (np.int64, np.int64, np.int64, np.int64, np.float64)
    return {name: np.asarray(col, dtype=kind) for name, col, kind in zip(PREDICT_COLUMNS, cols, kinds)}


def predict_dataset(smooth: Smooth, images: torch.Tensor, labels, log_path, n: int, alpha: float,
                    batch_size: int, generator: torch.Generator | None = None,
                    progress: bool = True) -> dict[str, np.ndarray]:
    """PREDICT every image and log ``idx label predict correct time`` (predict = −1: abstain).

    Example idx draws its noise from a seed derived from (first draw of ``generator``, idx), so a
    rerun skips the indices already logged and writes what an uninterrupted run would. Guarantee
    per image (Cohen et al. 2019, Proposition 1): PREDICT returns a class other than g(x) with
    probability at most ``alpha``. Returns :func:`read_predict_log` of the finished log.
    """
    if len(images) != len(labels):
        raise ValueError(f"images and labels differ in length: {len(images)} != {len(labels)}")
    labels = torch.as_tensor(labels).cpu().tolist()
    path = Path(log_path)
    header = "\t".join(PREDICT_COLUMNS) + "\n"
    done = read_predict_log(path) if path.exists() else None
    kept = "" if done is None else "".join(f"{i}\t{y}\t{p}\t{c}\t{t:.4f}\n" for i, y, p, c, t in zip(*done.values()))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(header + kept)  # drops a torn last line of an interrupted run
    os.replace(tmp, path)
    skip = set() if done is None else set(done["idx"].tolist())
    base = _child_seeds(generator, 1)[0]
    device = _model_device(smooth.base_classifier) or images.device
    from tqdm.auto import tqdm

    todo = [i for i in range(len(labels)) if i not in skip]
    with open(path, "a") as fh:
        for k, i in enumerate(tqdm(todo, disable=not progress, desc="predict")):
            t0 = time.perf_counter()
            gen = torch.Generator().manual_seed(_example_seed(base, i))
            pred = smooth.predict(images[i].to(device), n, alpha, batch_size, gen)
            fh.write(f"{i}\t{labels[i]}\t{pred}\t{int(pred == labels[i])}\t{time.perf_counter() - t0:.4f}\n")
            fh.flush()
            os.fsync(fh.fileno())
            if k + 1 < len(todo):
                budget.check(f"{len(labels) - len(todo) + k + 1} of {len(labels)} examples of {path}")
    return read_predict_log(path)


# --------------------------------------------------------------------------- complete logs
def require_log(path, count: int, reader=None) -> dict[str, np.ndarray]:
    """The log at ``path`` read with ``reader`` (default: the certification log reader), which must
    hold examples 0 … count−1; a clear error otherwise."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"source = logs, but the log {path} is missing: run the chapter with "
                                "source = compute under the same profile and overrides first")
    log = (reader or read_log)(path)
    order = np.argsort(log["idx"], kind="stable")
    if log["idx"][order].tolist() != list(range(count)):
        raise ValueError(f"the log {path} holds {len(log['idx'])} examples, expected indices 0..{count - 1}: "
                         "it is incomplete; rerun with source = compute to finish it")
    return {name: col[order] for name, col in log.items()}


def is_complete(path, count: int, reader=None) -> bool:
    """Whether the log at ``path`` exists and holds examples 0 … count−1 (nothing left to resume)."""
    try:
        require_log(path, count, reader)
    except (FileNotFoundError, ValueError):
        return False
    return True


def attack_targets(log: dict, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``count`` examples (by idx) of a certification log that CERTIFY certified with
    the correct class and a radius > 0: their indices and radii, the points an attack beyond the
    certified radius is aimed at."""
    order = np.argsort(log["idx"], kind="stable")
    keep = order[(log["correct"][order] == 1) & (log["radius"][order] > 0)][:count]
    return log["idx"][keep], log["radius"][keep]


# --------------------------------------------------------------------------- analysis
def as_logged(radius) -> np.ndarray | float:
    """``radius`` rounded as a certification log writes it (:data:`RADIUS_FORMAT`), so a value
    computed in full precision (a radius cap, say) compares with logged radii at their precision."""
    out = np.vectorize(lambda r: float(format(float(r), RADIUS_FORMAT)), otypes=[float])(np.asarray(radius, float))
    return float(out) if out.ndim == 0 else out


def at_cap(radii, cap) -> np.ndarray:
    """Which logged radii sit at the sampling cap σΦ⁻¹(α^{1/n}) (every estimation sample voted for
    the top class), compared at the log's precision: ``radii >= as_logged(cap)``."""
    return np.asarray(radii, dtype=float) >= as_logged(cap)


def within_cap(radii, cap) -> bool:
    """Whether no logged radius exceeds the sampling cap, at the log's precision."""
    return bool(np.all(np.asarray(radii, dtype=float) <= as_logged(cap)))


def certified_accuracy(radii, correct, r_grid) -> np.ndarray:
    """Approximate certified accuracy at each r of ``r_grid``: the fraction of examples whose
    certified class is correct with radius ≥ r (Cohen et al. 2019)."""
    radii, correct = np.asarray(radii, dtype=float), np.asarray(correct, dtype=bool)
    return np.array([(correct & (radii >= r)).mean() if len(radii) else np.nan for r in np.atleast_1d(r_grid)])


def average_certified_radius(radii, correct) -> float:
    """ACR: mean over examples of radius·[correct] (abstentions and errors count 0)."""
    radii, correct = np.asarray(radii, dtype=float), np.asarray(correct, dtype=bool)
    return float(np.mean(np.where(correct, radii, 0.0))) if len(radii) else float("nan")


def abstention_rate(predictions) -> float:
    """Fraction of examples on which CERTIFY (or PREDICT) abstained."""
    p = np.asarray(predictions)
    return float(np.mean(p == ABSTAIN)) if len(p) else float("nan")
