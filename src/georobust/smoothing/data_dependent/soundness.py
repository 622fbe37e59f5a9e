"""What a data-dependent certificate is worth: the counterexample, memory-based certification, and a
variant sound by construction.

Let σ(·) choose the noise from the input and G(x) = argmax_c P[f(x + σ(x) z) = c] (the smoothed
classifier that data-dependent smoothing actually uses at x). The per-input ("naive") certificate
certifies g_{σ(x)} — smoothing with the **fixed** noise σ(x) — around x. At a point x' of that
region G uses σ(x') ≠ σ(x), so nothing ties G(x') to g_{σ(x)}(x') (Súkeník, Kuvshinov & Günnemann,
ICML 2022; Alfarra et al. 2022, who propose the memory-based fix).

* :func:`stripe_probabilities`, :func:`ideal_ddrs`, :func:`naive_violations` — an exact 1-D
  example (no Monte Carlo): the stripe f(u) = [|u| < a], σ(x) the exact maximizer of DDRS's
  radius over a grid, and the pairs (x, x') where x' lies in the certified interval of x but
  G(x') ≠ G(x).
* :func:`memory_certify` — memory-based certification as the DDRS authors' released code applies
  it (``post_processing_memory_based.py`` of MotasemAlfarra/Data_Dependent_Randomized_Smoothing,
  commit 3a06e82): inputs in order; each stored with its prediction and ℓ2 radius; a new input
  whose ball meets the ball of a stored input of another class gets the radius
  min_j(‖x − x_j‖ − r_j) over those, and, if that is negative (x inside a stored ball), the stored
  class and radius r_j − ‖x − x_j‖. It never abstains. The result depends on the order.
* :class:`VoronoiPartition`, :class:`PartitionSmooth` — sound by construction: the noise is fixed
  per cell of a partition of input space chosen before any test input is seen (Voronoi cells of
  centroids fitted on training inputs, one covariance per cell optimized on training inputs).
  The classifier is G(x) = g_{k(x)}(x) with k(x) the cell of x; the region certified is the
  ellipsoid of g_k intersected with the cell, and its ℓ2 radius min(σ_min(C_k)·gap, distance from
  x to the cell's boundary). Proof: for x' = x + δ in the same cell, G(x') = g_k(x'), and the
  anisotropic certificate of the fixed noise C_k applies. ∎
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import stats
from scipy.cluster.vq import kmeans2

from ..anisotropic import AnisotropicSmooth, as_scale, radius_l2
from ..smooth import ABSTAIN

__all__ = ["stripe_probabilities", "ideal_ddrs", "naive_violations", "memory_certify", "VoronoiPartition",
           "PartitionSmooth", "CERTIFICATE_LABELS"]

CERTIFICATE_LABELS = {
    "sound": "sound",
    "memory": "memory-based",
    "per-input": "per-input (not a certificate of one classifier)",
}


# --------------------------------------------------------------------------- the exact 1-D counterexample
def stripe_probabilities(x, sigma, half_width: float):
    """P[|x + σz| < a] for z ~ N(0, 1): the exact smoothed probability of class 1 of the stripe
    classifier f(u) = [|u| < a] (broadcast over x and σ)."""
    x, sigma = np.asarray(x, dtype=float), np.asarray(sigma, dtype=float)
    return stats.norm.cdf((half_width - x) / sigma) - stats.norm.cdf((-half_width - x) / sigma)


def ideal_ddrs(p_one, sigmas, p_cap: float = 0.999):
    """DDRS with exact probabilities: for each input, the σ on the grid ``sigmas`` maximizing
    Cohen's radius σ·Φ⁻¹(max(p, 1 − p)) (two classes; p capped at ``p_cap``, the most a finite
    sample certifies). ``p_one``: array (inputs, len(sigmas)) of P[class 1]. Returns (σ*(x),
    G(x) ∈ {0, 1}, radius)."""
    p_one = np.asarray(p_one, dtype=float)
    top = np.minimum(np.maximum(p_one, 1 - p_one), p_cap)
    radius = np.asarray(sigmas)[None, :] * stats.norm.ppf(top)
    best = radius.argmax(1)
    rows = np.arange(len(p_one))
    return np.asarray(sigmas)[best], (p_one[rows, best] > 0.5).astype(np.int64), radius[rows, best]


def naive_violations(points, classes, radii, tol: float = 1e-9):
    """Pairs (i, j, depth) with ‖x_j − x_i‖ < r_i − tol and G(x_j) ≠ G(x_i): x_j inside the region
    certified at x_i but classified otherwise; depth = r_i − ‖x_j − x_i‖ > tol (``tol`` keeps
    rounding at a tie on the boundary, p = 1/2 exactly, from counting). Sorted by depth."""
    pts = np.asarray(points, dtype=float)
    pts = pts.reshape(len(pts), -1)
    classes, radii = np.asarray(classes), np.asarray(radii, dtype=float)
    out = []
    for i in range(len(pts)):
        if classes[i] == ABSTAIN or radii[i] <= 0:
            continue
        dist = np.linalg.norm(pts - pts[i], axis=1)
        bad = np.flatnonzero((dist < radii[i] - tol) & (classes != classes[i]) & (classes != ABSTAIN))
        out.extend((i, int(j), float(radii[i] - dist[j])) for j in bad)
    return sorted(out, key=lambda t: -t[2])


# --------------------------------------------------------------------------- memory-based certification
def memory_certify(points, classes, radii, order=None):
    """Memory-based post-processing of per-input ℓ2 certificates (module docstring), inputs taken
    in ``order`` (default: as given). Returns (classes, radii, changed) in the original indexing;
    ``changed`` marks inputs whose certificate the memory modified."""
    pts = np.asarray(points, dtype=float)
    pts = pts.reshape(len(pts), -1)
    cls = np.asarray(classes).astype(np.int64).copy()
    rad = np.asarray(radii, dtype=float).copy()
    if not (len(pts) == len(cls) == len(rad)):
        raise ValueError(f"points, classes and radii must have the same length; got {len(pts)}, {len(cls)}, {len(rad)}")
    order = np.arange(len(pts)) if order is None else np.asarray(order)
    if sorted(order.tolist()) != list(range(len(pts))):
        raise ValueError("order must be a permutation of range(len(points))")
    changed = np.zeros(len(pts), dtype=bool)
    seen = []
    for idx in order:
        if seen:
            mem = np.asarray(seen)
            dist = np.linalg.norm(pts[mem] - pts[idx], axis=1)
            conflict = (dist < rad[mem] + rad[idx]) & (cls[mem] != cls[idx])
            if np.any(conflict):
                slack = dist[conflict] - rad[mem][conflict]
                k = int(np.argmin(slack))
                changed[idx] = True
                if slack[k] >= 0:
                    rad[idx] = slack[k]
                else:
                    cls[idx] = cls[mem][conflict][k]
                    rad[idx] = -slack[k]
        seen.append(int(idx))
    return cls, rad, changed


# --------------------------------------------------------------------------- sound by construction
class VoronoiPartition:
    """Voronoi cells of ``centroids`` (k, d): k(x) = argmin_k ‖x − μ_k‖ (lowest index on ties)."""

    def __init__(self, centroids):
        c = torch.as_tensor(centroids, dtype=torch.float64)
        if c.ndim != 2 or len(c) < 1:
            raise ValueError(f"centroids must have shape (k, d) with k >= 1; got {tuple(c.shape)}")
        self.centroids = c

    @classmethod
    def fit(cls, xs, cells: int, seed: int = 0):
        """k-means (SciPy's ``kmeans2``, k-means++ start, fixed ``seed``) on training inputs (N, ...)."""
        if cells < 1:
            raise ValueError(f"cells must be >= 1; got {cells}")
        data = torch.as_tensor(xs).reshape(len(xs), -1).double().numpy()
        centroids, _ = kmeans2(data, cells, minit="++", seed=np.random.default_rng(seed))
        return cls(centroids)

    def cell(self, xs) -> torch.Tensor:
        flat = torch.as_tensor(xs).reshape(len(xs), -1).double()
        return torch.cdist(flat, self.centroids).argmin(1)

    def distance_to_boundary(self, xs) -> torch.Tensor:
        """The ℓ2 distance from each x to the boundary of its own cell:
        min_{j≠k} (‖x − μ_j‖² − ‖x − μ_k‖²) / (2‖μ_j − μ_k‖) (inf with one cell)."""
        flat = torch.as_tensor(xs).reshape(len(xs), -1).double()
        sq = torch.cdist(flat, self.centroids).square()
        k = sq.argmin(1)
        gaps = sq - sq.gather(1, k[:, None])
        sep = torch.cdist(self.centroids, self.centroids)[k]
        dist = torch.where(sep > 0, gaps / (2 * sep.clamp_min(1e-300)), torch.full_like(gaps, float("inf")))
        dist[torch.arange(len(flat)), k] = float("inf")
        return dist.min(1).values


class PartitionSmooth:
    """Smoothing with one noise per Voronoi cell, all fixed before testing: G(x) = g_{k(x)}(x).

    ``scales``: one scale per cell (numbers, diagonal tensors or SPD matrices; see
    :func:`~georobust.smoothing.anisotropic.as_scale`). :meth:`certify_batch` returns the class,
    the gap of g_k, the cell and the certified ℓ2 radius min(σ_min(C_k)·gap, distance to the cell
    boundary). Guarantee: with probability ≥ 1 − α per input, G returns the class at every x' in
    the ellipsoid of g_k intersected with the cell of x — a certificate of the single classifier G.
    """

    def __init__(self, base_classifier, num_classes: int, partition: VoronoiPartition, scales, input_shape=None):
        if len(scales) != len(partition.centroids):
            raise ValueError(f"scales must hold one scale per cell ({len(partition.centroids)}); got {len(scales)}")
        d = partition.centroids.shape[1]
        self.partition = partition
        self.scales = [as_scale(s, d) for s in scales]
        kinds = {k for k, _ in self.scales}
        if len(kinds) != 1:
            raise ValueError(f"scales must all be of one kind; got {sorted(kinds)}")
        self.smooth = AnisotropicSmooth(base_classifier, num_classes, scales[0], input_shape=input_shape)
        self._smallest = torch.tensor([radius_l2(t, 1.0) for _, t in self.scales], dtype=torch.float64)

    def certify_batch(self, xs, n0, n, alpha, batch_size, generator=None):
        cells = self.partition.cell(xs)
        rows = [self.scales[int(k)][1] for k in cells]
        classes, gaps = self.smooth.certify_batch(xs, n0, n, alpha, batch_size, generator, scales=rows)
        ball = self._smallest[cells] * gaps
        radius = torch.minimum(ball, self.partition.distance_to_boundary(xs))
        radius = torch.where(classes == ABSTAIN, torch.zeros_like(radius), radius)
        return classes, gaps, cells, radius
