"""Matrix-free CROWN (:mod:`georobust.verification.matrix_free`) against the dense numpy CROWN:
the same bounds on every layer to 1e-9 (convolutions whose transposes need an output padding,
strides, dilation, groups, consecutive affine layers, ℓ∞ with and without a domain box, ℓ2), sound
against the grids and the exact MILP, the same final bound as the differentiable CROWN-IBP when
given IBP's hidden bounds, and a planted bug in the convolution's adjoint is caught."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from georobust.core.models import build
from georobust.verification import UnsupportedLayerError, margin_bounds, verify_module
from georobust.verification import matrix_free as mf
from georobust.verification.certified_training import _ibp_hidden, crown_ibp_margins
from georobust.verification.matrix_free import DENSE_LIMIT, crown_matrix_free, dense_size
from georobust.verification.relu_network import affine_form, crown, ibp, input_box

from test_verify import CASES, grid_margins, small_net


def conv_net(seed, size):
    """Convolutions whose adjoints need output padding when ``size`` is even (stride 2, kernel 3,
    padding 1: 10 → 5, and 5 transposed is 9), dilation, groups, two affine layers in a row."""
    g = torch.Generator().manual_seed(seed)
    c2 = nn.Conv2d(4, 4, 2, stride=2, groups=2)
    h = ((size + 2 - 3) // 2 + 1 - 2) // 2 + 1
    net = nn.Sequential(nn.Conv2d(2, 4, 3, stride=2, padding=1), nn.ReLU(), c2, nn.Conv2d(4, 3, 3, padding=2, dilation=2),
                        nn.ReLU(), nn.Flatten(), nn.Linear(3 * h * h, 7), nn.ReLU(), nn.Linear(7, 5)).double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(0.7 * torch.randn(p.shape, generator=g))
    x = torch.rand((2, size, size), generator=g, dtype=torch.float64)
    return net, x


def margin_spec(n, label):
    return np.stack([np.eye(n)[label] - np.eye(n)[j] for j in range(n) if j != label])


def max_difference(dense, free):
    assert len(dense) == len(free)
    return max(max(np.abs(ld - lf).max(), np.abs(ud - uf).max()) for (ld, ud), (lf, uf) in zip(dense, free))


@pytest.mark.parametrize("seed,size", [(0, 9), (1, 10), (2, 11), (3, 12)])
@pytest.mark.parametrize("norm,domain", [("linf", (0.0, 1.0)), ("linf", None), ("l2", None)])
def test_same_bounds_as_the_dense_crown(seed, size, norm, domain):
    net, x = conv_net(seed, size)
    form = affine_form(net, tuple(x.shape))
    spec = margin_spec(5, seed % 5)
    eps = 0.15 if norm == "linf" else 0.6
    dense = crown(form, x.numpy(), eps, norm, domain, spec)
    unstable = sum(int(((l < 0) & (u > 0)).sum()) for l, u in dense[:-1])
    assert unstable > 0  # the relaxations are exercised, not only the affine maps
    for chunk in (None, 5):
        free = crown_matrix_free(net, x, eps, norm, domain, spec, chunk=chunk)
        assert max_difference(dense, free) < 1e-9, chunk
    # without a spec: bounds on the logits themselves
    assert max_difference(crown(form, x.numpy(), eps, norm, domain), crown_matrix_free(net, x, eps, norm, domain)) < 1e-9


@pytest.mark.parametrize("seed,eps", CASES)
def test_sound_on_the_2d_grids(seed, eps):
    net = small_net(seed)
    x = torch.tensor(np.random.default_rng(seed).uniform(-1, 1, size=2))
    with torch.no_grad():
        label = int(net(x[None]).argmax())
    truth, _ = grid_margins(net, x, label, eps)
    free, info = margin_bounds(net, x, label, eps, method="crown", crown_backend="matrix-free", return_info=True)
    assert info["crown_backend"] == "matrix-free"
    assert np.all(free <= truth + 1e-7)
    assert np.allclose(free, margin_bounds(net, x, label, eps, method="crown", crown_backend="dense"), atol=1e-9)


@pytest.mark.parametrize("seed", [0, 1])
def test_sound_against_the_exact_milp_on_a_conv_net(seed):
    net, x = conv_net(seed, 9)
    with torch.no_grad():
        label = int(net(x[None]).argmax())
    for eps in (0.02, 0.1):
        exact = margin_bounds(net, x, label, eps, method="milp", domain=(0.0, 1.0))
        free = margin_bounds(net, x, label, eps, method="crown", domain=(0.0, 1.0), crown_backend="matrix-free")
        assert np.all(free <= exact + 1e-7)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_the_differentiable_crown_ibp(seed):
    """Given IBP's hidden bounds, the matrix-free CROWN's last layer is CROWN-IBP's bound."""
    net, _ = conv_net(seed, 10)
    g = torch.Generator().manual_seed(100 + seed)
    xs = torch.rand((3, 2, 10, 10), generator=g, dtype=torch.float64)
    with torch.no_grad():
        ys = net(xs).argmax(1)
    eps = 0.05
    ours = crown_ibp_margins(net, xs, ys, eps, (0.0, 1.0)).detach().numpy()
    with torch.no_grad():  # the hidden bounds CROWN-IBP uses: layer-by-layer intervals
        pre, _, _ = _ibp_hidden(list(net), (xs - eps).clamp(min=0.0), (xs + eps).clamp(max=1.0))
    for i in range(3):
        hidden = [(l[i].reshape(-1).numpy(), u[i].reshape(-1).numpy()) for l, u in pre]
        y = int(ys[i])
        free = crown_matrix_free(net, xs[i], eps, "linf", (0.0, 1.0), margin_spec(5, y), hidden=hidden)[-1][0]
        assert np.allclose(free, np.delete(ours[i], y), atol=1e-9)


