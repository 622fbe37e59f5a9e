"""Training with the noise each certificate smooths over (TSS's data augmentation)."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from .transforms import (PADDINGS, PARAMETER_TRANSFORMATIONS, _check_number, brightness, check_transformation,
                         contrast, rotate, translate)

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
