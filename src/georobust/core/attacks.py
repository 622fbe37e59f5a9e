"""The projected-gradient attack (PGD) of Madry et al. (2018) on a logits model, in ℓ2 and ℓ∞.

:func:`pgd` (with :func:`pgd_l2` and :func:`pgd_linf` as shorthands) searches, for each example
(x, y), for a point x' in the ℓp ball (p = 2 or ∞) of radius ε around x and inside the pixel box
[0, 1]^d that the model misclassifies. Each step moves along the steepest-ascent direction of the
loss for the norm (the normalized gradient for ℓ2, its sign for ℓ∞), projects back onto the ball
and clips into the box. The attack starts from a uniformly random point of the ball (drawn from an explicit
:class:`torch.Generator`) and is restarted ``restarts`` times; an example counts as broken as soon
as any iterate of any restart is misclassified, so it counts as robust only if every restart fails.

:func:`pgd_l2_objective` is ℓ2 PGD on any differentiable per-example objective with no box, for
regressors (e.g. pushing a predicted position as far as possible).

A success is a witness: the returned ``x_adv`` lies in the ball (up to float rounding) and the box,
and the model misclassifies it. So the fraction of examples that survive the attack is an *upper*
bound on the robust accuracy at ε; a failed attack proves nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class AttackResult:
    """Per-example outcome of an attack.

    ``success``: the model misclassifies ``x_adv`` (always true for examples that were already
    misclassified, with ``x_adv = x``); ``x_adv``: the adversarial point of successful examples
    and the last iterate of the others; ``norm``: ‖x_adv − x‖ per example in the attack's norm
    (ℓ2 for :func:`pgd_l2`, ℓ∞ for :func:`pgd_linf`).
    """

    success: torch.Tensor
    x_adv: torch.Tensor
    norm: torch.Tensor

    @property
    def robust_accuracy(self) -> float:
        """Fraction of examples the attack did not break (an upper bound on robust accuracy)."""
        return float((~self.success).float().mean().item()) if len(self.success) else float("nan")



def _generator_for(x, generator):
    """``generator``, or a fresh one seeded 0 on x's device; refuses one on another device."""
    if generator is None:
        return torch.Generator(device=x.device).manual_seed(0)
    if generator.device.type != x.device.type:
        raise ValueError(f"generator is on {generator.device} but x is on {x.device}")
    return generator

def _flat_norm(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.dim() - 1)))


def _loss(logits: torch.Tensor, y: torch.Tensor, kind: str) -> torch.Tensor:
    """Per-example loss the attack ascends: cross-entropy or the negative margin z_y − max_{j≠y} z_j."""
    if kind == "ce":
        return F.cross_entropy(logits, y, reduction="none")
    true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf")).amax(1)
    return other - true


def random_ball(shape: torch.Size, eps: float, generator: torch.Generator, device, dtype) -> torch.Tensor:
    """Points drawn uniformly from the ℓ2 ball of radius ``eps`` in R^d, d = prod(shape[1:])."""
    d = math.prod(shape[1:])
    direction = torch.randn(shape, generator=generator, device=device, dtype=dtype)
    direction = direction / _flat_norm(direction).clamp_min(torch.finfo(dtype).tiny)
    u = torch.rand((shape[0],), generator=generator, device=device, dtype=dtype)
    radius = eps * u.pow(1.0 / d)
    return direction * radius.view(-1, *([1] * (len(shape) - 1)))


def random_cube(shape: torch.Size, eps: float, generator: torch.Generator, device, dtype) -> torch.Tensor:
    """Points drawn uniformly from the ℓ∞ ball (cube) of radius ``eps``."""
    return eps * (2 * torch.rand(shape, generator=generator, device=device, dtype=dtype) - 1)


NORMS = ("l2", "linf")


