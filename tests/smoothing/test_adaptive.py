"""Adaptive CERTIFY (georobust.smoothing.adaptive, Smooth.certify_adaptive): soundness under
optional stopping, a planted peeking bug that the same test must catch, bad input, and behaviour.

Soundness is checked on half-space base classifiers, whose smoothed probability at x is exactly
p_A = Φ(margin/σ) and whose true certified radius is the margin: over many independent runs at
points with p_A from 0.6 to 0.9999, the fraction of over-claims (a wrong class, or a radius above
the margin) must not be significantly above alpha (one-sided binomial test). All randomness
comes from fixed seeds.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from georobust.smoothing import ABSTAIN, Smooth
from georobust.smoothing import adaptive
from georobust.smoothing.adaptive import (certify_adaptive_dataset, look_schedule, naive_alphas,
                                          read_adaptive_log, sequential_certify, split_alpha)
from georobust.theory.bounds import radius_cap
from test_smooth import HalfSpace  # f(z) = [wᵀz + b > 0]; its smoothed radius is |wᵀx + b| / ‖w‖

SIGMA = 0.5
SIGNIFICANCE = 0.001  # a check fails when its binomial test rejects at this level


def half_space_points(p_values, d=3, seed=0):
    """A random half-space and one point per p (alternating sides) at smoothed probability p."""
    rng = np.random.default_rng(seed)
    w, b = rng.normal(size=d), 0.3
    x0 = -b * w / (w @ w)
    pts, cls, radius = [], [], []
    for j, p in enumerate(p_values):
        side = 1 if j % 2 == 0 else -1
        pts.append(x0 + side * SIGMA * stats.norm.ppf(p) * w / np.linalg.norm(w))
        cls.append(1 if side > 0 else 0)
        radius.append(abs(pts[-1] @ w + b) / np.linalg.norm(w))
    return HalfSpace(w, b), torch.tensor(np.array(pts), dtype=torch.float32), np.array(cls), np.array(radius)


def over_claims(results, cls, radius):
    """Runs whose certificate is wrong: a wrong class, or the right class with too large a radius."""
    c = np.array([r[0] for r in results])
    rad = np.array([r[1] for r in results])
    return int(np.sum(((c != ABSTAIN) & (c != cls)) | ((c == cls) & (rad > radius))))


def not_above(failures, trials, alpha):
    """One-sided binomial test p-value of 'failure rate > alpha'."""
    return stats.binomtest(int(failures), int(trials), alpha, alternative="greater").pvalue


def run_trials(sm, xs, repeats, n0, n_max, alpha, seed, **options):
    gen = torch.Generator().manual_seed(seed)
    return [sm.certify_adaptive(x, n0, n_max, alpha, 4096, gen, **options) for x in xs for _ in range(repeats)]


# --------------------------------------------------------------------------- soundness
def test_adaptive_certify_is_sound_under_optional_stopping_and_peeking_is_caught(monkeypatch):
    alpha, n0, n_max, repeats = 0.1, 50, 1000, 100
    opts = {"tolerance": 0.1, "first_look": 60, "growth": 1.5}  # many looks, frequent early stops
    p_values = np.concatenate([np.linspace(0.6, 0.95, 10), [0.99, 0.9999]])
    model, xs, cls, radius = half_space_points(p_values)
    sm = Smooth(model, 2, SIGMA)
    cls_r, rad_r = np.repeat(cls, repeats), np.repeat(radius, repeats)
    trials = len(cls_r)

    results = run_trials(sm, xs, repeats, n0, n_max, alpha, seed=1, **opts)
    fails = over_claims(results, cls_r, rad_r)
    assert not_above(fails, trials, alpha) > SIGNIFICANCE, f"{fails}/{trials} over-claims at alpha={alpha}"
    used = np.array([r[2] for r in results])
    assert used.min() >= n0 + 60 and used.max() <= n0 + n_max
    assert np.mean(used < n0 + n_max) > 0.3, "the stopping rule never stopped early: optional stopping untested"

    # planted bug: the same procedure with the full alpha at every look (peeking without correction)
    monkeypatch.setattr(adaptive, "split_alpha", naive_alphas)
    peeking = run_trials(sm, xs, repeats, n0, n_max, alpha, seed=1, **opts)
    bad = over_claims(peeking, cls_r, rad_r)
    pval = not_above(bad, trials, alpha)
    assert pval < SIGNIFICANCE, (f"the peeking control was NOT caught: {bad}/{trials} over-claims at alpha={alpha} "
                                 f"(p = {pval:.3g}); with this stopping rule the test cannot tell peeking apart")


class Sectors(nn.Module):
    """Three 120° sectors of the plane: each class has probability exactly 1/3 at the origin."""

    def forward(self, z):
        angle = torch.atan2(z[:, 1], z[:, 0]) + np.pi
        cls = torch.clamp((angle / (2 * np.pi / 3)).long(), max=2)
        return nn.functional.one_hot(cls, 3).to(z.dtype)


def test_it_abstains_on_the_boundary_and_stops_early_without_a_majority():
    alpha, n0, n_max, trials = 0.1, 50, 2000, 300
    model, xs, _, _ = half_space_points([0.5])
    results = run_trials(Smooth(model, 2, SIGMA), xs, trials, n0, n_max, alpha, seed=3)
    wrong = sum(r[0] != ABSTAIN for r in results)  # p_A = 1/2 exactly: any class is an over-claim
    assert not_above(wrong, trials, alpha) > SIGNIFICANCE
    # no class has half the mass: every run abstains, and recognises it long before n_max
    thirds = run_trials(Smooth(Sectors(), 3, SIGMA), torch.zeros(1, 2), 100, n0, n_max, alpha, seed=4)
    assert all(r[0] == ABSTAIN and r[1] == 0.0 for r in thirds)
    assert np.median([r[2] for r in thirds]) <= n0 + 500


def test_unanimous_votes_run_to_n_max_and_hit_the_split_cap():
    """A classifier that always votes for one class: with a tight tolerance the run goes to n_max and
    returns exactly the cap of the last look, σΦ⁻¹((α/2)^{1/n_max})."""
    class Always(nn.Module):
        def forward(self, z):
            return torch.stack([torch.zeros(len(z)), torch.ones(len(z))], 1).to(z.dtype)

    sm = Smooth(Always(), 2, SIGMA)
    c, r, used = sm.certify_adaptive(torch.zeros(4), 10, 5000, 0.01, 700, torch.Generator().manual_seed(0),
                                     tolerance=0.001)
    assert (c, used) == (1, 5010) and r == pytest.approx(float(radius_cap(SIGMA, 5000, 0.005)), rel=1e-9)
    # a loose tolerance stops earlier, with a smaller (still capped) radius
    c2, r2, used2 = sm.certify_adaptive(torch.zeros(4), 10, 5000, 0.01, 700, torch.Generator().manual_seed(0),
                                        tolerance=0.3)
    assert c2 == 1 and used2 < 5010 and r2 < r


def test_schedule_and_levels():
    looks = look_schedule(100_000, 100, 2.0)
    assert looks[-1] == 100_000 and looks[0] >= 100 and all(b > a for a, b in zip(looks, looks[1:]))
    assert look_schedule(50, 100, 2.0) == [50]
    a = split_alpha(0.001, len(looks))
    assert a.sum() == pytest.approx(0.001) and a[-1] == pytest.approx(0.0005) and np.all(a > 0)
    assert split_alpha(0.05, 1).tolist() == [0.05]
    assert naive_alphas(0.05, 3).tolist() == [0.05] * 3


def test_sequential_rule_with_exact_draws():
    """Scripted vote counts: a 60/40 input stops once its bound is within tolerance of the plan."""
    looks, alphas = [100, 200, 400, 800], split_alpha(0.01, 4)
    calls = []

    def draw(m):
        calls.append(m)
        return round(0.6 * m)

    c, r, used, k = sequential_certify(3, draw, looks, alphas, 1.0, tolerance=0.5)
    assert calls == [100, 100, 200, 400][:k + 1] and used == looks[k] and c in (3, ABSTAIN)
    c0, r0, used0, k0 = sequential_certify(3, lambda m: 0, looks, alphas, 1.0)  # no votes: abstain at once
    assert (c0, r0, used0, k0) == (ABSTAIN, 0.0, 100, 0)
    with pytest.raises(ValueError, match="looks must be increasing"):
        sequential_certify(0, draw, [100, 100], [0.1, 0.1], 1.0)


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("args, name", [
    ((0, 100, 0.01, 10), "n0"), ((10, 5, 0.01, 10), "n_max"), ((10, 100, 0.0, 10), "alpha"),
    ((10, 100, 1.0, 10), "alpha"), ((10, 100, 0.01, 0), "batch_size"), ((1.5, 100, 0.01, 10), "n0"),
])
def test_bad_arguments_name_the_parameter(args, name):
    sm = Smooth(HalfSpace([1.0, 0.0], 0.0), 2, SIGMA)
    with pytest.raises(ValueError, match=rf"^{name} must be"):
        sm.certify_adaptive(torch.zeros(2), *args)


@pytest.mark.parametrize("option, name", [({"tolerance": 0.0}, "tolerance"), ({"tolerance": 1.0}, "tolerance"),
                                          ({"growth": 1.0}, "growth"), ({"first_look": 0}, "first_look")])
def test_bad_options_name_the_parameter(option, name):
    sm = Smooth(HalfSpace([1.0, 0.0], 0.0), 2, SIGMA)
    with pytest.raises(ValueError, match=rf"^{name} must be"):
        sm.certify_adaptive(torch.zeros(2), 10, 100, 0.01, 10, **option)


def test_n_max_error_says_what_is_allowed():
    sm = Smooth(HalfSpace([1.0, 0.0], 0.0), 2, SIGMA)
    with pytest.raises(ValueError, match=r"n_max must be an integer >= n0 \(= 20\).*got 10"):
        sm.certify_adaptive(torch.zeros(2), 20, 10, 0.01, 10)


# --------------------------------------------------------------------------- behaviour
def test_reproducible_from_the_generator_and_dtype_from_the_input():
    sm = Smooth(HalfSpace([1.0, 0.0], 0.0), 2, SIGMA)
    x = torch.tensor([0.3, 0.0])
    a = sm.certify_adaptive(x, 20, 3000, 0.01, 256, torch.Generator().manual_seed(5))
    b = sm.certify_adaptive(x, 20, 3000, 0.01, 999, torch.Generator().manual_seed(5))
    assert a == sm.certify_adaptive(x, 20, 3000, 0.01, 256, torch.Generator().manual_seed(5))
    assert a[0] == b[0] == 1  # batch size changes only how draws are batched, not their law
    c, r, _ = sm.certify_adaptive(x.double(), 20, 3000, 0.01, 256, torch.Generator().manual_seed(5))
    assert c == 1 and 0 < r < 0.3


def test_dataset_log_resumes(tmp_path):
    sm = Smooth(HalfSpace([1.0, 0.0], 0.0), 2, SIGMA)
    xs = torch.tensor([[0.5, 0.0], [-0.4, 0.0], [0.0, 0.0], [1.0, 0.0]])
    ys = [1, 0, 1, 1]
    full = certify_adaptive_dataset(sm, xs, ys, tmp_path / "a.tsv", 20, 2000, 0.01, 512,
                                    torch.Generator().manual_seed(0), progress=False)
    certify_adaptive_dataset(sm, xs[:2], ys[:2], tmp_path / "b.tsv", 20, 2000, 0.01, 512,
                             torch.Generator().manual_seed(0), progress=False)
    with open(tmp_path / "b.tsv", "a") as fh:
        fh.write("2\t1\t-1\t0.")  # a torn line
    resumed = certify_adaptive_dataset(sm, xs, ys, tmp_path / "b.tsv", 20, 2000, 0.01, 512,
                                       torch.Generator().manual_seed(0), progress=False)
    for key in ("idx", "predict", "radius", "n_used"):
        assert np.array_equal(full[key], resumed[key]), key
    assert np.array_equal(read_adaptive_log(tmp_path / "a.tsv")["correct"], (full["predict"] == ys).astype(int))


def test_worst_case_failure_is_exact_and_the_union_bound_holds():
    from georobust.smoothing.adaptive import worst_case_failure
    from georobust.theory.bounds import clopper_pearson_lower

    alpha, n = 0.05, 300
    k = np.arange(n + 1)
    for p in (0.6, 0.9, 0.99):  # one look: the exact non-coverage of Clopper–Pearson
        exact = stats.binom.pmf(k, n, p)[clopper_pearson_lower(k, n, alpha) > p].sum()
        assert worst_case_failure(p, [n], [alpha]) == pytest.approx(exact, rel=1e-9)
    looks = look_schedule(2000, 50, 2.0)
    ps = np.linspace(0.55, 0.999, 60)
    split = [worst_case_failure(p, looks, split_alpha(alpha, len(looks))) for p in ps]
    naive = [worst_case_failure(p, looks, naive_alphas(alpha, len(looks))) for p in ps]
    assert max(split) <= alpha and max(naive) > 1.5 * alpha
