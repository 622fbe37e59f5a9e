"""The Neyman–Pearson lemma: most powerful tests, and the means to check that they are.

Neyman & Pearson (1933) show that among all regions A with P_X(A) ≤ P_X(S), the likelihood-ratio
region S = {q/p > t} has the largest P_Y(A) (and, symmetrically, S = {q/p < t} has the smallest
P_Y(A) among regions with P_X(A) ≥ P_X(S)). This module holds

* the discrete most powerful test of exact size α, randomized on the boundary:
  :func:`np_threshold` and :func:`np_test`;
* two independent optimizers the test is checked against: :func:`lp_most_powerful` (the linear
  program over randomized tests) and :func:`best_region` (the integer program over
  non-randomized regions);
* :func:`lr_roc`, the sizes and powers of every non-randomized likelihood-ratio test;
* :func:`random_discrete_pair`, random pairs with optional zeros and tied ratios;
* the Gaussian case N(0, σ²) against N(μ, σ²): :func:`gaussian_lr_threshold`,
  :func:`gaussian_np_power`, :func:`gaussian_np_power_lower`, and an exact discretization of the
  line into cells, :func:`gaussian_cells`;
* a vectorized random search over competing regions: :func:`candidate_scores` draws test
  statistics, :func:`fill_regions` turns them into regions of prescribed size, and
  :func:`random_regions` does both, in batches, for both halves of the lemma.

A "test" φ is a vector with entries in [0, 1]: the probability of rejecting (deciding for Y) at
each atom. Its size is Σ φ p (probability of deciding for Y under X) and its power Σ φ q.
"""

from __future__ import annotations

import contextlib
import os
import sys

import numpy as np
from scipy import stats
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

#: Families of competing test statistics drawn by :func:`candidate_scores`.
FAMILIES = ("random cells", "interval unions", "polynomial statistics", "noisy likelihood ratio")


# -- validation --------------------------------------------------------------------------------
def _check_alpha(alpha, name: str = "alpha") -> float:
    try:
        a = float(alpha)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in (0, 1); got {alpha!r}") from None
    if isinstance(alpha, bool) or not 0 < a < 1:
        raise ValueError(f"{name} must be in (0, 1); got {alpha!r}")
    return a


def _check_distribution(name: str, x, atol: float = 1e-9) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of probabilities; got shape {a.shape}")
    if not np.all(np.isfinite(a)) or np.any(a < 0):
        raise ValueError(f"{name} must have finite non-negative entries")
    if abs(a.sum() - 1.0) > atol:
        raise ValueError(f"{name} must sum to 1; got sum {a.sum()!r}")
    return a


def _check_pair(p, q) -> tuple[np.ndarray, np.ndarray]:
    p = _check_distribution("p", p)
    q = _check_distribution("q", q)
    if p.shape != q.shape:
        raise ValueError(f"p and q must have the same shape; got p {p.shape} and q {q.shape}")
    return p, q


def _check_mu(mu):
    m = np.asarray(mu, dtype=float)
    if not np.all(m > 0):
        raise ValueError(f"mu must be > 0 (the alternative lies to the right of the null); got {mu!r}")
    return m


def _check_sigma(sigma):
    s = np.asarray(sigma, dtype=float)
    if not np.all(s > 0):
        raise ValueError(f"sigma must be > 0; got {sigma!r}")
    return s


