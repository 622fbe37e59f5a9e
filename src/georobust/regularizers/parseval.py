"""Parseval networks' retraction (Cisse, Bojanowski, Grave, Dauphin & Usunier, ICML 2017).

After each SGD step every weight matrix W is moved towards the Parseval tight frames
(matrices whose non-zero singular values are all 1) by one gradient step of
(β/4)‖WᵀW − I‖_F²:

    W ← (1 + β) W − β W Wᵀ W,        β ≈ 3·10⁻⁴,

which maps each singular value σ to σ(1 + β(1 − σ²)) and keeps the singular vectors. Since
σ' − 1 = (σ − 1)(1 − βσ(σ + 1)), a value with βσ(σ + 1) < 1 (σ up to about 57 for β = 3·10⁻⁴)
moves towards 1 without crossing it, so repeated retractions converge to a tight frame (zero
singular values stay zero). The paper applies
it to a random subset of rows (``num_rows``) to save time; the rows outside the subset are
left as they are.

Convolutions (Conv1d/2d/3d, any groups) use the unfolded kernel W ∈ ℝ^{c_out × (c_in/groups)·k},
k = kh·kw (the number of kernel positions), one block per group. An input pixel enters at most
k patches, so ‖conv_W‖₂ ≤ √k‖W‖₂: the paper constrains √k·W to be a tight frame, which bounds the
layer's Lipschitz constant by 1 (for stride-1 convolutions it can be strictly smaller). Linear
layers use W itself. Biases are not touched.

Not implemented: the convex aggregation layers of Parseval residual networks (residual sums
with weights on the simplex); the sequential CNNs of this package have no aggregation.
"""

from __future__ import annotations

import math

import torch
from torch import nn

CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def unfolded_weight(layer: nn.Module) -> tuple[torch.Tensor, float]:
    """(M, s): the layer's scaled weight matrix M = s·W (a view-free copy) and the scale s.

    Linear: W (out×in), s = 1. ConvNd with g groups: W of shape g × (out/g) × (in/g·k), s = √k.
    """
    if isinstance(layer, nn.Linear):
        return layer.weight.detach().clone(), 1.0
    if isinstance(layer, CONVS):
        w = layer.weight.detach()
        k = math.prod(w.shape[2:])
        g = layer.groups
        scale = math.sqrt(k)
        return scale * w.reshape(g, w.shape[0] // g, -1), scale
    raise ValueError(f"layer must be nn.Linear or nn.Conv1d/2d/3d; got {type(layer).__name__}")


def _layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (nn.Linear,) + CONVS)]


def _retract(M: torch.Tensor, beta: float, num_rows, generator) -> torch.Tensor:
    """One retraction of the last two dims of M (optionally on a random subset of rows)."""
    if num_rows is None or num_rows >= M.shape[-2]:
        return (1 + beta) * M - beta * M @ M.transpose(-2, -1) @ M
    gdev = generator.device if generator is not None else M.device
    rows = torch.randperm(M.shape[-2], generator=generator, device=gdev)[:num_rows].to(M.device)
    out = M.clone()
    S = M[..., rows, :]
    out[..., rows, :] = (1 + beta) * S - beta * S @ S.transpose(-2, -1) @ S
    return out


@torch.no_grad()
def parseval_retraction(model: nn.Module, beta: float = 3e-4, num_rows: int | None = None,
                        generator: torch.Generator | None = None) -> nn.Module:
    """Retract every Linear and ConvNd weight of ``model`` in place; returns ``model``.

    Usable as ``after_step`` of :func:`georobust.core.train.train` (``functools.partial`` for other
    arguments). ``num_rows``: retract only that many rows of each matrix (per group), drawn with
    ``generator``; None: all rows.
    """
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not math.isfinite(beta) or beta <= 0:
        raise ValueError(f"beta must be a finite number > 0; got {beta!r}")
    if num_rows is not None and (isinstance(num_rows, bool) or not isinstance(num_rows, int) or num_rows < 1):
        raise ValueError(f"num_rows must be an integer >= 1 or None; got {num_rows!r}")
    layers = _layers(model)
    if not layers:
        raise ValueError("model has no nn.Linear or nn.Conv1d/2d/3d layer to retract")
    for layer in layers:
        M, scale = unfolded_weight(layer)
        new = _retract(M, beta, num_rows, generator) / scale
        layer.weight.copy_(new.reshape(layer.weight.shape))
    return model


@torch.no_grad()
def parseval_deviation(model: nn.Module) -> dict[str, float]:
    """‖MMᵀ − I‖_F of each layer's scaled unfolded weight (0 for a tight frame with ≤ as many
    rows as columns), keyed by the module name."""
    out = {}
    for name, layer in model.named_modules():
        if isinstance(layer, (nn.Linear,) + CONVS):
            M, _ = unfolded_weight(layer)
            eye = torch.eye(M.shape[-2], dtype=M.dtype, device=M.device)
            out[name] = float((M @ M.transpose(-2, -1) - eye).pow(2).sum().sqrt())
    return out
