"""Unit tests of georobust.theory.neyman_pearson: the randomized most powerful test and its checkers."""

import itertools

import numpy as np
import pytest
from scipy import stats

from georobust.theory import neyman_pearson as npl

LEVELS = (1e-9, 0.01, 0.05, 0.1, 0.25, 0.5, 0.9, 1 - 1e-9)


def pairs(seed, count=30, n=12):
    rng = np.random.default_rng(seed)
    for i in range(count):
        yield npl.random_discrete_pair(rng, n, zeros=i % 3 == 1, ties=i % 3 == 2)


def all_subsets(n):
    return np.array(list(itertools.product([False, True], repeat=n)))


# -- np_test: size, form, optimality ----------------------------------------------------------
@pytest.mark.parametrize("alpha", LEVELS)
def test_size_is_exactly_alpha(alpha):
    for p, q in pairs(1):
        phi = npl.np_test(p, q, alpha)
        assert np.all((phi >= 0) & (phi <= 1))
        assert phi @ p == pytest.approx(alpha, abs=1e-12)


@pytest.mark.parametrize("alpha", LEVELS[1:-1])
def test_power_equals_linear_programming_optimum(alpha):
    for p, q in pairs(2, n=25):
        phi = npl.np_test(p, q, alpha)
        lp_power, lp_phi = npl.lp_most_powerful(p, q, alpha)
        assert lp_phi @ p <= alpha + 1e-9
        assert phi @ q == pytest.approx(lp_power, abs=1e-9)


def test_test_has_the_neyman_pearson_form():
    for p, q in pairs(3):
        for alpha in (0.05, 0.3, 0.7):
            t, gamma = npl.np_threshold(p, q, alpha)
            phi = npl.np_test(p, q, alpha)
            with np.errstate(divide="ignore", invalid="ignore"):
                r = np.where(p > 0, q / np.where(p > 0, p, 1), np.where(q > 0, np.inf, np.nan))
            above, below = r > t * (1 + 1e-12), r < t * (1 - 1e-12)
            tied = ~above & ~below & ~np.isnan(r)
            assert np.all(phi[above] == 1) and np.all(phi[below] == 0)
            assert tied.any() and np.all(phi[tied] == gamma)
            assert 0 <= gamma <= 1


def test_ties_share_the_boundary_probability():
    p = np.full(4, 0.25)
    q = np.array([0.1, 0.2, 0.2, 0.5])  # ratios 0.4, 0.8, 0.8, 2
    phi = npl.np_test(p, q, 0.375)
    assert phi == pytest.approx([0.0, 0.25, 0.25, 1.0], abs=1e-15)
    t, gamma = npl.np_threshold(p, q, 0.375)
    assert t == pytest.approx(0.8) and gamma == pytest.approx(0.25)


def test_ties_up_to_rounding_are_pooled():
    p = np.array([0.1, 0.7, 0.2])
    q = np.array([0.1 * 0.7, 0.7 * 0.7, 0.44])  # ratios 0.7 (twice, in exact arithmetic) and 2.2
    r = q[:2] / p[:2]
    assert r[0] != r[1]  # the tie is broken by floating point, so the test below means something
    phi = npl.np_test(p, q, 0.5)
    assert phi == pytest.approx([0.375, 0.375, 1.0], abs=1e-15)
    assert phi @ p == pytest.approx(0.5, abs=1e-15)


def test_zero_null_probability_is_rejected_for_free():
    p = np.array([0.0, 0.0, 0.5, 0.5])
    q = np.array([0.2, 0.0, 0.3, 0.5])  # atom 0: ratio +inf; atom 1: p = q = 0
    phi = npl.np_test(p, q, 0.25)
    assert phi[0] == 1 and phi[1] == 0
    assert phi @ p == pytest.approx(0.25)
    assert phi @ q == pytest.approx(0.2 + 0.5 * 0.5)
    assert phi @ q == pytest.approx(npl.lp_most_powerful(p, q, 0.25)[0], abs=1e-9)


def test_zero_alternative_probability_is_randomized_last():
    p, q = np.array([0.5, 0.5]), np.array([1.0, 0.0])
    assert npl.np_test(p, q, 0.75) == pytest.approx([1.0, 0.5])
    assert npl.np_threshold(p, q, 0.75) == (0.0, pytest.approx(0.5))


def test_identical_distributions_randomize_everywhere():
    p = np.array([0.2, 0.3, 0.5])
    phi = npl.np_test(p, p, 0.1)
    assert phi == pytest.approx(np.full(3, 0.1))


