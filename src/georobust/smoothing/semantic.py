"""Certificates against semantic transformations: brightness, contrast, translation, rotation.

The threat is a transformation of the input with a bounded parameter, not an ℓp ball. Following
Fischer, Baader & Vechev, "Certified Defense to Image Transformations via Randomized Smoothing"
(NeurIPS 2020) and Li et al., "TSS: Transformation-Specific Smoothing for Robustness
Certification" (CCS 2021, arXiv 2002.12398; code github.com/AI-secure/semantic-randomized-smoothing),
each transformation gets the certificate that its algebra allows.

* **Brightness** x ↦ x + b and **contrast** x ↦ eᵏ·x (no clipping; the same parametrization as
  TSS's ``BrightnessShift`` and ``BrightnessScale``) are *additive in their parameter*:
  φ(φ(x, a), t) = φ(x, a + t). :class:`ParameterSmooth` smooths over the parameter,
  g(x) = argmax_c P[f(φ(x, t)) = c], t ~ N(0, σ²). Then g(φ(x, a)) is the one-dimensional Gaussian
  smoothing of h(t) = f(φ(x, t)) evaluated at t = a, and Cohen et al.'s Theorem 1 in one dimension
  gives: if p̲_A ≥ ½ then g(φ(x, a)) = c_A for every |a| < σΦ⁻¹(p̲_A) — a brightness shift below
  that radius, or a contrast factor in (e^{−R}, e^{R}). Exact (tight for h) and with CERTIFY's
  guarantee (probability ≥ 1 − α over the sampling). TSS's joint brightness-and-contrast
  parametrization eᵏ(x + b) is not additive (the contrast rescales the brightness noise) and needs
  TSS's Theorem for non-additive resolvable transformations; it is not implemented here.
* **Translation** by integer pixel shifts with zero or reflection padding: the shifts within a
  budget form a finite set, so :func:`translation_radius` enumerates them and evaluates the
  classifier on each (TSS's enumeration certificate, ``translation_certify.py``): exact and
  deterministic, no sampling and no α. (Smoothing over continuous Gaussian shifts, TSS's other
  option, would need the shifts to be resolvable under rounding; enumeration needs nothing.)
* **Rotation** by an angle θ ∈ [−Θ, Θ] (bilinear interpolation, zero fill: :func:`rotate`) is
  not resolvable: rotating an interpolated image again is not a rotation of the original.
  :func:`certify_rotation` follows TSS's sampling-based certificate: g is plain Gaussian ℓ2
  smoothing (:class:`~georobust.smoothing.smooth.Smooth`); the rotated images R_{θ_j}x at the
  grid θ_j = j·Δ are certified with ℓ2 radii R_j (Bonferroni: level α/K for the K grid points);
  and every θ is within Δ/2 of some θ_j, with ‖R_θx − R_{θ_j}x‖₂ ≤ e_j, the interpolation error
  bounded soundly by :func:`rotation_error_bounds` (a fine subgrid plus a Lipschitz constant of
  θ ↦ R_θx computed from the image). If every θ_j in the budget has the top class ĉ and R_j > e_j,
  then g(R_θx) = ĉ for every |θ| ≤ Θ, with probability ≥ 1 − α over the sampling.

Everything takes an explicit ``torch.Generator`` and runs on the device of its inputs. The
attack :func:`rotation_attack` (PREDICT of g on a grid of angles) is the empirical upper bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .smooth import ABSTAIN, Smooth, _child_seeds, _check_alpha, _check_int, certify_from_counts, fill_noise, \
    predict_from_counts

__all__ = ["TRANSFORMATIONS", "PARAMETER_TRANSFORMATIONS", "PADDINGS", "check_transformation", "transform",
           "brightness", "contrast", "rotate", "translate", "ParameterSmooth", "rotation_grid",
           "rotation_lipschitz", "rotation_error_bounds", "RotationCertificate", "certify_rotation",
           "rotation_attack", "augmentation_objective", "integer_shifts", "translation_radius"]

TRANSFORMATIONS = ("brightness", "contrast", "translation", "rotation")
PARAMETER_TRANSFORMATIONS = ("brightness", "contrast")
PADDINGS = ("zeros", "reflect")


# --------------------------------------------------------------------------- validation
def check_transformation(name, allowed=TRANSFORMATIONS) -> str:
    """``name`` if it is one of ``allowed``, else ValueError naming the parameter and the choices."""
    if not isinstance(name, str) or name not in allowed:
        raise ValueError(f"transformation must be one of {', '.join(allowed)}; got {name!r}")
    return name


def _check_number(name, value, *, low=0.0, strict=True):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not math.isfinite(
            float(value)) or (float(value) <= low if strict else float(value) < low):
        raise ValueError(f"{name} must be a finite number {'>' if strict else '>='} {low:g}; got {value!r}")
    return float(value)


def _check_image(name, x, batched):
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point torch.Tensor; got {type(x).__name__}")
    want = 4 if batched else 3
    if x.ndim != want:
        raise ValueError(f"{name} must have shape {'(B, C, H, W)' if batched else '(C, H, W)'}; got {tuple(x.shape)}")
    return x


def _per_row(values, x, name):
    t = torch.as_tensor(values, dtype=x.dtype, device=x.device).reshape(-1)
    if len(t) not in (1, len(x)):
        raise ValueError(f"{name} must hold 1 or {len(x)} values (one per image); got {len(t)}")
    return t.expand(len(x)).reshape(-1, *([1] * (x.ndim - 1)))


# --------------------------------------------------------------------------- transformations
def brightness(x: torch.Tensor, b) -> torch.Tensor:
    """x + b for a batch x (B, ...) and shifts b (one or B values); no clipping to [0, 1]."""
    return x + _per_row(b, x, "b")


def contrast(x: torch.Tensor, k) -> torch.Tensor:
    """eᵏ·x for a batch x (B, ...) and log-factors k (one or B values); no clipping."""
    return x * torch.exp(_per_row(k, x, "k"))


def rotate(x: torch.Tensor, angles) -> torch.Tensor:
    """x (C, H, W) rotated counter-clockwise by each of ``angles`` (degrees): (K, C, H, W); or a
    batch x (B, C, H, W), image i rotated by ``angles[i]``: (B, C, H, W).

    Bilinear interpolation with zero fill, about the image centre, by ``F.affine_grid`` and
    ``F.grid_sample`` (align_corners=False) — the same images as ``torchvision``'s
    ``rotate(..., interpolation=BILINEAR)`` on a square image, batched over angles. The
    certificate of :func:`certify_rotation` is about exactly this map.
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim not in (3, 4):
        raise ValueError(f"x must be a floating-point tensor of shape (C, H, W) or (B, C, H, W); "
                         f"got {tuple(getattr(x, 'shape', ()))}")
    if x.shape[-1] != x.shape[-2]:
        raise ValueError(f"x must be a square image (H == W) to be rotated; got {tuple(x.shape)}")
    rad = torch.as_tensor(angles, dtype=x.dtype, device=x.device).reshape(-1) * (math.pi / 180.0)
    if x.ndim == 4 and len(rad) != len(x):
        raise ValueError(f"angles must hold one angle per image ({len(x)}); got {len(rad)}")
    cos, sin = torch.cos(rad), torch.sin(rad)
    theta = torch.stack([torch.stack([cos, -sin, torch.zeros_like(rad)], 1),
                         torch.stack([sin, cos, torch.zeros_like(rad)], 1)], 1)
    size = (len(rad),) + tuple(x.shape[-3:])
    grid = F.affine_grid(theta, size, align_corners=False)
    return F.grid_sample(x if x.ndim == 4 else x.expand(size), grid, mode="bilinear", padding_mode="zeros",
                         align_corners=False)


