"""Classifiers of the MNIST robustness literature. All take N×1×28×28 inputs in [0, 1], return logits.

* :func:`lenet` — the LeNet of the randomized-smoothing MNIST protocol (Jeong & Shin 2020;
  after LeCun et al. 1998): conv(1→20, 5×5) → max-pool 2 → conv(20→50, 5×5) → max-pool 2 →
  fc(800→500) → fc(500→10), ReLU activations, no input normalization.
* :func:`small_cnn` — a small two-convolution network (stride-2 convolutions, no pooling), fast
  on a CPU: conv(1→16, 4×4, s2) → conv(16→32, 4×4, s2) → fc(1568→100) → fc(100→10).
* :func:`linear` — multinomial logistic regression, whose exact robust radius is known.
* :func:`aol_network` (``aol``) — a 1-Lipschitz (ℓ2) network of almost-orthogonal layers
  (Prach & Lampert 2022), certified by its logit margin.
* :func:`ibp_small`, :func:`ibp_medium` — the "small" and "medium" MNIST models of the IBP
  authors' code (Gowal et al. 2018), for certified training.
* :func:`fully_connected` — a ReLU network with two hidden layers of a given width (``fc16``,
  ``fc32``, ``fc64``, ``fc128``): small enough for exact verification by MILP.
* :func:`mipverify_wk17a`, :func:`mipverify_rsl18a` — the architectures of the two MNIST networks
  of MIPVerify's Table 1 (Tjeng, Xiao & Tedrake 2019); architectures only, not their weights.

:func:`for_inference` prepares a trained model for the long sampling passes of smoothing.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def lenet(num_classes: int = 10) -> nn.Sequential:
    """LeNet as used for randomized smoothing on MNIST (Jeong & Shin 2020)."""
    return nn.Sequential(
        nn.Conv2d(1, 20, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(20, 50, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(800, 500), nn.ReLU(), nn.Linear(500, num_classes),
    )


def small_cnn(num_classes: int = 10) -> nn.Sequential:
    """A small CNN (two stride-2 convolutions and two linear layers), about 170k parameters."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 4, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 4, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 100), nn.ReLU(), nn.Linear(100, num_classes),
    )


def rddrs_cnn(num_classes: int = 10) -> nn.Sequential:
    """The MNIST CNN of the RDDRS experiments (Labarbarie et al. 2022, ``code/train.py``):
    conv(16, 5x5, pad 2) -> ReLU -> maxpool 2 -> conv(32, 5x5, pad 2) -> ReLU -> maxpool 2 ->
    linear(num_classes). The authors' network ends in a softmax; this one returns logits (the
    smoothing code applies the softmax where the surrogates need probabilities)."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, num_classes),
    )


def linear(num_classes: int = 10) -> nn.Sequential:
    """Multinomial logistic regression on the 784 pixels."""
    return nn.Sequential(nn.Flatten(), nn.Linear(784, num_classes))


def ibp_small(num_classes: int = 10) -> nn.Sequential:
    """The "small" MNIST model of the IBP authors' code (google-deepmind/interval-bound-propagation,
    examples/train.py, ``layers('small')`` at commit 217a14d, plus the final linear layer their DNN
    appends): conv(16, 4x4, stride 2, VALID) -> conv(32, 4x4, stride 1, VALID) -> linear(100) ->
    linear(num_classes), ReLU activations."""
    return nn.Sequential(nn.Conv2d(1, 16, 4, stride=2), nn.ReLU(), nn.Conv2d(16, 32, 4, stride=1), nn.ReLU(),
                         nn.Flatten(), nn.Linear(32 * 10 * 10, 100), nn.ReLU(), nn.Linear(100, num_classes))


def ibp_medium(num_classes: int = 10) -> nn.Sequential:
    """The "medium" MNIST model of the same file: conv(32, 3x3, s1) -> conv(32, 4x4, s2) -> conv(64, 3x3, s1)
    -> conv(64, 4x4, s2), all VALID -> linear(512) -> linear(512) -> linear(num_classes), ReLU."""
    return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 32, 4, stride=2), nn.ReLU(),
                         nn.Conv2d(32, 64, 3), nn.ReLU(), nn.Conv2d(64, 64, 4, stride=2), nn.ReLU(), nn.Flatten(),
                         nn.Linear(64 * 4 * 4, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                         nn.Linear(512, num_classes))


def fully_connected(width: int, num_classes: int = 10) -> nn.Sequential:
    """784 → width → width → num_classes, ReLU activations (for exact verification)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(784, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                         nn.Linear(width, num_classes))


