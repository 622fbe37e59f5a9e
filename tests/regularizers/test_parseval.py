"""Parseval networks' retraction (Cisse et al. 2017): the update, its convergence to a tight frame,
the convolution unfolding and its √k scaling, row subsets, bad input."""

from __future__ import annotations

import functools
import math

import pytest
import torch
from torch import nn

from georobust.regularizers.parseval import parseval_deviation, parseval_retraction, unfolded_weight

DT = torch.float64


pytestmark = pytest.mark.usefixtures("single_thread")


def linear_with(W: torch.Tensor) -> nn.Linear:
    layer = nn.Linear(W.shape[1], W.shape[0]).to(DT)
    with torch.no_grad():
        layer.weight.copy_(W)
    return layer


def random_matrix(rows, cols, lo, hi, seed=0):
    """A random rows×cols matrix with singular values spread over [lo, hi]."""
    g = torch.Generator().manual_seed(seed)
    U, _ = torch.linalg.qr(torch.randn(rows, rows, generator=g, dtype=DT))
    V, _ = torch.linalg.qr(torch.randn(cols, cols, generator=g, dtype=DT))
    r = min(rows, cols)
    return U[:, :r] @ torch.diag(torch.linspace(lo, hi, r, dtype=DT)) @ V[:, :r].T


def test_one_step_is_the_papers_update_and_maps_singular_values():
    W = random_matrix(6, 9, 0.2, 1.7)
    layer = linear_with(W)
    beta = 0.05
    parseval_retraction(layer, beta=beta)
    torch.testing.assert_close(layer.weight, (1 + beta) * W - beta * W @ W.T @ W)
    s = torch.linalg.svdvals(W)
    torch.testing.assert_close(torch.linalg.svdvals(layer.weight.detach()), s * (1 + beta * (1 - s ** 2)))
    assert layer.bias.requires_grad  # parameters stay parameters


def test_repeated_retractions_converge_to_a_tight_frame():
    W = random_matrix(20, 30, 0.3, 1.8)
    layer = linear_with(W)
    dev = [parseval_deviation(layer)[""]]
    for _ in range(200):  # the paper's β: slow, but every step reduces the deviation
        parseval_retraction(layer)
        dev.append(parseval_deviation(layer)[""])
    assert all(b < a for a, b in zip(dev, dev[1:]))
    for _ in range(300):  # a larger β converges within a few hundred steps
        parseval_retraction(layer, beta=0.05)
    WWt = layer.weight @ layer.weight.T
    torch.testing.assert_close(WWt.detach(), torch.eye(20, dtype=DT), rtol=0, atol=1e-8)


def test_conv_unfolding_shape_and_scale():
    conv = nn.Conv2d(3, 8, (3, 5)).to(DT)
    M, scale = unfolded_weight(conv)
    assert M.shape == (1, 8, 3 * 3 * 5) and scale == pytest.approx(math.sqrt(15))
    torch.testing.assert_close(M[0] / scale, conv.weight.detach().reshape(8, -1))
    grouped = nn.Conv2d(4, 6, 3, groups=2).to(DT)
    M, scale = unfolded_weight(grouped)
    assert M.shape == (2, 3, 2 * 9) and scale == 3.0
    torch.testing.assert_close(M[1] / 3, grouped.weight.detach()[3:].reshape(3, -1))
    M, scale = unfolded_weight(nn.Linear(4, 2))
    assert M.shape == (2, 4) and scale == 1.0


def test_conv_retraction_is_the_matrix_update_on_the_scaled_unfolding():
    conv = nn.Conv2d(2, 4, 3).to(DT)
    W = conv.weight.detach().reshape(4, -1).clone()
    beta = 0.01
    parseval_retraction(conv, beta=beta)
    M = 3 * W  # √k W, k = 9
    want = ((1 + beta) * M - beta * M @ M.T @ M) / 3
    torch.testing.assert_close(conv.weight.detach().reshape(4, -1), want)


