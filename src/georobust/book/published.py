"""Published results next to ours: read the committed data file of published numbers and compare.

``data/published/smoothing_mnist.csv`` holds published MNIST randomized-smoothing results,
recomputed from the per-image certification logs that the authors released (its README says
which logs, at which commit, and how to regenerate it). Each row is one (method, σ, training run,
metric); :func:`published_summary` averages the runs of a setting and keeps their spread, and
:func:`compare_certification` puts our certified accuracies and ACR beside them.

The uncertainty of "ours − published". Our number comes from one training run, certified on a
subsample of ``n`` test images; the published one is the mean of k runs on the full test set.
The difference estimates (our run on the full test set) − (the mean run) with variance

    Var = v_sample + s²/k + s²,

where v_sample is our subsample's sampling variance (p(1−p)/n for a certified accuracy, the
variance of radius·correct over n for the ACR), s² the published run-to-run variance (their
spread over training runs, all on the same test set), s²/k the variance of their mean, and the
last s² stands for our own single run's training variability, estimated by theirs. The standard
error is √Var.

On the same test images. When ours are exactly the images of the published every-20th rows (test
indices 0, 20, 40, …), :func:`compare_paired` compares with those rows instead: both numbers are
then taken on the same images, the subsample's sampling variance cancels, and

    Var = s²/k + s²

with s now the run-to-run spread on those images (training and Monte Carlo certification
together). This difference is sharper; it asks whether our run is one more of theirs.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from .chapter import REPO_ROOT

PUBLISHED_DIR = REPO_ROOT / "data" / "published"
SMOOTHING_MNIST = PUBLISHED_DIR / "smoothing_mnist.csv"


def read_published(path: str | Path = SMOOTHING_MNIST) -> list[dict]:
    """The rows of a published-results CSV, with ``sigma``, ``value`` and ``n_images`` as numbers."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no published-results file at {path} (see data/published/README.md)")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        row["sigma"], row["value"], row["n_images"] = float(row["sigma"]), float(row["value"]), int(row["n_images"])
    return rows


def published_summary(method: str, sigma: float, *, subsample: bool = False,
                      path: str | Path = SMOOTHING_MNIST) -> dict[str, dict]:
    """metric -> {mean, sd, runs, n_images, sources} over the training runs of (method, σ).

    ``subsample=False``: the full test set; True: the every-20th rows. Raises if there is no such
    setting, naming the ones there are."""
    rows = [r for r in read_published(path) if r["method"] == method and math.isclose(r["sigma"], sigma)
            and r["run"].endswith("-every20") == subsample]
    if not rows:
        have = sorted({(r["method"], r["sigma"]) for r in read_published(path)})
        raise KeyError(f"no published rows for method {method!r} at sigma {sigma:g}; the file has: "
                       + ", ".join(f"{m} {s:g}" for m, s in have))
    out: dict[str, dict] = {}
    for metric in dict.fromkeys(r["metric"] for r in rows):
        vals = [r for r in rows if r["metric"] == metric]
        v = np.array([r["value"] for r in vals])
        out[metric] = {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
                       "runs": len(v), "n_images": vals[0]["n_images"],
                       "sources": sorted({f"{r['source_repo']}/{r['source_path']}@{r['source_commit'][:7]}"
                                          for r in vals})}
    return out


def _diff(ours: float, var_sample: float, pub: dict) -> dict:
    var = var_sample + pub["sd"] ** 2 * (1 + 1 / pub["runs"])
    return {"ours": ours, "ours_se": math.sqrt(var_sample), "published": pub["mean"], "published_sd": pub["sd"],
            "runs": pub["runs"], "diff": ours - pub["mean"], "diff_se": math.sqrt(var)}


