"""Run records: guarded against mixing configurations, clear errors when missing."""

import pytest

from georobust.book import runs


def test_run_record_refuses_another_configuration(tmp_path):
    runs.open_run(tmp_path, {"n": 100, "sigma": 0.25})
    runs.update_run(tmp_path, acr=0.5)
    assert runs.open_run(tmp_path, {"sigma": 0.25, "n": 100})["results"] == {"acr": 0.5}
    with pytest.raises(RuntimeError, match="differs in: n"):
        runs.open_run(tmp_path, {"n": 1000, "sigma": 0.25})
    with pytest.raises(RuntimeError, match="other values of: sigma"):
        runs.read_run(tmp_path, {"sigma": 0.5})


def test_a_missing_run_record_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="no run record"):
        runs.read_run(tmp_path / "nothing")


def test_reusable_log_only_when_every_setting_matches_and_the_log_is_complete(tmp_path):
    import numpy as np
    import pytest

    from georobust.book.runs import open_run, reusable_log

    open_run(tmp_path, {"n": 1000, "alpha": 0.001, "sigmas": [0.25, 0.5], "model": "lenet"})
    log = tmp_path / "certify.tsv"
    labels = np.array([7, 2, 1])
    rows = "".join(f"{i}\t{y}\t{y}\t0.5\t1\t1.0\n" for i, y in enumerate(labels))
    log.write_text("idx\tlabel\tpredict\tradius\tcorrect\ttime\n" + rows)
    assert reusable_log(tmp_path, "certify.tsv", {"n": 1000, "alpha": 0.001}, labels) == log
    assert reusable_log(tmp_path, "certify.tsv", {"n": 1000, "alpha": 0.01}, labels) is None  # another setting
    assert reusable_log(tmp_path, "certify.tsv", {"n0": 100}, labels) is None  # a setting it does not record
    assert reusable_log(tmp_path, "certify.tsv", {"n": 1000}, np.append(labels, 3)) is None  # incomplete
    assert reusable_log(tmp_path, "missing.tsv", {"n": 1000}, labels) is None
    assert reusable_log(tmp_path / "nowhere", "certify.tsv", {"n": 1000}, labels) is None
    with pytest.raises(ValueError, match="labels differ"):
        reusable_log(tmp_path, "certify.tsv", {"n": 1000}, np.array([7, 2, 0]))
