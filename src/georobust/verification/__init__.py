"""Certificates of a network itself, without noise.

* :mod:`~georobust.verification.lipschitz` — the Lipschitz margin certificate (global bounds as
  products of per-layer spectral norms, and exact radii of linear models).
* :mod:`~georobust.verification.relu_network` — a ReLU network as affine maps between ReLUs;
  interval bound propagation and CROWN.
* :mod:`~georobust.verification.matrix_free` — the same CROWN bounds with the layers applied as
  operators (no dense matrices), for networks such as ``ibp_medium``.
* :mod:`~georobust.verification.milp` — exact verification as a MILP and its LP relaxation (HiGHS).
* :mod:`~georobust.verification.lipschitz_layers` — almost-orthogonal (AOL) layers and the margin
  certificate of a 1-Lipschitz network.
* :mod:`~georobust.verification.certified_training` — differentiable IBP and CROWN-IBP margin
  bounds and the IBP / CROWN-IBP training objective.
* :mod:`~georobust.verification.verify` — ``verify`` and ``margin_bounds`` over the four methods,
  and the exact ℓ∞ radius by bisection.

Layer 1: imports from ``core`` and ``theory`` only.
"""

from . import certified_training, lipschitz, lipschitz_layers, matrix_free, milp, relu_network, verify as verify_module
from .lipschitz_layers import AOLLinear, MarginObjective, aol_network, margin_radius
from .certified_training import CertifiedObjective, crown_ibp_margins, ibp_margins
from .lipschitz import (UnsupportedLayerError, certified_radius, linear_exact_radius, lipschitz_bound, margins,
                        spectral_norm)
from .relu_network import AffineForm, affine_form, crown, ibp
from .matrix_free import crown_matrix_free
from .verify import METHODS, exact_linf_radius, margin_bounds, verify

__all__ = ["lipschitz_layers", "AOLLinear", "MarginObjective", "aol_network", "margin_radius", "certified_training", "CertifiedObjective", "crown_ibp_margins", "ibp_margins", "lipschitz", "milp", "relu_network", "verify_module", "UnsupportedLayerError", "certified_radius",
           "linear_exact_radius", "lipschitz_bound", "margins", "spectral_norm", "AffineForm", "affine_form",
           "crown", "ibp", "matrix_free", "crown_matrix_free", "METHODS", "exact_linf_radius", "margin_bounds", "verify"]