def compare_certification(radii, correct, summary: dict[str, dict], radii_grid) -> dict[str, dict]:
    """Ours beside published for ``certified_accuracy@r`` (r in ``radii_grid``, each must be in the
    published file) and ``acr``: metric -> {ours, ours_se, published, published_sd, runs, diff,
    diff_se} (see the module docstring for the standard error)."""
    radii, correct = np.asarray(radii, dtype=float), np.asarray(correct, dtype=bool)
    n = len(radii)
    if n < 2:
        raise ValueError(f"radii must hold at least 2 images; got {n}")
    out = {}
    for r in radii_grid:
        key = f"certified_accuracy@{float(r)}"
        if key not in summary:
            raise KeyError(f"radius {r:g} is not in the published file (it has "
                           + ", ".join(k.split("@")[1] for k in summary if k.startswith("certified")) + ")")
        p = float(np.mean(correct & (radii >= r)))
        out[key] = _diff(p, p * (1 - p) / n, summary[key])
    score = np.where(correct, radii, 0.0)
    out["acr"] = _diff(float(score.mean()), float(score.var(ddof=1)) / n, summary["acr"])
    return out


def compare_paired(radii, correct, summary: dict[str, dict], radii_grid) -> dict[str, dict]:
    """Like :func:`compare_certification`, for our logs on exactly the test images of ``summary``
    (the every-20th rows, ``published_summary(..., subsample=True)``, whose ``n_images`` must equal
    our number of images): the sampling variance of the subsample is left out (see the module
    docstring), so ``diff_se`` = sd·√(1 + 1/k)."""
    radii, correct = np.asarray(radii, dtype=float), np.asarray(correct, dtype=bool)
    sizes = {v["n_images"] for v in summary.values()}
    if sizes != {len(radii)}:
        raise ValueError(f"radii must hold the published subsample's images ({', '.join(map(str, sorted(sizes)))}) "
                         f"to be compared on the same images; got {len(radii)}")
    out = compare_certification(radii, correct, summary, radii_grid)
    for c in out.values():
        c["ours_se"], c["diff_se"] = 0.0, c["published_sd"] * math.sqrt(1 + 1 / c["runs"])
    return out


def zscore(c: dict) -> float:
    """|ours − published| in units of its standard error (0 when both are equal, inf when they
    differ with no uncertainty)."""
    if c["diff"] == 0:
        return 0.0
    return abs(c["diff"]) / c["diff_se"] if c["diff_se"] > 0 else math.inf