def conv_operator_norm(conv: nn.Conv2d, size: int = 8) -> float:
    """The exact ℓ2 operator norm of the (bias-free) convolution on size×size inputs."""
    x = torch.zeros(1, conv.in_channels, size, size, dtype=DT)
    J = torch.autograd.functional.jacobian(
        lambda v: nn.functional.conv2d(v, conv.weight.detach(), None, conv.stride, conv.padding), x)
    return torch.linalg.matrix_norm(J.reshape(-1, x.numel()), ord=2).item()


def test_converged_conv_is_at_most_1_lipschitz_thanks_to_the_sqrt_k_scaling():
    conv = nn.Conv2d(2, 4, 3, padding=1).to(DT)  # singular values of √k·W up to about 2.3
    for _ in range(400):
        parseval_retraction(conv, beta=0.05)
    M, _ = unfolded_weight(conv)
    torch.testing.assert_close(M[0] @ M[0].T, torch.eye(4, dtype=DT), rtol=0, atol=1e-8)
    assert conv_operator_norm(conv) <= 1 + 1e-9
    # without the scaling (the unfolded W itself made a tight frame) the layer is not 1-Lipschitz
    W = conv.weight.detach().reshape(4, -1) * 3
    with torch.no_grad():
        conv.weight.copy_(W.reshape(conv.weight.shape))
    assert conv_operator_norm(conv) > 1.5


def test_row_subsets_touch_only_the_drawn_rows_and_still_converge():
    W = random_matrix(10, 16, 0.4, 1.6, seed=1)
    layer = linear_with(W)
    parseval_retraction(layer, beta=0.05, num_rows=3, generator=torch.Generator().manual_seed(0))
    changed = (layer.weight.detach() != W).any(1)
    assert int(changed.sum()) == 3
    again = linear_with(W)
    parseval_retraction(again, beta=0.05, num_rows=3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(again.weight, layer.weight, rtol=0, atol=0)  # reproducible
    gen = torch.Generator().manual_seed(1)
    start = parseval_deviation(layer)[""]
    for _ in range(1500):
        parseval_retraction(layer, beta=0.05, num_rows=3, generator=gen)
    assert parseval_deviation(layer)[""] < 1e-3 * start


def test_every_layer_of_lenet_is_retracted_and_usable_as_after_step():
    from georobust.core.models import build
    from georobust.core.train import train

    model = build("lenet", seed=0)
    before = parseval_deviation(model)
    assert set(before) == {"0", "3", "7", "9"}
    for _ in range(20):
        parseval_retraction(model, beta=0.01)
    after = parseval_deviation(model)
    assert all(after[k] < before[k] for k in before)
    g = torch.Generator().manual_seed(0)
    images, labels = torch.rand(16, 1, 28, 28, generator=g), torch.randint(0, 10, (16,), generator=g)
    small = build("linear", seed=0)
    hist = train(small, images, labels, epochs=1, lr=0.01, batch_size=8, progress=False,
                 after_step=functools.partial(parseval_retraction, beta=3e-4, num_rows=5,
                                              generator=torch.Generator().manual_seed(0)))
    assert math.isfinite(hist[0]["loss"])


@pytest.mark.parametrize("kwargs,word", [({"beta": 0}, "beta"), ({"beta": -1e-3}, "beta"),
                                         ({"beta": float("nan")}, "beta"), ({"num_rows": 0}, "num_rows"),
                                         ({"num_rows": 2.5}, "num_rows")])
def test_bad_arguments(kwargs, word):
    with pytest.raises(ValueError, match=word):
        parseval_retraction(nn.Linear(3, 2), **kwargs)


def test_model_without_layers_and_bad_layer():
    with pytest.raises(ValueError, match="no nn.Linear"):
        parseval_retraction(nn.Sequential(nn.ReLU()))
    with pytest.raises(ValueError, match="layer"):
        unfolded_weight(nn.ReLU())
