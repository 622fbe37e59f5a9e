"""Statistical soundness and behaviour of georobust.smoothing (randomized smoothing).

Soundness is checked on base classifiers whose smoothed class probabilities are known exactly
(half-spaces, angular sectors, intervals along one axis): over many independent trials, the
fraction of wrong certificates must not be significantly above alpha (one-sided binomial test),
and deliberately unsound variants evaluated the same way must be rejected, so the checks can
fail. All randomness comes from fixed seeds.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from georobust.smoothing import (ABSTAIN, Smooth, abstention_rate, average_certified_radius,
                                 certified_accuracy, certify_dataset, certify_from_counts,
                                 certify_topk_from_counts, predict_from_counts, read_log, topk_radius)
from georobust.smoothing import logs, smooth
from georobust.smoothing.smooth import _child_seeds

SIGMA = 0.5
SIGNIFICANCE = 0.001  # a check fails when its binomial test rejects at this level


# --------------------------------------------------------------------------- known classifiers
class HalfSpace(nn.Module):
    """f(z) = [wᵀz + b > 0] as two logits; its smoothed radius at x is |wᵀx + b| / ‖w‖."""

    def __init__(self, w, b):
        super().__init__()
        self.register_buffer("w", torch.as_tensor(w, dtype=torch.float32))
        self.b = float(b)

    def forward(self, z):
        m = z.flatten(1) @ self.w.to(z.dtype) + self.b
        return torch.stack([-m, m], 1)


class Sectors(nn.Module):
    """Three 120° sectors of the plane: each has probability exactly 1/3 at the origin."""

    def forward(self, z):
        angle = torch.atan2(z[:, 1], z[:, 0]) + math.pi
        cls = torch.clamp((angle / (2 * math.pi / 3)).long(), max=2)
        return nn.functional.one_hot(cls, 3).to(z.dtype)


class Intervals(nn.Module):
    """Class i where thresholds[i-1] <= z_0 < thresholds[i] (z_1 is ignored)."""

    def __init__(self, thresholds):
        super().__init__()
        self.t = torch.as_tensor(thresholds, dtype=torch.float64)

    def forward(self, z):
        cls = torch.bucketize(z[:, 0].to(torch.float64), self.t, right=True)
        return nn.functional.one_hot(cls, len(self.t) + 1).to(z.dtype)

    def probs(self, z0, sigma):
        edges = np.concatenate([[-np.inf], self.t.numpy(), [np.inf]])
        return np.diff(stats.norm.cdf((edges[None, :] - np.asarray(z0, dtype=float)[:, None]) / sigma), axis=1)


class Scripted(nn.Module):
    """Returns the classes of a fixed script, in order, whatever the input (for exact counts)."""

    def __init__(self, script, num_classes):
        super().__init__()
        self.script, self.pos, self.num_classes = torch.as_tensor(script), 0, num_classes

    def forward(self, z):
        out = self.script[self.pos:self.pos + len(z)]
        self.pos += len(z)
        return nn.functional.one_hot(out, self.num_classes).to(z.dtype)


class Recorder(nn.Module):
    """Wraps a model and keeps every input batch it sees."""

    def __init__(self, model):
        super().__init__()
        self.model, self.seen = model, []

    def forward(self, z):
        self.seen.append(z.clone())
        return self.model(z)


def not_above(failures, trials, alpha):
    """One-sided binomial test p-value of 'failure rate > alpha'."""
    return stats.binomtest(int(failures), int(trials), alpha, alternative="greater").pvalue


def half_space_trials(p_values, repeats, d=5, seed=0):
    """Points at exact smoothed probabilities p (alternating sides) of a random half-space."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=d)
    b = 0.3
    x0 = -b * w / (w @ w)  # on the boundary
    pts, true_cls, exact_r, exact_p = [], [], [], []
    for j, p in enumerate(p_values):
        side = 1 if j % 2 == 0 else -1
        dist = SIGMA * stats.norm.ppf(p)
        pts.append(x0 + side * dist * w / np.linalg.norm(w))
        true_cls.append(1 if side > 0 else 0)
        exact_r.append(abs(pts[-1] @ w + b) / np.linalg.norm(w))
        exact_p.append(p)
    rep = lambda a: np.repeat(np.asarray(a), repeats, axis=0)  # noqa: E731
    xs = torch.tensor(rep(pts), dtype=torch.float32)
    return HalfSpace(w, b), xs, rep(true_cls), rep(exact_r), rep(exact_p)


