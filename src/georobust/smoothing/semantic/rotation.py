"""The rotation certificate (after TSS): Gaussian ℓ2 smoothing certified at a grid of angles,
with a sound bound on the interpolation error between the grid angles, and the grid attack."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from ..smooth import ABSTAIN, Smooth, _check_alpha, _check_int, _child_seeds, certify_from_counts, predict_from_counts
from .parameter import ParameterSmooth
from .transforms import _check_image, _check_number, rotate

def rotation_grid(max_angle: float, step: float) -> np.ndarray:
    """The angles j·step, |j·step| ≤ max_angle (degrees); max_angle must be a multiple of step."""
    max_angle, step = _check_number("max_angle", max_angle, strict=False), _check_number("step", step)
    half = round(max_angle / step)
    if abs(half * step - max_angle) > 1e-9 * max(1.0, max_angle):
        raise ValueError(f"max_angle ({max_angle:g}) must be a multiple of step ({step:g})")
    return np.arange(-half, half + 1) * step


def rotation_lipschitz(x: torch.Tensor) -> float:
    """An upper bound L on ‖d/dθ R_θx‖₂ (per radian) for the bilinear rotation :func:`rotate`.

    Output pixel p samples the zero-padded image at a point q(θ) that turns about the centre c,
    so |dq/dθ| = ‖p − c‖ (pixels). Bilinear interpolation is continuous and, in each cell, has
    |∂/∂u| ≤ D_u and |∂/∂v| ≤ D_v, the largest horizontal and vertical differences of neighbouring
    pixels of the zero-padded image; so |d x_p/dθ| ≤ ‖p − c‖·(D_u² + D_v²)^{1/2}, and summing the
    squares over pixels and channels gives L = (D_u² + D_v²)^{1/2}·(C·Σ_p ‖p − c‖²)^{1/2}.
    """
    x = _check_image("x", x, batched=False).double()
    padded = F.pad(x, (1, 1, 1, 1))
    d_u = float((padded[:, :, 1:] - padded[:, :, :-1]).abs().max())
    d_v = float((padded[:, 1:, :] - padded[:, :-1, :]).abs().max())
    c, h, w = x.shape
    ii, jj = torch.meshgrid(torch.arange(h, dtype=torch.float64) - (h - 1) / 2,
                            torch.arange(w, dtype=torch.float64) - (w - 1) / 2, indexing="ij")
    return math.hypot(d_u, d_v) * math.sqrt(c * float((ii ** 2 + jj ** 2).sum()))


def rotation_error_bounds(x: torch.Tensor, grid, fine: int = 16, batch_size: int = 2048) -> np.ndarray:
    """e_j ≥ max over |t| ≤ Δ/2 of ‖R_{θ_j+t}x − R_{θ_j}x‖₂ for each angle θ_j of ``grid`` (step Δ).

    Each half-cell [θ_j, θ_j ± Δ/2] is cut into ``fine`` pieces of length δ; at their ends the
    distances d_i are computed exactly (float64); between two ends the distance is at most
    min(d_i + L·s, d_{i+1} + L·(δ − s)) ≤ (d_i + d_{i+1} + Lδ)/2, L from :func:`rotation_lipschitz`.
    e_j is the largest of these over both half-cells. Dropping the Lδ/2 term makes the bound
    unsound between the evaluated angles.
    """
    fine = _check_int("fine", fine, 1)
    grid = np.asarray(grid, dtype=float).reshape(-1)
    if len(grid) < 2 or not np.allclose(np.diff(grid), grid[1] - grid[0]) or grid[1] <= grid[0]:
        raise ValueError("grid must hold at least two increasing, equally spaced angles (degrees)")
    x64 = _check_image("x", x, batched=False).double()
    delta_deg = (grid[1] - grid[0]) / 2 / fine
    lip_term = rotation_lipschitz(x) * math.radians(delta_deg) / 2
    offsets = np.arange(-fine, fine + 1) * delta_deg
    angles = (grid[:, None] + offsets[None, :]).reshape(-1)
    dist = []
    for start in range(0, len(angles), batch_size):
        part = angles[start:start + batch_size]
        rot = rotate(x64, part)
        centre = rotate(x64, np.repeat(grid, len(offsets))[start:start + batch_size])
        dist.append((rot - centre).flatten(1).norm(dim=1))
    d = torch.cat(dist).reshape(len(grid), len(offsets)).numpy()
    return ((d[:, 1:] + d[:, :-1]) / 2).max(1) + lip_term


@dataclass
class RotationCertificate:
    """Per budget Θ_b: ``certified[b]`` (ĉ for every |θ| ≤ Θ_b), with the grid's ``radii`` R_j,
    error bounds ``errors`` e_j, grid ``angles`` and the class ``predicted`` (ĉ, or ABSTAIN)."""
    budgets: np.ndarray
    certified: np.ndarray
    predicted: int
    angles: np.ndarray
    radii: np.ndarray
    errors: np.ndarray


def certify_rotation(smooth: Smooth, x: torch.Tensor, budgets, step: float, n0: int, n: int, alpha: float,
                     batch_size: int, generator=None, fine: int = 16, use_errors: bool = True) -> RotationCertificate:
    """Certify g (Gaussian ℓ2 smoothing ``smooth``) against rotations of x (C, H, W) by |θ| ≤ Θ_b.

    ĉ is the top class of n0 noisy copies of x (selection); each R_{θ_j}x, θ_j on the grid of
    ``step`` up to max(budgets), gets n fresh samples and a Clopper–Pearson lower bound at level
    α/K (K grid angles) and the radius R_j = σΦ⁻¹(p̲_j). Budget Θ_b (a multiple of ``step``) is
    certified iff every |θ_j| ≤ Θ_b has p̲_j ≥ ½ for ĉ and R_j > e_j (:func:`rotation_error_bounds`).
    Guarantee: with probability ≥ 1 − α, simultaneously for all budgets, a certified Θ_b has
    g(R_θx) = ĉ for every |θ| ≤ Θ_b (module docstring). ``use_errors=False`` drops e_j — unsound,
    kept only so that tests and the chapter can show that it fails.
    """
    if not isinstance(smooth, Smooth) or smooth.noise != "gaussian" or isinstance(smooth, ParameterSmooth):
        raise ValueError("smooth must be a Smooth with Gaussian noise (the rotation certificate uses its l2 radius)")
    x = _check_image("x", x, batched=False)
    budgets = np.atleast_1d(np.asarray(budgets, dtype=float))
    if len(budgets) == 0 or np.any(~np.isfinite(budgets)) or np.any(budgets < 0):
        raise ValueError(f"budgets must be angles >= 0 (degrees); got {budgets.tolist()}")
    grid = rotation_grid(float(budgets.max()), step)
    for b in budgets:
        rotation_grid(float(b), step)  # every budget on the grid
    n0, n, alpha = _check_int("n0", n0, 1), _check_int("n", n, 1), _check_alpha(alpha)
    batch_size = _check_int("batch_size", batch_size, 1)
    seeds = _child_seeds(generator, len(grid) + 1)
    errors = rotation_error_bounds(x, grid, fine) if len(grid) > 1 else np.zeros(1)
    sel = smooth.sample_counts(x.unsqueeze(0), seeds[:1], n0, 0, batch_size)[:, 0]
    est = smooth.sample_counts(rotate(x, grid), seeds[1:], 0, n, batch_size)[:, 1]
    classes, radii = certify_from_counts(np.repeat(sel, len(grid), 0), est, alpha / len(grid), smooth.sigma)
    c_hat = int(sel[0].argmax())
    good = (classes == c_hat) & (radii > (errors if use_errors else 0.0))
    certified = np.array([bool(np.all(good[np.abs(grid) <= b + 1e-9])) for b in budgets])
    return RotationCertificate(budgets, certified, c_hat if certified.any() else ABSTAIN, grid, radii, errors)


def rotation_attack(smooth: Smooth, x: torch.Tensor, angles, n: int, alpha: float, batch_size: int,
                    generator=None) -> np.ndarray:
    """PREDICT of g (``smooth``) on R_θx for each θ of ``angles`` (degrees): the classes (ABSTAIN = −1).

    A grid-search attack: g is robust at budget Θ only if every |θ| ≤ Θ of the grid gives the
    label, so the fraction of such inputs is an empirical upper bound on the accuracy under
    rotations (and a certified input must never fail it, up to PREDICT's error α per angle).
    """
    n, alpha, batch_size = _check_int("n", n, 1), _check_alpha(alpha), _check_int("batch_size", batch_size, 1)
    angles = np.asarray(angles, dtype=float).reshape(-1)
    xs = rotate(_check_image("x", x, batched=False), angles)
    if isinstance(smooth, ParameterSmooth):
        xs = smooth.rows(xs)
    counts = smooth.sample_counts(xs, _child_seeds(generator, len(angles)), 0, n, batch_size)[:, 1]
    return np.array([predict_from_counts(c, alpha) for c in counts], dtype=np.int64)
