"""PREDICT logs and the logs a chapter redraws from: resumable, complete or refused with a clear error."""

import numpy as np
import pytest
import torch
from torch import nn

from georobust.smoothing import Smooth, logs


class _Halfspace(nn.Module):
    """Class 1 if the first coordinate is positive (2 logits)."""

    def forward(self, x):
        s = x.flatten(1)[:, :1]
        return torch.cat([-s, s], dim=1)


def _smooth():
    return Smooth(_Halfspace(), num_classes=2, sigma=0.5)


def test_predict_log_resumes_to_the_uninterrupted_log(tmp_path):
    xs = torch.tensor([[2.0, 0.0], [-2.0, 0.0], [0.01, 0.0], [3.0, 1.0]])
    ys = torch.tensor([1, 0, 1, 1])
    full = logs.predict_dataset(_smooth(), xs, ys, tmp_path / "full.tsv", n=200, alpha=0.01, batch_size=64,
                              generator=torch.Generator().manual_seed(3), progress=False)
    part = tmp_path / "part.tsv"
    logs.predict_dataset(_smooth(), xs[:2], ys[:2], part, n=200, alpha=0.01, batch_size=64,
                       generator=torch.Generator().manual_seed(3), progress=False)
    with open(part, "a") as fh:
        fh.write("2\t1\t")  # a torn line, as an interrupted run leaves
    resumed = logs.predict_dataset(_smooth(), xs, ys, part, n=200, alpha=0.01, batch_size=64,
                                 generator=torch.Generator().manual_seed(3), progress=False)
    for key in ("idx", "label", "predict", "correct"):
        assert resumed[key].tolist() == full[key].tolist(), key
    assert full["predict"][0] == 1 and full["predict"][1] == 0  # far from the boundary: decided


def test_missing_or_incomplete_logs_are_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="is missing"):
        logs.require_log(tmp_path / "absent.tsv", 3)
    xs, ys = torch.tensor([[2.0, 0.0], [-2.0, 0.0]]), torch.tensor([1, 0])
    logs.predict_dataset(_smooth(), xs, ys, tmp_path / "p.tsv", n=50, alpha=0.01, batch_size=50,
                       generator=torch.Generator().manual_seed(0), progress=False)
    with pytest.raises(ValueError, match="incomplete"):
        logs.require_log(tmp_path / "p.tsv", 3, reader=logs.read_predict_log)
    assert logs.is_complete(tmp_path / "p.tsv", 2, reader=logs.read_predict_log)


def test_certification_stopped_by_the_budget_resumes_to_the_uninterrupted_log(tmp_path):
    """A budget of 0 minutes stops after every flushed group; rerunning until done writes the same
    log as one uninterrupted run (times aside)."""
    from georobust.core import budget
    from georobust.smoothing import certify_dataset

    xs = torch.tensor([[2.0, 0.0], [-2.0, 0.0], [0.01, 0.0], [3.0, 1.0], [-0.3, 2.0]])
    ys = torch.tensor([1, 0, 1, 1, 0])
    args = dict(n0=20, n=200, alpha=0.01, batch_size=110, progress=False)  # 4 examples per group
    full = certify_dataset(_smooth(), xs, ys, tmp_path / "full.tsv", generator=torch.Generator().manual_seed(5),
                           **args)
    stops = 0
    while True:
        try:
            with budget.budget(0):
                part = certify_dataset(_smooth(), xs, ys, tmp_path / "part.tsv",
                                       generator=torch.Generator().manual_seed(5), **args)
            break
        except budget.BudgetExhausted as err:
            stops += 1
            assert "4 of 5 examples" in str(err)
    assert stops == 1
    for key in ("idx", "label", "predict", "radius", "correct"):
        assert part[key].tolist() == full[key].tolist(), key


def test_predict_stopped_by_the_budget_resumes(tmp_path):
    from georobust.core import budget

    xs = torch.tensor([[2.0, 0.0], [-2.0, 0.0], [0.01, 0.0]])
    ys = torch.tensor([1, 0, 1])
    kw = dict(n=100, alpha=0.01, batch_size=64, progress=False)
    full = logs.predict_dataset(_smooth(), xs, ys, tmp_path / "f.tsv", generator=torch.Generator().manual_seed(1), **kw)
    stops = 0
    while True:
        try:
            with budget.budget(0):
                part = logs.predict_dataset(_smooth(), xs, ys, tmp_path / "p.tsv",
                                            generator=torch.Generator().manual_seed(1), **kw)
            break
        except budget.BudgetExhausted:
            stops += 1
    assert stops == 2 and part["predict"].tolist() == full["predict"].tolist()