def failures(classes, radii, true_cls, exact_r):
    """Wrong certificates: a wrong class, or the right one with a radius above the exact one."""
    classes, radii = np.asarray(classes), np.asarray(radii)
    wrong_class = (classes != ABSTAIN) & (classes != true_cls)
    too_far = (classes == true_cls) & (radii > exact_r)
    return int(np.sum(wrong_class | too_far))


# --------------------------------------------------------------------------- CERTIFY soundness
def test_certify_is_sound_on_half_spaces_and_unsound_variants_are_rejected():
    alpha, n0, n, repeats = 0.1, 100, 300, 100
    p_values = np.linspace(0.7, 0.97, 10)
    model, xs, true_cls, exact_r, exact_p = half_space_trials(p_values, repeats)
    sm = Smooth(model, 2, SIGMA)
    classes, radii = sm.certify_batch(xs, n0, n, alpha, 4096, torch.Generator().manual_seed(1))
    fails = failures(classes, radii, true_cls, exact_r)
    trials = len(xs)
    assert not_above(fails, trials, alpha) > SIGNIFICANCE, f"{fails}/{trials} wrong certificates at alpha={alpha}"

    # not needlessly conservative either: the failure rate matches the exact one of Clopper–Pearson
    k = np.arange(n + 1)
    lo = smooth.clopper_pearson_lower(k, n, alpha)
    exact_rate = np.mean([stats.binom.pmf(k, n, p)[lo > p].sum() for p in p_values])
    assert stats.binomtest(fails, trials, exact_rate).pvalue > SIGNIFICANCE, (fails, trials, exact_rate)

    # the same counts, re-derived, give the same answer; unsound variants of them are rejected
    counts = sm.sample_counts(xs, _child_seeds(torch.Generator().manual_seed(1), trials), n0, n, 4096)
    c2, r2 = certify_from_counts(counts[:, 0], counts[:, 1], alpha, SIGMA)
    assert np.array_equal(c2, classes.numpy()) and np.array_equal(r2, radii.numpy())
    c_hat = counts[:, 0].argmax(1)
    p_hat = counts[np.arange(trials), 1, c_hat] / n  # point estimate instead of a lower bound
    r_point = np.where(p_hat > 0.5, SIGMA * stats.norm.ppf(np.minimum(p_hat, 1 - 1e-12)), 0.0)
    c_point = np.where(p_hat > 0.5, c_hat, ABSTAIN)
    assert not_above(failures(c_point, r_point, true_cls, exact_r), trials, alpha) < 1e-6
    c_2a, r_2a = certify_from_counts(counts[:, 0], counts[:, 1], 2 * alpha, SIGMA)  # level 2α
    assert not_above(failures(c_2a, r_2a, true_cls, exact_r), trials, alpha) < SIGNIFICANCE


def test_certify_abstains_on_the_boundary_and_reusing_selection_noise_is_caught():
    alpha, n, trials = 0.1, 300, 1000
    model, xs, *_ = half_space_trials([0.5], trials)  # p_A = 1/2 exactly
    sm = Smooth(model, 2, SIGMA)
    classes, _ = sm.certify_batch(xs, 100, n, alpha, 4096, torch.Generator().manual_seed(2))
    certified = int((classes != ABSTAIN).sum())
    assert not_above(certified, trials, alpha) > SIGNIFICANCE, f"certified {certified}/{trials} at p_A = 1/2"
    # a variant that estimates from the selection samples themselves certifies far more often
    counts = sm.sample_counts(xs, _child_seeds(torch.Generator().manual_seed(2), trials), n, n, 4096)
    reused, _ = certify_from_counts(counts[:, 0], counts[:, 0], alpha, SIGMA)
    assert not_above(int((reused != ABSTAIN).sum()), trials, alpha) < SIGNIFICANCE