def test_a_planted_bug_in_the_convolution_adjoint_is_caught(monkeypatch):
    net, x = conv_net(1, 10)
    form = affine_form(net, tuple(x.shape))
    dense = crown(form, x.numpy(), 0.1, "linf", (0.0, 1.0), margin_spec(5, 0))
    assert max_difference(dense, crown_matrix_free(net, x, 0.1, "linf", (0.0, 1.0), margin_spec(5, 0))) < 1e-9
    right = mf._Layer.adjoint

    def flipped(self, a):  # the kernel transposed in space: a wrong adjoint of the same shape
        if isinstance(self.layer, nn.Conv2d):
            return torch.nn.grad.conv2d_input((a.shape[0],) + self.in_shape, self.layer.weight.transpose(-1, -2), a,
                                              self.layer.stride, self.layer.padding, self.layer.dilation, self.layer.groups)
        return right(self, a)

    monkeypatch.setattr(mf._Layer, "adjoint", flipped)
    assert max_difference(dense, crown_matrix_free(net, x, 0.1, "linf", (0.0, 1.0), margin_spec(5, 0))) > 1e-6

    def no_output_padding(self, a):  # conv_transpose2d without the output padding the shape needs
        if isinstance(self.layer, nn.Conv2d):
            lay = self.layer
            out = torch.nn.functional.conv_transpose2d(a, lay.weight, None, lay.stride, lay.padding, 0, lay.groups,
                                                       lay.dilation)
            pad = [0, self.in_shape[-1] - out.shape[-1], 0, self.in_shape[-2] - out.shape[-2]]
            return torch.nn.functional.pad(out, pad)  # zero-filled to the right shape: silently wrong
        return right(self, a)

    monkeypatch.setattr(mf._Layer, "adjoint", no_output_padding)
    assert max_difference(dense, crown_matrix_free(net, x, 0.1, "linf", (0.0, 1.0), margin_spec(5, 0))) > 1e-6


def test_auto_switches_by_the_size_of_the_dense_form(monkeypatch):
    shape = (1, 28, 28)
    assert dense_size(build("ibp_small", seed=0), shape) <= DENSE_LIMIT < dense_size(build("ibp_medium", seed=0), shape)
    net = small_net(0)
    x = torch.tensor([0.1, -0.2], dtype=torch.float64)
    _, info = margin_bounds(net, x, 0, 0.1, method="crown", return_info=True)
    assert info["crown_backend"] == "dense"
    monkeypatch.setattr(verify_module, "DENSE_LIMIT", 10)
    _, info = margin_bounds(net, x, 0, 0.1, method="crown", return_info=True)
    assert info["crown_backend"] == "matrix-free"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_the_same_bounds_on_a_gpu():
    net, x = conv_net(0, 10)
    cpu = crown_matrix_free(net, x, 0.1, "linf", (0.0, 1.0), margin_spec(5, 0))
    gpu = crown_matrix_free(net.cuda(), x, 0.1, "linf", (0.0, 1.0), margin_spec(5, 0))
    assert max_difference(cpu, gpu) < 1e-9


def test_bad_inputs_are_refused_by_name():
    net, x = conv_net(0, 9)
    with pytest.raises(ValueError, match="chunk must be an integer >= 1"):
        crown_matrix_free(net, x, 0.1, chunk=0)
    with pytest.raises(ValueError, match="eps must be a finite number >= 0"):
        crown_matrix_free(net, x, float("nan"))
    with pytest.raises(ValueError, match="norm must be 'linf' or 'l2'"):
        crown_matrix_free(net, x, 0.1, norm="l1")
    with pytest.raises(ValueError, match=r"spec must have shape \(m, 5\)"):
        crown_matrix_free(net, x, 0.1, spec=np.ones((2, 4)))
    with pytest.raises(ValueError, match="hidden must give bounds of the 3 hidden layers"):
        crown_matrix_free(net, x, 0.1, hidden=[])
    with pytest.raises(ValueError, match="crown_backend must be one of"):
        margin_bounds(net, x, 0, 0.1, method="crown", crown_backend="sparse")
    with pytest.raises(UnsupportedLayerError, match=r"layer 2 \(MaxPool2d\)"):
        crown_matrix_free(nn.Sequential(nn.Conv2d(2, 2, 3), nn.ReLU(), nn.MaxPool2d(2)).double(), x, 0.1)