def certification_report(logs: dict, method: str, radii_grid, r_grid, path: str | Path = SMOOTHING_MNIST,
                         same_images: bool = False):
    """A chapter's comparison of its certification logs (σ -> log with ``radius`` and ``correct``)
    with the published runs of ``method``: (Markdown table, matplotlib figure, a sentence that
    summarizes the differences in units of their standard errors). ``same_images=True`` (our logs
    are on the published every-20th test images, in index order) adds the comparison on those
    images (:func:`compare_paired`) as two more columns and a second sentence."""
    import matplotlib.pyplot as plt

    from .tables import markdown_table

    sigmas = sorted(logs)
    rows, cmp, pubs, paired = [], {}, {}, {}
    for s in sigmas:
        pubs[s] = published_summary(method, s, path=path)
        cmp[s] = compare_certification(logs[s]["radius"], logs[s]["correct"], pubs[s], radii_grid)
        if same_images:
            paired[s] = compare_paired(logs[s]["radius"], logs[s]["correct"],
                                       published_summary(method, s, subsample=True, path=path), radii_grid)
        for key, c in cmp[s].items():
            what = "ACR" if key == "acr" else f"r = {float(key.split('@')[1]):g}"
            fmt, err = ("{:.3f}", "{:.3f}") if key == "acr" else ("{:.1%}", "{:.2%}")
            rows.append([f"{s:g}", what, f"{fmt.format(c['ours'])} ± {err.format(c['ours_se'])}",
                         f"{fmt.format(c['published'])} ± {err.format(c['published_sd'])} ({c['runs']} runs)",
                         f"{fmt.format(c['diff']).replace('-', '−')} ± {err.format(c['diff_se'])}"])
            if same_images:
                q = paired[s][key]
                rows[-1] += [f"{fmt.format(q['published'])} ± {err.format(q['published_sd'])}",
                             f"{fmt.format(q['diff']).replace('-', '−')} ± {err.format(q['diff_se'])}"]
    head = ["σ", "", "ours ± SE", "published ± sd over runs", "ours − published ± SE"]
    if same_images:
        head += ["published, same images ± sd", "ours − published, same images ± SE"]
    table = markdown_table(head, rows)

    fig, axes = plt.subplots(1, len(sigmas), figsize=(3.2 * len(sigmas), 3.0), sharey=True, squeeze=False)
    for ax, s in zip(axes[0], sigmas):
        grid = [float(k.split("@")[1]) for k in pubs[s] if k.startswith("certified")]
        ax.errorbar(grid, [pubs[s][f"certified_accuracy@{r}"]["mean"] for r in grid],
                    yerr=[pubs[s][f"certified_accuracy@{r}"]["sd"] for r in grid], fmt="o", ms=3, color="C1",
                    label="published (mean ± sd)")
        radii, correct = np.asarray(logs[s]["radius"], float), np.asarray(logs[s]["correct"], bool)
        ax.plot(r_grid, [float(np.mean(correct & (radii >= r))) for r in r_grid], color="C0", label="ours")
        ax.set_title(f"σ = {s:g}")
        ax.set_xlabel(r"radius $r$ ($\ell_2$)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("certified accuracy")
    axes[0][0].legend(fontsize=8)

    z = {(s, k): zscore(c) for s in sigmas for k, c in cmp[s].items()}
    (s_w, k_w), z_w = max(z.items(), key=lambda kv: kv[1])
    over = sum(v > 2 for v in z.values())
    summary = ("The ACR differs from the published one by "
               + ", ".join(f"{cmp[s]['acr']['diff']:+.3f} ± {cmp[s]['acr']['diff_se']:.3f} at σ = {s:g}".replace("-", "−")
                           for s in sigmas)
               + f". The largest difference in units of its standard error is {z_w:.1f} ("
               + ("the ACR" if k_w == "acr" else f"certified accuracy at r = {float(k_w.split('@')[1]):g}")
               + f", σ = {s_w:g}); {'none' if over == 0 else over} of the {len(z)} differences "
               + f"{'exceeds' if over == 1 else 'exceed'} two standard errors.")
    if same_images:
        from scipy.stats import t as student

        zp = {(s, k): zscore(c) for s in sigmas for k, c in paired[s].items()}
        (s_p, k_p), z_p = max(zp.items(), key=lambda kv: kv[1])
        runs = paired[s_p][k_p]["runs"]
        # if our run were one more of theirs, diff / diff_se would follow Student's t with runs - 1
        # degrees of freedom (their sd comes from only `runs` runs)
        q95 = float(student.ppf(0.975, runs - 1)) if runs > 1 else math.inf
        over_p = sum(v > q95 for v in zp.values())
        p_max = float(2 * student.sf(z_p, runs - 1)) if runs > 1 and math.isfinite(z_p) else 0.0
        summary += (" On the same test images the ACR differs by "
                    + ", ".join(f"{paired[s]['acr']['diff']:+.3f} ± {paired[s]['acr']['diff_se']:.3f} at σ = {s:g}"
                                .replace("-", "−") for s in sigmas)
                    + f"; the largest difference there is {z_p:.1f} standard errors ("
                    + ("the ACR" if k_p == "acr" else f"certified accuracy at r = {float(k_p.split('@')[1]):g}")
                    + f", σ = {s_p:g}). Their spread comes from {runs} runs only, so if our run were one more of "
                    + f"theirs each ratio would follow Student's t with {runs - 1} degrees of freedom: "
                    + f"{'none' if over_p == 0 else over_p} of the {len(zp)} "
                    + f"{'exceeds' if over_p == 1 else 'exceed'} the 95% quantile {q95:.2f}, and the largest "
                    + f"has a two-sided p-value of {p_max:.3f} before any correction for the {len(zp)} comparisons.")
    return table, fig, summary