def test_certify_abstains_when_no_class_has_half_the_mass():
    alpha, trials = 0.1, 400
    sm = Smooth(Sectors(), 3, 1.0)
    classes, _ = sm.certify_batch(torch.zeros(trials, 2), 100, 300, alpha, 4096, torch.Generator().manual_seed(3))
    certified = int((classes != ABSTAIN).sum())
    assert not_above(certified, trials, alpha) > SIGNIFICANCE, f"certified {certified}/{trials} with p = 1/3 each"


def test_predict_returns_a_class_at_most_alpha_often_on_the_boundary():
    alpha, trials = 0.1, 300
    model, xs, *_ = half_space_trials([0.5], 1)
    sm = Smooth(model, 2, SIGMA)
    gen = torch.Generator().manual_seed(4)
    answers = [sm.predict(xs[0], 100, alpha, 1000, gen) for _ in range(trials)]
    returned = sum(a != ABSTAIN for a in answers)
    assert not_above(returned, trials, alpha) > SIGNIFICANCE, f"predicted a class {returned}/{trials} times"
    far = torch.as_tensor(xs[0] + 10 * model.w / model.w.norm())  # deep in class 1: always answers
    assert sm.predict(far, 100, alpha, 1000, gen) == 1


# --------------------------------------------------------------------------- against independent statistics
def _pvalue_by_pmf(k, m):
    pmf = stats.binom.pmf(np.arange(m + 1), m, 0.5)
    return min(1.0, pmf[pmf <= pmf[k] * (1 + 1e-7)].sum())


def _cp_lower_by_bisection(k, n, alpha):
    if k == 0:
        return 0.0
    lo, hi = 0.0, 1.0  # P[X >= k | p] increases with p; the bound is where it equals alpha
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if stats.binom.sf(k - 1, n, mid) < alpha else (lo, mid)
    return lo


