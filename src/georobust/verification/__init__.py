"""Certificates of a network itself, without noise: today the Lipschitz margin certificate
(global bounds as products of per-layer spectral norms, and exact radii of linear models).

Layer 1: imports from ``core`` and ``theory`` only.
"""

from . import lipschitz
from .lipschitz import (UnsupportedLayerError, certified_radius, linear_exact_radius, lipschitz_bound, margins,
                        spectral_norm)

__all__ = ["lipschitz", "UnsupportedLayerError", "certified_radius", "linear_exact_radius", "lipschitz_bound",
           "margins", "spectral_norm"]
