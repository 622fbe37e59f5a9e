"""Published numbers: read from the committed file with their sources, compared with ours with the
standard error the module documents."""

from __future__ import annotations

import math

import numpy as np
import pytest

from georobust.book import published


def test_the_committed_file_holds_the_gaussian_protocol_with_sources():
    rows = published.read_published()
    assert rows and all(r["source_repo"] and len(r["source_commit"]) == 40 and r["source_path"] for r in rows)
    for sigma in (0.25, 0.5, 1.0):
        full = published.published_summary("gaussian", sigma)
        sub = published.published_summary("gaussian", sigma, subsample=True)
        assert full["acr"]["n_images"] == 10_000 and sub["acr"]["n_images"] == 500
        assert full["acr"]["runs"] >= 2 and len(full["acr"]["sources"]) == full["acr"]["runs"]
        # certified accuracy falls with the radius; nothing beyond the cap of n = 1e5, alpha = 1e-3
        ca = [full[f"certified_accuracy@{r}"]["mean"] for r in (0.0, 0.5, 1.0, 2.0, 4.0)]
        assert all(a >= b for a, b in zip(ca, ca[1:])) and 0.9 < ca[0] <= 1


def test_missing_setting_is_named(tmp_path):
    with pytest.raises(KeyError, match="no published rows for method 'macer' at sigma 0.5; the file has: .*gaussian"):
        published.published_summary("macer", 0.5)
    with pytest.raises(FileNotFoundError, match="no published-results file"):
        published.read_published(tmp_path / "none.csv")


def _file(tmp_path, values):
    lines = ["method,sigma,run,metric,value,n_images,source_repo,source_path,source_commit,note"]
    for run, (ca0, acr) in enumerate(values):
        for metric, v in (("certified_accuracy@0.0", ca0), ("certified_accuracy@0.5", ca0 / 2), ("acr", acr)):
            lines.append(f"m,0.5,id{run},{metric},{v},100,o/r,p{run},{'a' * 40},x")
    path = tmp_path / "p.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_difference_and_its_standard_error(tmp_path):
    path = _file(tmp_path, [(0.9, 1.0), (0.8, 1.2), (0.7, 1.1)])
    summary = published.published_summary("m", 0.5, path=path)
    assert summary["acr"]["mean"] == pytest.approx(1.1) and summary["acr"]["sd"] == pytest.approx(0.1)
    radii = np.array([0.0, 0.2, 0.6, 1.0, 0.7, 0.0, 0.3, 0.9])
    correct = np.array([0, 1, 1, 1, 1, 1, 0, 1], dtype=bool)
    out = published.compare_certification(radii, correct, summary, [0.0, 0.5])
    p0 = 6 / 8  # correct with radius >= 0
    s = 0.1  # published sd of certified accuracy at 0
    assert out["certified_accuracy@0.0"]["ours"] == pytest.approx(p0)
    assert out["certified_accuracy@0.0"]["diff"] == pytest.approx(p0 - 0.8)
    assert out["certified_accuracy@0.0"]["diff_se"] == pytest.approx(math.sqrt(p0 * (1 - p0) / 8 + s**2 * (1 + 1 / 3)))
    score = np.where(correct, radii, 0.0)
    assert out["acr"]["ours"] == pytest.approx(score.mean())
    assert out["acr"]["diff_se"] == pytest.approx(math.sqrt(score.var(ddof=1) / 8 + 0.01 * (1 + 1 / 3)))
    with pytest.raises(KeyError, match="radius 0.75 is not in the published file"):
        published.compare_certification(radii, correct, summary, [0.75])


