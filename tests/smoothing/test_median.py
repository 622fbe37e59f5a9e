"""Median (percentile) smoothing (``MedianSmooth``, Chiang et al. 2020): statistical soundness where
the answer is known in closed form, the algebra, the ranks, and bad input.

For a linear regressor f(u) = Wu + b and noise N(0, σ²I), f_j(x + ε) ~ N(w_j·x + b_j, σ²‖w_j‖²),
so the smoothed q-quantile is h_q(x)_j = w_j·x + b_j + σ‖w_j‖Φ⁻¹(q) and its range over the ℓ2
ball of radius ε is exactly [h_q(x)_j − ε‖w_j‖, h_q(x)_j + ε‖w_j‖] (the certificate is tight
here). A certificate fails when lower_j is above the low end or upper_j below the high end; its
rate must be ≤ α (binomial test) and each side's rate must equal the exact order-statistic rate.
Control that must be rejected: the empirical q̲- and q̄-quantiles (a point estimate) in place of the
order-statistic bounds.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
import torch
from scipy import stats

from georobust.smoothing import MedianSmooth
from georobust.smoothing.median import bounds_from_samples, order_statistic_ranks, quantile_levels

SIGNIFICANCE = 0.001


class Linear(torch.nn.Module):
    def __init__(self, w, b):
        super().__init__()
        self.w, self.b = torch.as_tensor(w), torch.as_tensor(b)

    def forward(self, u):
        return u.flatten(1) @ self.w.T.to(u.dtype) + self.b.to(u.dtype)


def linear_case(seed=0, d=6, k=3):
    rng = np.random.default_rng(seed)
    w, b = rng.standard_normal((k, d)), rng.standard_normal(k)
    return Linear(w, b), torch.tensor(rng.standard_normal(d)), w, b


def exact_range(w, b, x, sigma, eps, q):
    """(low, high) of h_q(x + δ) over ‖δ‖ ≤ eps, per output, for the linear regressor."""
    centre = w @ x.numpy() + b + sigma * np.linalg.norm(w, axis=1) * stats.norm.ppf(q)
    half = eps * np.linalg.norm(w, axis=1)
    return centre - half, centre + half


def run_trials(trials, n, alpha, eps, q, sigma=0.5, joint=False, seed=0):
    model, x, w, b = linear_case()
    smooth = MedianSmooth(model, sigma)
    low, high = exact_range(w, b, x, sigma, eps, q)
    gen = torch.Generator().manual_seed(seed)
    fail_low, fail_high, fail_interval, fail_any, point_interval = 0, 0, 0, 0, 0
    q_lo, q_hi = quantile_levels(q, eps, sigma)
    for _ in range(trials):
        samples = smooth.sample(x, n, generator=gen)
        lo, hi = bounds_from_samples(samples, q, eps, sigma, alpha, joint)
        lo, hi = lo.numpy(), hi.numpy()
        fail_low += int(np.sum(lo > low))
        fail_high += int(np.sum(hi < high))
        fail_interval += int(np.sum((lo > low) | (hi < high)))
        fail_any += int(np.any((lo > low) | (hi < high)))
        ordered = samples.sort(0).values.numpy()  # the control: empirical quantiles as "bounds"
        p_lo, p_hi = ordered[max(0, math.ceil(q_lo * n) - 1)], ordered[max(0, math.ceil(q_hi * n) - 1)]
        point_interval += int(np.sum((p_lo > low) | (p_hi < high)))
    return dict(low=fail_low, high=fail_high, interval=fail_interval, any=fail_any, point=point_interval,
                outputs=len(b), q_lo=q_lo, q_hi=q_hi)


@pytest.mark.parametrize("q", [0.5, 0.3])
def test_bounds_fail_at_most_alpha_and_at_the_exact_rate_on_linear_regressors(q):
    trials, n, alpha, eps = 500, 200, 0.2, 0.3
    r = run_trials(trials, n, alpha, eps, q)
    count = trials * r["outputs"]  # each output's interval is one certificate
    beta = alpha / 2
    l, u = order_statistic_ranks(n, r["q_lo"], r["q_hi"], beta)
    exact_low = stats.binom.cdf(l - 1, n, r["q_lo"])  # P[Y_(l) > Q(q̲)], continuous law
    exact_high = 1 - stats.binom.cdf(u - 1, n, r["q_hi"])  # P[Y_(u) < Q(q̄)]
    assert exact_low <= beta and exact_high <= beta
    # each side fails at its exact rate (neither unsound nor needlessly loose)
    assert stats.binomtest(r["low"], count, exact_low).pvalue > SIGNIFICANCE
    assert stats.binomtest(r["high"], count, exact_high).pvalue > SIGNIFICANCE
    # an interval fails in at most an alpha fraction
    assert stats.binomtest(r["interval"], count, alpha, alternative="greater").pvalue > SIGNIFICANCE
    # the control: each point estimate is on the wrong side about half the time, far above alpha
    assert stats.binomtest(r["point"], count, alpha, alternative="greater").pvalue < SIGNIFICANCE


def test_joint_bounds_hold_simultaneously():
    trials, alpha = 400, 0.2
    r = run_trials(trials, 200, alpha, 0.3, 0.5, joint=True, seed=3)
    assert stats.binomtest(r["any"], trials, alpha, alternative="greater").pvalue > SIGNIFICANCE
    per_output = run_trials(trials, 200, alpha, 0.3, 0.5, joint=False, seed=3)
    # the per-output level, read as a joint one over k = 3 outputs, fails more often than alpha
    assert per_output["any"] > r["any"]


def test_certify_matches_bounds_from_samples_and_is_reproducible():
    model, x, w, b = linear_case()
    smooth = MedianSmooth(model, 0.5)
    a = smooth.certify(x, 300, 0.1, 0.2, generator=torch.Generator().manual_seed(5))
    samples = smooth.sample(x, 300, generator=torch.Generator().manual_seed(5))
    c = bounds_from_samples(samples, 0.5, 0.2, 0.5, 0.1)
    assert torch.equal(a[0], c[0]) and torch.equal(a[1], c[1])
    assert a[0].shape == (len(b),) and torch.all(a[0] <= a[1])
    lows, highs = smooth.certify(x, 300, 0.1, [0.0, 0.2, 0.5], generator=torch.Generator().manual_seed(5))
    assert lows.shape == (3, len(b)) and torch.equal(lows[1], a[0]) and torch.equal(highs[1], a[1])
    assert torch.all(lows[2] <= lows[1]) and torch.all(lows[1] <= lows[0])
    assert torch.all(highs[0] <= highs[1]) and torch.all(highs[1] <= highs[2])
    # the eps = 0 interval brackets the point estimate of the median
    med = smooth.predict(x, 300, generator=torch.Generator().manual_seed(5))
    assert torch.all(lows[0] <= med) and torch.all(med <= highs[0])


@pytest.mark.parametrize("batch_size", [7, 1000])
def test_the_noise_is_centred_gaussian_with_sd_sigma(batch_size):
    """Identity regressor: the samples are x + ε; per-coordinate mean x and variance σ² (chi-square
    interval on the pooled variance, z-test on the mean)."""
    x = torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64)
    sigma, n = 0.7, 4000
    samples = MedianSmooth(torch.nn.Identity(), sigma).sample(x, n, batch_size, torch.Generator().manual_seed(4))
    assert samples.shape == (n, 3) and samples.dtype == torch.float64
    noise = (samples - x).numpy().ravel()
    assert abs(noise.mean()) / (sigma / math.sqrt(noise.size)) < 4
    dof = noise.size
    stat = np.sum(noise**2) / sigma**2
    assert stats.chi2.ppf(SIGNIFICANCE / 2, dof) < stat < stats.chi2.ppf(1 - SIGNIFICANCE / 2, dof)


def test_too_few_samples_give_infinite_bounds():
    model, x, *_ = linear_case()
    lo, hi = MedianSmooth(model, 0.5).certify(x, 5, 0.05, 0.5, generator=torch.Generator().manual_seed(0))
    assert torch.all(torch.isneginf(lo)) and torch.all(torch.isposinf(hi))
    assert order_statistic_ranks(5, 0.1, 0.9, 0.025) == (None, None)


def test_ranks_against_a_brute_force_search_and_exact_rational_sums():
    for n, q_lo, q_hi, beta in [(1, 0.5, 0.5, 0.4), (50, 0.2, 0.8, 0.05), (1000, 0.31, 0.69, 0.001),
                                (20, 0.5, 0.5, 0.5 - 1e-12), (400, 0.001, 0.999, 0.1)]:
        l, u = order_statistic_ranks(n, q_lo, q_hi, beta)
        cdf_lo, cdf_hi = stats.binom.cdf(np.arange(n + 1), n, q_lo), stats.binom.cdf(np.arange(n + 1), n, q_hi)
        ok_l = [m + 1 for m in range(n) if cdf_lo[m] <= beta]
        ok_u = [m + 1 for m in range(n) if cdf_hi[m] >= 1 - beta]
        assert l == (max(ok_l) if ok_l else None)
        assert u == (min(ok_u) if ok_u else None)
    # exact rational check at small n: P[Bin(n, p) <= m] as a SymPy sum
    n, p, beta = 12, sp.Rational(3, 10), sp.Rational(1, 20)
    exact = [sum(sp.binomial(n, i) * p**i * (1 - p) ** (n - i) for i in range(m + 1)) for m in range(n + 1)]
    l, _ = order_statistic_ranks(n, float(p), 0.9, float(beta))
    assert exact[l - 1] <= beta < exact[l]


def test_sympy_the_linear_gaussian_range_is_the_quantile_formula():
    """For Y ~ N(μ + w·δ, σ²‖w‖²): max over ‖δ‖ ≤ ε of its q-quantile is the q̄-quantile at δ = 0."""
    mu, s, eps, z, t = sp.symbols("mu sigma epsilon z t", positive=True)
    wn = sp.symbols("w_norm", positive=True)
    Phi = lambda v: (1 + sp.erf(v / sp.sqrt(2))) / 2  # noqa: E731
    # the q̄-quantile at x, q̄ = Φ(Φ⁻¹(q) + ε/σ) with z = Φ⁻¹(q): the y with Φ((y − μ)/(σ‖w‖)) = q̄
    y = mu + s * wn * z + eps * wn
    assert sp.simplify(Phi((y - mu) / (s * wn)) - Phi(z + eps / s)) == 0
    # the q-quantile at x + δ is μ + w·δ + σ‖w‖z; max of w·δ on the ε-sphere (Lagrange, 2-D) is ε‖w‖
    w1, w2, d1, d2, lam = sp.symbols("w1 w2 d1 d2 lam", real=True)
    sol = sp.solve([w1 - 2 * lam * d1, w2 - 2 * lam * d2, d1**2 + d2**2 - eps**2], [d1, d2, lam], dict=True)
    best = sp.Max(*[sp.simplify(w1 * r[d1] + w2 * r[d2]) for r in sol])
    inst = {w1: 3, w2: -4, eps: sp.Rational(1, 2)}
    assert sp.nsimplify(best.subs(inst)) == sp.Rational(5, 2)  # ε‖w‖ = ½·5
    # and symmetric: the lower end uses −ε/σ
    y_low = mu + s * wn * z - eps * wn
    assert sp.simplify(Phi((y_low - mu) / (s * wn)) - Phi(z - eps / s)) == 0


@pytest.mark.parametrize("kwargs, name, allowed", [
    (dict(q=0.0), "q", "(0, 1)"), (dict(q=1.0), "q", "(0, 1)"), (dict(q=float("nan")), "q", "(0, 1)"),
    (dict(eps=-0.1), "eps", ">= 0"), (dict(eps=float("inf")), "eps", ">= 0"),
    (dict(n=0), "n", ">= 1"), (dict(n=2.5), "n", ">= 1"), (dict(n=True), "n", ">= 1"),
    (dict(alpha=0.0), "alpha", "(0, 1)"), (dict(alpha=1.5), "alpha", "(0, 1)"),
    (dict(batch_size=0), "batch_size", ">= 1"),
])
def test_bad_input_is_refused_by_name(kwargs, name, allowed):
    model, x, *_ = linear_case()
    args = dict(n=50, alpha=0.1, eps=0.1, q=0.5)
    args.update(kwargs)
    with pytest.raises(ValueError, match=rf"^{name} must .*{allowed.replace('(', '[(]').replace(')', '[)]')}"):
        MedianSmooth(model, 0.5).certify(x, **args)


@pytest.mark.parametrize("sigma", [0.0, -1.0, float("inf"), "0.5"])
def test_bad_sigma_is_refused_by_name(sigma):
    with pytest.raises(ValueError, match=r"^sigma must be a finite number > 0"):
        MedianSmooth(linear_case()[0], sigma)


def test_a_regressor_returning_nan_is_refused():
    class Nan(torch.nn.Module):
        def forward(self, u):
            return torch.full((len(u), 2), float("nan"), dtype=u.dtype)

    with pytest.raises(ValueError, match="^samples contain NaN"):
        MedianSmooth(Nan(), 0.5).certify(torch.zeros(3), 20, 0.1, 0.1)


def test_wrong_device_or_dtype_is_refused():
    model, x, *_ = linear_case()
    with pytest.raises(ValueError, match="^x must be a floating-point"):
        MedianSmooth(model, 0.5).certify(x.long(), 10, 0.1, 0.1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_same_code_on_the_gpu():
    model, x, w, b = linear_case()
    smooth = MedianSmooth(model, 0.5)
    lo, hi = smooth.certify(x.cuda(), 500, 0.1, 0.2, generator=torch.Generator(device="cuda").manual_seed(0))
    assert lo.device.type == "cuda" and torch.all(lo <= hi)
