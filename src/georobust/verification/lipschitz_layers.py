"""Lipschitz-by-construction layers: almost-orthogonal Lipschitz (AOL) linear layers.

:class:`AOLLinear` (Prach & Lampert, "Almost-Orthogonal Layers for Efficient General-Purpose
Lipschitz Networks", ECCV 2022) uses the weight W·T^{−1/2} with T = diag(Σ_j |WᵀW|_ij). Its ℓ2
operator norm is at most 1 whatever W is: diag(T) − WᵀW is symmetric with a nonnegative diagonal
and diagonally dominant (each diagonal entry T_ii − (WᵀW)_ii = Σ_{j≠i} |WᵀW|_ij bounds the row's
off-diagonal entries), hence positive semidefinite; so WᵀW ⪯ T and ‖W T^{−1/2}‖² =
λ_max(T^{−1/2} WᵀW T^{−1/2}) ≤ 1. A network of such layers with 1-Lipschitz activations (ReLU) is
1-Lipschitz in ℓ2, and its logit margin certifies: the prediction cannot change within ℓ2
distance (z_top − z_second)/√2, since each difference z_i − z_j is √2-Lipschitz.

:func:`aol_network` builds 784 → widths → classes with ReLU, the certificate is
:func:`margin_radius`.
"""

from __future__ import annotations

import math

import torch


from ..core.models import AOLLinear, aol_network  # noqa: E402  (the layer lives with the models)


def margin_radius(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Certified ℓ2 radius of a 1-Lipschitz network: (z_y − max_{j≠y} z_j)/√2, 0 when misclassified."""
    z_y = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.scatter(1, labels[:, None], float("-inf")).max(1).values
    return ((z_y - others) / math.sqrt(2.0)).clamp_min(0.0)


class MarginObjective:
    """Training objective for a 1-Lipschitz network: cross-entropy of (z + √2·ε·(1 − e_y))/τ.

    Adding √2·ε to every wrong logit asks for a logit margin above √2·ε, i.e. a certified radius
    above ε (:func:`margin_radius`); the temperature τ rescales the small logits of a 1-Lipschitz
    network for the cross-entropy. (Our choice of loss; the Lipschitz-network literature uses
    several losses of this kind.)"""

    def __init__(self, eps: float, temperature: float = 0.25):
        if not (isinstance(eps, (int, float)) and eps >= 0 and math.isfinite(eps)):
            raise ValueError(f"eps must be a finite number >= 0; got {eps!r}")
        if not (isinstance(temperature, (int, float)) and temperature > 0):
            raise ValueError(f"temperature must be a number > 0; got {temperature!r}")
        self.eps, self.temperature = float(eps), float(temperature)
        self.key = f"lipschitz-margin(eps={self.eps!r}, temperature={self.temperature!r})"

    def __call__(self, model, x, y, generator=None):
        z = model(x)
        offset = math.sqrt(2.0) * self.eps * (1 - torch.nn.functional.one_hot(y, z.shape[1]).to(z.dtype))
        return torch.nn.functional.cross_entropy((z + offset) / self.temperature, y), z
