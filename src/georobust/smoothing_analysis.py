"""Running and reading randomized-smoothing experiments: PREDICT over a data set with a resumable
log, a run record that keeps logs of different configurations apart, and the standard figures.

* :func:`predict_dataset` — PREDICT (Cohen et al. 2019) on every image, logged as
  ``idx label predict correct time`` (tab-separated, resumable like
  :func:`georobust.smoothing.certify_dataset`); :func:`read_predict_log`.
* :func:`open_run`, :func:`read_run`, :func:`update_run` — the ``run.json`` of a folder of logs,
  which records the configuration that produced them (and refuses to mix them with another) and
  the results that are not in the per-example logs.
* :func:`require_log` — a log that must exist (with every example) to redraw from logs;
  :func:`is_complete`; :func:`attack_targets` — the correctly certified points an attack
  beyond the certified radius is aimed at.
* :func:`plot_certified_accuracy`, :func:`plot_radius_vs_n`, :func:`plot_matrix` — certified
  accuracy against the radius, certified radius against the number of samples with the radius
  cap σΦ⁻¹(α^{1/n}), and a heatmap of a σ_train × σ_test table.
* :func:`markdown_table` — a Markdown table from a header and rows.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from .bounds import radius_cap
from .smoothing import Smooth

PREDICT_COLUMNS = ("idx", "label", "predict", "correct", "time")
RUN_FILE = "run.json"


# --------------------------------------------------------------------------- PREDICT over a data set
def _example_seed(base: int, idx: int) -> int:
    return int(np.random.SeedSequence([base, idx]).generate_state(1, np.uint64)[0] >> np.uint64(2))


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
    if generator is None:
        generator = torch.Generator()
        generator.seed()
    base = int(torch.randint(1 << 62, (1,), generator=generator, device=generator.device))
    param = next(iter(smooth.base_classifier.parameters()), None)
    device = param.device if param is not None else images.device
    from tqdm.auto import tqdm

    todo = [i for i in range(len(labels)) if i not in skip]
    with open(path, "a") as fh:
        for i in tqdm(todo, disable=not progress, desc="predict"):
            t0 = time.perf_counter()
            gen = torch.Generator().manual_seed(_example_seed(base, i))
            pred = smooth.predict(images[i].to(device), n, alpha, batch_size, gen)
            fh.write(f"{i}\t{labels[i]}\t{pred}\t{int(pred == labels[i])}\t{time.perf_counter() - t0:.4f}\n")
            fh.flush()
            os.fsync(fh.fileno())
    return read_predict_log(path)


# --------------------------------------------------------------------------- run folders and records
def _write_json(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)


def open_run(folder, config: dict) -> dict:
    """Start (or resume) the run whose logs live in ``folder``; ``config`` is everything that
    determines them (JSON-serializable). Refuses a folder whose logs were made with another
    configuration, naming the settings that differ. Returns the run record."""
    path = Path(folder) / RUN_FILE
    config = json.loads(json.dumps(config, sort_keys=True, default=str))
    if path.exists():
        record = json.loads(path.read_text())
        old = record.get("config", {})
        if old != config:
            keys = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
            raise RuntimeError(
                f"the logs in {folder} were made with another configuration (differs in: {', '.join(keys)}); "
                "delete that folder to recompute them, or override parameters (an overridden run gets its own folder)")
        return record
    record = {"config": config, "results": {}}
    _write_json(path, record)
    return record


def update_run(folder, **results) -> dict:
    """Add ``results`` (JSON-serializable) to the run record in ``folder``; returns the record."""
    path = Path(folder) / RUN_FILE
    record = json.loads(path.read_text())
    record["results"].update(json.loads(json.dumps(results, default=float)))
    _write_json(path, record)
    return record


def read_run(folder, params: dict | None = None) -> dict:
    """The run record in ``folder`` (for ``source = logs``); a clear error if there is none, or if
    ``params`` (name -> value) differ from the configuration that the record says made the logs."""
    path = Path(folder) / RUN_FILE
    if not path.exists():
        raise FileNotFoundError(f"source = logs, but there is no run record at {path}: run the chapter with "
                                "source = compute under the same profile and overrides first (it writes the logs)")
    record = json.loads(path.read_text())
    if params is not None:
        params = json.loads(json.dumps(params, sort_keys=True, default=str))
        config = record.get("config", {})
        keys = sorted(k for k in params if config.get(k) != params[k])
        if keys:
            raise RuntimeError(f"the logs in {folder} were made with other values of: {', '.join(keys)}; "
                               "rerun with source = compute to make logs for these parameters")
    return record


def require_log(path, count: int, reader=None) -> dict[str, np.ndarray]:
    """The log at ``path`` read with ``reader`` (default: the certification log reader), which must
    hold examples 0 … count−1; a clear error otherwise."""
    from .smoothing import read_log

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


# --------------------------------------------------------------------------- figures and tables
def plot_certified_accuracy(ax, r_grid, curves: dict, caps: dict | None = None):
    """Certified accuracy against the radius, one line per entry of ``curves`` (label ->
    accuracies on ``r_grid``); ``caps`` (label -> radius) draws each curve's radius cap dotted."""
    for k, (label, acc) in enumerate(curves.items()):
        line, = ax.plot(r_grid, acc, lw=2, label=label, color=f"C{k}")
        if caps and label in caps:
            ax.axvline(caps[label], color=line.get_color(), ls=":", lw=1)
    ax.set_xlabel(r"radius $r$ ($\ell_2$)")
    ax.set_ylabel("certified accuracy")
    ax.set_ylim(0, 1.02)
    ax.set_xlim(0, r_grid[-1])
    ax.grid(alpha=0.3)
    ax.legend()


