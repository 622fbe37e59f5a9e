"""The translation certificate: enumeration of every integer shift within the budget."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..smooth import _check_int
from .transforms import _check_image, _check_number, translate

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
