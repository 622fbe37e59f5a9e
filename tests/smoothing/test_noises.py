"""Smoothing with Laplace and uniform noise (``Smooth(..., noise=...)``): statistical soundness.

Soundness is checked on half-space classifiers, whose smoothed classifier is the half-space itself
(a symmetric noise has median 0 along every direction), so the true radius in any norm is the
distance to the boundary in that norm: |wᵀx + b| / ‖w‖_* with ‖·‖_* the dual norm. Along a
coordinate axis the ℓ1 certificates are tight, so the rate of wrong certificates must match the
exact Clopper–Pearson one; the controls (a point estimate instead of the lower bound; the noise's
scale parameter read as its standard deviation, a radius √2 too large for Laplace and √3 for
uniform noise, ``WRONG_SCALE``) must be rejected.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from georobust.smoothing import ABSTAIN, Smooth, certify_from_counts
from georobust.smoothing.smooth import _child_seeds
from georobust.theory import radii
from georobust.theory.bounds import clopper_pearson_lower
from smoothing.test_smooth import Recorder

SIGMA = 0.5
SIGNIFICANCE = 0.001
# the classic slip for each noise: its scale parameter taken to be the standard deviation
WRONG_SCALE = {"laplace": math.sqrt(2.0), "uniform": math.sqrt(3.0)}


class HalfSpace(nn.Module):
    """f(z) = [wᵀz + b > 0] as two logits."""

    def __init__(self, w, b):
        super().__init__()
        self.register_buffer("w", torch.as_tensor(w, dtype=torch.float64))
        self.b = float(b)

    def forward(self, z):
        m = z.flatten(1).to(torch.float64) @ self.w + self.b
        return torch.stack([-m, m], 1)


def cdf_inverse(noise, p):
    """The point s with P[ε₁ ≤ s] = p for one coordinate of the noise (standard deviation SIGMA)."""
    if noise == "laplace":
        b = SIGMA / math.sqrt(2)
        return np.where(p >= 0.5, -b * np.log(2 * (1 - p)), b * np.log(2 * p))
    if noise == "uniform":
        lam = SIGMA * math.sqrt(3)
        return 2 * lam * (p - 0.5)
    return SIGMA * stats.norm.ppf(p)


def not_above(failures, trials, alpha):
    return stats.binomtest(int(failures), int(trials), alpha, alternative="greater").pvalue


def failures(classes, radii_, true_cls, exact_r):
    classes, radii_ = np.asarray(classes), np.asarray(radii_)
    return int(np.sum(((classes != ABSTAIN) & (classes != true_cls)) | ((classes == true_cls) & (radii_ > exact_r))))


def axis_trials(noise, p_values, repeats, d=4):
    """Inputs at exact smoothed probabilities p of the half-space [z₁ > 0] (alternating sides)."""
    pts, cls = [], []
    for j, p in enumerate(p_values):
        side = 1 if j % 2 == 0 else -1
        x = np.zeros(d)
        x[0] = side * float(cdf_inverse(noise, p))
        pts.append(x)
        cls.append(1 if side > 0 else 0)
    w = np.zeros(d)
    w[0] = 1.0
    xs = torch.tensor(np.repeat(pts, repeats, axis=0))
    exact_r = np.abs(xs[:, 0].numpy())  # the ℓ1 (and ℓ2, ℓ∞) distance to the boundary
    return HalfSpace(w, 0.0), xs, np.repeat(cls, repeats), exact_r


@pytest.mark.parametrize("noise", ["laplace", "uniform", "gaussian"])
def test_axis_aligned_l1_certificate_is_sound_tight_and_the_controls_fail(noise):
    alpha, n0, n, repeats = 0.1, 50, 300, 80
    p_values = np.linspace(0.7, 0.97, 10)
    model, xs, true_cls, exact_r = axis_trials(noise, p_values, repeats)
    sm = Smooth(model, 2, SIGMA, noise=noise)
    assert sm.norm == radii.NATURAL_NORM[noise]
    gen = torch.Generator().manual_seed(3)
    classes, rad = sm.certify_batch(xs, n0, n, alpha, 4096, gen)
    trials = len(xs)
    fails = failures(classes, rad, true_cls, exact_r)
    assert not_above(fails, trials, alpha) > SIGNIFICANCE, f"{noise}: {fails}/{trials} wrong at alpha={alpha}"
    # tight along the axis: a certificate is wrong exactly when the lower bound exceeds the true p
    k = np.arange(n + 1)
    lo = clopper_pearson_lower(k, n, alpha)
    exact_rate = np.mean([stats.binom.pmf(k, n, p)[lo > p].sum() for p in p_values])
    assert stats.binomtest(fails, trials, exact_rate).pvalue > SIGNIFICANCE, (noise, fails, trials, exact_rate)

    counts = sm.sample_counts(xs, _child_seeds(torch.Generator().manual_seed(3), trials), n0, n, 4096)
    c2, r2 = certify_from_counts(counts[:, 0], counts[:, 1], alpha, SIGMA, noise)
    assert np.array_equal(c2, classes.numpy()) and np.array_equal(r2, rad.numpy())
    # control 1: the point estimate in place of the lower bound
    c_hat = counts[:, 0].argmax(1)
    p_hat = np.minimum(counts[np.arange(trials), 1, c_hat] / n, 1 - 1e-12)
    r_point = np.where(p_hat > 0.5, radii.noise_radius(noise, SIGMA, p_hat, "l1"), 0.0)
    c_point = np.where(p_hat > 0.5, c_hat, ABSTAIN)
    assert not_above(failures(c_point, r_point, true_cls, exact_r), trials, alpha) < 1e-6
    # control 2: the scale parameter read as the standard deviation
    if noise in WRONG_SCALE:
        c_w, r_w = certify_from_counts(counts[:, 0], counts[:, 1], alpha, SIGMA * WRONG_SCALE[noise], noise)
        assert not_above(failures(c_w, r_w, true_cls, exact_r), trials, alpha) < 1e-6


@pytest.mark.parametrize("noise,norm", [("laplace", "l1"), ("uniform", "l1"), ("uniform", "linf"),
                                        ("gaussian", "linf"), ("gaussian", "l1")])
def test_certificates_are_sound_on_oblique_half_spaces(noise, norm):
    """Random directions: the certificate is loose there but must never over-claim beyond α."""
    alpha, n0, n, d, per = 0.1, 50, 300, 6, 60
    rng = np.random.default_rng(11)
    dual = {"l1": np.inf, "l2": 2, "linf": 1}[norm]
    pts, cls, exact, models = [], [], [], []
    for j in range(12):
        w = rng.normal(size=d)
        # place the point so that the smoothed probability (estimated loosely) is moderate
        side = 1 if j % 2 == 0 else -1
        offset = side * rng.uniform(0.2, 1.2) * SIGMA * np.linalg.norm(w)
        models.append((w, offset))
    fails = trials = 0
    for w, offset in models:
        x = np.zeros(d)
        model = HalfSpace(w, offset)
        sm = Smooth(model, 2, SIGMA, noise=noise)
        xs = torch.tensor(np.repeat(x[None], per, axis=0))
        counts = sm.sample_counts(xs, _child_seeds(torch.Generator().manual_seed(int(abs(offset) * 1e6)), per),
                                  n0, n, 4096)
        c_hat = counts[:, 0].argmax(1)
        p_low = clopper_pearson_lower(counts[np.arange(per), 1, c_hat], n, alpha)
        r = np.where(p_low > 0.5, radii.noise_radius(noise, SIGMA, np.maximum(p_low, 0.5), norm, dim=d), 0.0)
        c = np.where(p_low > 0.5, c_hat, ABSTAIN)
        true_cls = 1 if offset > 0 else 0
        exact_r = abs(offset) / np.linalg.norm(w, ord=dual)
        fails += failures(c, r, true_cls, exact_r)
        trials += per
    assert not_above(fails, trials, alpha) > SIGNIFICANCE, (noise, norm, fails, trials)


@pytest.mark.parametrize("noise", ["laplace", "uniform"])
def test_the_noise_has_the_stated_law_and_standard_deviation(noise):
    rec = Recorder(HalfSpace(np.ones(3), 0.0))
    sm = Smooth(rec, 2, SIGMA, noise=noise)
    x = torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64)
    sm.certify(x, 100, 6000, 0.05, 1000, torch.Generator().manual_seed(5))
    eps = (torch.cat(rec.seen) - x).numpy()
    assert len(np.unique(eps, axis=0)) == len(eps)  # every draw fresh
    assert np.allclose(eps.std(0), SIGMA, rtol=0.04)
    law = (stats.laplace(scale=SIGMA / math.sqrt(2)) if noise == "laplace"
           else stats.uniform(loc=-SIGMA * math.sqrt(3), scale=2 * SIGMA * math.sqrt(3)))
    for j in range(3):
        assert stats.kstest(eps[:, j], law.cdf).pvalue > SIGNIFICANCE
    wrong = stats.norm(scale=SIGMA)  # the test can tell the laws apart
    assert stats.kstest(eps[:, 0], wrong.cdf).pvalue < SIGNIFICANCE
    assert np.abs(np.corrcoef(eps.T) - np.eye(3)).max() < 0.05  # independent coordinates


def test_gaussian_default_draws_are_unchanged():
    """The ``noise`` option leaves the default stream as it was: N(0, σ²) from each input's seed."""
    rec = Recorder(HalfSpace(np.ones(2), 0.0))
    x = torch.tensor([0.1, 0.2], dtype=torch.float64)
    Smooth(rec, 2, SIGMA).certify(x, 3, 10, 0.1, 100, torch.Generator().manual_seed(9))
    seed = _child_seeds(torch.Generator().manual_seed(9), 1)[0]
    expected = torch.empty(13, 2, dtype=torch.float64).normal_(0.0, SIGMA, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(torch.cat(rec.seen), expected + x)


def test_bad_noise_arguments_are_refused_by_name():
    model = HalfSpace(np.ones(2), 0.0)
    with pytest.raises(ValueError, match="noise must be one of 'gaussian', 'laplace', 'uniform'"):
        Smooth(model, 2, SIGMA, noise="cauchy")
    with pytest.raises(ValueError, match="sigma must be a finite number > 0"):
        Smooth(model, 2, 0.0, noise="laplace")
    with pytest.raises(ValueError, match="sigma must be a finite number > 0"):
        Smooth(model, 2, -1.0, noise="uniform")
    with pytest.raises(ValueError, match="norm 'l2' is not certified by laplace noise"):
        radii.noise_radius("laplace", SIGMA, 0.9, "l2")
    with pytest.raises(ValueError, match="norm must be one of"):
        radii.noise_radius("gaussian", SIGMA, 0.9, "l3")
    with pytest.raises(ValueError, match="dim must be an integer"):
        radii.noise_radius("uniform", SIGMA, 0.9, "linf")
    with pytest.raises(ValueError, match="sigma must be a finite number > 0"):
        radii.noise_radius("laplace", 0.0, 0.9)
    with pytest.raises(ValueError, match="noise: the top-k certificate"):
        Smooth(model, 3, SIGMA, noise="laplace").certify_topk(torch.zeros(2), 1, 10, 10, 0.1, 10)


def test_noise_augmentation_draws_the_smoothing_noise():
    from georobust.smoothing import fill_noise, gaussian_objective, noise_objective
    assert noise_objective("gaussian", 0.25) == gaussian_objective(0.25)
    obj = noise_objective("laplace", SIGMA)
    assert obj.key == "noise-augmentation(noise='laplace', sigma=0.5)"
    seen = []

    class Net(nn.Module):
        def forward(self, z):
            seen.append(z.clone())
            return torch.zeros(len(z), 2, dtype=z.dtype, requires_grad=True)

    x = torch.zeros(4000, 3, dtype=torch.float64)
    obj(Net(), x, torch.zeros(4000, dtype=torch.long), torch.Generator().manual_seed(1))
    expected = fill_noise(torch.empty_like(x), "laplace", SIGMA, torch.Generator().manual_seed(1))
    assert torch.equal(seen[0], expected)
    assert stats.kstest(seen[0][:, 0].numpy(), stats.laplace(scale=SIGMA / math.sqrt(2)).cdf).pvalue > SIGNIFICANCE
    with pytest.raises(ValueError, match="noise must be one of"):
        noise_objective("gauss", 0.5)
