"""The theory behind certificates: the Neyman–Pearson lemma and certified radii with their
confidence bounds.

* :mod:`~georobust.theory.neyman_pearson` — most powerful tests, exactly (discrete) and for
  Gaussians; the lemma the smoothing certificate rests on.
* :mod:`~georobust.theory.bounds` — Cohen et al.'s radius, Clopper–Pearson bounds, the radius
  cap of n samples, exact radii of linear models, the Lipschitz margin radius.
* :mod:`~georobust.theory.earlier_certificates` — PixelDP, the Rényi-divergence bound and a KL
  certificate, as radii of (p_A, p_B), next to the Neyman–Pearson radius that dominates them.
* :mod:`~georobust.theory.radii` — the radii of Gaussian, Laplace and uniform smoothing in the
  norms each certifies (ℓ1, ℓ2, ℓ∞), every noise parametrized by its standard deviation.

Layer 0: imports nothing else from georobust.
"""

from . import bounds, earlier_certificates, neyman_pearson, radii
from .bounds import (clopper_pearson_lower, clopper_pearson_upper, cohen_radius, linear_radius,
                     lipschitz_radius, radius_cap, radius_from_votes, smoothed_counts)
from .radii import (CERTIFIED_NORMS, NATURAL_NORM, NOISES, gaussian_radius, implied_radius, laplace_l1_radius, noise_radius,
                    uniform_l1_radius, uniform_linf_radius)

__all__ = ["bounds", "earlier_certificates", "neyman_pearson", "radii", "CERTIFIED_NORMS", "NATURAL_NORM", "NOISES", "gaussian_radius",
           "implied_radius", "laplace_l1_radius", "noise_radius", "uniform_l1_radius", "uniform_linf_radius", "clopper_pearson_lower", "clopper_pearson_upper", "cohen_radius",
           "linear_radius", "lipschitz_radius", "radius_cap", "radius_from_votes", "smoothed_counts"]
