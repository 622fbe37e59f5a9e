"""The MIPVerify architectures have the layer sizes MIPVerify's importer checks
(``get_conv_params(…, (4, 4, 1, 16), expected_stride = 2)``, ``get_matrix_params(…, (1568, 100))``, …
in ``src/utils/import_example_nets.jl``), and the verifiers take them."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from georobust.core.models import build
from georobust.verification import margin_bounds


def test_layer_sizes_are_the_ones_mipverify_checks():
    wk = build("mipverify_wk17a", seed=0)
    convs = [m for m in wk if isinstance(m, nn.Conv2d)]
    lins = [m for m in wk if isinstance(m, nn.Linear)]
    # MIPVerify's filters are (height, width, in, out); torch's are (out, in, height, width)
    assert [tuple(c.weight.permute(2, 3, 1, 0).shape) for c in convs] == [(4, 4, 1, 16), (4, 4, 16, 32)]
    assert [c.stride for c in convs] == [(2, 2), (2, 2)]
    assert [tuple(m.weight.T.shape) for m in lins] == [(1568, 100), (100, 10)]
    with torch.no_grad():  # SAME padding: 28 → 14 → 7
        assert wk[:4](torch.zeros(1, 1, 28, 28)).shape == (1, 32, 7, 7)
    rsl = build("mipverify_rsl18a", seed=0)
    assert [tuple(m.weight.T.shape) for m in rsl if isinstance(m, nn.Linear)] == [(784, 500), (500, 10)]
    assert sum(isinstance(m, nn.ReLU) for m in rsl) == 1


def test_the_verifiers_take_them():
    x = torch.rand((1, 28, 28), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for name in ("mipverify_wk17a", "mipverify_rsl18a"):
        net = build(name, seed=0).double()
        with torch.no_grad():
            label = int(net(x[None]).argmax())
        with torch.no_grad():
            z = net(x[None])[0].numpy()
        at_x = np.delete(z[label] - z, label)  # the margins at x itself bound the minimum over the ball from above
        for method in ("crown", "ibp"):
            assert np.all(margin_bounds(net, x, label, 0.002, method=method, domain=(0.0, 1.0)) <= at_x + 1e-9), name
