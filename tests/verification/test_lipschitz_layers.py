"""AOL layers are 1-Lipschitz for any weights (exact SVD), the un-rescaled layer is not (the check can
fail), and the margin certificate is never contradicted by points sampled at the certified radius."""

from __future__ import annotations

import math

import numpy as np
import torch

from georobust.verification.lipschitz_layers import AOLLinear, aol_network, margin_radius


def test_aol_layers_have_operator_norm_at_most_one_for_any_weights():
    g = torch.Generator().manual_seed(0)
    worst_raw = 0.0
    for trial in range(40):
        n_in, n_out = int(torch.randint(2, 40, (1,), generator=g)), int(torch.randint(2, 40, (1,), generator=g))
        layer = AOLLinear(n_in, n_out).double()
        with torch.no_grad():
            layer.weight.copy_(torch.randn((n_out, n_in), generator=g, dtype=torch.float64) * (1 + 10 * trial))
        norm = torch.linalg.matrix_norm(layer.effective_weight().detach(), ord=2).item()
        assert norm <= 1 + 1e-10, (trial, norm)
        worst_raw = max(worst_raw, torch.linalg.matrix_norm(layer.weight.detach(), ord=2).item())
        # the key inequality WᵀW ⪯ diag(T): the difference is positive semidefinite
        w = layer.weight.detach()
        gram = w.T @ w
        assert torch.linalg.eigvalsh(torch.diag(gram.abs().sum(1)) - gram).min() >= -1e-8 * gram.abs().max()
    assert worst_raw > 1  # without the rescaling the check fails


def test_margin_certificate_holds_on_the_sphere_of_the_radius():
    torch.manual_seed(0)
    net = aol_network((32, 32), in_features=20, num_classes=4).double()
    x = torch.randn(50, 20, dtype=torch.float64)
    with torch.no_grad():
        z = net(x)
        y = z.argmax(1)
        r = margin_radius(z, y)
        for i in range(50):
            u = torch.randn(2000, 20, dtype=torch.float64)
            u = u / u.norm(dim=1, keepdim=True) * r[i] * 0.999
            assert bool((net(x[i] + u).argmax(1) == y[i]).all())
    assert torch.allclose(margin_radius(torch.tensor([[2.0, 0.0, 1.0]]), torch.tensor([0])),
                          torch.tensor([1.0 / math.sqrt(2)]))
    assert margin_radius(torch.tensor([[0.0, 1.0]]), torch.tensor([0])).item() == 0.0