# -- the lemma itself, by enumeration of every region ------------------------------------------
def test_lemma_against_every_region():
    n = 10
    subsets = all_subsets(n)
    for p, q in pairs(4, count=12, n=n):
        sizes_x, sizes_y = subsets @ p, subsets @ q
        lr_sizes, lr_powers = npl.lr_roc(p, q)
        for k in range(len(lr_sizes) - 1):
            # part 1: S = {q > t p}, t the ratio of tie group k
            assert np.all(sizes_y[sizes_x <= lr_sizes[k] + 1e-15] <= lr_powers[k] + 1e-12)
            # part 2: S = {q < t p}, the complement of {q >= t p}
            s_size, s_power = 1 - lr_sizes[k + 1], 1 - lr_powers[k + 1]
            assert np.all(sizes_y[sizes_x >= s_size - 1e-15] >= s_power - 1e-12)
        # and no region beats the randomized test at its own size
        for alpha in (0.05, 0.2, 0.5):
            best = sizes_y[sizes_x <= alpha].max()
            assert best <= npl.np_test(p, q, alpha) @ q + 1e-12


def test_best_region_matches_enumeration():
    n = 10
    subsets = all_subsets(n)
    for p, q in pairs(5, count=10, n=n):
        sizes_x, sizes_y = subsets @ p, subsets @ q
        for size in (0.05, 0.3, 0.7):
            a = npl.best_region(p, q, size, "max")
            assert q[a].sum() == pytest.approx(sizes_y[sizes_x <= size].max(), abs=1e-9)
            b = npl.best_region(p, q, size, "min")
            assert q[b].sum() == pytest.approx(sizes_y[sizes_x >= size].min(), abs=1e-9)


def test_best_region_keeps_stdout_working(capfd):
    p, q = next(pairs(6, n=20))
    npl.best_region(p, q, 0.1)
    print("still here")
    assert "still here" in capfd.readouterr().out


def test_lr_roc_vertices_are_sizes_of_the_randomized_test():
    for p, q in pairs(7, count=10):
        sizes, powers = npl.lr_roc(p, q)
        assert np.all(np.diff(sizes) > 0) and np.all(np.diff(powers) >= 0)
        assert sizes[-1] == pytest.approx(1) and powers[-1] == pytest.approx(1)
        for s, pw in zip(sizes[1:-1], powers[1:-1]):
            assert npl.np_test(p, q, s) @ q == pytest.approx(pw, abs=1e-12)


# -- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize("alpha", [0, 1, -0.1, 1.5, float("nan"), "0.1x", None, True])
def test_alpha_outside_unit_interval_is_rejected(alpha):
    with pytest.raises(ValueError, match="alpha"):
        npl.np_test([0.5, 0.5], [0.2, 0.8], alpha)
    with pytest.raises(ValueError, match="alpha"):
        npl.np_threshold([0.5, 0.5], [0.2, 0.8], alpha)


def test_mismatched_shapes_are_rejected():
    with pytest.raises(ValueError, match="p and q"):
        npl.np_test([0.5, 0.5], [0.2, 0.3, 0.5], 0.1)


@pytest.mark.parametrize("p, q, name", [
    ([0.5, 0.6], [0.5, 0.5], "p"),
    ([0.5, 0.5], [1.5, -0.5], "q"),
    ([[0.5, 0.5]], [[0.5, 0.5]], "p"),
    ([], [], "p"),
    ([0.5, np.nan], [0.5, 0.5], "p"),
])
def test_bad_distributions_are_rejected(p, q, name):
    with pytest.raises(ValueError, match=f"^{name} "):
        npl.np_test(p, q, 0.1)


def test_other_bad_arguments():
    with pytest.raises(ValueError, match="sense"):
        npl.best_region([0.5, 0.5], [0.2, 0.8], 0.1, "maximum")
    with pytest.raises(ValueError, match="size"):
        npl.best_region([0.5, 0.5], [0.2, 0.8], 1.5)
    with pytest.raises(ValueError, match="mu"):
        npl.gaussian_np_power(0.0, 0.05)
    with pytest.raises(ValueError, match="sigma"):
        npl.gaussian_np_power_lower(1.0, 0.05, sigma=-1.0)
    with pytest.raises(ValueError, match="grid_size"):
        npl.gaussian_cells(1.0, 2)
    with pytest.raises(ValueError, match="family"):
        npl.candidate_scores(np.random.default_rng(0), np.zeros(5), 3, "halfspaces")
    with pytest.raises(ValueError, match="n_atoms"):
        npl.random_discrete_pair(np.random.default_rng(0), 1)


