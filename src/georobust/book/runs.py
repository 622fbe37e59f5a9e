"""Run records: the ``run.json`` of a folder of result logs.

It records the configuration that produced the logs (and refuses to mix them with another,
naming the settings that differ) and the results that are not in the per-example logs, so a
chapter executed with ``source = logs`` redraws from exactly what a ``compute`` run wrote.
Records are written atomically.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

RUN_FILE = "run.json"


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


def reusable_log(folder, filename: str, settings: dict, labels) -> Path | None:
    """The certification log ``folder/filename`` of another run, if that run can stand in for one
    of ours: its record's configuration has every ``settings`` value (name -> value, compared as
    JSON) and the log is complete for the test images whose labels are ``labels`` (indices 0 …
    len(labels)−1, in that order). None otherwise (no record, no log, another setting, or a log
    still being written); raises if the log is complete but its labels differ, since then the
    settings claim the same test images and the log contradicts them.

    A certificate depends only on the model, the input and (n0, n, alpha), not on the seed that
    drew the noise, so such a log is as valid for our run as one we would certify ourselves.
    """
    import numpy as np

    from ..smoothing.logs import read_log

    folder = Path(folder)
    record, path = folder / RUN_FILE, folder / filename
    if not record.exists() or not path.exists():
        return None
    config = json.loads(record.read_text()).get("config", {})
    want = json.loads(json.dumps(settings, default=str))
    if any(k not in config or config[k] != v for k, v in want.items()):
        return None
    log = read_log(path)
    order = np.argsort(log["idx"], kind="stable")
    if log["idx"][order].tolist() != list(range(len(labels))):
        return None
    if not np.array_equal(log["label"][order], np.asarray(labels)):
        raise ValueError(f"{path} is complete for the same settings but its labels differ from the test images "
                         "asked for: the test subsample is not the one its run record claims")
    return path
