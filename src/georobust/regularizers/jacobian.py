"""Jacobian regularization (Hoffman, Roberts & Yaida, "Robust learning with Jacobian
regularization", 2019).

The penalty is ½‖J‖_F², J = ∂z/∂x the Jacobian of the logits (C×d per input), averaged over the
batch; the training loss is CE + λ·penalty. ‖J‖_F² is estimated with random projections: for v
uniform on the unit sphere of ℝ^C, E[vvᵀ] = I/C, so

    C·‖Jᵀv‖²  is an unbiased estimate of ‖J‖_F²,

with variance 2(C‖JJᵀ‖_F² − (tr JJᵀ)²)/(C + 2) for one projection (the tests use it). Each
projection costs one extra backward pass taken with ``create_graph=True``, so that the penalty's
gradient reaches the parameters through J (a Jacobian taken without it is detached and the
penalty silently stops regularizing). ``exact=True`` computes ‖J‖_F² with C backward passes.

Per-input Jacobians come from one backward pass of Σ_n v_nᵀz_n: valid when the model treats
the inputs of a batch independently (no BatchNorm in training mode). Randomness comes from an
explicit ``torch.Generator`` (None: the global one); device and dtype follow ``x``.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .iso import call_model, check_input, check_logits


def _check_nproj(nproj) -> int:
    if isinstance(nproj, bool) or not isinstance(nproj, int) or nproj < 1:
        raise ValueError(f"nproj must be an integer >= 1; got {nproj!r}")
    return nproj


def _penalty_and_logits(model: nn.Module, x: torch.Tensor, nproj: int, generator, exact: bool,
                        num_classes):
    check_input(x)
    _check_nproj(nproj)
    xg = x.detach().requires_grad_(True)
    z = call_model(lambda: model(xg), x)
    n, c = z.shape[0], check_logits(z, x.shape[0], num_classes)
    sq = z.new_zeros(n)
    if exact:
        for i in range(c):
            (g,) = torch.autograd.grad(z[:, i].sum(), xg, create_graph=True, retain_graph=True)
            sq = sq + g.reshape(n, -1).pow(2).sum(1)
    else:
        for _ in range(nproj):
            v = torch.randn((n, c), generator=generator, dtype=z.dtype, device=z.device)
            v = v / v.norm(dim=1, keepdim=True)
            (g,) = torch.autograd.grad((z * v).sum(), xg, create_graph=True, retain_graph=True)
            sq = sq + c * g.reshape(n, -1).pow(2).sum(1) / nproj
    return 0.5 * sq.mean(), z


def jacobian_penalty(model: nn.Module, x: torch.Tensor, nproj: int = 1,
                     generator: torch.Generator | None = None, exact: bool = False,
                     num_classes: int | None = None) -> torch.Tensor:
    """½ · batch mean of ‖∂z/∂x‖_F², differentiable with respect to the parameters.

    ``exact=False``: the mean of ``nproj`` unbiased projection estimates C‖Jᵀv‖² per input
    (Hoffman et al. 2019); ``exact=True``: all C rows of J. ``num_classes``, when given, is
    checked against the model's output.
    """
    return _penalty_and_logits(model, x, nproj, generator, exact, num_classes)[0]


def jacobian_objective(lam: float, nproj: int = 1, exact: bool = False,
                       num_classes: int | None = None) -> Callable:
    """An ``objective`` for :func:`georobust.core.train.train`: CE + λ·½‖J‖_F² (one forward pass).

    Returns ``fn(model, x, y, generator) -> (loss, logits)``; ``generator`` draws the projections.
    """
    if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not math.isfinite(lam) or lam < 0:
        raise ValueError(f"lam must be a finite number >= 0; got {lam!r}")
    _check_nproj(nproj)

    def objective(model, x, y, generator=None):
        check_input(x)
        if not isinstance(y, torch.Tensor) or y.dim() != 1 or y.shape[0] != x.shape[0] or y.is_floating_point():
            raise ValueError(f"y must be a 1-D integer tensor of {x.shape[0]} labels")
        if lam == 0:
            z = call_model(lambda: model(x), x)
            check_logits(z, x.shape[0], num_classes)
            return F.cross_entropy(z, y), z
        penalty, z = _penalty_and_logits(model, x, nproj, generator, exact, num_classes)
        return F.cross_entropy(z, y) + lam * penalty, z

    return objective
