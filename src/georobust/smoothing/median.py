"""Median (percentile) smoothing of a regressor, with certified bounds on every output.

Chiang, Curry, Abdelkader, Kumar, Dickerson & Goldstein, "Detection as Regression: Certified
Object Detection with Median Smoothing", NeurIPS 2020 (arXiv 2007.03730).

For a regressor f: ℝ^d → ℝ^k, noise ε ~ N(0, σ²I) and a level q ∈ (0, 1), the smoothed regressor
h_q(x) has as output j the q-quantile of the law of f_j(x + ε), Q_x(q) = inf{y : P[f_j(x+ε) ≤ y] ≥ q}
(q = ½: the smoothed median).

**Guarantee (Chiang et al. 2020).** For every δ with ‖δ‖₂ ≤ ε (budget ``eps``),

    Q_x(q̲) ≤ h_q(x + δ)_j ≤ Q_x(q̄),   q̲ = Φ(Φ⁻¹(q) − ε/σ),   q̄ = Φ(Φ⁻¹(q) + ε/σ).

Why: for each y, p(x) = P[f_j(x+ε) ≤ y] is the smoothed value of the indicator 1[f_j ≤ y], so by
the Gaussian Neyman–Pearson bound of Cohen et al. (2019) Φ(Φ⁻¹(p(x)) − ε/σ) ≤ p(x+δ) ≤
Φ(Φ⁻¹(p(x)) + ε/σ). At y = Q_x(q̄), p(x) ≥ q̄ gives p(x+δ) ≥ q, so h_q(x+δ)_j ≤ y; for every
y < Q_x(q̲), p(x) < q̲ gives p(x+δ) < q, so h_q(x+δ)_j ≥ Q_x(q̲).

**Estimation.** Q_x(q̲) and Q_x(q̄) are bracketed by order statistics Y_(1) ≤ … ≤ Y_(n) of n
noisy outputs, with ranks from exact binomial quantiles (:func:`order_statistic_ranks`): for a
level β, the upper rank u is the smallest with P[Bin(n, q̄) ≤ u − 1] ≥ 1 − β, so that
P[Y_(u) < Q_x(q̄)] ≤ P[Bin(n, q̄) ≥ u] ≤ β; the lower rank l is the largest with
P[Bin(n, q̲) ≤ l − 1] ≤ β, so that P[Y_(l) > Q_x(q̲)] ≤ β. Both hold for any law of f_j(x+ε)
(atoms included): the number of samples below Q_x(p) is Binomial with success probability ≤ p,
and the number at or below it has success probability ≥ p. When n is too small for a rank to
exist (u > n, or l < 1), the bound is +∞ (upper) or −∞ (lower): the method says it cannot bound
that side rather than returning a number it cannot guarantee.

**Level α.** By default each output's *interval* holds with probability ≥ 1 − α: each side at
β = α/2, so P[Q_x(q̲) < lower_j or upper_j < Q_x(q̄)] ≤ α for every j separately (each side alone
fails with probability ≤ α/2). With ``joint=True`` (Bonferroni over the k outputs, β = α/(2k)) all
k intervals hold simultaneously with probability ≥ 1 − α. Bounds for several budgets computed from
the same samples (:func:`bounds_from_samples` with a list of budgets) each hold at their level; they
are not simultaneous over budgets.

A point estimate (the empirical q̲- or q̄-quantile) is not a bound: it falls on the wrong side about
half the time (``tests/smoothing/test_median.py`` shows it).

Noise: each call draws its n noise vectors from a ``torch.Generator`` on the input's device seeded
from ``generator`` (as :class:`~georobust.smoothing.smooth.Smooth` does), in pieces of
``batch_size``, so the draws depend on (generator, n, batch_size); the regressor must live on the
input's device, and the bounds come back on it, in the regressor's output dtype.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import stats
from torch import nn

from .smooth import _child_seeds, _model_device


# --------------------------------------------------------------------------- validation
def _number(name, value, allowed, ok):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not ok(float(value)):
        raise ValueError(f"{name} must be {allowed}; got {value!r}")
    return float(value)


def check_level(name, value):
    """A probability strictly between 0 and 1 (q, alpha)."""
    return _number(name, value, "a number in (0, 1)", lambda v: 0 < v < 1)


def check_sigma(sigma):
    return _number("sigma", sigma, "a finite number > 0", lambda v: 0 < v < math.inf)


def check_eps(eps):
    return _number("eps", eps, "a finite number >= 0", lambda v: 0 <= v < math.inf)


def check_count(name, value, low=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}; got {value!r}")
    return int(value)


# --------------------------------------------------------------------------- statistics
def quantile_levels(q: float, eps: float, sigma: float) -> tuple[float, float]:
    """(q̲, q̄) = (Φ(Φ⁻¹(q) − ε/σ), Φ(Φ⁻¹(q) + ε/σ)), the quantile levels at x that bracket the
    smoothed q-quantile over the ℓ2 ball of radius ε (Chiang et al. 2020)."""
    q, eps, sigma = check_level("q", q), check_eps(eps), check_sigma(sigma)
    z = stats.norm.ppf(q)
    return float(stats.norm.cdf(z - eps / sigma)), float(stats.norm.cdf(z + eps / sigma))


def order_statistic_ranks(n: int, q_low: float, q_high: float, beta: float) -> tuple[int | None, int | None]:
    """1-based ranks (l, u) such that, for n i.i.d. draws of any real law with quantile function Q,
    P[Y_(l) > Q(q_low)] ≤ beta and P[Y_(u) < Q(q_high)] ≤ beta; None where no rank in 1..n does.

    u = smallest rank with P[Bin(n, q_high) ≤ u − 1] ≥ 1 − beta; l = largest rank with
    P[Bin(n, q_low) ≤ l − 1] ≤ beta. Found from ``scipy.stats.binom.ppf`` and checked against
    ``binom.cdf`` (one step either way), so a rounding error in ppf cannot make a bound unsound.
    """
    n, beta = check_count("n", n), check_level("beta", beta)
    cdf_high = lambda m: stats.binom.cdf(m, n, q_high)  # noqa: E731
    cdf_low = lambda m: stats.binom.cdf(m, n, q_low)  # noqa: E731
    m = int(stats.binom.ppf(1 - beta, n, q_high))  # smallest m with cdf(m) >= 1 - beta
    while m > 0 and cdf_high(m - 1) >= 1 - beta:
        m -= 1
    while cdf_high(m) < 1 - beta:
        m += 1
    upper = m + 1 if m + 1 <= n else None
    m = int(stats.binom.ppf(beta, n, q_low))  # smallest m with cdf(m) >= beta; want largest cdf(m) <= beta
    while m >= 0 and cdf_low(m) > beta:
        m -= 1
    while m + 1 <= n and cdf_low(m + 1) <= beta:
        m += 1
    lower = m + 1 if m >= 0 else None  # cdf(n) = 1 > beta, so m <= n - 1 and l <= n
    return lower, upper


def bounds_from_samples(samples: torch.Tensor, q: float, eps, sigma: float, alpha: float,
                        joint: bool = False):
    """Certified bounds from n noisy outputs ``samples`` (n, *out_shape) of f(x + ε).

    ``eps`` is one budget (returns ``(lower, upper)`` of shape out_shape) or a list of budgets
    (returns two tensors of shape (len(eps), *out_shape)). Level: see the module docstring (each
    output's interval at 1 − α; ``joint``: all outputs together). −∞ / +∞ where n is too small.
    """
    if not isinstance(samples, torch.Tensor) or samples.ndim < 1 or len(samples) < 1:
        raise ValueError("samples must be a tensor (n, *out_shape) with n >= 1")
    if samples.is_floating_point() and bool(torch.isnan(samples).any()):
        raise ValueError("samples contain NaN (the regressor returned NaN for some noisy inputs); "
                         "quantile bounds are not defined")
    q, sigma, alpha = check_level("q", q), check_sigma(sigma), check_level("alpha", alpha)
    single = not isinstance(eps, (list, tuple, np.ndarray))
    budgets = [check_eps(e) for e in ([eps] if single else eps)]
    n, k = len(samples), max(1, math.prod(samples.shape[1:]))
    beta = alpha / 2 / (k if joint else 1)
    ordered = samples.sort(dim=0).values
    lows, highs = [], []
    for e in budgets:
        lo_rank, hi_rank = order_statistic_ranks(n, *quantile_levels(q, e, sigma), beta)
        inf = torch.full_like(ordered[0], math.inf)
        lows.append(-inf if lo_rank is None else ordered[lo_rank - 1])
        highs.append(inf if hi_rank is None else ordered[hi_rank - 1])
    if single:
        return lows[0], highs[0]
    return torch.stack(lows), torch.stack(highs)


class MedianSmooth:
    """The percentile-smoothed regressor h_q of ``regressor`` under N(0, σ²I) noise (Chiang et al.
    2020), with certified bounds on every output over an ℓ2 ball.

    ``regressor`` maps a batch (m, *input_shape) to outputs (m, *out_shape), e.g. (m, k); it is put
    in eval mode and run under ``torch.inference_mode()``. ``sigma``: the noise's per-coordinate
    standard deviation.
    """

    def __init__(self, regressor: nn.Module, sigma: float):
        if not callable(regressor):
            raise ValueError(f"regressor must be a callable (an nn.Module); got {type(regressor).__name__}")
        self.regressor = regressor
        self.sigma = check_sigma(sigma)

    def sample(self, x: torch.Tensor, n: int, batch_size: int = 1000, generator=None) -> torch.Tensor:
        """The outputs f(x + ε_i) of n noisy copies of one input x (no batch dimension): a tensor
        (n, *out_shape) on x's device. Noise from a generator on x's device seeded from
        ``generator`` (a fresh random seed if None)."""
        n, batch_size = check_count("n", n), check_count("batch_size", batch_size)
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise ValueError(f"x must be a floating-point torch.Tensor (one input, no batch dimension); got "
                             f"{type(x).__name__ if not isinstance(x, torch.Tensor) else x.dtype}")
        device = _model_device(self.regressor)
        if device is not None and device != x.device:
            raise ValueError(f"x is on {x.device} but regressor is on {device}; move one of them")
        gen = torch.Generator(device=x.device).manual_seed(_child_seeds(generator, 1)[0])
        if isinstance(self.regressor, nn.Module):
            self.regressor.eval()
        outs = []
        with torch.inference_mode():
            for start in range(0, n, batch_size):
                m = min(batch_size, n - start)
                noise = torch.empty((m,) + tuple(x.shape), dtype=x.dtype, device=x.device)
                noise.normal_(0.0, self.sigma, generator=gen)
                out = self.regressor(noise.add_(x))
                if not isinstance(out, torch.Tensor) or out.ndim < 1 or len(out) != m:
                    raise ValueError(f"regressor must return a tensor (m, *out_shape) for m inputs; got "
                                     f"{getattr(out, 'shape', type(out).__name__)} for {m}")
                outs.append(out)
        return torch.cat(outs)

    def predict(self, x: torch.Tensor, n: int, q: float = 0.5, batch_size: int = 1000, generator=None):
        """The empirical q-quantile of n noisy outputs: a point estimate of h_q(x), not a bound."""
        q = check_level("q", q)
        samples = self.sample(x, n, batch_size, generator)
        return samples.sort(dim=0).values[min(n - 1, max(0, math.ceil(q * n) - 1))]

    def certify(self, x: torch.Tensor, n: int, alpha: float, eps: float, q: float = 0.5, *,
                batch_size: int = 1000, generator=None, joint: bool = False):
        """(lower, upper), tensors of the shape of one output ((k,) for f: ℝ^d → ℝ^k), such that
        with probability ≥ 1 − α over the n noise draws, for every δ with ‖δ‖₂ ≤ eps,
        lower_j ≤ h_q(x + δ)_j ≤ upper_j — for each output j separately, or for all outputs at
        once with ``joint=True`` (Bonferroni). −∞ / +∞ where n is too small for the rank to exist
        (see the module docstring). ``eps`` may also be a list of budgets (bounds stacked on a
        first axis, all from the same n samples; each holds at its level)."""
        n, alpha, q = check_count("n", n), check_level("alpha", alpha), check_level("q", q)
        budgets = [check_eps(e) for e in eps] if isinstance(eps, (list, tuple, np.ndarray)) else check_eps(eps)
        samples = self.sample(x, n, batch_size, generator)
        return bounds_from_samples(samples, q, budgets, self.sigma, alpha, joint)
