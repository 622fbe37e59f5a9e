"""Certified radii of randomized smoothing with Gaussian, Laplace and uniform noise, in the norms
each noise certifies.

Every noise is parametrized by its **per-coordinate standard deviation** σ, so that noises compare
at equal variance: Gaussian N(0, σ²) per coordinate; Laplace with scale b = σ/√2 (density
e^{−|t|/b}/(2b), variance 2b²); uniform on [−λ, λ] with λ = σ√3 (variance λ²/3). The noise is the
product of d independent such coordinates.

All radii here are in the *binary form* CERTIFY uses: from a lower bound ρ = p̲_A on
P[f(x+ε) = A], with every other class bounded by 1 − ρ; ρ ≤ 1/2 certifies nothing (radius 0).

* Gaussian (Cohen, Rosenfeld & Kolter, ICML 2019): ℓ2 radius σΦ⁻¹(ρ). Since ‖δ‖₂ ≤ ‖δ‖₁ and
  ‖δ‖₂ ≤ √d‖δ‖∞, the same number is an ℓ1 radius and, divided by √d, an ℓ∞ radius; both are
  attained (along a coordinate axis, and along a diagonal) by a half-space classifier.
* Laplace, ℓ1: F⁻¹(ρ) = −b log(2(1 − ρ)), F the Laplace CDF — the tight radius of Yang, Duan, Hu,
  Salman, Razenshteyn & Li, "Randomized Smoothing of All Shapes and Sizes", ICML 2020.
* Uniform, ℓ1: 2λ(ρ − 1/2) (Yang et al. 2020; Levine & Feizi, ICML 2021).
* Uniform, ℓ∞: 2λ(1 − (3/2 − ρ)^{1/d}) (Yang et al. 2020).

Why the ℓ1 radii hold (the proof the book gives in *Other noises, other norms*): for a symmetric
log-concave density the likelihood ratio of a one-coordinate shift by t is monotone in that
coordinate, so by the Neyman–Pearson lemma an event of probability ≥ ρ keeps probability
≥ F(F⁻¹(ρ) − |t|) after the shift. A shift δ is a path of d one-coordinate shifts, and these
bounds compose: F(F⁻¹(F(F⁻¹(ρ) − |δ₁|)) − |δ₂|) = F(F⁻¹(ρ) − |δ₁| − |δ₂|). So P[f(x+δ+ε) = A]
≥ F(F⁻¹(ρ) − ‖δ‖₁) > 1/2 whenever ‖δ‖₁ < F⁻¹(ρ). A half-space f = [x₁ ≤ s] attains it.

Every function checks its arguments and raises :class:`ValueError` naming the offending one.
"""

from __future__ import annotations

import math

import numpy as np

from .bounds import _check_prob, cohen_radius

NOISES = ("gaussian", "laplace", "uniform")
NORMS = ("l1", "l2", "linf")
#: The norm whose radius ``Smooth.certify`` reports for each noise.
NATURAL_NORM = {"gaussian": "l2", "laplace": "l1", "uniform": "l1"}
#: The norms in which this module gives a radius for each noise.
CERTIFIED_NORMS = {"gaussian": ("l2", "l1", "linf"), "laplace": ("l1",), "uniform": ("l1", "linf")}


def check_noise(noise) -> str:
    """``noise`` if it is one of :data:`NOISES`, else a ValueError naming the allowed ones."""
    if not isinstance(noise, str) or noise not in NOISES:
        raise ValueError(f"noise must be one of {', '.join(map(repr, NOISES))}; got {noise!r}")
    return noise


def check_norm(noise, norm) -> str:
    """``norm`` if ``noise`` certifies it (:data:`CERTIFIED_NORMS`), else a ValueError."""
    noise = check_noise(noise)
    if not isinstance(norm, str) or norm not in NORMS:
        raise ValueError(f"norm must be one of {', '.join(map(repr, NORMS))}; got {norm!r}")
    if norm not in CERTIFIED_NORMS[noise]:
        raise ValueError(f"norm {norm!r} is not certified by {noise} noise here; it certifies "
                         f"{', '.join(map(repr, CERTIFIED_NORMS[noise]))} (implied_radius gives the smaller "
                         f"radius those imply in {norm!r} through the inclusions of norm balls)")
    return norm


def _sigma(sigma):
    if isinstance(sigma, bool):
        raise ValueError(f"sigma must be a finite number > 0; got {sigma!r}")
    s = np.asarray(sigma, dtype=float)
    if s.ndim != 0 or not (0 < float(s) < np.inf):
        raise ValueError(f"sigma must be a finite number > 0; got {sigma!r}")
    return float(s)


def _rho(p_a_lower):
    return _check_prob("p_a_lower", p_a_lower)


def _dim(dim):
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise ValueError(f"dim must be an integer >= 1 (the number of coordinates of one input); got {dim!r}")
    return int(dim)


def _out(r):
    return r[()] if np.ndim(r) == 0 else r


def laplace_scale(sigma) -> float:
    """The Laplace scale b with standard deviation σ: b = σ/√2."""
    return _sigma(sigma) / math.sqrt(2.0)


def uniform_half_width(sigma) -> float:
    """The half-width λ of the uniform law on [−λ, λ] with standard deviation σ: λ = σ√3."""
    return _sigma(sigma) * math.sqrt(3.0)