# MIPVerify.jl (github.com/vtjeng/MIPVerify.jl) at commit 7daf6cab2869f42e4d01c9fa38a545c63bce613d:
# src/utils/import_example_nets.jl (get_example_network_params), src/utils/import_weights.jl
# (get_conv_params: SamePadding() by default) and src/net_components/layers/conv2d.jl (SamePadding:
# output ceil(in / stride), total padding (out − 1)·stride + k − in, split evenly here).
MIPVERIFY_SOURCE = "github.com/vtjeng/MIPVerify.jl@7daf6cab2869f42e4d01c9fa38a545c63bce613d"


def mipverify_wk17a(num_classes: int = 10) -> nn.Sequential:
    """The architecture of MIPVerify's ``MNIST.WK17a_linf0.1_authors`` (the network of Wong & Kolter
    2017, LP-trained at ℓ∞ 0.1; source: ``src/utils/import_example_nets.jl`` of
    github.com/vtjeng/MIPVerify.jl at commit 7daf6ca): conv(16, 4x4, stride 2, SAME) ->
    conv(32, 4x4, stride 2, SAME) -> fc(1568 -> 100) -> fc(100 -> num_classes), ReLU activations.
    SAME padding of a 4x4 kernel at stride 2 on 28x28 (and 14x14) is one pixel on every side
    (``conv2d.jl``). The same layers as :func:`small_cnn`; the weights are not these authors'."""
    return nn.Sequential(nn.Conv2d(1, 16, 4, stride=2, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 4, stride=2, padding=1),
                         nn.ReLU(), nn.Flatten(), nn.Linear(32 * 7 * 7, 100), nn.ReLU(), nn.Linear(100, num_classes))


def mipverify_rsl18a(num_classes: int = 10) -> nn.Sequential:
    """The architecture of MIPVerify's ``MNIST.RSL18a_linf0.1_authors`` (the network of Raghunathan,
    Steinhardt & Liang 2018, SDP-trained at ℓ∞ 0.1; same source as :func:`mipverify_wk17a`):
    fc(784 -> 500) -> fc(500 -> num_classes), one ReLU layer. Architecture only."""
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 500), nn.ReLU(), nn.Linear(500, num_classes))


class AOLLinear(nn.Module):
    """Almost-orthogonal Lipschitz linear layer (Prach & Lampert, ECCV 2022): y = W T^{-1/2} x + b,
    T = diag(sum_j |W^T W|_ij), whose l2 operator norm is at most 1 for every W (proof and tests in
    :mod:`georobust.verification.lipschitz_layers`)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.orthogonal_(self.weight)
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def effective_weight(self) -> torch.Tensor:
        gram = self.weight.T @ self.weight
        scale = gram.abs().sum(1).clamp_min(1e-12).rsqrt()
        return self.weight * scale.unsqueeze(0)

    def forward(self, x):
        return F.linear(x, self.effective_weight(), self.bias)


def aol_network(widths=(256, 256), in_features: int = 784, num_classes: int = 10) -> nn.Sequential:
    """Flatten -> AOLLinear -> ReLU -> ... -> AOLLinear(num_classes): a 1-Lipschitz (l2) classifier."""
    layers, d = [nn.Flatten()], in_features
    for w in widths:
        layers += [AOLLinear(d, w), nn.ReLU()]
        d = w
    layers.append(AOLLinear(d, num_classes))
    return nn.Sequential(*layers)


MODELS = {"lenet": lenet, "small_cnn": small_cnn, "linear": linear, "rddrs_cnn": rddrs_cnn,
          **{f"fc{w}": (lambda num_classes=10, w=w: fully_connected(w, num_classes)) for w in (16, 32, 64, 128)},
          "aol": lambda num_classes=10: aol_network((256, 256), 784, num_classes),
          "ibp_small": ibp_small, "ibp_medium": ibp_medium,
          "mipverify_wk17a": mipverify_wk17a, "mipverify_rsl18a": mipverify_rsl18a}


def build(name: str, num_classes: int = 10, seed: int | None = None) -> nn.Sequential:
    """The model called ``name`` (one of :data:`MODELS`), initialized from ``seed``.

    The seed is applied inside a forked RNG, so building a model leaves the global generator as
    it was; the same seed gives the same weights on every device.
    """
    if name not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)}; got {name!r}")
    if seed is None:
        return MODELS[name](num_classes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return MODELS[name](num_classes)


def for_inference(model: nn.Module) -> nn.Module:
    """``model`` in eval mode, with the weights of its 2-d convolutions stored channels-last.

    The function computed is unchanged (outputs equal up to floating-point rounding: the
    convolutions sum in another order); only the speed changes. PyTorch's CPU convolutions are
    faster on channels-last weights: ``benchmarks/certify.py`` compares CERTIFY with and without
    this (about 2x for LeNet on a 2-core CPU). A model without 2-d convolutions is returned as is.
    The model is converted in place and returned, as :meth:`torch.nn.Module.to` does.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    model.eval()
    if any(isinstance(m, nn.Conv2d) for m in model.modules()):
        model.to(memory_format=torch.channels_last)
    return model
