"""Adaptive CERTIFY: stop sampling when more samples would not change the certificate much.

CERTIFY (Cohen, Rosenfeld & Kolter, ICML 2019) spends the same n estimation samples on every
input. On an input whose base classifier votes 60/40 the radius is set by p_A, and more samples
only narrow the confidence interval (like 1/√n); an input that will be abstained on can often be
recognised early. This module samples in stages and stops per input, with the guarantee of
CERTIFY intact.

Algorithm (:func:`sequential_certify`, :meth:`Smooth.certify_adaptive
<georobust.smoothing.smooth.Smooth.certify_adaptive>`):

1. *Selection*, as in CERTIFY: ĉ_A = the top class of n0 noisy samples.
2. *Estimation in looks.* Fresh samples, independent of the selection, are drawn up to a fixed
   schedule of looks n_1 < n_2 < … < n_K = n_max (:func:`look_schedule`: geometric, ratio
   ``growth``, ending at n_max). At look k, with a_k of the n_k samples voting for ĉ_A,
   p̲_k = one-sided Clopper–Pearson lower bound at level α_k (:func:`split_alpha`: Σ α_k = α)
   and R_k = R(p̲_k) (0 when p̲_k < 1/2). The answer so far is the largest R_k seen.
3. *Stopping rule.* Stop after look k when the answer so far is at least (1 − ``tolerance``) times
   the radius n_max samples would give if the vote fraction stayed at a_k/n_k — the planning
   rule of Chen, Li, Yan, Li & Sheng, "Input-Specific Robustness Certification for Randomized
   Smoothing", AAAI 2022 (arXiv:2112.12084), with relative loss control — evaluated at every look
   instead of once from a pilot. While nothing is certified, stop (and abstain) only when even
   the upper Clopper–Pearson bound on p_A (level α_k) plans radius 0 for n_max: an input that
   cannot be certified stops early, a borderline one goes on. Otherwise stop at n_max.
4. Return (ĉ_A, best R_k), or (ABSTAIN, 0.0) if no look reached p̲_k ≥ 1/2; and n_used =
   n0 + the estimation samples drawn.

Guarantee: with probability at least 1 − α over the sampling, if a class is returned, g predicts
it on the open ball of the returned radius (in ``smooth.norm``), **whatever the stopping rule**.
Proof: condition on the selection samples, so ĉ_A is fixed and the estimation votes are i.i.d.
Bernoulli(p) with p = P[f(x+ε) = ĉ_A]. Imagine all n_max estimation samples drawn; the K looks
are at fixed sample sizes, and P[p̲_k > p] ≤ α_k for each (Clopper & Pearson). By the union bound,
the event "p̲_k ≤ p at every look" has probability ≥ 1 − Σ α_k = 1 − α. A stopping rule only
chooses which looks are computed, a function of the samples, so on that event every computed
p̲_k ≤ p, and any radius from them — the largest included — is sound by the Neyman–Pearson
argument of CERTIFY. A procedure that used level α at every look (the "peeking" of
:func:`naive_alphas`, a planted bug for the tests) has no such bound: the union bound only gives
Kα, and :func:`worst_case_failure` computes its exact worst case, several times α.

Design choices. The schedule is fixed before sampling (the union bound is over its looks). Half of α goes to the last look and the other half is split equally over the
earlier ones: inputs that run to n_max (those at the sampling cap σΦ⁻¹(α^{1/n})) then lose only
what α/2 instead of α costs them, and early looks keep enough level to stop 60/40 inputs and
abstentions. The price of any valid adaptive scheme on inputs whose votes are unanimous is
unavoidable: after n unanimous votes no valid level-α bound exceeds α^{1/n}, so saving samples
on such inputs always costs radius (the chapter *Fewer samples* measures the trade-off).
Confidence sequences (as in Voráček, NeurIPS 2024, arXiv:2406.17830) are an alternative to the
union bound over looks. Noise draws: one ``torch.Generator`` per input, on the input's device, seeded
from ``generator``; the first n0 draws select, the following ones estimate.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from scipy import stats
from torch import nn

from ..core import budget
from ..theory.bounds import clopper_pearson_lower, clopper_pearson_upper
from ..theory.radii import noise_radius
from .smooth import ABSTAIN, _check_alpha, _check_int, _child_seeds, _model_device

ADAPTIVE_COLUMNS = ("idx", "label", "predict", "radius", "correct", "n_used", "time")


def _check_positive(name, value, low_exclusive=0.0, high=None):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) or not (
            value > low_exclusive and (high is None or value < high)) or not math.isfinite(value):
        where = f"> {low_exclusive:g}" if high is None else f"in ({low_exclusive:g}, {high:g})"
        raise ValueError(f"{name} must be a number {where}; got {value!r}")
    return float(value)


def look_schedule(n_max: int, first_look: int = 100, growth: float = 2.0) -> list[int]:
    """The fixed sample sizes of the looks: n_max, ⌈n_max/growth⌉, ⌈n_max/growth²⌉, … down to the
    last one ≥ ``first_look`` (or n_max alone when n_max ≤ first_look), in increasing order."""
    n_max = _check_int("n_max", n_max, 1)
    first_look = _check_int("first_look", first_look, 1)
    growth = _check_positive("growth", growth, 1.0)
    looks, n = [n_max], n_max
    while True:
        n = math.ceil(n / growth)
        if n < first_look or n >= looks[-1]:
            break
        looks.append(n)
    return looks[::-1]


def split_alpha(alpha: float, num_looks: int) -> np.ndarray:
    """Levels α_k of the looks, summing to α: α/2 on the last look, α/(2(K−1)) on each earlier
    one (α on a single look)."""
    alpha = _check_alpha(alpha)
    num_looks = _check_int("num_looks", num_looks, 1)
    if num_looks == 1:
        return np.array([alpha])
    return np.concatenate([np.full(num_looks - 1, alpha / (2 * (num_looks - 1))), [alpha / 2]])


def naive_alphas(alpha: float, num_looks: int) -> np.ndarray:
    """The level α at every look: peeking without correction. **Unsound** (failure probability up
    to Kα); a planted bug for the soundness tests and the chapter, never for certificates."""
    return np.full(_check_int("num_looks", num_looks, 1), _check_alpha(alpha))


def planned_radius(p_hat, n_max: int, alpha_last: float, sigma: float, noise: str = "gaussian"):
    """The radius that n_max samples would certify at level ``alpha_last`` if the fraction of votes
    for ĉ_A were ``p_hat``: R(B(α; p̂ n_max, (1−p̂) n_max + 1)) with real-valued counts (Chen et
    al. 2022's planning rule); 0 when that bound is below 1/2. Broadcasts over ``p_hat``."""
    p_hat = np.asarray(p_hat, dtype=float)
    a = p_hat * n_max
    with np.errstate(invalid="ignore"):
        lo = np.where(a > 0, stats.beta.ppf(alpha_last, np.maximum(a, 1e-300), n_max - a + 1), 0.0)
    ok = lo >= 0.5
    r = np.where(ok, noise_radius(noise, sigma, np.where(ok, lo, 0.5)), 0.0)
    return r[()] if r.ndim == 0 else r


def sequential_certify(c_hat: int, draw: Callable[[int], int], looks, alphas, sigma: float,
                       tolerance: float = 0.01, noise: str = "gaussian"):
    """Steps 2–4 of the module's algorithm for a selected class ``c_hat``.

    ``draw(m)`` draws m fresh estimation samples and returns how many voted for ``c_hat``;
    ``looks`` (increasing sample sizes, the last one n_max) and ``alphas`` (their levels) are
    fixed before any sample is drawn. Returns (class or ABSTAIN, radius, estimation samples used,
    look index at which it stopped). Sound at level Σ ``alphas`` (see the module docstring)."""
    looks = [int(n) for n in looks]
    alphas = np.asarray(alphas, dtype=float)
    if len(looks) != len(alphas) or not looks or any(b <= a for a, b in zip(looks, looks[1:])) or looks[0] < 1:
        raise ValueError(f"looks must be increasing sample sizes >= 1, one per level in alphas; got {looks}, "
                         f"{alphas.tolist()}")
    votes, drawn, best = 0, 0, 0.0
    for k, (n_k, a_k) in enumerate(zip(looks, alphas)):
        votes += int(draw(n_k - drawn))
        drawn = n_k
        p_low = float(clopper_pearson_lower(votes, n_k, float(a_k)))
        if p_low >= 0.5:
            best = max(best, float(noise_radius(noise, sigma, p_low)))
        if k == len(looks) - 1:
            break
        target = float(planned_radius(votes / n_k, looks[-1], float(alphas[-1]), sigma, noise))
        if best == 0.0 and target == 0.0:  # futility: stop only if even an optimistic plan certifies nothing
            p_up = float(clopper_pearson_upper(votes, n_k, float(a_k)))
            if float(planned_radius(p_up, looks[-1], float(alphas[-1]), sigma, noise)) == 0.0:
                break
        elif best >= (1.0 - tolerance) * target:
            break
    return (int(c_hat) if best > 0 else ABSTAIN), (best if best > 0 else 0.0), drawn, k


def _vote_counter(smooth, x, gen, batch_size):
    """``count(m) -> class counts of m fresh noisy copies of x`` drawn from ``gen`` in batches."""
    buf = torch.empty((batch_size,) + tuple(x.shape), dtype=x.dtype, device=x.device)
    state = {"first": True}

    def count(m):
        counts = torch.zeros(smooth.num_classes, dtype=torch.int64, device=x.device)
        with torch.inference_mode():
            for start in range(0, m, batch_size):
                k = min(batch_size, m - start)
                smooth._draw(buf[:k], gen, 0).add_(x)
                pred = smooth._forward(buf[:k], first=state["first"]).argmax(1)
                state["first"] = False
                counts += torch.bincount(pred, minlength=smooth.num_classes)
        return counts.cpu().numpy()

    return count


def certify_adaptive(smooth, x: torch.Tensor, n0: int, n_max: int, alpha: float, batch_size: int,
                     generator=None, *, tolerance: float = 0.01, first_look: int = 100,
                     growth: float = 2.0) -> tuple[int, float, int]:
    """Adaptive CERTIFY of ``smooth`` at one input ``x`` (no batch dimension): the algorithm and
    guarantee of the module docstring. Returns (class or ABSTAIN, radius or 0.0, n_used), n_used =
    n0 selection samples + the estimation samples drawn (at most n0 + n_max).

    ``tolerance``: relative radius loss accepted by the stopping rule (0 < tolerance < 1), against
    the radius planned for n_max; ``first_look`` and ``growth`` set :func:`look_schedule`."""
    n0 = _check_int("n0", n0, 1)
    n_max = _check_int("n_max", n_max, 1)
    if n_max < n0:
        raise ValueError(f"n_max must be an integer >= n0 (= {n0}), the selection sample size; got {n_max!r}")
    alpha = _check_alpha(alpha)
    batch_size = _check_int("batch_size", batch_size, 1)
    tolerance = _check_positive("tolerance", tolerance, 0.0, 1.0)
    looks = look_schedule(n_max, first_look, growth)
    xs = smooth._as_batch(x, single=True)
    gen = torch.Generator(device=xs.device).manual_seed(_child_seeds(generator, 1)[0])
    if isinstance(smooth.base_classifier, nn.Module):
        smooth.base_classifier.eval()
    count = _vote_counter(smooth, xs[0], gen, min(batch_size, max(n0, n_max)))
    c_hat = int(np.argmax(count(n0)))  # selection: the first n0 draws
    cls, radius, used, _ = sequential_certify(c_hat, lambda m: count(m)[c_hat], looks,
                                              split_alpha(alpha, len(looks)), smooth.sigma, tolerance, smooth.noise)
    return cls, radius, n0 + used


# --------------------------------------------------------------------------- over a data set
def read_adaptive_log(path) -> dict[str, np.ndarray]:
    """An adaptive certification log as numpy arrays keyed by :data:`ADAPTIVE_COLUMNS`."""
    kinds = (int, int, int, float, int, int, float)
    with open(path) as fh:
        lines = fh.read().split("\n")
    if not lines or lines[0].split("\t") != list(ADAPTIVE_COLUMNS):
        raise ValueError(f"log_path {path} is not an adaptive certification log (first line must be "
                         f"{chr(9).join(ADAPTIVE_COLUMNS)!r})")
    rows = []
    for line in lines[1:-1]:  # the last element follows the final newline: empty or a torn write
        parts = line.split("\t")
        try:
            if len(parts) == len(ADAPTIVE_COLUMNS):
                rows.append(tuple(kind(v) for kind, v in zip(kinds, parts)))
        except ValueError:
            continue
    cols = list(zip(*rows)) if rows else [()] * len(ADAPTIVE_COLUMNS)
    dtypes = (np.int64, np.int64, np.int64, np.float64, np.int64, np.int64, np.float64)
    return {name: np.asarray(col, dtype=t) for name, col, t in zip(ADAPTIVE_COLUMNS, cols, dtypes)}


def _row(idx, label, pred, radius, correct, n_used, seconds):
    return f"{idx}\t{label}\t{pred}\t{radius:.6g}\t{correct}\t{n_used}\t{seconds:.4f}\n"


def certify_adaptive_dataset(smooth, images: torch.Tensor, labels, log_path, n0: int, n_max: int, alpha: float,
                             batch_size: int, generator=None, progress: bool = True,
                             **options) -> dict[str, np.ndarray]:
    """:func:`certify_adaptive` on every image, logged as ``idx label predict radius correct n_used
    time`` (tab-separated, flushed per image). A rerun skips the indices already logged (a torn
    last line is dropped) and, with a generator seeded the same way, writes what an uninterrupted
    run would: image idx draws from a seed derived from (first draw of ``generator``, idx).
    ``options`` go to :func:`certify_adaptive`. Returns :func:`read_adaptive_log` of the log."""
    from .logs import _example_seed

    if len(images) != len(labels):
        raise ValueError(f"images and labels differ in length: {len(images)} != {len(labels)}")
    labels = torch.as_tensor(labels).cpu().tolist()
    path = Path(log_path)
    header = "\t".join(ADAPTIVE_COLUMNS) + "\n"
    done = read_adaptive_log(path) if path.exists() else None
    text = header + ("" if done is None else "".join(_row(*r) for r in zip(*done.values())))
    if done is None or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    seen = set() if done is None else set(done["idx"].tolist())
    base = _child_seeds(generator, 1)[0]
    device = _model_device(smooth.base_classifier) or images.device
    todo = [i for i in range(len(labels)) if i not in seen]
    from tqdm.auto import tqdm

    with open(path, "a") as fh, tqdm(total=len(labels), initial=len(labels) - len(todo), disable=not progress,
                                     desc="certify_adaptive") as bar:
        for j, i in enumerate(todo):
            t0 = time.perf_counter()
            gen = torch.Generator().manual_seed(_example_seed(base, i))
            c, r, used = certify_adaptive(smooth, images[i].to(device), n0, n_max, alpha, batch_size, gen, **options)
            fh.write(_row(i, labels[i], c, r, int(c == labels[i]), used, time.perf_counter() - t0))
            fh.flush()
            os.fsync(fh.fileno())
            bar.update(1)
            if j + 1 < len(todo):
                budget.check(f"{len(labels) - len(todo) + j + 1} of {len(labels)} examples of {path}")
    return read_adaptive_log(path)


# --------------------------------------------------------------------------- exact failure probability
def worst_case_failure(p: float, looks, alphas) -> float:
    """P[p̲_k > p at some look k] when the estimation votes are i.i.d. Bernoulli(p): the failure
    probability of the sequential bounds under the worst stopping rule (stop at the first look
    whose bound exceeds p). Exact, by dynamic programming over the vote count (SciPy binomial
    pmf); the union bound says it is at most Σ α_k."""
    looks = [int(n) for n in looks]
    alive, drawn, failed = np.array([1.0]), 0, 0.0
    for n_k, a_k in zip(looks, np.asarray(alphas, dtype=float)):
        step = stats.binom.pmf(np.arange(n_k - drawn + 1), n_k - drawn, p)
        alive, drawn = np.convolve(alive, step), n_k
        over = np.asarray(clopper_pearson_lower(np.arange(n_k + 1), n_k, float(a_k))) > p
        failed += float(alive[over].sum())
        alive = np.where(over, 0.0, alive)
    return failed