def test_predict_decision_matches_an_independent_binomial_pvalue():
    rng = np.random.default_rng(5)
    for _ in range(300):
        m = int(rng.integers(1, 80))
        n_a = int(rng.integers((m + 1) // 2, m + 1))
        alpha = float(rng.choice([0.001, 0.01, 0.05, 0.2]))
        counts = np.array([m - n_a, n_a, 0])
        expected = 1 if _pvalue_by_pmf(n_a, m) <= alpha else ABSTAIN
        if abs(_pvalue_by_pmf(n_a, m) - alpha) > 1e-9:  # skip exact ties with alpha
            assert predict_from_counts(counts, alpha) == expected, (n_a, m, alpha)
    # end to end, with exact counts from a scripted classifier: 5/5 votes (p = 1/16) vs 6/6 (1/32)
    for n, expected in ((5, ABSTAIN), (6, 2)):
        sm = Smooth(Scripted([2] * n, 3), 3, SIGMA)
        assert sm.predict(torch.zeros(4), n, 0.05, 2, torch.Generator().manual_seed(0)) == expected


def test_certify_radius_matches_clopper_pearson_by_bisection():
    rng = np.random.default_rng(6)
    n0, n, alpha = 10, 200, 0.01
    for n_a in [0, 1, 100, 101, 120, 150, 199, 200] + list(rng.integers(90, 201, size=10)):
        script = [1] * n0 + [1] * int(n_a) + [0] * (n - int(n_a))  # selection says 1; estimation counts n_a
        sm = Smooth(Scripted(script, 2), 2, SIGMA)
        cls, radius = sm.certify(torch.zeros(3), n0, n, alpha, 64, torch.Generator().manual_seed(0))
        p_lower = _cp_lower_by_bisection(int(n_a), n, alpha)
        if p_lower < 0.5:
            assert (cls, radius) == (ABSTAIN, 0.0)
        else:
            assert cls == 1 and radius == pytest.approx(SIGMA * stats.norm.ppf(p_lower), abs=1e-9)


def test_selection_comes_from_the_first_n0_draws_and_estimation_from_the_next_n():
    n0, n = 20, 100
    script = [2] * n0 + [0] * n  # selection all class 2; estimation never class 2
    sm = Smooth(Scripted(script, 3), 3, SIGMA)
    assert sm.certify(torch.zeros(2), n0, n, 0.05, 7, torch.Generator().manual_seed(0)) == (ABSTAIN, 0.0)
    sm = Smooth(Scripted([1] * n0 + [1] * n, 3), 3, SIGMA)
    cls, radius = sm.certify(torch.zeros(2), n0, n, 0.05, 7, torch.Generator().manual_seed(0))
    assert cls == 1 and radius == pytest.approx(SIGMA * stats.norm.ppf(0.05 ** (1 / n)))


# --------------------------------------------------------------------------- noise: independence, packing
def test_every_draw_is_fresh_noise_at_scale_sigma():
    model, xs, *_ = half_space_trials([0.8], 3)
    rec = Recorder(model)
    sm = Smooth(rec, 2, SIGMA)
    n0, n = 37, 211
    sm.certify(xs[0], n0, n, 0.05, 50, torch.Generator().manual_seed(7))
    seen = torch.cat(rec.seen)
    assert len(seen) == n0 + n and len(torch.unique(seen, dim=0)) == n0 + n  # no draw reused
    noise = (seen - xs[0]) / SIGMA
    assert abs(noise.mean().item()) < 0.1 and abs(noise.std().item() - 1) < 0.05
    rec.seen.clear()
    sm.certify_batch(xs, n0, n, 0.05, 50, torch.Generator().manual_seed(7))  # three identical inputs
    seen = torch.cat(rec.seen)
    assert len(seen) == 3 * (n0 + n) and len(torch.unique(seen, dim=0)) == 3 * (n0 + n)


@pytest.mark.parametrize("batch_size", [1, 7, 64, 130, 131, 5000])
def test_counts_are_attributed_to_the_right_input(batch_size):
    far = torch.tensor([[-20.0, 0.0], [20.0, 0.0]]).repeat(5, 1)  # alternating: class 0, class 1
    sm = Smooth(HalfSpace([1.0, 0.0], 0.0), 2, SIGMA)
    counts = sm.sample_counts(far, _child_seeds(torch.Generator().manual_seed(8), 10), 30, 100, batch_size)
    expected = np.zeros((10, 2, 2), dtype=np.int64)
    expected[0::2, 0, 0], expected[0::2, 1, 0] = 30, 100
    expected[1::2, 0, 1], expected[1::2, 1, 1] = 30, 100
    assert np.array_equal(counts, expected)


def test_batched_and_single_input_paths_agree_exactly():
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 3))
    xs = torch.randn(9, 4) * 0.3
    sm = Smooth(mlp, 3, SIGMA)
    for batch_size in (64, 1000):
        classes, radii = sm.certify_batch(xs, 30, 100, 0.05, batch_size, torch.Generator().manual_seed(9))
        gen = torch.Generator().manual_seed(9)
        single = [sm.certify(x, 30, 100, 0.05, batch_size, gen) for x in xs]
        assert classes.tolist() == [c for c, _ in single]
        assert radii.tolist() == [r for _, r in single]
        topk = sm.certify_topk_batch(xs, 2, 30, 100, 0.05, batch_size, torch.Generator().manual_seed(9))
        gen = torch.Generator().manual_seed(9)
        single = [sm.certify_topk(x, 2, 30, 100, 0.05, batch_size, gen) for x in xs]
        assert topk[0].tolist() == [c for c, _ in single] and topk[1].tolist() == [r for _, r in single]