def gaussian_radius(sigma, p_a_lower, norm: str = "l2", dim: int | None = None):
    """Gaussian smoothing's radius in ``norm``: σΦ⁻¹(ρ) in ℓ2 and ℓ1, σΦ⁻¹(ρ)/√d in ℓ∞ (0 for ρ ≤ 1/2).

    Guarantee (Cohen et al. 2019, Theorem 1, binary form): if P[f(x+ε) = A] ≥ ρ, ε ~ N(0, σ²I_d),
    the smoothed classifier predicts A on the open ball of this radius in ``norm``; the ℓ1 and ℓ∞
    radii are those of the ℓ2 ball they are inscribed in, hence also tight (a half-space along an
    axis, resp. a diagonal, attains them).
    """
    s, p = _sigma(sigma), _rho(p_a_lower)
    norm = check_norm("gaussian", norm)
    with np.errstate(divide="ignore"):
        r = np.where(p > 0.5, cohen_radius(s, np.maximum(p, 0.5)), 0.0)
    if norm == "linf":
        r = r / math.sqrt(_dim(dim))
    return _out(r)


def laplace_l1_radius(sigma, p_a_lower):
    """ℓ1 radius of Laplace smoothing: −b log(2(1 − ρ)), b = σ/√2 (0 for ρ ≤ 1/2; inf at ρ = 1).

    Guarantee (Yang et al. 2020, tight ℓ1 certificate of Laplace noise): if P[f(x+ε) = A] ≥ ρ with
    ε's coordinates i.i.d. Laplace of standard deviation σ, the smoothed classifier predicts A on
    the open ℓ1 ball of this radius. Tight: f = [x₁ ≤ x₁⁰ + R] attains it along the first axis.
    """
    b, p = laplace_scale(sigma), _rho(p_a_lower)
    with np.errstate(divide="ignore"):
        r = np.where(p > 0.5, -b * np.log(2.0 * (1.0 - np.maximum(p, 0.5))), 0.0)
    return _out(r)


def uniform_l1_radius(sigma, p_a_lower):
    """ℓ1 radius of uniform smoothing on [−λ, λ]^d, λ = σ√3: 2λ(ρ − 1/2) (0 for ρ ≤ 1/2).

    Guarantee (Yang et al. 2020; Levine & Feizi 2021): if P[f(x+ε) = A] ≥ ρ, the smoothed
    classifier predicts A on the open ℓ1 ball of this radius. Tight along a coordinate axis.
    """
    lam, p = uniform_half_width(sigma), _rho(p_a_lower)
    return _out(np.where(p > 0.5, 2.0 * lam * (p - 0.5), 0.0))


def uniform_linf_radius(sigma, p_a_lower, dim: int):
    """ℓ∞ radius of uniform smoothing on [−λ, λ]^d, λ = σ√3: 2λ(1 − (3/2 − ρ)^{1/d}).

    Guarantee (Yang et al. 2020): a shift δ moves out of the noise's cube at most the mass
    1 − ∏(1 − |δ_i|/2λ) ≤ 1 − (1 − ‖δ‖∞/2λ)^d, so P[f(x+δ+ε) = A] ≥ ρ − that mass > 1/2 inside
    this radius. Tight along the diagonal (|δ_i| all equal).
    """
    lam, p, d = uniform_half_width(sigma), _rho(p_a_lower), _dim(dim)
    return _out(np.where(p > 0.5, 2.0 * lam * (1.0 - np.power(1.5 - np.maximum(p, 0.5), 1.0 / d)), 0.0))


def noise_radius(noise: str, sigma, p_a_lower, norm: str | None = None, dim: int | None = None):
    """The certified radius of ``noise`` smoothing in ``norm`` (default: the noise's natural norm,
    :data:`NATURAL_NORM`) from a lower bound ρ on p_A; ``dim`` (the number of coordinates of one
    input) is needed for ℓ∞. A norm that ``noise`` does not certify here is refused by name."""
    noise = check_noise(noise)
    norm = check_norm(noise, NATURAL_NORM[noise] if norm is None else norm)
    if noise == "gaussian":
        return gaussian_radius(sigma, p_a_lower, norm, dim)
    if noise == "laplace":
        return laplace_l1_radius(sigma, p_a_lower)
    if norm == "l1":
        return uniform_l1_radius(sigma, p_a_lower)
    return uniform_linf_radius(sigma, p_a_lower, dim)


# 1/p for each norm
_INV_P = {"l1": 1.0, "l2": 0.5, "linf": 0.0}


def implied_radius(noise: str, sigma, p_a_lower, norm: str, dim: int):
    """The largest radius in ``norm`` that the radii of ``noise`` (:data:`CERTIFIED_NORMS`) imply
    through inclusions of norm balls: ‖δ‖_p ≤ d^{max(0, 1/p − 1/q)}‖δ‖_q, so the ball of radius r in
    norm q lies in the ball of radius r·d^{max(0, 1/p − 1/q)} in norm p, and a radius R_p certifies
    R_p / d^{max(0, 1/p − 1/q)} in norm q.
    Sound, but not tight unless ``norm`` is one of the noise's own (then it is :func:`noise_radius`);
    e.g. Laplace's ℓ1 radius R gives R/√d in ℓ2 and uniform noise the larger of R₁/√d and R∞ in ℓ2
    (as Yang et al.'s code converts between threat models)."""
    noise = check_noise(noise)
    if not isinstance(norm, str) or norm not in NORMS:
        raise ValueError(f"norm must be one of {', '.join(map(repr, NORMS))}; got {norm!r}")
    d = _dim(dim)
    best = None
    for own in CERTIFIED_NORMS[noise]:
        factor = d ** max(0.0, _INV_P[own] - _INV_P[norm])
        r = np.asarray(noise_radius(noise, sigma, p_a_lower, own, dim=d)) / factor
        best = r if best is None else np.maximum(best, r)
    return _out(best)
