#!/usr/bin/env python3
"""Recompute published MNIST randomized-smoothing results from the authors' per-image logs.

Source: the certification logs released with Jeong & Shin (NeurIPS 2020) in the GitHub
repository jh-jeong/smoothing-consistency, under data/certify/mnist/. Each log is the output of
that repository's code/certify.py (from Cohen et al.'s locuslab/smoothing): one tab-separated row
per MNIST test image with the header ``idx label predict radius correct time``; ``predict`` is -1
when the smoothed classifier abstains (radius 0), and ``radius`` is printed with 3 significant
digits.

Usage (from the repository root):

    python data/published/recompute_smoothing_mnist.py /path/to/smoothing-consistency/.git

The argument is a git directory of a clone or snapshot of jh-jeong/smoothing-consistency; the
logs are read with ``git show <commit>:<path>``, so no work tree is needed. ``--commit`` picks the
commit (default: HEAD, resolved to its full hash and written to every row). The CSV goes to
data/published/smoothing_mnist.csv next to this script unless ``--out`` says otherwise.

Metrics (all fractions of ALL logged images; abstentions count as not certified):
  certified_accuracy@r  share of images with correct == 1 and radius >= r (the definition of the
                        source repository's code/analyze.py, ApproximateAccuracy.at_radius)
  acr                   mean over all images of radius * correct (analyze.py, ApproximateAccuracy.acr)
  abstain_rate          share of images with predict == -1
Every setting is also evaluated on the images with idx % 20 == 0 (run suffixed "-every20").

Checks run every time (the script exits non-zero if one fails): the header, 10,000 distinct
indices 0..9999 per log, abstentions having radius 0 and correct 0, no radius above the cap that
N=100,000 and alpha=0.001 allow, and every certified-accuracy curve the authors released under
data/certify/mnist (``<log>_acc``: radius, accuracy) is reproduced from its per-image log to the
5 decimals it is printed with (see check_acc_curve for a floating-point detail of those curves).

Only numpy and the standard library are used.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import re
import subprocess
import sys
from statistics import NormalDist

import numpy as np

SOURCE_REPO = "jh-jeong/smoothing-consistency"
# The snapshot this CSV was first built from; a different commit is allowed but reported.
EXPECTED_COMMIT = "a11954aa91adb9924eecf49aaca74051e79bbb86"
HEADER = ["idx", "label", "predict", "radius", "correct", "time"]
RADII = [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0]
N_TEST = 10_000
SUBSAMPLE_EVERY = 20
N_MC, ALPHA = 100_000, 0.001  # certify.py --N and --alpha used for these logs (EXPERIMENTS.MD)

TRAIN = "LeNet, SGD lr 0.01 decayed x0.1 every 30 epochs, 90 epochs (EXPERIMENTS.MD)"
CERT = "certify.py N0=100 N=100000 alpha=0.001 on all 10000 MNIST test images"
RUN = ("run = numeric suffix of the log name, read as the training run's experiment id (train scripts: --id,"
       " default randint(10000)); the code sets no random seed")

# (method, sigma, directory under data/certify/mnist, log-name prefix, note)
SETTINGS = [
    ("gaussian", 0.25, "cohen", "noise_0.25_",
     "Gaussian augmentation (Cohen et al. 2019), train_cohen.py --noise 0.25"),
    ("gaussian", 0.50, "cohen", "noise_0.50_",
     "Gaussian augmentation (Cohen et al. 2019), train_cohen.py --noise 0.50"),
    ("gaussian", 1.00, "cohen", "noise_1.00_",
     "Gaussian augmentation (Cohen et al. 2019), train_cohen.py --noise 1.00"),
    ("consistency", 0.50, "consistency/cohen/num_2/lbd_5.0/eta_0.5", "noise_0.50_",
     "Gaussian + consistency regularization (Jeong & Shin 2020), m=2 noise samples, lambda=5, eta=0.5;"
     " train_consistency.py --num-noise-vec 2 --lbd 5; logs added 2021-01-11 (c015a89) with the eta form of"
     " the loss, replacing the October 2020 lbd_20.0 logs"),
    ("smoothadv", 0.50, "salman/pgd_255.0_10_10/num_4", "noise_0.50_",
     "SmoothAdv (Salman et al. 2019), PGD L2 eps=255/256, 10 steps, eps warm-up 10 epochs, m=4 noise"
     " samples; train_salman.py --attack PGD --epsilon 255 --num-steps 10 --warmup 10 --num-noise-vec 4"),
]


def git(gitdir: str, *args: str) -> str:
    out = subprocess.run(["git", "--git-dir", gitdir, *args], check=True, capture_output=True)
    return out.stdout.decode("utf-8")


def list_logs(gitdir: str, commit: str, directory: str, prefix: str) -> list[tuple[str, str]]:
    """(run id, path) of the logs directly in `directory` named prefix<digits>, sorted by id."""
    base = f"data/certify/mnist/{directory}/"
    names = git(gitdir, "ls-tree", "--name-only", f"{commit}:{base}").split()
    found = []
    for name in names:
        m = re.fullmatch(re.escape(prefix) + r"(\d+)", name)
        if m:
            found.append((m.group(1), base + name))
    return sorted(found, key=lambda t: int(t[0]))


def read_log(gitdir: str, commit: str, path: str) -> dict[str, np.ndarray]:
    text = git(gitdir, "show", f"{commit}:{path}")
    rows = list(csv.reader(io.StringIO(text), delimiter="\t"))
    if rows[0] != HEADER:
        raise SystemExit(f"{path}: header {rows[0]} is not {HEADER}")
    body = [r for r in rows[1:] if r]
    if any(len(r) != len(HEADER) for r in body):
        raise SystemExit(f"{path}: a row does not have {len(HEADER)} fields")
    log = {
        "idx": np.array([int(r[0]) for r in body]),
        "predict": np.array([int(r[2]) for r in body]),
        "radius": np.array([float(r[3]) for r in body]),
        "correct": np.array([int(r[4]) for r in body]),
    }
    if not np.array_equal(np.sort(log["idx"]), np.arange(N_TEST)):
        raise SystemExit(f"{path}: indices are not exactly 0..{N_TEST - 1} ({len(body)} rows)")
    abstain = log["predict"] == -1
    if np.any(log["radius"][abstain] != 0) or np.any(log["correct"][abstain] != 0):
        raise SystemExit(f"{path}: an abstention has a non-zero radius or is marked correct")
    return log


def metrics(log: dict[str, np.ndarray], mask: np.ndarray) -> tuple[int, list[tuple[str, float]]]:
    radius, correct = log["radius"][mask], log["correct"][mask] == 1
    out = [(f"certified_accuracy@{r}", float(np.mean(correct & (radius >= r)))) for r in RADII]
    out.append(("acr", float(np.mean(radius * correct))))
    out.append(("abstain_rate", float(np.mean(log["predict"][mask] == -1))))
    return int(mask.sum()), out


def check_acc_curve(gitdir: str, commit: str, acc_path: str, log: dict[str, np.ndarray]) -> str:
    """Reproduce the authors' released curve `<log>_acc` (radius, certified accuracy; 5 decimals).

    The curve was evaluated on the float grid np.arange(0, 4.005, 0.005), whose points sit up to
    ~4e-16 away from the decimal radii printed in its first column. Radii in the logs have 3
    significant digits, so where a grid point such as 1.9100000000000001 meets a logged radius
    1.91 the released curve excludes those images; evaluating at the printed decimals includes
    them. Both are computed; the first must match exactly.
    """
    text = git(gitdir, "show", f"{commit}:{acc_path}")
    curve = np.array([[float(v) for v in line.split("\t")] for line in text.splitlines() if line])
    grid = np.arange(0.0, 4.0 + 0.005, 0.005)
    if len(grid) != len(curve) or np.max(np.abs(grid - curve[:, 0])) > 1e-9:
        raise SystemExit(f"{acc_path}: radius column is not the grid 0, 0.005, ..., 4")
    correct = log["correct"] == 1

    def curve_at(radii: np.ndarray) -> np.ndarray:
        return np.round([np.mean(correct & (log["radius"] >= r)) for r in radii], 5)

    worst = float(np.max(np.abs(curve_at(grid) - curve[:, 1])))
    if worst > 0:
        raise SystemExit(f"{acc_path}: released curve differs from the recomputed one by {worst}")
    ties = float(np.max(np.abs(curve_at(curve[:, 0]) - curve[:, 1])))
    return (f"{acc_path}: identical on the float grid; at the printed decimal radii the released"
            f" curve is off by up to {ties:.4f} (ties at logged radii)")


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("gitdir", help="git directory of a clone/snapshot of " + SOURCE_REPO)
    ap.add_argument("--commit", default="HEAD")
    ap.add_argument("--out", default=os.path.join(here, "smoothing_mnist.csv"))
    args = ap.parse_args()

    commit = git(args.gitdir, "rev-parse", "--verify", args.commit + "^{commit}").strip()
    if commit != EXPECTED_COMMIT:
        print(f"note: commit {commit} is not {EXPECTED_COMMIT}, the one the committed CSV was built from",
              file=sys.stderr)
    cap = NormalDist().inv_cdf(ALPHA ** (1 / N_MC))  # radius/sigma when all N votes agree

    fields = ["method", "sigma", "run", "metric", "value", "n_images",
              "source_repo", "source_path", "source_commit", "note"]
    rows, checks = [], []
    for method, sigma, directory, prefix, note in SETTINGS:
        logs = list_logs(args.gitdir, commit, directory, prefix)
        if not logs:
            raise SystemExit(f"no logs data/certify/mnist/{directory}/{prefix}* at {commit}")
        for run_id, path in logs:
            log = read_log(args.gitdir, commit, path)
            max_r = float(log["radius"].max())
            if max_r > float(f"{sigma * cap:.3g}") + 1e-9:
                raise SystemExit(f"{path}: largest radius {max_r} exceeds the N={N_MC}, alpha={ALPHA} cap")
            every = log["idx"] % SUBSAMPLE_EVERY == 0
            for run, mask, extra in [
                (f"id{run_id}", np.ones(len(log["idx"]), bool), ""),
                (f"id{run_id}-every{SUBSAMPLE_EVERY}", every,
                 f"; subsample idx % {SUBSAMPLE_EVERY} == 0"),
            ]:
                n, values = metrics(log, mask)
                for metric, value in values:
                    rows.append({
                        "method": method, "sigma": f"{sigma:.2f}", "run": run, "metric": metric,
                        "value": f"{value:.4f}", "n_images": n, "source_repo": SOURCE_REPO,
                        "source_path": path, "source_commit": commit,
                        "note": f"{note}; {TRAIN}; {CERT}; {RUN}{extra}",
                    })

    # Validate the reading of the log format on every released curve under data/certify/mnist.
    all_paths = git(args.gitdir, "ls-tree", "-r", "--name-only", commit, "data/certify/mnist").split()
    for acc_path in (p for p in all_paths if p.endswith("_acc")):
        checks.append(check_acc_curve(args.gitdir, commit, acc_path,
                                      read_log(args.gitdir, commit, acc_path[: -len("_acc")])))

    with open(args.out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {len(rows)} rows to {args.out} from {SOURCE_REPO}@{commit}")
    for c in checks:
        print("check:", c)


if __name__ == "__main__":
    main()
