"""Certified radii, the confidence bounds they are computed from, and the Monte Carlo counts
those bounds are computed from.

* :func:`cohen_radius` — the ℓ2 radius of Gaussian randomized smoothing (Cohen, Rosenfeld &
  Kolter 2019, Theorem 1): if P[f(x+ε)=A] ≥ p̲_A ≥ p̄_B ≥ max_{c≠A} P[f(x+ε)=c] with
  ε ~ N(0, σ²I), then g(x+δ) = A for all ‖δ‖₂ < R = (σ/2)(Φ⁻¹(p̲_A) − Φ⁻¹(p̄_B)).
* :func:`clopper_pearson_lower` / :func:`clopper_pearson_upper` — exact one-sided binomial
  confidence bounds (Clopper & Pearson 1934), from SciPy's Beta quantiles.
* :func:`radius_from_votes` — the radius CERTIFY (Cohen et al. 2019, Alg. 1) reports from a vote
  count: σΦ⁻¹ of the Clopper–Pearson lower bound on p_A.
* :func:`radius_cap` — the largest radius n samples can certify: σΦ⁻¹(α^{1/n}).
* :func:`smoothed_counts` — Monte Carlo class counts of f(x + ε), ε ~ N(0, σ²I), drawn from an
  explicit torch generator.
* :func:`linear_radius` — the exact ℓ2 distance |wᵀx + b| / ‖w‖ to a linear decision boundary.
* :func:`lipschitz_radius` — the margin certificate ε / (2L) of an L-Lipschitz logit map.

Every function checks its arguments and raises :class:`ValueError` naming the offending one.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy import stats


def _check_sigma(sigma):
    s = np.asarray(sigma, dtype=float)
    if not np.all(s > 0) or not np.all(np.isfinite(s)):
        raise ValueError(f"sigma must be > 0 and finite; got {sigma!r}")
    return s


def _check_prob(name, p):
    a = np.asarray(p, dtype=float)
    if not np.all((a >= 0) & (a <= 1)):
        raise ValueError(f"{name} must be a probability in [0, 1]; got {p!r}")
    return a


def _check_alpha(alpha):
    a = np.asarray(alpha, dtype=float)
    if a.ndim != 0 or not 0 < float(a) < 1:
        raise ValueError(f"alpha must be a number in (0, 1); got {alpha!r}")
    return float(a)


def _check_counts(k, n):
    n_arr = np.asarray(n)
    k_arr = np.asarray(k)
    if (n_arr.dtype.kind not in "iuf" or np.any(n_arr < 1) or np.any(n_arr != np.floor(n_arr))):
        raise ValueError(f"n must be an integer >= 1; got {n!r}")
    if (k_arr.dtype.kind not in "iuf" or np.any(k_arr < 0) or np.any(k_arr > n_arr)
            or np.any(k_arr != np.floor(k_arr))):
        raise ValueError(f"k must be an integer with 0 <= k <= n; got k={k!r}, n={n!r}")
    return k_arr.astype(float), n_arr.astype(float)


def cohen_radius(sigma, p_a_lower, p_b_upper=None):
    """Certified ℓ2 radius of the Gaussian-smoothed classifier (Cohen et al. 2019, Thm. 1).

    ``R = (σ/2)(Φ⁻¹(p_a_lower) − Φ⁻¹(p_b_upper))``; with ``p_b_upper`` omitted it is taken as
    ``1 − p_a_lower`` and ``R = σ Φ⁻¹(p_a_lower)``. Broadcasts over arrays. A value ≤ 0 means
    no certificate (the bounds do not separate A from B); ``p_a_lower = 1`` gives ``inf``.

    Guarantee: if P[f(x+ε)=A] ≥ p_a_lower ≥ p_b_upper ≥ max_{c≠A} P[f(x+ε)=c] for
    ε ~ N(0, σ²I), the smoothed classifier g(z) = argmax_c P[f(z+ε)=c] predicts A on the whole
    open ball ‖δ‖₂ < R around x. The radius is tight: a linear (half-space) f attains it.
    """
    s = _check_sigma(sigma)
    pa = _check_prob("p_a_lower", p_a_lower)
    if p_b_upper is None:
        r = s * stats.norm.ppf(pa)
    else:
        pb = _check_prob("p_b_upper", p_b_upper)
        r = 0.5 * s * (stats.norm.ppf(pa) - stats.norm.ppf(pb))
    return r[()] if np.ndim(r) == 0 else r


def clopper_pearson_lower(k, n, alpha):
    """One-sided (1−α) Clopper–Pearson lower bound on a binomial proportion from k successes in n.

    ``B(α; k, n−k+1)``, the α-quantile of a Beta distribution; 0 when k = 0; α^{1/n} when k = n.
    Guarantee (Clopper & Pearson 1934): with probability at least 1−α over the draw of
    k ~ Bin(n, p), the bound is ≤ p, whatever p is. Broadcasts over k and n.
    """
    alpha = _check_alpha(alpha)
    k, n = _check_counts(k, n)
    with np.errstate(invalid="ignore"):
        lo = stats.beta.ppf(alpha, k, n - k + 1)
    lo = np.where(k == 0, 0.0, lo)
    return lo[()] if np.ndim(lo) == 0 else lo


def clopper_pearson_upper(k, n, alpha):
    """One-sided (1−α) Clopper–Pearson upper bound: ``B(1−α; k+1, n−k)``; 1 when k = n.

    Guarantee: with probability at least 1−α over k ~ Bin(n, p), the bound is ≥ p.
    """
    alpha = _check_alpha(alpha)
    k, n = _check_counts(k, n)
    with np.errstate(invalid="ignore"):
        hi = stats.beta.ppf(1 - alpha, k + 1, n - k)
    hi = np.where(k == n, 1.0, hi)
    return hi[()] if np.ndim(hi) == 0 else hi


def radius_from_votes(count_a, n, sigma, alpha):
    """The radius CERTIFY reports (Cohen et al. 2019, Alg. 1): ``σ Φ⁻¹(p̲_A)`` with p̲_A the
    one-sided (1−α) Clopper–Pearson lower bound from ``count_a`` votes for A out of ``n``.

    A value ≤ 0 means abstain (p̲_A ≤ 1/2). Guarantee: with probability at least 1−α over the
    n noise draws (which must be independent of the choice of A), the smoothed classifier
    predicts A on the open ball of the returned radius.
    """
    return cohen_radius(sigma, clopper_pearson_lower(count_a, n, alpha))


def radius_cap(sigma, n, alpha):
    """Largest radius CERTIFY can return with n samples at level α: ``σ Φ⁻¹(α^{1/n})``.

    Even when all n samples vote for A, the Clopper–Pearson lower bound is α^{1/n} < 1.
    """
    _check_alpha(alpha)
    n = np.asarray(n, dtype=float)
    if np.any(~(n >= 1)):
        raise ValueError(f"n must be >= 1; got {n!r}")
    return cohen_radius(sigma, np.power(alpha, 1.0 / n))


def smoothed_counts(classify: Callable, x, sigma, n, generator, num_classes: int = 2,
                    batch_size: int = 1 << 22):
    """Monte Carlo class counts of the base classifier under Gaussian noise.

    Draws ``n`` independent ε ~ N(0, σ²I) per point from ``generator`` (a ``torch.Generator``,
    so runs are reproducible) and counts the labels ``classify(x + ε)``. ``x`` is one point
    (shape ``(d,)``, returns counts of shape ``(num_classes,)``) or a batch (``(k, d)``, returns
    ``(k, num_classes)``), as a tensor or array; noise lives on the generator's device.
    ``classify`` maps an ``(m, d)`` tensor to ``m`` integer labels in ``[0, num_classes)``.
    ``batch_size`` bounds the number of noise coordinates held at once.

    The counts of each point are Binomial(n, P[f(x+ε)=c]) for each class c, as the
    Clopper–Pearson bounds (and so :func:`radius_from_votes`) require.
    """
    import torch

    s = float(_check_sigma(sigma))
    if np.ndim(sigma) != 0:
        raise ValueError(f"sigma must be a scalar; got {sigma!r}")
    if int(n) != n or n < 1:
        raise ValueError(f"n must be an integer >= 1; got {n!r}")
    if int(num_classes) != num_classes or num_classes < 1:
        raise ValueError(f"num_classes must be an integer >= 1; got {num_classes!r}")
    n, num_classes = int(n), int(num_classes)
    device = generator.device
    xt = torch.as_tensor(x, device=device)
    if not xt.is_floating_point():
        xt = xt.to(torch.float64)
    single = xt.ndim == 1
    if single:
        xt = xt[None]
    if xt.ndim != 2:
        raise ValueError(f"x must have shape (d,) or (k, d); got {tuple(xt.shape)}")
    k, d = xt.shape
    chunk = max(1, int(batch_size) // max(1, k * d))
    counts = torch.zeros(k * num_classes, dtype=torch.int64, device=device)
    offset = torch.arange(k, device=device) * num_classes
    done = 0
    while done < n:
        m = min(chunk, n - done)
        noise = torch.randn((m, k, d), generator=generator, device=device, dtype=xt.dtype)
        labels = torch.as_tensor(classify((xt[None] + s * noise).reshape(m * k, d)), device=device)
        labels = labels.reshape(m, k).to(torch.int64)
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
            raise ValueError(f"classify returned labels outside [0, {num_classes})")
        counts += torch.bincount((labels + offset).reshape(-1), minlength=k * num_classes)
        done += m
    out = counts.reshape(k, num_classes).cpu().numpy()
    return out[0] if single else out


def linear_radius(w, b, x):
    """Exact ℓ2 distance from x to the hyperplane wᵀx + b = 0: ``|wᵀx + b| / ‖w‖``.

    ``x`` may be a batch (rows). For the binary linear classifier sign(wᵀx + b), no perturbation
    smaller than this changes the prediction and one of exactly this size does. Its Gaussian
    smoothing is the same classifier, and :func:`cohen_radius` with the exact p_A equals this
    distance (the half-space is the worst case of Cohen et al.'s Theorem 1).
    """
    w = np.asarray(w, dtype=float)
    if w.ndim != 1:
        raise ValueError(f"w must be a vector; got shape {w.shape}")
    norm = np.linalg.norm(w)
    if not norm > 0 or not np.isfinite(norm):
        raise ValueError(f"w must be non-zero and finite; got {w!r}")
    return np.abs(np.asarray(x, dtype=float) @ w + b) / norm


def lipschitz_radius(margin, lipschitz):
    """Margin certificate: a logit map that is L-Lipschitz (ℓ2 → ℓ∞ per logit) with top-logit
    margin m keeps its prediction on the ball of radius ``m / (2L)``.

    Each logit moves by at most L‖δ‖, so the margin shrinks by at most 2L‖δ‖.
    """
    lip = np.asarray(lipschitz, dtype=float)
    if np.any(lip <= 0):
        raise ValueError(f"lipschitz must be > 0; got {lipschitz!r}")
    return np.maximum(np.asarray(margin, dtype=float), 0.0) / (2.0 * lip)