def test_batch_layout_does_not_change_the_distribution():
    model, xs, _, _, exact_p = half_space_trials([0.8], 400)
    sm = Smooth(model, 2, SIGMA)
    n = 100
    for batch_size in (7, 128, 5000):
        counts = sm.sample_counts(xs, _child_seeds(torch.Generator().manual_seed(10), len(xs)), 10, n, batch_size)
        p_hat = counts[:, 1, 1].mean() / n
        assert abs(p_hat - 0.8) < 4 * math.sqrt(0.8 * 0.2 / (n * len(xs))), (batch_size, p_hat)


def test_dtype_comes_from_the_input_and_no_device_is_hard_coded():
    rec = Recorder(HalfSpace([1.0, 0.0], 0.0).double())
    Smooth(rec, 2, SIGMA).certify(torch.zeros(2, dtype=torch.float64), 5, 10, 0.1, 8)
    assert all(z.dtype == torch.float64 and z.device.type == "cpu" for z in rec.seen)
    assert all("cuda" not in Path(m.__file__).read_text() for m in (smooth, logs))


# --------------------------------------------------------------------------- top-k
def test_topk_radius_for_k1_is_cohens_two_sided_radius_and_between_the_closed_forms():
    rng = np.random.default_rng(11)
    for _ in range(200):
        c = int(rng.integers(3, 8))
        p_low = rng.uniform(0.2, 0.95)
        p_up = rng.dirichlet(np.ones(c - 1)) * (1 - p_low) * rng.uniform(0.5, 1.0)
        r1 = topk_radius(SIGMA, p_low, p_up[None], 1)[0]
        cohen = max(0.0, 0.5 * SIGMA * (stats.norm.ppf(p_low) - stats.norm.ppf(p_up.max())))
        assert r1 == pytest.approx(cohen, abs=1e-9)
        for k in range(2, c):
            r = topk_radius(SIGMA, p_low, p_up[None], k)[0]
            top = np.sort(p_up)[::-1][:k]
            closed = max([0.5 * SIGMA * (stats.norm.ppf(p_low) - stats.norm.ppf(min(top[k - u:].sum(), 1 - p_low) / u))
                          for u in range(1, k + 1)] + [0.0])
            assert closed - 1e-9 <= r <= 2 * closed + 1e-9  # the Jensen closed form is a valid lower bound


def test_topk_certificate_with_exact_probabilities_is_within_the_true_radius():
    model = Intervals([-0.4, 0.1, 0.5])
    grid = np.linspace(-6, 6, 120_001)  # offsets along z_0, step 1e-4
    positive = 0
    for x0 in np.linspace(-1.0, 1.0, 21):
        p_grid = model.probs(x0 + grid, SIGMA)
        p = model.probs([x0], SIGMA)[0]
        for label in range(4):
            rivals = (p_grid >= p_grid[:, [label]]).sum(1) - 1  # labels at least as likely as `label`
            for k in (1, 2, 3):
                r = topk_radius(SIGMA, p[label], np.delete(p, label)[None], k)[0]
                out = rivals >= k  # `label` is not in the top-k of g there
                true_radius = np.abs(grid[out]).min() if out.any() else np.inf
                assert r <= true_radius + 2e-4, (x0, label, k, r, true_radius)
                positive += r > 0
    assert positive > 60  # the check is not vacuous


