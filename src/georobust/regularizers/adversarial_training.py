"""PGD adversarial training (Madry, Makelov, Schmidt, Tsipras & Vladu, ICLR 2018).

Adversarial training minimizes the robust risk

    min_θ  E_(x,y) [ max_{x' ∈ B_ε(x) ∩ [0,1]^d} CE(z_θ(x'), y) ],

with the inner maximum approximated by projected gradient ascent (PGD) on the cross-entropy: a
uniform random start in the ball, then ``steps`` steps x' ← Π(x' + α·s(∇CE)) with s the steepest
ascent direction of the norm (sign for ℓ∞, normalized gradient for ℓ2) and Π the projection onto
the ball and the pixel box (the primitives of :mod:`georobust.core.attacks`). Unlike the *evaluation*
attack :func:`georobust.core.attacks.pgd`, the inner maximization does not stop at the first
misclassified iterate: it runs all steps and returns the last iterate, as Madry et al. do.

:func:`pgd_objective` plugs into :func:`georobust.core.train.train` (``objective=``); the random
starts come from the generator ``train`` passes it. The two baselines need nothing here: plain
training is ``train(...)`` and Gaussian data augmentation is ``train(..., noise_sigma=σ)``.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..core.attacks import NORMS, ascent_direction, project, random_start
from ..core.train import linear_warmup


def pgd_perturb(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, steps: int,
                step_size: float | None = None, norm: str = "linf",
                generator: torch.Generator | None = None, random_init: bool = True) -> torch.Tensor:
    """The last PGD iterate x' (detached) maximizing the cross-entropy in the ``norm`` ball of
    radius ``eps`` around ``x``, inside [0, 1]^d.

    ``step_size`` defaults to 2.5·eps/steps. The model's mode is left as it is (the sequential
    models of this package behave the same in both modes), and no gradient reaches its
    parameters: only the perturbation is differentiated.
    """
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}; got {norm!r}")
    if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps must be a finite number >= 0; got {eps!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1; got {steps!r}")
    if step_size is not None and not step_size > 0:
        raise ValueError(f"step_size must be > 0; got {step_size!r}")
    x = x.detach()
    if eps == 0:
        return x.clone()
    alpha = float(step_size) if step_size is not None else 2.5 * eps / steps
    if random_init:
        delta = project(x, random_start(x.shape, eps, norm, generator, x.device, x.dtype), eps, norm)
    else:
        delta = torch.zeros_like(x)
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = F.cross_entropy(model(x + delta), y)
        grad, = torch.autograd.grad(loss, delta)
        with torch.no_grad():
            delta = project(x, delta.detach() + alpha * ascent_direction(grad, norm), eps, norm)
    return (x + delta).detach()


def pgd_objective(eps: float, steps: int = 10, step_size: float | None = None, norm: str = "linf",
                  random_init: bool = True, warmup: int = 0) -> Callable:
    """An ``objective`` for :func:`georobust.core.train.train`: the cross-entropy at the PGD point.

    Returns ``fn(model, x, y, generator, epoch=None) -> (loss, logits)``, the logits being those
    of the adversarial inputs (so ``train``'s reported training accuracy is the accuracy on them).
    Cost per step: ``steps`` extra forward–backward passes.

    With ``warmup`` > 0 the budget ramps up: epoch e (0-based, passed by ``train``) attacks at
    ε·min(1, (e+1)/warmup), and the step size scales with it when it defaults. Training from
    scratch at the full MNIST budget ε = 0.3 can stall at chance for short runs; a linear ramp of
    ε is the usual remedy (e.g. Wong, Rice & Kolter, ICLR 2020, ramp ε on MNIST). Madry et al.
    train without one. Called without an epoch (a cost measurement), the objective uses ε.
    """
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}; got {norm!r}")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps < 0:
        raise ValueError(f"eps must be a finite number >= 0; got {eps!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1; got {steps!r}")
    if step_size is not None and not step_size > 0:
        raise ValueError(f"step_size must be > 0; got {step_size!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be an integer >= 0 (epochs); got {warmup!r}")

    def budget(epoch: int | None) -> float:
        return linear_warmup(eps, epoch, warmup)

    def objective(model, x, y, generator=None, epoch=None):
        eps_e = budget(epoch)
        size = step_size if step_size is None or eps_e == eps else step_size * eps_e / eps
        x_adv = pgd_perturb(model, x, y, eps_e, steps=steps, step_size=size, norm=norm,
                            generator=generator, random_init=random_init)
        logits = model(x_adv)
        return F.cross_entropy(logits, y), logits

    objective.budget = budget
    return objective