class _Constant(nn.Module):
    def forward(self, x):
        return torch.cat([torch.zeros(len(x), 1), torch.ones(len(x), 1)], dim=1)


def test_radii_at_the_cap_are_recognized_at_the_logs_precision(tmp_path):
    """A base classifier that always votes class 1 is certified exactly at the cap σΦ⁻¹(α^{1/n});
    the log rounds it to 6 significant digits, and at_cap/within_cap compare at that precision.
    A fixed tolerance (radius ≥ cap − 1e-6, the bug once in a chapter) misses some of them."""
    from georobust.smoothing import at_cap, certify_dataset, within_cap
    from georobust.theory.bounds import radius_cap

    missed = 0
    for sigma in (0.25, 0.5, 1.0, 1.37, 2.0, 3.3):
        smooth = Smooth(_Constant(), num_classes=2, sigma=sigma)
        log = certify_dataset(smooth, torch.zeros(3, 2), torch.tensor([1, 1, 1]), tmp_path / f"c{sigma}.tsv",
                              n0=10, n=1000, alpha=0.001, batch_size=512, generator=torch.Generator().manual_seed(0),
                              progress=False)
        cap = float(radius_cap(sigma, 1000, 0.001))
        assert at_cap(log["radius"], cap).all() and within_cap(log["radius"], cap)
        assert not at_cap(log["radius"] - 1e-4 * sigma, cap).any()
        assert not within_cap(log["radius"] + 1e-4 * sigma, cap)
        missed += int(not np.all(log["radius"] >= cap - 1e-6))
    assert missed > 0  # the fixed tolerance would have missed these


def test_several_alphas_from_one_pass_write_the_lines_of_separate_runs(tmp_path):
    """certify_dataset_alphas gives each alpha the log certify_dataset writes with that alpha (times
    aside), resumes a log that is behind the others, and refuses two alphas sharing one file."""
    from georobust.smoothing import certify_dataset, certify_dataset_alphas

    xs = torch.tensor([[0.4, 0.0], [-2.0, 0.0], [0.05, 0.0], [3.0, 1.0], [-0.3, 2.0], [0.2, 0.0]])
    ys = torch.tensor([1, 0, 1, 1, 0, 1])
    alphas = (0.1, 0.001, 1e-6)
    args = dict(n0=20, n=300, batch_size=200, progress=False)
    single = {a: certify_dataset(_smooth(), xs, ys, tmp_path / f"single-{a:g}.tsv", alpha=a,
                                 generator=torch.Generator().manual_seed(8), **args) for a in alphas}
    paths = {a: tmp_path / f"multi-{a:g}.tsv" for a in alphas}
    certify_dataset(_smooth(), xs[:2], ys[:2], paths[0.001], alpha=0.001,  # one log already begun
                    generator=torch.Generator().manual_seed(8), **args)
    multi = certify_dataset_alphas(_smooth(), xs, ys, paths, generator=torch.Generator().manual_seed(8), **args)
    for a in alphas:
        for key in ("idx", "label", "predict", "radius", "correct"):
            assert multi[a][key].tolist() == single[a][key].tolist(), (a, key)
    radii = np.array([single[a]["radius"] for a in alphas])
    assert np.all(np.diff(radii, axis=0) <= 0) and np.any(np.diff(radii, axis=0) < 0)  # smaller alpha, smaller radius
    with pytest.raises(ValueError, match="its own log file"):
        certify_dataset_alphas(_smooth(), xs, ys, {0.1: tmp_path / "x.tsv", 0.01: tmp_path / "x.tsv"},
                               generator=torch.Generator().manual_seed(8), **args)
    with pytest.raises(ValueError, match="alpha"):
        certify_dataset_alphas(_smooth(), xs, ys, {1.5: tmp_path / "y.tsv"}, **args)