def project(x: torch.Tensor, delta: torch.Tensor, eps: float, norm: str = "l2") -> torch.Tensor:
    """Map δ into the ℓ2 ball (by scaling) or the ℓ∞ ball (by clamping) of radius eps, then clip
    x + δ into [0, 1].

    Clipping only shrinks each coordinate of δ (x is in the box), so the result is in both sets.
    """
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    else:
        size = _flat_norm(delta)
        delta = delta * torch.where(size > eps, eps / size.clamp_min(torch.finfo(delta.dtype).tiny),
                                    torch.ones_like(size))
    return (x + delta).clamp_(0.0, 1.0) - x


def ascent_direction(grad: torch.Tensor, norm: str) -> torch.Tensor:
    """The steepest-ascent step of unit size for ``norm``: sign(g) for ℓ∞, g/‖g‖₂ for ℓ2."""
    if norm == "linf":
        return grad.sign()
    return grad / _flat_norm(grad).clamp_min(torch.finfo(grad.dtype).tiny)


def random_start(shape: torch.Size, eps: float, norm: str, generator: torch.Generator, device, dtype) -> torch.Tensor:
    """A uniform point of the ``norm`` ball of radius ``eps`` (:func:`random_cube` or :func:`random_ball`)."""
    return (random_cube if norm == "linf" else random_ball)(shape, eps, generator, device, dtype)


