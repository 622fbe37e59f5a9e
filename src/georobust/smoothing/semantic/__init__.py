"""Certificates against semantic transformations: brightness, contrast, translation, rotation.

The threat is a transformation of the input with a bounded parameter, not an ℓp ball. Following
Fischer, Baader & Vechev, "Certified Defense to Image Transformations via Randomized Smoothing"
(NeurIPS 2020) and Li et al., "TSS: Transformation-Specific Smoothing for Robustness
Certification" (CCS 2021, arXiv 2002.12398; code github.com/AI-secure/semantic-randomized-smoothing),
each transformation gets the certificate that its algebra allows.

* **Brightness** x ↦ x + b and **contrast** x ↦ eᵏ·x (no clipping; the same parametrization as
  TSS's ``BrightnessShift`` and ``BrightnessScale``) are *additive in their parameter*:
  φ(φ(x, a), t) = φ(x, a + t). :class:`ParameterSmooth` smooths over the parameter,
  g(x) = argmax_c P[f(φ(x, t)) = c], t ~ N(0, σ²). Then g(φ(x, a)) is the one-dimensional Gaussian
  smoothing of h(t) = f(φ(x, t)) evaluated at t = a, and Cohen et al.'s Theorem 1 in one dimension
  gives: if p̲_A ≥ ½ then g(φ(x, a)) = c_A for every |a| < σΦ⁻¹(p̲_A) — a brightness shift below
  that radius, or a contrast factor in (e^{−R}, e^{R}). Exact (tight for h) and with CERTIFY's
  guarantee (probability ≥ 1 − α over the sampling). TSS's joint brightness-and-contrast
  parametrization eᵏ(x + b) is not additive (the contrast rescales the brightness noise) and needs
  TSS's Theorem for non-additive resolvable transformations; it is not implemented here.
* **Translation** by integer pixel shifts with zero or reflection padding: the shifts within a
  budget form a finite set, so :func:`translation_radius` enumerates them and evaluates the
  classifier on each (TSS's enumeration certificate, ``translation_certify.py``): exact and
  deterministic, no sampling and no α. (Smoothing over continuous Gaussian shifts, TSS's other
  option, would need the shifts to be resolvable under rounding; enumeration needs nothing.)
* **Rotation** by an angle θ ∈ [−Θ, Θ] (bilinear interpolation, zero fill: :func:`rotate`) is
  not resolvable: rotating an interpolated image again is not a rotation of the original.
  :func:`certify_rotation` follows TSS's sampling-based certificate: g is plain Gaussian ℓ2
  smoothing (:class:`~georobust.smoothing.smooth.Smooth`); the rotated images R_{θ_j}x at the
  grid θ_j = j·Δ are certified with ℓ2 radii R_j (Bonferroni: level α/K for the K grid points);
  and every θ is within Δ/2 of some θ_j, with ‖R_θx − R_{θ_j}x‖₂ ≤ e_j, the interpolation error
  bounded soundly by :func:`rotation_error_bounds` (a fine subgrid plus a Lipschitz constant of
  θ ↦ R_θx computed from the image). If every θ_j in the budget has the top class ĉ and R_j > e_j,
  then g(R_θx) = ĉ for every |θ| ≤ Θ, with probability ≥ 1 − α over the sampling.

Everything takes an explicit ``torch.Generator`` and runs on the device of its inputs. The
attack :func:`rotation_attack` (PREDICT of g on a grid of angles) is the empirical upper bound.
"""

from . import parameter, rotation, training, transforms, translation
from .parameter import ParameterSmooth
from .rotation import (RotationCertificate, certify_rotation, rotation_attack, rotation_error_bounds, rotation_grid,
                       rotation_lipschitz)
from .training import augmentation_objective
from .transforms import (PADDINGS, PARAMETER_TRANSFORMATIONS, TRANSFORMATIONS, brightness, check_transformation,
                         contrast, rotate, transform, translate)
from .translation import integer_shifts, translation_radius

__all__ = ["TRANSFORMATIONS", "PARAMETER_TRANSFORMATIONS", "PADDINGS", "check_transformation", "transform",
           "brightness", "contrast", "rotate", "translate", "ParameterSmooth", "rotation_grid",
           "rotation_lipschitz", "rotation_error_bounds", "RotationCertificate", "certify_rotation",
           "rotation_attack", "augmentation_objective", "integer_shifts", "translation_radius",
           "parameter", "rotation", "training", "transforms", "translation"]
