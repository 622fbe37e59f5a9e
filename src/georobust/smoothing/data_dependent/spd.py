"""Geometry of symmetric positive-definite (SPD) matrices, for optimizing a noise covariance.

Two metrics on the SPD cone, both invariant under rotations C ↦ QCQᵀ:

* **affine-invariant** (Fisher–Rao for centred Gaussians; Pennec, Fillard & Ayache, "A Riemannian
  framework for tensor computing", IJCV 2006): g_C(A, B) = tr(C⁻¹AC⁻¹B). Exponential map
  Exp_C(V) = C^{1/2} expm(C^{-1/2} V C^{-1/2}) C^{1/2}, logarithm its inverse, and the Riemannian
  gradient of F at C is C·sym(∇F)·C, ∇F the Euclidean gradient (the defining identity
  g_C(grad F, V) = ⟨∇F, V⟩ for every symmetric V). RDDRS (Labarbarie, Hajri & Arnaudon 2022)
  ascends with this metric.
* **log-Euclidean** (Arsigny, Fillard, Pennec & Ayache 2006/2007): the Euclidean metric on
  L = log C. Gradient ascent is a Euclidean step on L with ∇_L F(exp L) = Dexp_L*(sym ∇F), the
  adjoint of the Fréchet derivative of the matrix exponential, which in the eigenbasis of
  L = U diag(l) Uᵀ multiplies entries by the divided differences (e^{l_i} − e^{l_j})/(l_i − l_j)
  (Daleckii–Krein) and is self-adjoint.

At C = σI both steps agree: Exp_{σI}(lr·σ²G) = σ expm(lr σ G) = exp(log σ I + lr σ G).

All functions take batches (..., d, d) in any floating dtype and use ``torch.linalg.eigh``.
"""

from __future__ import annotations

import torch

__all__ = ["sym", "eig_apply", "affine_exp", "affine_log", "affine_gradient", "affine_distance",
           "spd_log", "spd_exp", "log_euclidean_gradient", "clamp_eigenvalues"]


def sym(a: torch.Tensor) -> torch.Tensor:
    """(A + Aᵀ)/2 over the last two dimensions."""
    return 0.5 * (a + a.transpose(-1, -2))


def eig_apply(c: torch.Tensor, fn) -> torch.Tensor:
    """U diag(fn(λ)) Uᵀ for symmetric C = U diag(λ) Uᵀ."""
    lam, u = torch.linalg.eigh(sym(c))
    return (u * fn(lam).unsqueeze(-2)) @ u.transpose(-1, -2)


def spd_log(c):
    """The matrix logarithm of SPD C."""
    return eig_apply(c, torch.log)


def spd_exp(a):
    """The matrix exponential of symmetric A (SPD)."""
    return eig_apply(a, torch.exp)


def affine_exp(c, v):
    """Exp_C(V) = C^{1/2} expm(C^{-1/2} V C^{-1/2}) C^{1/2} (affine-invariant metric)."""
    half = eig_apply(c, torch.sqrt)
    ihalf = eig_apply(c, torch.rsqrt)
    return sym(half @ spd_exp(sym(ihalf @ v @ ihalf)) @ half)


def affine_log(c, y):
    """Log_C(Y) = C^{1/2} logm(C^{-1/2} Y C^{-1/2}) C^{1/2}, the inverse of :func:`affine_exp`."""
    half = eig_apply(c, torch.sqrt)
    ihalf = eig_apply(c, torch.rsqrt)
    return sym(half @ spd_log(sym(ihalf @ y @ ihalf)) @ half)


def affine_gradient(c, euclidean_grad):
    """The affine-invariant Riemannian gradient C·sym(∇F)·C of F at C."""
    return sym(c @ sym(euclidean_grad) @ c)


def affine_distance(c, y):
    """‖logm(C^{-1/2} Y C^{-1/2})‖_F, the affine-invariant geodesic distance."""
    ihalf = eig_apply(c, torch.rsqrt)
    lam = torch.linalg.eigvalsh(sym(ihalf @ y @ ihalf))
    return torch.log(lam).square().sum(-1).sqrt()


def log_euclidean_gradient(log_c, euclidean_grad, decomposition=None):
    """∇_L F(exp L) = Dexp_L*(sym ∇F): the gradient of F∘exp at L = log C (Daleckii–Krein).

    With L = U diag(l) Uᵀ and G̃ = Uᵀ sym(∇F) U, the result is U (G̃ ∘ Γ) Uᵀ with
    Γ_ij = (e^{l_i} − e^{l_j})/(l_i − l_j) (and e^{l_i} on ties). ``decomposition``: L's
    (eigenvalues, eigenvectors) if already known."""
    lam, u = torch.linalg.eigh(sym(log_c)) if decomposition is None else decomposition
    e = torch.exp(lam)
    diff_l = lam.unsqueeze(-1) - lam.unsqueeze(-2)
    diff_e = e.unsqueeze(-1) - e.unsqueeze(-2)
    close = diff_l.abs() <= 1e-9 * (1 + lam.abs().unsqueeze(-1))
    mean_e = 0.5 * (e.unsqueeze(-1) + e.unsqueeze(-2))
    gamma = torch.where(close, mean_e, diff_e / torch.where(close, torch.ones_like(diff_l), diff_l))
    g = u.transpose(-1, -2) @ sym(euclidean_grad) @ u
    return sym(u @ (g * gamma) @ u.transpose(-1, -2))


def clamp_eigenvalues(c, floor):
    """C with its eigenvalues raised to at least ``floor`` (a number or one per matrix): the
    projection onto {C : C ⪰ floor·I} in the Frobenius norm, RDDRS's "superset" step."""
    floor = torch.as_tensor(floor, dtype=c.dtype, device=c.device)
    while floor.ndim < c.ndim - 1:
        floor = floor.unsqueeze(-1)
    return eig_apply(c, lambda lam: torch.maximum(lam, floor.expand_as(lam)))
