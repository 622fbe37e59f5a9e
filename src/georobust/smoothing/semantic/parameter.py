"""Smoothing over the parameter of an additive transformation (brightness, contrast): g(x) =
argmax_c P[f(φ(x, t)) = c], t ~ N(0, σ²), certified in parameter units by Cohen et al.'s theorem
in one dimension (see the package docstring)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..smooth import Smooth, fill_noise
from .transforms import PARAMETER_TRANSFORMATIONS, check_transformation, transform

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