def test_report_on_logs_like_the_published_ones_finds_no_difference():
    """Logs drawn to match the published Gaussian runs give small differences; a planted radius
    scale error (radii halved) is flagged as many standard errors off."""
    rng = np.random.default_rng(0)
    logs, bad = {}, {}
    for sigma in (0.25, 0.5, 1.0):
        pub = published.published_summary("gaussian", sigma)
        cap = sigma * 3.8  # roughly the cap of n = 1e5, alpha = 1e-3
        # radii whose survival function follows the published certified accuracy curve
        grid = sorted(float(k.split("@")[1]) for k in pub if k.startswith("certified"))
        surv = np.array([pub[f"certified_accuracy@{r}"]["mean"] for r in grid])
        u = rng.uniform(size=500)
        radii = np.array([grid[max(0, np.searchsorted(-surv, -x, side="right") - 1)] for x in u])
        correct = u < surv[0]
        radii = np.minimum(np.where(correct, radii + rng.uniform(0, 0.2, 500), 0.0), cap)
        logs[sigma] = {"radius": radii, "correct": correct}
        bad[sigma] = {"radius": radii / 2, "correct": correct}
    table, fig, summary = published.certification_report(logs, "gaussian", [0.0, 0.5, 1.0], np.linspace(0, 4, 50))
    assert table.count("\n") == 2 + 3 * 4 - 1 and "ours − published" in table
    assert "differs from the published one by" in summary and "(s)" not in summary
    for sigma in logs:
        pub = published.published_summary("gaussian", sigma)
        good = published.compare_certification(logs[sigma]["radius"], logs[sigma]["correct"], pub, [0.0, 0.5, 1.0])
        assert all(published.zscore(c) < 3 for k, c in good.items() if k != "acr"), sigma
        wrong = published.compare_certification(bad[sigma]["radius"], bad[sigma]["correct"], pub, [0.0, 0.5, 1.0])
        assert published.zscore(wrong["acr"]) > 5, sigma
    assert published.certification_report(bad, "gaussian", [0.0, 0.5, 1.0], np.linspace(0, 4, 50))[2] != summary


def test_paired_comparison_leaves_out_the_sampling_variance_and_needs_the_same_images():
    sub = published.published_summary("gaussian", 0.5, subsample=True)
    rng = np.random.default_rng(1)
    radii = rng.uniform(0, 1.8, 500)
    correct = rng.uniform(size=500) < 0.97
    out = published.compare_paired(radii, correct, sub, [0.0, 0.5])
    for key, c in out.items():
        assert c["published"] == pytest.approx(sub[key]["mean"])
        assert c["diff_se"] == pytest.approx(sub[key]["sd"] * math.sqrt(1 + 1 / sub[key]["runs"]))
        unpaired = published.compare_certification(radii, correct, sub, [0.0, 0.5])[key]
        assert c["diff"] == pytest.approx(unpaired["diff"]) and c["diff_se"] < unpaired["diff_se"]
    with pytest.raises(ValueError, match="radii must hold the published subsample's images \\(500\\)"):
        published.compare_paired(radii[:499], correct[:499], sub, [0.0])


def test_report_on_the_same_images_adds_the_paired_columns():
    logs = {}
    for sigma in (0.25, 0.5):
        sub = published.published_summary("gaussian", sigma, subsample=True)
        grid = sorted(float(k.split("@")[1]) for k in sub if k.startswith("certified"))
        surv = np.array([sub[f"certified_accuracy@{r}"]["mean"] for r in grid])
        u = (np.arange(500) + 0.5) / 500
        radii = np.array([grid[max(0, np.searchsorted(-surv, -x, side="right") - 1)] for x in u])
        logs[sigma] = {"radius": np.where(u < surv[0], radii, 0.0), "correct": u < surv[0]}
    table, _, summary = published.certification_report(logs, "gaussian", [0.0, 0.5], np.linspace(0, 2, 20),
                                                       same_images=True)
    assert "same images" in table.split("\n")[0] and table.split("\n")[2].count("|") == 8
    assert "On the same test images the ACR differs by" in summary
    plain = published.certification_report(logs, "gaussian", [0.0, 0.5], np.linspace(0, 2, 20))
    assert "same images" not in plain[0] and plain[2] in summary
