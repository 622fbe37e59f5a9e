"""Every chapter whose paper-profile run is complete (``data/results/<chapter>/paper/complete.json``,
written by the runner when the run finished) renders from its committed logs alone: no data root,
no trained models, a copy of the logs (the committed ones are never touched)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest

from conftest import REPO, copy_book_sources, hermetic_outputs

RESULTS = REPO / "data" / "results"
COMPLETE = sorted(p.parent.parent.name for p in RESULTS.glob("*/paper/complete.json"))


def test_mark_complete_only_for_the_profiles_own_computed_run(tmp_path, monkeypatch):
    from georobust.book.runner import COMPLETE_FILE, mark_complete

    monkeypatch.setenv("GEOROBUST_RESULTS", str(tmp_path))
    folder = tmp_path / "certifying-in-practice" / "paper"
    assert mark_complete("certifying-in-practice", {}) is None  # no logs: nothing to mark
    folder.mkdir(parents=True)
    assert mark_complete("certifying-in-practice", {"source": "logs"}) is None  # rendered, not computed
    assert mark_complete("certifying-in-practice", {"n_test": 5}) is None  # an overridden run's own folder
    assert not (folder / COMPLETE_FILE).exists()
    path = mark_complete("certifying-in-practice", {"data_root": "/somewhere", "device": "cpu"})
    assert path == folder / COMPLETE_FILE
    record = json.loads(path.read_text())
    assert record["chapter"] == "certifying-in-practice" and record["commit"] and record["completed"].endswith("UTC")


@pytest.mark.skipif(not COMPLETE, reason="no paper-profile run is complete yet")
@pytest.mark.parametrize("name", COMPLETE)
def test_a_complete_paper_run_renders_from_its_committed_logs(tmp_path, monkeypatch, name):
    from georobust.book import run_chapter

    monkeypatch.delenv("GEOROBUST_DATA", raising=False)
    monkeypatch.delenv("GEOROBUST_MNIST", raising=False)
    with hermetic_outputs(copy_book_sources(tmp_path / "book-root")) as root:
        shutil.copytree(RESULTS / name / "paper", Path(root) / "results" / name / "paper")
        run_chapter(name, "paper", {"source": "logs"}, book_dir=Path(root) / "book", quiet=True)
        nb = nbformat.read(Path(root) / "book" / "chapters" / f"{name}.ipynb", as_version=4)
        assert not list((Path(root) / "models").glob("**/*.pt"))  # nothing was trained or stored
    assert not [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    text = nbformat.writes(nb)
    if name in ("certifying-in-practice", "training-for-large-radii"):
        assert "ours − published" in text  # the comparison with the literature is shown
