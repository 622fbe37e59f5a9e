"""Anisotropic Gaussian smoothing: noise ε = C z with z ~ N(0, I_d) and Σ = CCᵀ, and its certificate.

Theorem (whitening; the certificate of ANCER, Eiras et al., TMLR 2022, and RDDRS, Labarbarie,
Hajri & Arnaudon 2022, reduced to Cohen, Rosenfeld & Kolter 2019). Let C be invertible, g(x) =
argmax_c P[f(x + Cz) = c], and p̲_A ≤ P[f(x + Cz) = c_A], p̄_B ≥ max_{c≠c_A} P[f(x + Cz) = c].
Then g(x + δ) = c_A for every δ with ‖C⁻¹δ‖₂ < ½(Φ⁻¹(p̲_A) − Φ⁻¹(p̄_B)).

Proof. Put h(u) = f(Cu). Then f(x + δ + Cz) = h(C⁻¹x + C⁻¹δ + z): smoothing f with noise Cz at
x + δ is smoothing h with N(0, I) at C⁻¹x + C⁻¹δ. Cohen et al.'s Theorem 1 for h (σ = 1) keeps the
top class for every shift C⁻¹δ of ℓ2 norm below ½(Φ⁻¹(p̲_A) − Φ⁻¹(p̄_B)). ∎

With p̄_B = 1 − p̲_A (what CERTIFY uses) the bound is the **gap** Φ⁻¹(p̲_A): the certified
region is the ellipsoid E = {δ : ‖C⁻¹δ‖₂ < gap} = {C u : ‖u‖₂ < gap}. Two scalar summaries:

* :func:`radius_l2` — the largest ℓ2 ball inside E: radius σ_min(C)·gap (for SPD C, its smallest
  eigenvalue), since ‖C⁻¹δ‖ ≤ ‖δ‖/σ_min(C).
* :func:`proxy_radius` — the radius of the ℓ2 ball of the same volume as E: det(C)^{1/d}·gap, the
  "proxy radius" that ANCER and RDDRS report. It is **not** a certified ℓ2 radius.

:class:`AnisotropicSmooth` is :class:`~georobust.smoothing.smooth.Smooth` with this noise: the same
selection/estimation split, Clopper–Pearson bound, per-input generators and batched sampling, so
the same guarantee: with probability ≥ 1 − α over the sampling, the returned class is g's at every
point of x + E.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .smooth import Smooth, _child_seeds, certify_from_counts

__all__ = ["AnisotropicSmooth", "as_scale", "radius_l2", "proxy_radius", "region_contains",
           "scale_matrix", "ellipse_boundary"]

_SYM_TOL = 1e-5


# --------------------------------------------------------------------------- scales
def _finite_positive(name, t):
    if not torch.all(torch.isfinite(t)) or not torch.all(t > 0):
        raise ValueError(f"{name}: standard deviations must be finite and > 0; got min {float(t.min()):.3g}")


def as_scale(scale, dim: int | None = None):
    """Normalize a noise scale to ``(kind, tensor)``.

    ``scale``: a number σ > 0 (isotropic, ``kind="isotropic"``, tensor of shape ()), a tensor of d
    per-coordinate standard deviations (any shape with d elements, ``"diagonal"``, tensor (d,)), or a
    d×d symmetric positive-definite matrix C (``"full"``). ``dim`` (d, the number of elements of one
    input), when given, is checked. Raises ValueError naming ``scale`` otherwise: σ ≤ 0, a wrong
    shape, a non-symmetric, indefinite or singular C.
    """
    if isinstance(scale, bool):
        raise ValueError(f"scale must be a number > 0, a tensor of d standard deviations or a d x d SPD matrix; got {scale!r}")
    if isinstance(scale, (int, float, np.floating, np.integer)):
        if not 0 < float(scale) < np.inf:
            raise ValueError(f"scale: the isotropic standard deviation sigma must be finite and > 0; got {scale!r}")
        return "isotropic", torch.tensor(float(scale), dtype=torch.float64)
    if isinstance(scale, np.ndarray):
        scale = torch.from_numpy(scale)
    if not isinstance(scale, torch.Tensor):
        raise ValueError(f"scale must be a number, a tensor of standard deviations or a matrix; got {type(scale).__name__}")
    if not scale.is_floating_point():
        scale = scale.double()
    if scale.ndim == 0:
        return as_scale(float(scale), dim)
    if scale.ndim == 2 and scale.shape[0] == scale.shape[1] and scale.shape[0] > 1 and (
            dim is None or scale.shape[0] == dim):
        c = scale
        d = c.shape[0]
        if not torch.all(torch.isfinite(c)):
            raise ValueError("scale: the matrix C has non-finite entries")
        asym = float((c - c.T).abs().max()) / max(float(c.abs().max()), 1e-300)
        if asym > _SYM_TOL:
            raise ValueError(f"scale: the matrix C must be symmetric positive definite (the SPD square root of the "
                             f"covariance); it is not symmetric (relative asymmetry {asym:.2g})")
        eig = torch.linalg.eigvalsh(0.5 * (c + c.T).double())
        if float(eig.min()) < 0:
            raise ValueError(f"scale: the matrix C must be symmetric positive definite; its smallest eigenvalue is "
                             f"{float(eig.min()):.3g} < 0")
        if float(eig.min()) <= 1e-12 * float(eig.max()) or float(eig.max()) == 0:
            raise ValueError(f"scale: the matrix C is singular (eigenvalues in [{float(eig.min()):.3g}, "
                             f"{float(eig.max()):.3g}]); the certificate needs C invertible")
        return "full", 0.5 * (c + c.T)
    flat = scale.reshape(-1)
    if dim is not None and flat.numel() != dim:
        raise ValueError(f"scale must be a number, {dim} per-coordinate standard deviations or a {dim} x {dim} "
                         f"matrix (d = {dim} elements per input); got shape {tuple(scale.shape)}")
    _finite_positive("scale", flat)
    return "diagonal", flat


def _eigenvalues(kind, t):
    """Singular values of C (its eigenvalues for SPD C), float64 numpy; None for isotropic."""
    if kind == "isotropic":
        return None
    if kind == "diagonal":
        return t.detach().double().cpu().numpy()
    return torch.linalg.eigvalsh(t.detach().double().cpu()).numpy()


def _as_gap(gap):
    g = np.asarray(torch.as_tensor(gap).detach().cpu().double().numpy() if isinstance(gap, torch.Tensor) else gap,
                   dtype=float)
    if np.any(np.isnan(g)) or np.any(g < 0):
        raise ValueError(f"gap must be >= 0 (Phi^-1 of the lower bound, 0 for an abstention); got {gap!r}")
    return g


def radius_l2(scale, gap):
    """σ_min(C)·gap: the radius of the largest ℓ2 ball inside the certified ellipsoid
    {δ : ‖C⁻¹δ‖₂ < gap}. Certified (sound) whenever the gap is."""
    kind, t = as_scale(scale)
    g = _as_gap(gap)
    smin = float(t) if kind == "isotropic" else float(_eigenvalues(kind, t).min())
    return smin * g if g.ndim else float(smin * g)


def proxy_radius(scale, gap):
    """det(C)^{1/d}·gap: the radius of the ℓ2 ball with the volume of the certified ellipsoid (the
    proxy radius of ANCER and RDDRS). A volume summary, not a certified ℓ2 radius: it is ≥
    :func:`radius_l2`, with equality only for isotropic C."""
    kind, t = as_scale(scale)
    g = _as_gap(gap)
    geo = float(t) if kind == "isotropic" else float(np.exp(np.mean(np.log(_eigenvalues(kind, t)))))
    return geo * g if g.ndim else float(geo * g)


def scale_matrix(scale, dim: int) -> torch.Tensor:
    """The d×d matrix C of any scale (σI, diag(s) or C itself), float64."""
    kind, t = as_scale(scale, dim)
    if kind == "isotropic":
        return float(t) * torch.eye(dim, dtype=torch.float64)
    if kind == "diagonal":
        return torch.diag(t.double())
    return t.double()


def region_contains(scale, gap, delta) -> torch.Tensor:
    """Whether perturbations lie in the certified region: ‖C⁻¹δ‖₂ < gap.

    ``delta``: one perturbation as a 1-D tensor of d elements (returns a 0-d bool tensor), or a batch
    along dimension 0, each row with d elements in any shape (returns a bool tensor of shape (B,)).
    ``gap``: a number, or one per row."""
    kind, t = as_scale(scale)
    delta = torch.as_tensor(delta).double()
    single = delta.ndim == 1
    flat = delta.reshape(1, -1) if single else delta.reshape(len(delta), -1)
    if kind != "isotropic" and flat.shape[1] != t.shape[0]:
        raise ValueError(f"delta must hold perturbations of d = {t.shape[0]} elements; got shape {tuple(delta.shape)}")
    if kind == "isotropic":
        norms = flat.norm(dim=1) / float(t)
    elif kind == "diagonal":
        norms = (flat / t.double()).norm(dim=1)
    else:
        norms = torch.linalg.solve(t.double(), flat.T).T.norm(dim=1)
    out = norms < torch.as_tensor(_as_gap(gap), dtype=torch.float64)
    return out[0] if single else out


def ellipse_boundary(scale2d, gap: float, points: int = 200) -> np.ndarray:
    """Points (points, 2) on the boundary of the 2-D certified ellipse {C u : ‖u‖ = gap}, for drawing."""
    c = scale_matrix(scale2d, 2).numpy()
    angle = np.linspace(0, 2 * np.pi, points)
    return (gap * np.stack([np.cos(angle), np.sin(angle)], 1)) @ c.T


# --------------------------------------------------------------------------- the smoothed classifier
class AnisotropicSmooth(Smooth):
    """The smoothed classifier g(x) = argmax_c P[f(x + Cz) = c], z ~ N(0, I_d), with CERTIFY
    returning the gap Φ⁻¹(p̲_A) of the certified ellipsoid {δ : ‖C⁻¹δ‖₂ < gap} (module docstring).

    ``scale``: a number σ (isotropic: C = σI, the certificate of :class:`Smooth` with radius
    σ·gap), a tensor of d per-coordinate standard deviations (diagonal C; any shape with d elements,
    e.g. the input's shape), or a d×d SPD matrix C; d is the number of elements of one input.
    :meth:`certify_batch` also takes ``scales``, one scale per input of the same kind (shape (B,),
    (B, d) or (B, d, d)): the per-input noises of data-dependent smoothing, certified each as its own
    smoothed classifier (see :mod:`georobust.smoothing.data_dependent` for what that does and does
    not guarantee).

    Guarantee of :meth:`certify`: with probability at least 1 − α over the sampling, if a class is
    returned, the smoothed classifier with noise C z predicts it at every point of x + E, E the
    ellipsoid of the returned gap (:func:`region_contains`; :func:`radius_l2` and
    :func:`proxy_radius` summarize it).
    """

    def __init__(self, base_classifier: nn.Module, num_classes: int, scale, input_shape=None):
        kind, t = as_scale(scale)
        super().__init__(base_classifier, num_classes, 1.0, input_shape=input_shape)
        self.kind, self.scale = kind, t
        self._rows = None  # per-input scales during one certify_batch call
        self.norm = "ellipsoid"
        if self.input_shape is not None and kind != "isotropic":
            as_scale(scale, int(np.prod(self.input_shape)))

    # ------------------------------------------------------------------ noise
    def _draw(self, out: torch.Tensor, generator: torch.Generator, index: int = 0) -> torch.Tensor:
        out.normal_(0.0, 1.0, generator=generator)
        t = self.scale if self._rows is None else self._rows[index]
        t = t.to(device=out.device, dtype=out.dtype)
        if self.kind == "isotropic":
            return out.mul_(t)
        flat = out.reshape(len(out), -1)
        if self.kind == "diagonal":
            flat.mul_(t)
        else:
            flat.copy_(flat @ t)  # rows z ↦ (C z)ᵀ = zᵀ C (C symmetric)
        return out

    def _check_dim(self, xs):
        d = int(np.prod(xs.shape[1:]))
        if self.kind != "isotropic" and self.scale.shape[0] != d:
            raise ValueError(f"scale has {self.scale.shape[0]} coordinates but one input has d = {d} elements "
                             f"(shape {tuple(xs.shape[1:])})")
        return d

    def _stack_scales(self, scales, num, d):
        if isinstance(scales, (list, tuple)):
            parsed = [as_scale(s, d) for s in scales]
            kinds = {k for k, _ in parsed}
            if kinds != {self.kind}:
                raise ValueError(f"scales must all be of this smoother's kind {self.kind!r}; got {sorted(kinds)}")
            rows = torch.stack([t for _, t in parsed])
        else:
            rows = torch.as_tensor(scales)
            want = {"isotropic": (num,), "diagonal": (num, d), "full": (num, d, d)}[self.kind]
            if tuple(rows.shape) != want and not (self.kind == "diagonal" and rows.shape[:1] == (num,)
                                                  and rows[0].numel() == d):
                raise ValueError(f"scales must have shape {want} (one {self.kind} scale per input); "
                                 f"got {tuple(rows.shape)}")
            rows = torch.stack([as_scale(r if self.kind != "isotropic" else float(r), d)[1] for r in rows])
        if len(rows) != num:
            raise ValueError(f"scales must hold one scale per input ({num}); got {len(rows)}")
        return rows

    # ------------------------------------------------------------------ public API
    def certify(self, x: torch.Tensor, n0: int, n: int, alpha: float, batch_size: int,
                generator=None) -> tuple[int, float]:
        """CERTIFY (Cohen et al. 2019) with noise C z, for one input (no batch dimension): (ĉ_A, gap)
        with gap = Φ⁻¹(p̲_A), or (ABSTAIN, 0.0) when p̲_A < 1/2. Guarantee: the class docstring."""
        classes, gaps = self.certify_batch(self._as_batch(x, single=True), n0, n, alpha, batch_size, generator)
        return int(classes[0]), float(gaps[0])

    def certify_batch(self, xs: torch.Tensor, n0: int, n: int, alpha: float, batch_size: int, generator=None,
                      scales=None):
        """CERTIFY for every row of ``xs``: CPU tensors (classes int64 with ABSTAIN = −1, gaps float64).

        ``scales`` (optional): one scale per input (module docstring), each input then smoothed with
        its own noise. Each input's result equals :meth:`certify` on that input alone with the same
        generator and batch size."""
        xs = self._as_batch(xs, single=False)
        n0, n, alpha, batch_size = self._check_sampling(n0, n, alpha, batch_size)
        d = self._check_dim(xs)
        rows = None if scales is None else self._stack_scales(scales, len(xs), d)
        self._rows = rows
        try:
            counts = self.sample_counts(xs, _child_seeds(generator, len(xs)), n0, n, batch_size)
        finally:
            self._rows = None
        c, g = certify_from_counts(counts[:, 0], counts[:, 1], alpha, 1.0)
        return torch.from_numpy(c), torch.from_numpy(g)

    def predict(self, x, n, alpha, batch_size, generator=None) -> int:
        """PREDICT (Cohen et al. 2019) with noise C z: the guarantee of :meth:`Smooth.predict`."""
        self._check_dim(self._as_batch(x, single=True))
        return super().predict(x, n, alpha, batch_size, generator)

    def certify_topk(self, *args, **kwargs):
        raise ValueError("AnisotropicSmooth: the top-k certificate is not derived here for anisotropic noise")

    certify_topk_batch = certify_topk