def translate(x: torch.Tensor, shifts, padding: str = "zeros") -> torch.Tensor:
    """x (C, H, W) shifted by each integer (dx, dy) of ``shifts`` (K, 2): (K, C, H, W).

    Pixel (i, j) of the result is pixel (i − dy, j − dx) of x padded by ``F.pad`` with zeros or by
    reflection (``padding``: "zeros" or "reflect"; reflection needs |dx| < W and |dy| < H).
    """
    x = _check_image("x", x, batched=False)
    if not isinstance(padding, str) or padding not in PADDINGS:
        raise ValueError(f"padding must be one of {', '.join(PADDINGS)}; got {padding!r}")
    s = torch.as_tensor(shifts).reshape(-1, 2)
    if s.is_floating_point() and not torch.equal(s, s.round()):
        raise ValueError("shifts must be integers (pixels)")
    s = s.long()
    _, h, w = x.shape
    p = int(s.abs().max()) if len(s) else 0
    if padding == "reflect" and p >= min(h, w):
        raise ValueError(f"shifts: reflection padding allows |shift| < {min(h, w)}; got {p}")
    big = F.pad(x.unsqueeze(0), (p, p, p, p), mode="constant" if padding == "zeros" else "reflect")[0]
    return torch.stack([big[:, p - int(dy):p - int(dy) + h, p - int(dx):p - int(dx) + w] for dx, dy in s.tolist()])