# -- discrete distributions: the randomized most powerful test ---------------------------------
def _ratio_groups(p: np.ndarray, q: np.ndarray, rtol: float):
    """Likelihood ratios q/p and the atoms grouped by tied ratio, largest ratio first.

    Returns ``(ratio, order, group)``: ``ratio`` is q/p (``inf`` where p = 0 < q, ``nan`` where
    p = q = 0); ``order`` lists the atoms with p > 0 by decreasing ratio; ``group[k]`` is the tie
    group of ``order[k]`` (0, 1, ...). Ratios within a relative ``rtol`` of the previous one are
    tied, so that ratios equal in exact arithmetic but not in floating point are pooled.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(p > 0, q / np.where(p > 0, p, 1.0), np.where(q > 0, np.inf, np.nan))
    finite = np.flatnonzero(p > 0)
    order = finite[np.argsort(-ratio[finite], kind="stable")]
    r = ratio[order]
    new = np.ones(r.size, dtype=bool)
    new[1:] = r[1:] < r[:-1] * (1.0 - rtol)
    group = np.cumsum(new) - 1
    return ratio, order, group


def _boundary(p: np.ndarray, q: np.ndarray, alpha: float, rtol: float):
    """:func:`_ratio_groups` plus the boundary group g and its rejection probability γ."""
    ratio, order, group = _ratio_groups(p, q, rtol)
    mass = np.bincount(group, weights=p[order])
    above = np.concatenate([[0.0], np.cumsum(mass)[:-1]])  # P_p(ratio > the group's ratio)
    crossing = np.flatnonzero(above + mass > alpha)
    g = int(crossing[0]) if crossing.size else len(mass) - 1  # float rounding with alpha near 1
    gamma = float(np.clip((alpha - above[g]) / mass[g], 0.0, 1.0))
    return ratio, order, group, g, gamma


def np_threshold(p, q, alpha, rtol: float = 1e-12) -> tuple[float, float]:
    """Threshold t and boundary probability γ of the most powerful size-α test of p against q.

    The test rejects where q/p > t and rejects with probability γ where q/p = t; t and γ are
    chosen so that its size under p is exactly α (Neyman & Pearson 1933). ``t`` is the largest
    ratio with P_p(q/p ≥ t) > α, and γ = (α − P_p(q/p > t)) / P_p(q/p = t) ∈ [0, 1]. Atoms with
    p = 0 < q have ratio +∞ and are always rejected (they cost no size). Ratios within a relative
    ``rtol`` are treated as tied.
    """
    p, q = _check_pair(p, q)
    alpha = _check_alpha(alpha)
    ratio, order, group, g, gamma = _boundary(p, q, alpha, rtol)
    t = float(ratio[order][np.flatnonzero(group == g)[0]])
    return t, gamma


def np_test(p, q, alpha, rtol: float = 1e-12) -> np.ndarray:
    """The Neyman–Pearson randomized test φ of p (null) against q (alternative) at level α.

    ``φ[i]`` is the probability of rejecting at atom i: 1 where q/p > t, γ where q/p = t (all
    tied atoms share γ), 0 where q/p < t, with t, γ from :func:`np_threshold`. Guarantee (the
    Neyman–Pearson lemma, Neyman & Pearson 1933): Σ φ p = α exactly (up to rounding), and every
    test φ' with 0 ≤ φ' ≤ 1 and Σ φ' p ≤ α has Σ φ' q ≤ Σ φ q. Atoms with p = q = 0 get φ = 0;
    atoms with p = 0 < q get φ = 1.

    Raises ValueError naming the argument if p or q is not a probability vector, if their shapes
    differ, or if α is not in (0, 1).
    """
    p, q = _check_pair(p, q)
    alpha = _check_alpha(alpha)
    ratio, order, group, g, gamma = _boundary(p, q, alpha, rtol)
    phi = np.zeros_like(p)
    phi[ratio == np.inf] = 1.0
    phi[order] = np.where(group < g, 1.0, np.where(group == g, gamma, 0.0))
    return phi


def lr_roc(p, q, rtol: float = 1e-12) -> tuple[np.ndarray, np.ndarray]:
    """Sizes and powers of every non-randomized likelihood-ratio test {q/p > t} (and {q/p ≥ t}).

    Returns increasing arrays ``(sizes, powers)``: entry k is (P_p, P_q) of the region made of
    the k tie groups with the largest ratios (entry 0: only the atoms with p = 0 < q). These are
    the only sizes a non-randomized likelihood-ratio test can have; the randomized tests of
    :func:`np_test` interpolate linearly between consecutive entries, which traces the (concave)
    optimal ROC curve.
    """
    p, q = _check_pair(p, q)
    ratio, order, group = _ratio_groups(p, q, rtol)
    q_inf = q[ratio == np.inf].sum()
    sizes = np.concatenate([[0.0], np.cumsum(np.bincount(group, weights=p[order]))])
    powers = q_inf + np.concatenate([[0.0], np.cumsum(np.bincount(group, weights=q[order]))])
    return sizes, powers


def lp_most_powerful(p, q, alpha) -> tuple[float, np.ndarray]:
    """The most powerful randomized test by linear programming (independent of :func:`np_test`).

    Solves max Σ φ q subject to Σ φ p ≤ α and 0 ≤ φ ≤ 1 with HiGHS (``scipy.optimize.linprog``)
    and returns ``(optimal power, φ)``. The optimum is exact up to the solver's tolerances
    (about 1e-9 here).
    """
    p, q = _check_pair(p, q)
    alpha = _check_alpha(alpha)
    res = linprog(-q, A_ub=p[None, :], b_ub=[alpha], bounds=(0.0, 1.0), method="highs")
    if res.status != 0:
        raise RuntimeError(f"linprog failed: {res.message}")
    return float(-res.fun), res.x


def best_region(p, q, size, sense: str = "max") -> np.ndarray:
    """The best non-randomized region by integer programming, over all 2^n subsets of the atoms.

    ``sense="max"``: a region A maximizing P_q(A) subject to P_p(A) ≤ ``size``;
    ``sense="min"``: a region A minimizing P_q(A) subject to P_p(A) ≥ ``size``.
    Solved exactly (relative gap 0) by HiGHS branch and bound (``scipy.optimize.milp``); returns
    the region as a boolean mask. The size constraint holds only up to HiGHS's feasibility
    tolerance (violations near 1e-6 occur with 100 atoms), so callers should recompute the
    region's size from the mask and compare at that size.
    """
    p, q = _check_pair(p, q)
    if sense not in ("max", "min"):
        raise ValueError(f"sense must be 'max' or 'min'; got {sense!r}")
    size = float(size)
    if not -1e-9 <= size <= 1 + 1e-9:  # sizes computed as sums may overshoot [0, 1] by rounding
        raise ValueError(f"size must be in [0, 1]; got {size!r}")
    size = min(max(size, 0.0), 1.0)
    n = p.size
    if sense == "max":
        c, con = -q, LinearConstraint(p[None, :], -np.inf, size)
    else:
        c, con = q, LinearConstraint(p[None, :], size, np.inf)
    with _native_output_silenced():
        res = milp(c, constraints=con, integrality=np.ones(n), bounds=Bounds(0, 1),
                   options={"mip_rel_gap": 0.0})
    if res.status != 0:
        raise RuntimeError(f"milp failed: {res.message}")
    return res.x > 0.5


@contextlib.contextmanager
def _native_output_silenced():
    """Send the C-level stdout to /dev/null for a moment.

    Some HiGHS builds print a stray debug line ("HighsMipSolverData::transformNewIntegerFeasible
    Solution tmpSolver.run();", ERGO-Code/HiGHS issue 2783) straight to file descriptor 1, past
    Python's ``sys.stdout``; it says nothing about the result.
    """
    try:
        fd = sys.__stdout__.fileno()
    except (AttributeError, OSError, ValueError):  # no real stdout: nothing to silence
        yield
        return
    sys.__stdout__.flush()
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)


def random_discrete_pair(rng: np.random.Generator, n_atoms: int, zeros: bool = False,
                         ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A random pair (p, q) of distributions on ``n_atoms`` atoms, uniform on the simplex.

    ``zeros=True`` sets about a quarter of the entries of p and of q to zero (never all of them);
    ``ties=True`` gives a random group of at least two atoms the same likelihood ratio q/p.
    """
    if int(n_atoms) != n_atoms or n_atoms < 2:
        raise ValueError(f"n_atoms must be an integer >= 2; got {n_atoms!r}")
    n = int(n_atoms)
    p, q = rng.dirichlet(np.ones(n)), rng.dirichlet(np.ones(n))
    if zeros:
        for x in (p, q):
            k = max(1, n // 4)
            x[rng.choice(n, size=min(k, n - 1), replace=False)] = 0.0
    if ties:
        support = np.flatnonzero(p > 0)
        if support.size >= 2:
            k = rng.integers(2, support.size + 1)
            tied = rng.choice(support, size=k, replace=False)
            q[tied] = p[tied] * rng.uniform(0.2, 3.0)
    return p / p.sum(), q / q.sum()


# -- the Gaussian case: N(0, σ²) against N(μ, σ²) ----------------------------------------------
def gaussian_lr_threshold(alpha, sigma: float = 1.0):
    """τ = σ Φ⁻¹(1 − α): the half-line {z > τ} has probability α under N(0, σ²).

    For μ > 0 the likelihood ratio of N(μ, σ²) to N(0, σ²) is increasing in z, so {z > τ} is the
    Neyman–Pearson region of size α. Broadcasts over α.
    """
    return _check_sigma(sigma) * stats.norm.isf(alpha)


def gaussian_np_power(mu, alpha, sigma: float = 1.0):
    """Power of the most powerful size-α test of N(0, σ²) against N(μ, σ²), μ > 0.

    ``Φ(μ/σ − Φ⁻¹(1 − α))`` = P(Y > σΦ⁻¹(1 − α)) for Y ~ N(μ, σ²). By the Neyman–Pearson lemma,
    no region A with P_X(A) ≤ α has a larger P_Y(A). Broadcasts over μ, α and σ (α = 0 gives 0,
    α = 1 gives 1).
    """
    return stats.norm.cdf(_check_mu(mu) / _check_sigma(sigma) - stats.norm.isf(alpha))


def gaussian_np_power_lower(mu, beta, sigma: float = 1.0):
    """Least P_Y(A) over regions with P_X(A) ≥ β, X ~ N(0, σ²), Y ~ N(μ, σ²), μ > 0.

    ``Φ(Φ⁻¹(β) − μ/σ)`` = P(Y < σΦ⁻¹(β)): the region {q/p < t} is the left half-line, and the
    "≥" half of the Neyman–Pearson lemma says no region of probability ≥ β under X has less
    probability under Y. With μ = ‖δ‖ it is the bound behind the certified radius of Gaussian
    smoothing (Cohen, Rosenfeld & Kolter 2019): it equals 1/2 at ‖δ‖ = σΦ⁻¹(β). Broadcasts over
    μ, β and σ.
    """
    return stats.norm.cdf(stats.norm.ppf(beta) - _check_mu(mu) / _check_sigma(sigma))


def _normal_mass(a: np.ndarray, b: np.ndarray, mean: float, sigma: float) -> np.ndarray:
    """P(a < Z ≤ b) for Z ~ N(mean, σ²), from the upper tail where it is small (no cancellation)."""
    za, zb = (a - mean) / sigma, (b - mean) / sigma
    return np.where(za >= 0, stats.norm.sf(za) - stats.norm.sf(zb), stats.norm.cdf(zb) - stats.norm.cdf(za))


def gaussian_cells(mu, grid_size: int, sigma: float = 1.0, width: float = 6.0):
    """Partition of the real line into ``grid_size`` cells and their exact masses under X and Y.

    The cells are (−∞, e₁], (e₁, e₂], ..., (e_{m−1}, ∞) with m − 1 equally spaced edges covering
    [min(0, μ) − width·σ, max(0, μ) + width·σ]. Returns ``(edges, centers, p, q)`` with
    ``p[i] = P(X ∈ cell i)``, X ~ N(0, σ²), and ``q[i] = P(Y ∈ cell i)``, Y ~ N(μ, σ²) (both
    summing to 1). A union of cells therefore has *exactly* the probabilities Σ p and Σ q: the
    grid restricts which regions are tried, not the accuracy of their sizes and powers.
    ``centers`` are the cell midpoints (the two unbounded cells get a point half a cell outside
    the outermost edge).
    """
    mu, sigma = float(_check_mu(mu)), float(_check_sigma(sigma))
    if int(grid_size) != grid_size or grid_size < 3:
        raise ValueError(f"grid_size must be an integer >= 3; got {grid_size!r}")
    inner = np.linspace(min(0.0, mu) - width * sigma, max(0.0, mu) + width * sigma, int(grid_size) - 1)
    edges = np.concatenate([[-np.inf], inner, [np.inf]])
    h = inner[1] - inner[0]
    centers = np.concatenate([[inner[0] - h / 2], (inner[:-1] + inner[1:]) / 2, [inner[-1] + h / 2]])
    p = _normal_mass(edges[:-1], edges[1:], 0.0, sigma)
    q = _normal_mass(edges[:-1], edges[1:], mu, sigma)
    return edges, centers, p, q


# -- the random search over competing regions --------------------------------------------------
def candidate_scores(rng: np.random.Generator, centers, n: int, family: str) -> np.ndarray:
    """``n`` random test statistics evaluated at the cell ``centers``: an (n, cells) array.

    A region is then "the cells with the largest statistic", filled up to a size by
    :func:`fill_regions`. Families (:data:`FAMILIES`):

    * ``random cells``: i.i.d. uniform scores, i.e. random subsets of cells;
    * ``interval unions``: −min_j |z − c_j| / w_j over 1 to 4 random centers c_j and widths w_j,
      whose super-level sets are unions of up to 4 intervals;
    * ``polynomial statistics``: a₁z + a₂z² + a₃z³ with standard normal coefficients (two-sided
      tests, tests in the wrong direction, ...);
    * ``noisy likelihood ratio``: z + s·ξ with i.i.d. standard normal ξ per cell and a noise
      scale s log-uniform in [10⁻³, 10]: perturbations of the Neyman–Pearson statistic itself.
    """
    z = np.asarray(centers, dtype=float)
    m = z.size
    if family == "random cells":
        return rng.random((n, m))
    if family == "interval unions":
        k = rng.integers(1, 5, size=n)
        c = rng.uniform(z[0], z[-1], size=(n, 4))
        w = 10.0 ** rng.uniform(-1, 1, size=(n, 4))
        d = np.abs(z[None, None, :] - c[:, :, None]) / w[:, :, None]
        d[np.arange(4)[None, :] >= k[:, None]] = np.inf
        return -d.min(axis=1)
    if family == "polynomial statistics":
        a = rng.standard_normal((n, 3))
        return a[:, :1] * z + a[:, 1:2] * z**2 + a[:, 2:] * z**3
    if family == "noisy likelihood ratio":
        s = 10.0 ** rng.uniform(-3, 1, size=(n, 1))
        return z[None, :] + s * rng.standard_normal((n, m))
    raise ValueError(f"family must be one of {', '.join(FAMILIES)}; got {family!r}")


def fill_regions(scores, p, q, budgets, at_least: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Sizes and powers of the regions "cells with the largest score", filled up to each budget.

    Cells are added in decreasing order of score (one order per row of ``scores``). With
    ``at_least=False`` the region is the longest prefix of that order with P_p ≤ budget; with
    ``at_least=True`` it is the shortest prefix with P_p ≥ budget. Returns two arrays of shape
    (rows, budgets): the regions' exact sizes Σ p and powers Σ q (up to rounding, and clipped to
    [0, 1]). Fully
    vectorized: one sort per row, whatever the number of budgets.
    """
    scores = np.atleast_2d(np.asarray(scores, dtype=float))
    p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    if scores.shape[1] != p.size or p.shape != q.shape:
        raise ValueError(f"scores must have one column per cell; got scores {scores.shape}, p {p.shape}, q {q.shape}")
    budgets = np.atleast_1d(np.asarray(budgets, dtype=float))
    order = np.argsort(-scores, axis=1, kind="stable")
    cp = np.cumsum(p[order], axis=1)
    cq = np.cumsum(q[order], axis=1)
    rows = np.arange(scores.shape[0])[:, None]
    if at_least:
        k = np.minimum((cp[:, :, None] < budgets).sum(axis=1) + 1, p.size)  # (rows, budgets)
    else:
        k = (cp[:, :, None] <= budgets).sum(axis=1)
    idx = np.maximum(k - 1, 0)
    sizes = np.clip(np.where(k > 0, cp[rows, idx], 0.0), 0.0, 1.0)  # clip: sums may round past 1
    powers = np.clip(np.where(k > 0, cq[rows, idx], 0.0), 0.0, 1.0)
    return sizes, powers


def random_regions(rng: np.random.Generator, centers, p, q, budgets, n: int, family: str,
                   batch: int | None = None) -> dict[str, np.ndarray]:
    """Sizes and powers of ``n`` random regions of ``family`` at each budget, in both directions.

    Draws ``n`` statistics with :func:`candidate_scores` (in batches of ``batch`` rows, by default
    about two million scores per batch, to bound memory) and fills each into two regions per budget b with :func:`fill_regions`:

    * ``"le"``: the cells with the *largest* statistic, as many as fit in P_p ≤ b (competitors
      of the region {q/p > t} in part 1 of the lemma);
    * ``"ge"``: the cells with the *smallest* statistic, as few as reach P_p ≥ b (competitors of
      {q/p < t} in part 2).

    Returns a dict of (n, budgets) arrays: ``size_le``, ``power_le``, ``size_ge``, ``power_ge``.
    """
    out: dict[str, list] = {"size_le": [], "power_le": [], "size_ge": [], "power_ge": []}
    batch = batch or max(1, 2_000_000 // np.size(centers))
    for start in range(0, int(n), batch):
        scores = candidate_scores(rng, centers, min(batch, int(n) - start), family)
        s, pw = fill_regions(scores, p, q, budgets)
        out["size_le"].append(s)
        out["power_le"].append(pw)
        s, pw = fill_regions(-scores, p, q, budgets, at_least=True)
        out["size_ge"].append(s)
        out["power_ge"].append(pw)
    width = np.atleast_1d(budgets).size
    return {k: np.concatenate(v) if v else np.empty((0, width)) for k, v in out.items()}