def test_topk_certify_is_sound_and_k1_is_no_larger_than_certify():
    alpha, n0, n, k = 0.1, 50, 200, 2
    model = Intervals([-0.4, 0.1, 0.5])
    x0s = np.repeat(np.linspace(-0.6, 0.6, 6), 100)
    labels = np.array([np.argsort(-model.probs([x], SIGMA)[0])[1] for x in x0s])  # the runner-up label
    p = model.probs(x0s, SIGMA)
    r_exact = np.array([topk_radius(SIGMA, p[i, l], np.delete(p[i], l)[None], k)[0] for i, l in enumerate(labels)])
    xs = torch.tensor(np.stack([x0s, np.zeros_like(x0s)], 1), dtype=torch.float32)
    sm = Smooth(model, 4, SIGMA)
    classes, radii = sm.certify_topk_batch(xs, k, n0, n, alpha, 4096, torch.Generator().manual_seed(12), labels)
    fails = int(((classes.numpy() == labels) & (radii.numpy() > r_exact)).sum())
    assert not_above(fails, len(xs), alpha) > SIGNIFICANCE, f"{fails}/{len(xs)}"
    assert (radii > 0).float().mean() > 0.3  # certificates are actually issued
    # teeth: point estimates as bounds overshoot the exact radius about half the time
    counts = sm.sample_counts(xs, _child_seeds(torch.Generator().manual_seed(12), len(xs)), n0, n, 4096)
    p_hat = counts[:, 1] / n
    r_point = np.array([topk_radius(SIGMA, p_hat[i, l], np.delete(p_hat[i], l)[None], k)[0]
                        for i, l in enumerate(labels)])
    assert not_above(int((r_point > r_exact).sum()), len(xs), alpha) < 1e-6
    # k = 1 on a binary classifier: never a larger radius than CERTIFY from the same draws
    hs, hxs, *_ = half_space_trials(np.linspace(0.6, 0.99, 10), 20)
    sm = Smooth(hs, 2, SIGMA)
    c1, r1 = sm.certify_batch(hxs, n0, n, alpha, 4096, torch.Generator().manual_seed(13))
    ck, rk = sm.certify_topk_batch(hxs, 1, n0, n, alpha, 4096, torch.Generator().manual_seed(13))
    assert torch.all(rk <= r1 + 1e-12) and torch.all((ck == ABSTAIN) | (ck == c1))
    assert (rk > 0).float().mean() > 0.5


def test_topk_from_counts_uses_bonferroni_bounds():
    counts = np.array([[0, 0, 0, 0]]), np.array([[700, 200, 60, 40]])
    c, r = certify_topk_from_counts(*counts, 0.01, SIGMA, 1, labels=[0])
    p_low = smooth.clopper_pearson_lower(700, 1000, 0.01 / 4)
    p_b = min(smooth.clopper_pearson_upper(200, 1000, 0.01 / 4), 1 - p_low)
    assert c[0] == 0 and r[0] == pytest.approx(0.5 * SIGMA * (stats.norm.ppf(p_low) - stats.norm.ppf(p_b)))


# --------------------------------------------------------------------------- validation
@pytest.mark.parametrize("kwargs, name", [
    (dict(sigma=0.0), "sigma"), (dict(sigma=-1.0), "sigma"), (dict(sigma=float("nan")), "sigma"),
    (dict(num_classes=1), "num_classes"),
])
def test_bad_constructor_arguments_raise(kwargs, name):
    args = dict(base_classifier=HalfSpace([1.0, 0.0], 0.0), num_classes=2, sigma=SIGMA) | kwargs
    with pytest.raises(ValueError, match=f"^{name} "):
        Smooth(**args)


@pytest.mark.parametrize("change, name", [
    (dict(n0=0), "n0"), (dict(n=0), "n"), (dict(n=2.5), "n"), (dict(alpha=0.0), "alpha"),
    (dict(alpha=1.0), "alpha"), (dict(batch_size=0), "batch_size"), (dict(generator=3), "generator"),
])
def test_bad_sampling_arguments_raise(change, name):
    sm = Smooth(HalfSpace([1.0, 0.0], 0.0), 2, SIGMA)
    args = dict(n0=10, n=20, alpha=0.1, batch_size=8, generator=None) | change
    with pytest.raises(ValueError, match=f"^{name} "):
        sm.certify(torch.zeros(2), **args)
    with pytest.raises(ValueError, match=f"^{name} "):
        sm.certify_batch(torch.zeros(3, 2), **args)
    if name != "n0":
        args.pop("n0")
        with pytest.raises(ValueError, match=f"^{name} "):
            sm.predict(torch.zeros(2), **args)


