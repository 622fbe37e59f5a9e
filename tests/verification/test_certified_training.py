"""Certified training's bounds: the IBP bound used in training is the one ``verify`` uses; the
CROWN-IBP bound is sound (below the exact MILP margins) and differentiable; the schedules."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from georobust.verification import margin_bounds
from georobust.verification.certified_training import CertifiedObjective, crown_ibp_margins, ibp_margins


def conv_net(seed):
    g = torch.Generator().manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 12),
                        nn.ReLU(), nn.Linear(12, 5)).double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(0.6 * torch.randn(p.shape, generator=g))
    return net


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_training_bounds_match_the_verifiers(seed):
    net = conv_net(seed)
    g = torch.Generator().manual_seed(10 + seed)
    x = torch.rand((6, 1, 8, 8), generator=g, dtype=torch.float64)
    with torch.no_grad():
        y = net(x).argmax(1)
    eps = 0.03
    ibp_t = ibp_margins(net, x, y, eps).detach().numpy()
    crown_t = crown_ibp_margins(net, x, y, eps).detach().numpy()
    for i in range(len(x)):
        others = [j for j in range(5) if j != int(y[i])]
        ours = margin_bounds(net, x[i], int(y[i]), eps, method="ibp", domain=(0.0, 1.0))
        assert np.allclose(ibp_t[i, others], ours, atol=1e-10)  # the same bound as verify's IBP
        exact = margin_bounds(net, x[i], int(y[i]), eps, method="milp", domain=(0.0, 1.0))
        assert np.all(crown_t[i, others] <= exact + 1e-8)  # CROWN-IBP is sound
        assert abs(ibp_t[i, int(y[i])]) < 1e-12 and abs(crown_t[i, int(y[i])]) < 1e-12


def test_bounds_are_differentiable_and_the_objective_follows_its_schedule():
    net = conv_net(3)
    x = torch.rand((4, 1, 8, 8), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3])
    obj = CertifiedObjective(eps=0.1, method="crown-ibp", ramp=4, kappa_end=0.5)
    assert obj.schedule(0) == pytest.approx((0.025, 0.875, 0.75))
    assert obj.schedule(3) == pytest.approx((0.1, 0.5, 0.0))
    loss, logits = obj(net, x, y, None, epoch=1)
    loss.backward()
    grads = [p.grad for p in net.parameters()]
    assert all(gr is not None and torch.isfinite(gr).all() for gr in grads)
    assert logits.shape == (4, 5)
    assert "crown-ibp" in obj.key and "eps=0.1" in obj.key
    with pytest.raises(ValueError, match="method must be 'ibp' or 'crown-ibp'"):
        CertifiedObjective(eps=0.1, method="lp")
    with pytest.raises(ValueError, match="eps must be a finite number >= 0"):
        CertifiedObjective(eps=-1.0)
