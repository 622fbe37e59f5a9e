"""Build tss-mnist.csv (next to this script) from the TSS repository's MNIST result reports.

Source: github.com/AI-secure/semantic-randomized-smoothing (Li et al., "TSS: Transformation-
Specific Smoothing for Robustness Certification", CCS 2021), read with ``git show`` at the commit
named in each row from a snapshot under GEOROBUST_MIRROR (default /work/.mirror, where the
project's search tool fetches it: <owner>+<name>/repo). Each ``*.report`` file is two tab-separated
lines written by the repository's ``semantic/analyze.py``: thresholds t, then the fraction of the
certified test images with ``correct`` and ``radius >= t``. No value is typed in: every number
below is parsed from the report, at the thresholds listed here, and the per-image log next to the
report is read to count its images.
"""
import csv
import os
import subprocess
from pathlib import Path

M = os.environ.get("GEOROBUST_MIRROR", "/work/.mirror").rstrip("/") + "/"
REPO, SLUG = "AI-secure+semantic-randomized-smoothing", "github.com/AI-secure/semantic-randomized-smoothing"
COMMIT = subprocess.run(["git", "-C", M + REPO + "/repo", "rev-parse", "HEAD"], capture_output=True, text=True,
                        check=True).stdout.strip()
BASE = "data/main_results/mnist/convnet/"

# (transformation, report path, thresholds, unit of the budget, TSS setting in words); the budget
# is the threshold, except for rotation, whose report thresholds the l2 margin left after the
# interpolation error and whose budget is the certified interval of angles (30 degrees)
SETTINGS = [
    ("brightness", "brightness/noise_0.3_0.3.report", [0.1, 0.2, 0.3, 0.5],
     "brightness shift |b|", "trained with noise sigma_k=0.3, sigma_b=0.3 on exp(k)(x+b); brightness certificate"),
    ("contrast", "contrast/noise_0.3_0.3.report", [0.1, 0.2, 0.3],
     "contrast change r (factors in [1-r, 1+r])", "trained with noise sigma_k=0.3, sigma_b=0.3 on exp(k)(x+b); contrast certificate"),
    ("translation", "translation_blackpad_enumeration/noise_3.0.report", [1.5, 2.5, 3.5, 4.5],
     "l2 norm of the integer shift (pixels)", "zero (black) padding, trained with Gaussian shifts sigma=3; enumeration"),
    ("translation", "translation_reflectpad_enumeration/noise_3.0.report", [1.5, 2.5, 3.5, 4.5],
     "l2 norm of the integer shift (pixels)", "reflection padding, trained with Gaussian shifts sigma=3; enumeration"),
    ("rotation", "rotation/noise_0.50_r_35_p_30.report", [0.0],
     "rotation angle (degrees; certified for all angles in [-budget, budget])",
     "l2 smoothing sigma=0.5, trained with rotations in +-35 degrees; certified over +-30 degrees"),
]


def show(path):
    return subprocess.run(["git", "-C", M + REPO + "/repo", "show", f"{COMMIT}:{path}"], capture_output=True,
                          text=True, check=True).stdout


rows = []
for name, rel, thresholds, unit, setting in SETTINGS:
    head, values = [line.split("\t") for line in show(BASE + rel).strip().splitlines()[:2]]
    table = {round(float(t), 6): v for t, v in zip(head, values)}
    log = show(BASE + rel[:-len(".report")]).strip().splitlines()
    n_images = sum(1 for line in log[1:] if line.split("\t")[0].isdigit())
    for t in thresholds:
        budget = 30.0 if name == "rotation" else t
        padding = ("zeros" if "blackpad" in rel else "reflect") if name == "translation" else ""
        rows.append({"transformation": name, "padding": padding, "budget": budget, "report_threshold": t,
                     "budget_unit": unit,
                     "certified_accuracy": table[round(t, 6)], "n_images": n_images, "setting": setting,
                     "repository": SLUG, "path": BASE + rel, "commit": COMMIT})

out = Path(__file__).with_name("tss-mnist.csv")
with out.open("w", newline="") as fh:
    writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
print(f"wrote {len(rows)} rows to {out}")
