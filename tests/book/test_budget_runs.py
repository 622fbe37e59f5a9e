"""A long run spread over sessions: stopped by its time budget mid-training and mid-certification,
then rerun, a chapter writes the same logs as an uninterrupted run, and is rendered only when
complete.

``--budget-minutes 0`` stops at the first saved unit of work (an epoch, a log line), which makes
the interruptions deterministic. The chapter is *Certifying in practice* under ``tiny`` with two
epochs (so each model can stop once) and one image per certification group.
"""

from __future__ import annotations

import pytest

from conftest import copy_book_sources, hermetic_outputs

pytestmark = pytest.mark.slow

CHAPTER = "certifying-in-practice"
OVERRIDES = {"epochs": 2, "batch_size": 50, "n_test": 4, "n_matrix": 2, "n_cap_images": 2, "n_attack": 2}


def _logs(root):
    folder = next((root / "results" / CHAPTER).iterdir())
    out = {}
    for path in sorted(folder.glob("*.tsv")):
        lines = path.read_text().splitlines()
        head = lines[0].split("\t")
        keep = [i for i, c in enumerate(head) if c != "time"]  # wall-clock seconds differ
        out[path.name] = ["\t".join(row.split("\t")[i] for i in keep) for row in lines]
    return out


def test_interrupted_runs_continue_to_the_uninterrupted_logs(tmp_path):
    from georobust.book import ChapterIncomplete, run_chapter

    with hermetic_outputs(copy_book_sources(tmp_path / "a")) as a:
        run_chapter(CHAPTER, "tiny", OVERRIDES, book_dir=a / "book", quiet=True)
    with hermetic_outputs(copy_book_sources(tmp_path / "b")) as b:
        target = b / "book" / "chapters" / f"{CHAPTER}.ipynb"
        stops = []
        for _ in range(3):  # epoch 1 of each model, then the first certified image
            with pytest.raises(ChapterIncomplete, match="time budget") as err:
                run_chapter(CHAPTER, "tiny", OVERRIDES, book_dir=b / "book", quiet=True, budget_minutes=0)
            stops.append(str(err.value))
            assert not target.exists()  # a partial run is never rendered
        assert "epoch 1/2" in stops[0] and "epoch 1/2" in stops[1] and "1 of 4 examples" in stops[2]
        partial = _logs(b)
        assert len(partial) == 1 and len(next(iter(partial.values()))) == 2  # header + one image
        run_chapter(CHAPTER, "tiny", OVERRIDES, book_dir=b / "book", quiet=True)
        assert target.exists()
    full, resumed = _logs(a), _logs(b)
    assert len(full) >= 3 and resumed == full
