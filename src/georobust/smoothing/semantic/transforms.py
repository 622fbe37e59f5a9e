"""The transformations themselves and the checks of their arguments: brightness x + b, contrast
eᵏ·x, bilinear rotation and integer translation (``F.grid_sample`` and ``F.pad``)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.nn import functional as F

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