def plot_radius_vs_n(ax, sigma: float, n_values, radii: dict, n0: int | None = None):
    """Certified radius against the number n of estimation samples, with the cap σΦ⁻¹(α^{1/n}).

    ``radii``: alpha -> array (images × len(n_values)) of certified radii (0: abstained). Thin
    lines: images; thick: the median; dashed: the cap of that α.
    """
    n_values = np.asarray(n_values, dtype=float)
    n_dense = np.logspace(np.log10(n_values.min()), np.log10(n_values.max()), 200)
    for k, (alpha, r) in enumerate(sorted(radii.items(), reverse=True)):
        color = f"C{k}"
        for row in np.atleast_2d(r):
            ax.plot(n_values, row, color=color, lw=0.6, alpha=0.35)
        ax.plot(n_values, np.median(r, axis=0), "o-", color=color, lw=2, label=rf"median, $\alpha$ = {alpha:g}")
        ax.plot(n_dense, radius_cap(sigma, n_dense, alpha), "--", color=color, lw=1.2,
                label=rf"cap $\sigma\Phi^{{-1}}(\alpha^{{1/n}})$, $\alpha$ = {alpha:g}")
    ax.set_xscale("log")
    ax.set_xlabel("estimation samples $n$" + (f" (selection: $n_0$ = {n0})" if n0 else ""))
    ax.set_ylabel("certified radius")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def plot_matrix(ax, values, sigmas, title: str, fmt: str = "{:.2f}", vmax=None):
    """Heatmap of a σ_train (rows) × σ_test (columns) table, each cell annotated."""
    values = np.asarray(values, dtype=float)
    im = ax.imshow(values, cmap="viridis", vmin=0, vmax=vmax if vmax is not None else np.nanmax(values))
    ticks = [f"{s:g}" for s in sigmas]
    ax.set_xticks(range(len(sigmas)), ticks)
    ax.set_yticks(range(len(sigmas)), ticks)
    ax.set_xlabel(r"$\sigma_{\mathrm{test}}$ (smoothing)")
    ax.set_ylabel(r"$\sigma_{\mathrm{train}}$ (augmentation)")
    ax.set_title(title)
    mid = 0.5 * (im.norm.vmin + im.norm.vmax)
    for (i, j), v in np.ndenumerate(values):
        ax.text(j, i, fmt.format(v), ha="center", va="center", color="black" if v > mid else "white", fontsize=9)
    return im


def markdown_table(header, rows) -> str:
    """A Markdown table: ``header`` (column titles) and ``rows`` (lists of already formatted cells)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
