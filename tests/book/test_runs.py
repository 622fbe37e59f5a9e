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
