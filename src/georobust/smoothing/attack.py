"""ℓ2 PGD on the soft smoothed classifier, with expectation over the noise (Salman et al. 2019).

The smoothed classifier g(x) = argmax_c P[f(x+σz) = c] is not differentiable and its class
probabilities can only be estimated, so Salman, Yang, Li, Zhang, Zhang, Razenshteyn & Bubeck,
"Provably Robust Deep Learning via Adversarially Trained Smoothed Classifiers", NeurIPS 2019,
attack the *soft* smoothed classifier G(x) = E_z[softmax(f(x + σz))] instead, with the Monte Carlo
estimate of its cross-entropy over m noise draws z_1, …, z_m ~ N(0, I):

    J(x') = −log( (1/m) Σ_j softmax(f(x' + σ z_j))_y ).

:func:`smooth_pgd_l2` ascends J by normalized-gradient steps, projecting onto the ℓ2 ball of radius
ε around x and the pixel box [0, 1]^d after every step. The noise is drawn afresh at each step
(expectation over transformation): the attack follows a stochastic gradient of E[J].

What it proves: nothing by itself. The returned point lies in the ball and the box; whether the
*smoothed* classifier g misclassifies it must be checked separately (e.g. with PREDICT or CERTIFY
of :mod:`georobust.smoothing`), and a failed attack is no certificate.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def _per_example(value, name: str, n: int, x: torch.Tensor) -> torch.Tensor:
    """``value`` (a number or a tensor of n numbers) as a float tensor of shape (n,) on x's device."""
    t = torch.as_tensor(value, dtype=x.dtype, device=x.device)
    if t.dim() == 0:
        t = t.expand(n)
    elif t.shape != (n,):
        raise ValueError(f"{name} must be a number or a tensor with one value per example ({n}); "
                         f"got shape {tuple(t.shape)}")
    return t


def _shape(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Per-example values (n,) broadcastable against ``like`` (n×…)."""
    return t.view(-1, *([1] * (like.dim() - 1)))


def smoothed_nll(model: nn.Module, x: torch.Tensor, y: torch.Tensor, noise: torch.Tensor,
                 sigma: float) -> torch.Tensor:
    """Per-example −log((1/m) Σ_j softmax(f(x + σ z_j))_y) for ``noise`` z of shape (n, m, …).

    The probability is clamped at 1e-20 before the logarithm, as in Salman et al.'s code.
    """
    n, m = noise.shape[:2]
    noisy = x.unsqueeze(1) + sigma * noise                      # (n, m, …)
    logits = model(noisy.reshape(n * m, *x.shape[1:]))
    probs = F.softmax(logits, dim=1).reshape(n, m, -1).mean(1)   # soft smoothed classifier
    return -torch.log(probs.gather(1, y[:, None]).squeeze(1).clamp_min(1e-20))


def pgd_on_smoothed(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, sigma: float,
                    eps: torch.Tensor, steps: int, step_size: torch.Tensor, draw_noise) -> torch.Tensor:
    """The PGD loop behind :func:`smooth_pgd_l2` and SmoothAdv training, without input checks.

    ``eps`` and ``step_size``: per-example tensors (n,); ``draw_noise()`` returns the noise
    (n, m, …) used at a step — fresh at each call for expectation over transformation, or the same
    tensor every time (fixed noise, as in Salman et al.'s training code). Starts at x (δ = 0) and
    returns the last iterate, detached.
    """
    tiny = torch.finfo(x.dtype).tiny
    eps_b, step_b = _shape(eps, x), _shape(step_size, x)
    delta = torch.zeros_like(x)
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = smoothed_nll(model, x + delta, y, draw_noise(), sigma).sum()
        grad, = torch.autograd.grad(loss, delta)
        with torch.no_grad():
            grad_norm = grad.flatten(1).norm(dim=1)
            delta = delta.detach() + step_b * grad / _shape(grad_norm.clamp_min(tiny), x)
            # into the ball, then into the box: clipping only shrinks coordinates of δ (x is in
            # the box), so the result stays in the ball.
            norm = _shape(delta.flatten(1).norm(dim=1), x)
            delta = delta * torch.where(norm > eps_b, eps_b / norm.clamp_min(tiny), torch.ones_like(norm))
            delta = (x + delta).clamp(0.0, 1.0) - x
    return (x + delta).detach()


def smooth_pgd_l2(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, sigma: float, eps,
                  steps: int = 10, m: int = 4, step_size=None,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """ℓ2 PGD against the soft smoothed classifier of ``model`` at noise level ``sigma``
    (Salman et al. 2019, SmoothAdv_PGD with m noise draws, fresh at every step).

    ``x``: inputs (n×…) in [0, 1]; ``y``: labels (n). ``eps``: the ℓ2 budget, a number or a
    tensor with one budget per example (e.g. 1.5 × each example's certified radius).
    ``step_size`` (number or per-example tensor) defaults to 2·eps/steps, as in the authors'
    code. The attack starts at x. Noise is drawn from ``generator`` (must live on x's device;
    None: torch's default generator) and runs on x's device and in x's dtype; the model must live
    there. The model's train/eval mode is left as it is (use eval mode for attacks).

    Returns ``x_adv`` (n×…, detached) with ‖x_adv − x‖₂ ≤ eps per example (up to float rounding)
    and x_adv in [0, 1]. Where eps = 0, x_adv = x.
    """
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError("x and y must be tensors")
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not (sigma > 0 and math.isfinite(sigma)):
        raise ValueError(f"sigma must be a finite number > 0; got {sigma!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1; got {steps!r}")
    if isinstance(m, bool) or not isinstance(m, int) or m < 1:
        raise ValueError(f"m must be an integer >= 1; got {m!r}")
    if x.dim() < 2 or not x.is_floating_point():
        raise ValueError(f"x must be a floating-point batch (n×…); got shape {tuple(x.shape)}, {x.dtype}")
    if y.dim() != 1 or len(y) != len(x):
        raise ValueError(f"y must hold one label per row of x: x has shape {tuple(x.shape)}, y {tuple(y.shape)}")
    n = len(x)
    eps_t = _per_example(eps, "eps", n, x)
    if not bool(torch.all(eps_t >= 0)) or not bool(torch.all(torch.isfinite(eps_t))):
        raise ValueError(f"eps must be finite and >= 0; got {eps!r}")
    if step_size is None:
        step_t = 2.0 * eps_t / steps
    else:
        step_t = _per_example(step_size, "step_size", n, x)
        if not bool(torch.all(step_t > 0)):
            raise ValueError(f"step_size must be > 0; got {step_size!r}")
    if generator is not None and generator.device.type != x.device.type:
        raise ValueError(f"generator is on {generator.device} but x is on {x.device}")
    if n and (x.min() < 0 or x.max() > 1):
        raise ValueError("x must lie in [0, 1]")
    if n == 0 or not bool(torch.any(eps_t > 0)):
        return x.detach().clone()
    y = y.to(x.device)

    def fresh_noise():
        return torch.randn((n, m, *x.shape[1:]), generator=generator, device=x.device, dtype=x.dtype)

    return pgd_on_smoothed(model, x.detach(), y, sigma=float(sigma), eps=eps_t, steps=steps,
                           step_size=step_t, draw_noise=fresh_noise)