def _distance(delta: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-example ‖δ‖ in the given norm."""
    flat = delta.flatten(1)
    return flat.abs().amax(dim=1) if norm == "linf" else flat.norm(dim=1)


def pgd_l2(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, steps: int = 40,
           restarts: int = 1, step_size: float | None = None, generator: torch.Generator | None = None,
           loss: str = "ce", batch_size: int = 500) -> AttackResult:
    """ℓ2 PGD: :func:`pgd` with ``norm="l2"``."""
    return pgd(model, x, y, eps, norm="l2", steps=steps, restarts=restarts, step_size=step_size,
               generator=generator, loss=loss, batch_size=batch_size)


def pgd_linf(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, steps: int = 40,
             restarts: int = 1, step_size: float | None = None, generator: torch.Generator | None = None,
             loss: str = "ce", batch_size: int = 500) -> AttackResult:
    """ℓ∞ PGD: :func:`pgd` with ``norm="linf"``; ``AttackResult.norm`` holds ‖x_adv − x‖∞."""
    return pgd(model, x, y, eps, norm="linf", steps=steps, restarts=restarts, step_size=step_size,
               generator=generator, loss=loss, batch_size=batch_size)


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, norm: str = "l2",
        steps: int = 40, restarts: int = 1, step_size: float | None = None,
        generator: torch.Generator | None = None, loss: str = "ce",
        batch_size: int = 500) -> AttackResult:
    """PGD with random restarts (Madry et al. 2018) against ``model`` at budget ``eps`` in the
    ``norm`` ("l2" or "linf") ball.

    ``x``: inputs (N×…) in [0, 1]; ``y``: labels (N). The attack runs on ``x``'s device and in its
    dtype (the model must live there). Steps are α·g/‖g‖₂ (ℓ2) or α·sign(g) (ℓ∞) for the loss
    gradient g; random starts are uniform in the ball. ``step_size`` α defaults to 2.5·eps/steps (Madry et al.);
    ``loss`` is ``"ce"`` (cross-entropy, as Madry et al.) or ``"margin"`` (max_{j≠y} z_j − z_y, as
    Carlini & Wagner 2017). ``generator`` draws the random starts (a fresh one seeded 0 on x's
    device if None). The model is put in eval mode for the attack and restored afterwards.

    Returns an :class:`AttackResult`. With ``eps = 0`` no search is done: success means the clean
    point is misclassified.
    """
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError("x and y must be tensors")
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}; got {norm!r}")
    if eps is None or not eps >= 0:  # also rejects NaN
        raise ValueError(f"eps must be >= 0; got {eps!r}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1; got {steps!r}")
    if not isinstance(restarts, int) or restarts < 1:
        raise ValueError(f"restarts must be an integer >= 1; got {restarts!r}")
    if step_size is not None and not step_size > 0:
        raise ValueError(f"step_size must be > 0; got {step_size!r}")
    if loss not in ("ce", "margin"):
        raise ValueError(f"loss must be 'ce' or 'margin'; got {loss!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1; got {batch_size!r}")
    if x.dim() < 2:
        raise ValueError(f"x must be a batch (N×…); got shape {tuple(x.shape)}")
    if y.dim() != 1 or len(y) != len(x):
        raise ValueError(f"y must hold one label per row of x: x has shape {tuple(x.shape)}, y {tuple(y.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"x must be floating point; got {x.dtype}")
    if y.device != x.device:
        raise ValueError(f"y is on {y.device} but x is on {x.device}")
    if len(x) and (x.min() < 0 or x.max() > 1):
        raise ValueError("x must lie in [0, 1]")
    generator = _generator_for(x, generator)
    eps = float(eps)
    alpha = float(step_size) if step_size is not None else 2.5 * eps / steps

    was_training = model.training
    model.eval()
    try:
        parts = [_pgd_batch(model, x[i:i + batch_size], y[i:i + batch_size], eps, steps, restarts,
                            alpha, generator, loss, norm) for i in range(0, len(x), batch_size)]
    finally:
        model.train(was_training)
    if not parts:
        empty = torch.zeros(0, dtype=torch.bool, device=x.device)
        return AttackResult(empty, x.clone(), torch.zeros(0, dtype=x.dtype, device=x.device))
    success = torch.cat([p[0] for p in parts])
    x_adv = torch.cat([p[1] for p in parts])
    return AttackResult(success, x_adv, _distance(x_adv - x, norm))


def _pgd_batch(model, x, y, eps, steps, restarts, alpha, generator, loss, norm):
    with torch.no_grad():
        success = model(x).argmax(1) != y
    x_adv = x.clone()
    if eps == 0:
        return success, x_adv
    for _ in range(restarts):
        active = (~success).nonzero().squeeze(1)
        if len(active) == 0:
            break
        xa, ya = x[active], y[active]
        delta = project(xa, random_start(xa.shape, eps, norm, generator, x.device, x.dtype), eps, norm)
        for _ in range(steps):
            delta.requires_grad_(True)
            logits = model(xa + delta)
            grad, = torch.autograd.grad(_loss(logits, ya, loss).sum(), delta)
            with torch.no_grad():
                delta = delta.detach()
                hit = logits.argmax(1) != ya
                if hit.any():  # a misclassified iterate is a witness: keep it and stop attacking it
                    success[active[hit]] = True
                    x_adv[active[hit]] = xa[hit] + delta[hit]
                    keep = ~hit
                    active, xa, ya, delta, grad = active[keep], xa[keep], ya[keep], delta[keep], grad[keep]
                    if len(active) == 0:
                        break
                delta = project(xa, delta + alpha * ascent_direction(grad, norm), eps, norm)
        else:
            with torch.no_grad():  # the last iterate has not been checked yet
                x_last = xa + delta
                hit = model(x_last).argmax(1) != ya
                success[active[hit]] = True
                x_adv[active] = x_last
    return success, x_adv


@dataclass(frozen=True)
class RobustnessCurve:
    """Empirical robust accuracy over a grid of budgets.

    ``eps``: the budgets (increasing); ``accuracy[i]``: fraction of examples not broken at
    ``eps[i]`` (an upper bound on the robust accuracy there); ``broken_at``: per example, the
    smallest budget of the grid at which it was broken (∞ if never).
    """

    eps: tuple[float, ...]
    accuracy: tuple[float, ...]
    broken_at: torch.Tensor


def robust_accuracy_curve(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps_grid, *,
                          progress: bool = True, desc: str = "PGD", **attack) -> RobustnessCurve:
    """:func:`pgd` at each budget of ``eps_grid`` (sorted increasingly), keyword arguments
    ``attack`` passed on (``norm`` — "l2" by default —, ``steps``, ``restarts``, ``generator``,
    ``loss``, ...).

    Balls grow with ε, so a witness found at one budget is a witness at every larger one: examples
    broken at a smaller budget count as broken without being attacked again. The result is
    non-increasing in ε by construction.
    """
    from tqdm.auto import tqdm

    grid = sorted(float(e) for e in eps_grid)
    if not grid or grid[0] < 0 or any(e != e for e in grid):
        raise ValueError(f"eps_grid must be a non-empty list of budgets >= 0; got {eps_grid!r}")
    broken_at = torch.full((len(x),), float("inf"), dtype=torch.float64)
    acc = []
    for eps in tqdm(grid, desc=desc, disable=not progress, leave=False):
        todo = torch.isinf(broken_at).nonzero().squeeze(1)
        if len(todo):
            idx = todo.to(x.device)
            res = pgd(model, x[idx], y[idx], eps, **attack)
            broken_at[todo[res.success.cpu()]] = eps
        acc.append(float((broken_at > eps).double().mean().item()) if len(x) else float("nan"))
    return RobustnessCurve(tuple(grid), tuple(acc), broken_at)


def pgd_l2_objective(objective, x: torch.Tensor, eps: float, *, steps: int = 50, restarts: int = 1,
                     step_size: float | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """ℓ2 PGD that maximizes a per-example objective over the ball ‖δ‖₂ ≤ eps (no box: inputs are
    real-valued, e.g. positions; for the [0, 1] pixel box and a classification loss see :func:`pgd`).

    ``objective`` maps a batch x + δ (N×…) to N values to be increased, differentiably (e.g. the
    displacement of a regressor's output from its clean value). Steps α·g/‖g‖₂ with α =
    ``step_size`` (default 2.5·eps/steps, Madry et al.), projection by scaling onto the ball, uniform
    random starts in the ball from ``generator`` (a fresh one seeded 0 on x's device if None), and
    the best iterate of every restart kept per example. Returns the perturbed inputs x + δ*; the
    objective there is a lower bound on its maximum over the ball (a failed search proves nothing).
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() < 2:
        raise ValueError(f"x must be a floating-point batch (N×…); got {getattr(x, 'shape', type(x).__name__)}")
    if eps is None or not 0 <= eps < math.inf:
        raise ValueError(f"eps must be a finite number >= 0; got {eps!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1; got {steps!r}")
    if isinstance(restarts, bool) or not isinstance(restarts, int) or restarts < 1:
        raise ValueError(f"restarts must be an integer >= 1; got {restarts!r}")
    if step_size is not None and not step_size > 0:
        raise ValueError(f"step_size must be > 0; got {step_size!r}")
    generator = _generator_for(x, generator)
    eps = float(eps)
    alpha = float(step_size) if step_size is not None else 2.5 * eps / steps
    x = x.detach()
    with torch.no_grad():
        best_x, best = x.clone(), objective(x).detach()
    if eps == 0:
        return best_x

    def keep(cand):
        nonlocal best_x, best
        with torch.no_grad():
            val = objective(cand).detach()
            better = val > best
            best = torch.where(better, val, best)
            best_x[better] = cand[better]

    for _ in range(restarts):
        delta = random_ball(x.shape, eps, generator, x.device, x.dtype)
        for _ in range(steps):
            delta.requires_grad_(True)
            grad, = torch.autograd.grad(objective(x + delta).sum(), delta)
            with torch.no_grad():
                delta = delta.detach() + alpha * ascent_direction(grad, "l2")
                size = _flat_norm(delta)
                delta = delta * torch.where(size > eps, eps / size.clamp_min(torch.finfo(delta.dtype).tiny),
                                            torch.ones_like(size))
            keep(x + delta)
    return best_x