# -- the Gaussian case -------------------------------------------------------------------------
@pytest.mark.parametrize("mu, sigma", [(0.5, 1.0), (1.0, 0.3), (3.0, 2.0)])
def test_gaussian_threshold_and_powers(mu, sigma):
    alpha = np.array([0.001, 0.05, 0.5, 0.9])
    tau = npl.gaussian_lr_threshold(alpha, sigma)
    assert stats.norm.sf(tau / sigma) == pytest.approx(alpha, rel=1e-12)
    assert npl.gaussian_np_power(mu, alpha, sigma) == pytest.approx(stats.norm.sf((tau - mu) / sigma), rel=1e-12)
    tau_low = sigma * stats.norm.ppf(alpha)  # the left half-line of size alpha
    assert npl.gaussian_np_power_lower(mu, alpha, sigma) == pytest.approx(stats.norm.cdf((tau_low - mu) / sigma), rel=1e-12)
    assert npl.gaussian_np_power(mu, 0.0) == 0 and npl.gaussian_np_power(mu, 1.0) == 1


def test_gaussian_lower_bound_is_one_half_at_the_certified_radius():
    p_a, sigma = np.array([0.6, 0.9, 0.999]), np.array([0.25, 0.5, 1.0])
    radius = sigma * stats.norm.ppf(p_a)
    assert npl.gaussian_np_power_lower(radius, p_a, sigma) == pytest.approx(0.5, abs=1e-12)


def test_gaussian_cells_are_exact():
    mu, m = 1.5, 101
    edges, centers, p, q = npl.gaussian_cells(mu, m)
    assert p.size == q.size == centers.size == m and edges.size == m + 1
    assert p.sum() == pytest.approx(1, abs=1e-14) and q.sum() == pytest.approx(1, abs=1e-14)
    assert np.all(np.diff(centers) > 0)
    for k in (1, 40, 99):  # the union of cells k.. is the half-line (edges[k], inf)
        assert p[k:].sum() == pytest.approx(stats.norm.sf(edges[k]), rel=1e-10)
        assert q[k:].sum() == pytest.approx(stats.norm.sf(edges[k] - mu), rel=1e-10)


# -- the region search -------------------------------------------------------------------------
def test_fill_regions_matches_a_loop():
    rng = np.random.default_rng(8)
    _, centers, p, q = npl.gaussian_cells(1.0, 60)
    scores = rng.random((20, 60))
    budgets = np.array([0.05, 0.3, 0.8])
    for at_least in (False, True):
        sizes, powers = npl.fill_regions(scores, p, q, budgets, at_least=at_least)
        for i in range(20):
            order = np.argsort(-scores[i], kind="stable")
            for j, b in enumerate(budgets):
                size = power = 0.0
                for c in order:
                    if at_least and size >= b:
                        break
                    if not at_least and size + p[c] > b:
                        break
                    size, power = size + p[c], power + q[c]
                assert sizes[i, j] == pytest.approx(size, abs=1e-12)
                assert powers[i, j] == pytest.approx(power, abs=1e-12)
                assert (size >= b) if at_least else (size <= b)


@pytest.mark.parametrize("family", npl.FAMILIES)
def test_random_regions_respect_the_lemma(family):
    mu = 1.0
    _, centers, p, q = npl.gaussian_cells(mu, 200)
    levels = np.array([0.05, 0.5])
    r = npl.random_regions(np.random.default_rng(9), centers, p, q, levels, 250, family, batch=100)
    assert all(v.shape == (250, 2) for v in r.values())
    assert np.all(r["size_le"] <= levels + 1e-12) and np.all(r["size_ge"] >= levels - 1e-12)
    assert np.all(r["power_le"] <= npl.gaussian_np_power(mu, r["size_le"]) + 1e-9)
    assert np.all(r["power_ge"] >= npl.gaussian_np_power_lower(mu, r["size_ge"]) - 1e-9)


def test_the_checks_can_fail():
    """The comparisons the chapter makes do detect a region that is better than claimed."""
    mu = 1.0
    _, centers, p, q = npl.gaussian_cells(mu, 400)
    # against the power of the *wrong* half-line (the left one), the right half-line wins
    sizes, powers = npl.fill_regions(centers[None, :], p, q, [0.1])
    assert powers[0, 0] > npl.gaussian_np_power_lower(mu, 0.1) + 0.1
    # a test of size alpha that orders the atoms the wrong way loses to the LP optimum
    rng = np.random.default_rng(10)
    p2, q2 = rng.dirichlet(np.ones(15)), rng.dirichlet(np.ones(15))
    reversed_ratio = p2**2 / q2  # q'/p = p/q: the likelihood ratio upside down
    wrong = npl.np_test(p2, reversed_ratio / reversed_ratio.sum(), 0.2)
    assert wrong @ p2 == pytest.approx(0.2)
    assert wrong @ q2 < npl.lp_most_powerful(p2, q2, 0.2)[0] - 1e-3
    # and so does the coin flip phi = alpha, which has size alpha and power alpha
    assert 0.2 < npl.np_test(p2, q2, 0.2) @ q2 - 1e-3