def transform(name: str, x: torch.Tensor, param) -> torch.Tensor:
    """φ(x, param) for a parameter transformation ``name`` ("brightness" or "contrast")."""
    name = check_transformation(name, PARAMETER_TRANSFORMATIONS)
    return brightness(x, param) if name == "brightness" else contrast(x, param)


# --------------------------------------------------------------------------- parameter smoothing
class _Composed(nn.Module):
    """Rows [t, x_flat] → f(φ(x, t)): the base classifier seen as a function of the parameter."""

    def __init__(self, base: nn.Module, name: str, shape):
        super().__init__()
        self.base, self.name, self.shape = base, name, tuple(shape)

    def forward(self, rows):
        return self.base(transform(self.name, rows[:, 1:].reshape((-1,) + self.shape), rows[:, 0]))


class ParameterSmooth(Smooth):
    """Smoothing over the parameter of an additive transformation (brightness or contrast).

    g(x) = argmax_c P[f(φ(x, t)) = c], t ~ N(0, σ²), with φ(x, t) = x + t (``"brightness"``) or
    eᵗ·x (``"contrast"``). It is :class:`Smooth` applied to the rows [t, x] with noise on t only,
    so CERTIFY, its selection/estimation split, the Clopper–Pearson bound and the per-input
    generators are Smooth's. ``certify``/``certify_batch`` take images and return (ĉ_A, R) with
    R = σΦ⁻¹(p̲_A) **in parameter units**: with probability ≥ 1 − α, g(φ(x, a)) = ĉ_A for every
    |a| < R (module docstring; Cohen et al. 2019, Theorem 1, in one dimension).
    """

    def __init__(self, base_classifier: nn.Module, num_classes: int, transformation: str, sigma: float, image_shape):
        self.transformation = check_transformation(transformation, PARAMETER_TRANSFORMATIONS)
        self.image_shape = tuple(int(s) for s in image_shape)
        super().__init__(_Composed(base_classifier, self.transformation, self.image_shape), num_classes, sigma,
                         input_shape=(1 + int(np.prod(self.image_shape)),))

    def _draw(self, out, generator, index=0):
        out.zero_()
        fill_noise(out[:, :1], "gaussian", self.sigma, generator)
        return out

    def rows(self, xs: torch.Tensor) -> torch.Tensor:
        """Images (B, *image_shape) as the rows [0, x_flat] that Smooth samples around."""
        if not isinstance(xs, torch.Tensor) or tuple(xs.shape[1:]) != self.image_shape:
            raise ValueError(f"xs must be a tensor of shape (B, {', '.join(map(str, self.image_shape))}); "
                             f"got {tuple(getattr(xs, 'shape', ()))}")
        return torch.cat([xs.new_zeros(len(xs), 1), xs.flatten(1)], 1)

    def certify_batch(self, xs, n0, n, alpha, batch_size, generator=None):
        if isinstance(xs, torch.Tensor) and xs.ndim == 2 and xs.shape[1] == self.input_shape[0]:
            return super().certify_batch(xs, n0, n, alpha, batch_size, generator)
        return super().certify_batch(self.rows(xs), n0, n, alpha, batch_size, generator)

    def certify(self, x, n0, n, alpha, batch_size, generator=None):
        classes, radii = self.certify_batch(self.rows(x.unsqueeze(0)), n0, n, alpha, batch_size, generator)
        return int(classes[0]), float(radii[0])

    def predict(self, x, n, alpha, batch_size, generator=None):
        return super().predict(self.rows(x.unsqueeze(0))[0], n, alpha, batch_size, generator)


# --------------------------------------------------------------------------- rotation
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