def test_bad_inputs_raise():
    from georobust.core.models import build

    sm = Smooth(build("lenet", seed=0), 10, SIGMA)
    with pytest.raises(ValueError, match="^x: the base classifier cannot take"):
        sm.certify(torch.zeros(1, 1, 28, 28), 5, 10, 0.1, 8)  # batch dimension on a single input
    with pytest.raises(ValueError, match="^x: the base classifier cannot take"):
        sm.certify(torch.zeros(1, 20, 20), 5, 10, 0.1, 8)
    with pytest.raises(ValueError, match="^x must be a floating-point"):
        sm.certify(torch.zeros(1, 28, 28, dtype=torch.int64), 5, 10, 0.1, 8)
    with pytest.raises(ValueError, match="^k must be an integer in \\[1, 9\\]"):
        sm.certify_topk(torch.zeros(1, 28, 28), 10, 5, 10, 0.1, 8)
    with pytest.raises(ValueError, match="^num_classes"):
        Smooth(build("lenet", seed=0), 3, SIGMA).certify(torch.zeros(1, 28, 28), 5, 10, 0.1, 8)
    shaped = Smooth(HalfSpace([1.0, 0.0], 0.0), 2, SIGMA, input_shape=(2,))
    with pytest.raises(ValueError, match="^x must have shape \\(2,\\)"):
        shaped.certify(torch.zeros(1, 2), 5, 10, 0.1, 8)
    with pytest.raises(ValueError, match="^xs must have shape"):
        shaped.certify_batch(torch.zeros(2), 5, 10, 0.1, 8)
    with pytest.raises(ValueError, match="^labels"):
        shaped.certify_topk_batch(torch.zeros(3, 2), 1, 5, 10, 0.1, 8, labels=[0, 1])


# --------------------------------------------------------------------------- logs and analysis
def _strip_time(path):
    return [line.rsplit("\t", 1)[0] for line in Path(path).read_text().splitlines()]


def test_certify_dataset_resumes_after_an_interruption(tmp_path):
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 3))
    images, labels = torch.randn(12, 4), torch.tensor([0, 1, 2] * 4)
    args = dict(n0=20, n=100, alpha=0.05, batch_size=64, progress=False)
    full = tmp_path / "full.tsv"
    certify_dataset(Smooth(mlp, 3, SIGMA), images, labels, full, generator=torch.Generator().manual_seed(14), **args)

    sm = Smooth(mlp, 3, SIGMA)
    original, calls = sm.sample_counts, []  # one sampling pass per group of examples

    def interrupted(xs, *a):
        calls.append(len(xs))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(xs, *a)

    sm.sample_counts = interrupted
    part = tmp_path / "part.tsv"
    with pytest.raises(KeyboardInterrupt):
        certify_dataset(sm, images, labels, part, generator=torch.Generator().manual_seed(14), **args)
    done = len(read_log(part)["idx"])
    assert 0 < done < 12
    with open(part, "a") as fh:
        fh.write("11\t2\t")  # a torn line, as a crash in the middle of a write leaves
    sm.sample_counts, calls[:] = lambda xs, *a: (calls.append(len(xs)), original(xs, *a))[1], []
    log = certify_dataset(sm, images, labels, part, generator=torch.Generator().manual_seed(14), **args)
    assert sum(calls) == 12 - done  # the finished examples were skipped
    assert _strip_time(part) == _strip_time(full)
    assert log["idx"].tolist() == list(range(12))
    assert np.array_equal(log["correct"], (log["predict"] == log["label"]).astype(int))


def test_analysis_helpers():
    radii = np.array([0.0, 0.5, 1.0, 0.2, 0.0])
    correct = np.array([1, 1, 0, 1, 0])
    assert certified_accuracy(radii, correct, [0.0, 0.3, 0.6]).tolist() == [0.6, 0.2, 0.0]
    assert average_certified_radius(radii, correct) == pytest.approx(0.7 / 5)
    assert abstention_rate([ABSTAIN, 1, 2, ABSTAIN]) == 0.5