# --------------------------------------------------------------------------- training
def augmentation_objective(transformation: str, *, sigma: float = 0.0, max_angle: float = 0.0,
                           sigma_b: float = 0.0, sigma_k: float = 0.0, shift_sigma: float = 0.0,
                           padding: str = "reflect"):
    """Cross-entropy on inputs transformed with the noise the certificate smooths over, as TSS
    trains: ``objective(model, x, y, generator) -> (loss, logits)`` for :func:`georobust.core.train.train`.

    ``"rotation"``: a uniform angle in [−max_angle, max_angle] per image, then N(0, σ²) pixel noise;
    ``"brightness"``/``"contrast"``: eᵏ(x + b), k ~ N(0, sigma_k²), b ~ N(0, sigma_b²) (TSS's
    brightness-contrast training noise; one model serves both certificates); ``"translation"``: an
    integer shift per image, each coordinate round(N(0, shift_sigma²)), with ``padding``.
    """
    transformation = check_transformation(transformation)
    sigma, max_angle = _check_number("sigma", sigma, strict=False), _check_number("max_angle", max_angle, strict=False)
    sigma_b, sigma_k = _check_number("sigma_b", sigma_b, strict=False), _check_number("sigma_k", sigma_k, strict=False)
    shift_sigma = _check_number("shift_sigma", shift_sigma, strict=False)
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {', '.join(PADDINGS)}; got {padding!r}")

    def objective(model, x, y, generator):
        dev, m = x.device, len(x)
        if transformation == "rotation":
            u = torch.rand(m, generator=generator, device=dev, dtype=x.dtype)
            x = rotate(x, (2 * u - 1) * max_angle)
            x = x + sigma * torch.randn(x.shape, generator=generator, device=dev, dtype=x.dtype)
        elif transformation in PARAMETER_TRANSFORMATIONS:
            k = sigma_k * torch.randn(m, generator=generator, device=dev, dtype=x.dtype)
            b = sigma_b * torch.randn(m, generator=generator, device=dev, dtype=x.dtype)
            x = contrast(brightness(x, b), k)
        else:
            limit = min(x.shape[-2:]) - 1 if padding == "reflect" else max(x.shape[-2:])
            s = (shift_sigma * torch.randn(m, 2, generator=generator, device=dev)).round().clamp(-limit, limit)
            x = torch.cat([translate(xi, si.view(1, 2), padding) for xi, si in zip(x, s.long().cpu())])
        out = model(x)
        return F.cross_entropy(out, y), out

    return objective


# --------------------------------------------------------------------------- translation
def integer_shifts(max_norm: float) -> np.ndarray:
    """All integer (dx, dy) with dx² + dy² ≤ max_norm², sorted by norm: (K, 2)."""
    max_norm = _check_number("max_norm", max_norm, strict=False)
    r = int(math.floor(max_norm))
    d = np.array([(i, j) for i in range(-r, r + 1) for j in range(-r, r + 1) if i * i + j * j <= max_norm ** 2 + 1e-9])
    return d[np.argsort(np.hypot(d[:, 0], d[:, 1]), kind="stable")]


def translation_radius(model: nn.Module, xs: torch.Tensor, labels, max_norm: float, padding: str = "zeros",
                       batch_size: int = 1024) -> np.ndarray:
    """Exact translation certificate by enumeration (TSS, ``translation_certify.py``).

    For each image, ``model`` classifies every integer shift of ℓ2 norm ≤ ``max_norm``; the
    result r is the norm of the nearest shift classified other than the label (0 if the image
    itself is), or, if none is, the smallest norm of an integer shift beyond ``max_norm`` (the
    first one not checked): every integer shift of norm < r is classified correctly — no
    sampling, no failure probability.
    """
    xs = _check_image("xs", xs, batched=True)
    labels = torch.as_tensor(labels).reshape(-1).tolist()
    if len(labels) != len(xs):
        raise ValueError(f"labels must hold one label per image ({len(xs)}); got {len(labels)}")
    batch_size = _check_int("batch_size", batch_size, 1)
    shifts = integer_shifts(max_norm)
    norms = np.hypot(shifts[:, 0], shifts[:, 1])
    if isinstance(model, nn.Module):
        model.eval()
    wider = integer_shifts(math.floor(max_norm) + 2)
    wider_norms = np.hypot(wider[:, 0], wider[:, 1])
    out = np.full(len(xs), float(wider_norms[wider_norms > norms.max() + 1e-9].min()))
    with torch.inference_mode():
        for i, (x, y) in enumerate(zip(xs, labels)):
            pred = torch.cat([model(translate(x, shifts[s:s + batch_size], padding)).argmax(1)
                              for s in range(0, len(shifts), batch_size)]).cpu().numpy()
            wrong = np.flatnonzero(pred != y)
            if len(wrong):
                out[i] = norms[wrong[0]]
    return out
