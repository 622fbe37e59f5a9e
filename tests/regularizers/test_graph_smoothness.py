"""Label smoothness on layer similarity graphs (Lassance, Gripon & Ortega 2021): the value against a
brute-force computation from the formula, known cases, the kNN sparsification and its union
symmetrization, profiles of the book's models, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from georobust.core import models
from georobust.regularizers.graph_smoothness import (label_smoothness, layer_representations, similarity_graph,
                                        smoothness_profile)

DT = torch.float64

pytestmark = pytest.mark.usefixtures("single_thread")


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- brute force
def brute_sigma(x, y, k, clip=True, power=1):
    """σ = Σ_c s_cᵀ L^m s_c with W, D and L = D − W built entry by entry in plain Python."""
    x = x.tolist()
    y = [int(v) for v in y]
    n = len(x)
    norm = [math.sqrt(sum(v * v for v in row)) for row in x]
    cos = [[sum(a * b for a, b in zip(x[i], x[j])) / (norm[i] * norm[j]) for j in range(n)] for i in range(n)]
    if clip:
        cos = [[max(c, 0.0) for c in row] for row in cos]
    neighbours = []
    for i in range(n):
        others = sorted((j for j in range(n) if j != i), key=lambda j: -cos[i][j])
        neighbours.append(set(others if k is None else others[:k]))
    W = [[cos[i][j] if i != j and (j in neighbours[i] or i in neighbours[j]) else 0.0 for j in range(n)]
         for i in range(n)]
    D = [sum(W[i]) for i in range(n)]
    L = [[(D[i] if i == j else 0.0) - W[i][j] for j in range(n)] for i in range(n)]
    M = L
    for _ in range(power - 1):
        M = [[sum(M[i][t] * L[t][j] for t in range(n)) for j in range(n)] for i in range(n)]
    total = 0.0
    for c in set(y):
        s = [1.0 if v == c else 0.0 for v in y]
        for i in range(n):
            for j in range(n):
                total += s[i] * M[i][j] * s[j]
    return total


@pytest.mark.parametrize("k", [2, 5])
@pytest.mark.parametrize("clip", [True, False])
def test_value_matches_brute_force(k, clip):
    x = torch.randn(14, 4, generator=gen(1), dtype=DT)
    y = torch.randint(0, 3, (14,), generator=gen(2))
    assert float(label_smoothness(x, y, k=k, clip_negative=clip)) == pytest.approx(brute_sigma(x, y, k, clip),
                                                                                   rel=1e-12, abs=1e-12)


def test_power_and_complete_graph_match_brute_force():
    x = torch.randn(10, 3, generator=gen(3), dtype=DT)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 2])
    assert float(label_smoothness(x, y, k=3, power=2)) == pytest.approx(brute_sigma(x, y, 3, power=2), rel=1e-12)
    assert float(label_smoothness(x, y, k=None)) == pytest.approx(brute_sigma(x, y, None), rel=1e-12)
    assert float(label_smoothness(x, y, k=9)) == pytest.approx(brute_sigma(x, y, None), rel=1e-12)


def test_equals_weight_between_classes_over_ordered_pairs():
    x = torch.rand(16, 5, generator=gen(4), dtype=DT)
    y = torch.randint(0, 4, (16,), generator=gen(5))
    W = similarity_graph(x, k=4)
    assert torch.equal(W, W.T) and torch.all(W.diagonal() == 0) and torch.all(W >= 0)
    cross = (y[:, None] != y[None, :]).to(DT)
    assert float(label_smoothness(x, y, k=4)) == pytest.approx(float((W * cross).sum()), rel=1e-12)


# --------------------------------------------------------------------------- known cases
def two_clusters(n=6, seed=0):
    """Class 0 near direction e1, class 1 near e2 (cosine ≈ 0 between them)."""
    g = gen(seed)
    a = torch.tensor([1.0, 0.0, 0.0], dtype=DT) + 0.05 * torch.randn(n, 3, generator=g, dtype=DT)
    b = torch.tensor([0.0, 1.0, 0.0], dtype=DT) + 0.05 * torch.randn(n, 3, generator=g, dtype=DT)
    return torch.cat([a, b]), torch.tensor([0] * n + [1] * n)


def test_separated_clusters_are_perfectly_smooth():
    x, y = two_clusters()
    for k in (1, 3, 5):
        assert float(label_smoothness(x, y, k=k)) == 0.0


def test_single_class_is_zero():
    x = torch.randn(12, 4, generator=gen(6), dtype=DT)
    for k in (1, 6, None):
        assert float(label_smoothness(x, torch.full((12,), 3), k=k, clip_negative=False)) == 0.0
        assert float(label_smoothness(x, torch.full((12,), 3), k=k, power=2)) == pytest.approx(0.0, abs=1e-12)


def test_swapping_labels_between_clusters_makes_it_rough():
    x, y = two_clusters()
    y = y.clone()
    y[0], y[-1] = 1, 0
    # each swapped point has ≥ 3 edges of weight ≈ 1 to the other class
    assert float(label_smoothness(x, y, k=3)) > 1.0


def test_invariant_to_permutations_relabelling_and_row_scaling():
    x = torch.randn(20, 6, generator=gen(7), dtype=DT)
    y = torch.randint(0, 3, (20,), generator=gen(8))
    ref = float(label_smoothness(x, y, k=4))
    perm = torch.randperm(20, generator=gen(9))
    assert float(label_smoothness(x[perm], y[perm], k=4)) == pytest.approx(ref, rel=1e-12)
    assert float(label_smoothness(x, (2 - y) * 5, k=4)) == pytest.approx(ref, rel=1e-12)  # class names don't matter
    scale = torch.rand(20, 1, generator=gen(10), dtype=DT) * 100 + 1e-3
    assert float(label_smoothness(x * scale, y, k=4)) == pytest.approx(ref, rel=1e-12)


def test_knn_sparsification_and_union_symmetrization_matter():
    """Unit vectors at angles 0°, 20° (class 0) and 25°, 27° (class 1), k = 1: nearest neighbours
    0→20, 20→25, 25→27, 27→25. Only 20→25 crosses the classes and only in one direction; the union
    keeps it as an undirected edge, counted twice over ordered pairs: σ = 2 cos 5°. A directed graph
    would give cos 5°, a mutual-kNN graph 0, no sparsification 2 (cos 25° + cos 27° + cos 5° + cos 7°)."""
    deg = torch.tensor([0.0, 20.0, 25.0, 27.0], dtype=DT) * math.pi / 180
    x = torch.stack([deg.cos(), deg.sin()], 1)
    y = torch.tensor([0, 0, 1, 1])
    sigma = float(label_smoothness(x, y, k=1))
    c = lambda d: math.cos(math.radians(d))  # noqa: E731
    assert sigma == pytest.approx(2 * c(5), rel=1e-12)
    assert sigma != pytest.approx(c(5))
    assert float(label_smoothness(x, y, k=None)) == pytest.approx(2 * (c(25) + c(27) + c(5) + c(7)), rel=1e-12)
    assert float(label_smoothness(x, y, k=None)) > sigma + 1


def test_differentiable_and_follows_device_and_dtype():
    x = torch.rand(10, 4, generator=gen(11), dtype=torch.float32, requires_grad=True)
    y = torch.randint(0, 2, (10,), generator=gen(12))
    s = label_smoothness(x, y, k=3)
    assert s.dtype == torch.float32 and s.device == x.device and s.dim() == 0
    (g,) = torch.autograd.grad(s, x)
    assert torch.isfinite(g).all() and g.abs().sum() > 0
    assert float(label_smoothness(x.detach().double(), y.numpy(), k=3)) == pytest.approx(s.item(), rel=1e-5)


# --------------------------------------------------------------------------- profiles of the book's models
def mnist_like(n=30, seed=13):
    return torch.rand(n, 1, 28, 28, generator=gen(seed)), torch.randint(0, 10, (n,), generator=gen(seed + 1))


@pytest.mark.parametrize("name,expected", [("small_cnn", ["input", "1:ReLU", "3:ReLU", "6:ReLU", "7:Linear"]),
                                           ("linear", ["input", "1:Linear"])])
def test_profile_of_book_models(name, expected):
    model = models.build(name, seed=0)
    x, y = mnist_like()
    prof = smoothness_profile(model, x, y, k=5)
    assert list(prof.names) == expected and prof.sigma.shape == (len(expected),)
    assert torch.isfinite(prof.sigma).all() and (prof.sigma >= 0).all()
    assert float(prof.sigma[0]) == pytest.approx(float(label_smoothness(x.flatten(1), y, k=5)), rel=1e-6)
    reps = layer_representations(model, x)
    assert [r.shape[1] for r in reps][0] == 784 and reps[-1].shape == (30, 10)
    for s, r in zip(prof.sigma, reps):
        assert float(s) == pytest.approx(float(label_smoothness(r, y, k=5)), rel=1e-6)
    jumps = (prof.sigma[1:] - prof.sigma[:-1]).abs()
    assert torch.allclose(prof.jumps, jumps)
    assert prof.max_jump == pytest.approx(float(jumps.max())) and prof.penalty == pytest.approx(float(jumps.sum()))
    assert smoothness_profile(model, x, y, k=5, q=2).penalty == pytest.approx(float((jumps.double() ** 2).sum()))


def test_layer_representations_by_index_batched_and_side_effect_free():
    model = models.build("small_cnn", seed=0).train()
    model[0].eval()  # a mixed state, to be restored as it was
    x, _ = mnist_like(n=9)
    reps = layer_representations(model, x, layers=[-1, 1], batch_size=4)
    assert model.training and not model[0].training and model[1].training
    assert len(reps) == 3 and not any(r.requires_grad for r in reps)
    with torch.no_grad():
        assert torch.allclose(reps[0], x.flatten(1))
        assert torch.allclose(reps[1], model[:2](x).flatten(1), atol=1e-6)
        assert torch.allclose(reps[2], model(x), atol=1e-5)
    full = layer_representations(model, x, layers=[1, 7], batch_size=1000)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(reps, full))

    class Wrapped(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = models.build("linear", seed=0)

        def forward(self, v):
            return self.net(v)

    wrapped = Wrapped()
    out = layer_representations(wrapped, x)
    assert len(out) == 2 and torch.allclose(out[1], wrapped(x).detach())
    assert smoothness_profile(wrapped, x, torch.arange(9) % 3, k=2).names == ("input", "output")


# --------------------------------------------------------------------------- bad input
X = torch.rand(6, 3, generator=gen(20), dtype=DT)
Y = torch.tensor([0, 1, 0, 1, 2, 2])


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(k=0), ValueError, "k must be"),
    (dict(k=-1), ValueError, "k must be"),
    (dict(k=6), ValueError, "k must be"),
    (dict(k=2.0), ValueError, "k must be"),
    (dict(k=True), ValueError, "k must be"),
    (dict(kernel="gaussian"), ValueError, "kernel must be one of cosine"),
    (dict(power=0), ValueError, "power must be"),
    (dict(clip_negative="yes"), TypeError, "clip_negative"),
    (dict(labels=Y.float()), TypeError, "labels must be integers"),
    (dict(labels=Y.bool()), TypeError, "labels must be integers"),
    (dict(labels=Y[:, None]), ValueError, "labels must be 1-D"),
    (dict(labels=Y[:5]), ValueError, "labels and features differ in length"),
    (dict(labels=Y - 1), ValueError, "labels must be non-negative"),
    (dict(labels="abc"), TypeError, "labels must be a tensor"),
    (dict(features=X[0]), ValueError, "features must be 2-D"),
    (dict(features=X[None]), ValueError, "features must be 2-D"),
    (dict(features=X.numpy()), TypeError, "features must be a torch.Tensor"),
    (dict(features=Y[:, None].repeat(1, 3)), TypeError, "features must be a floating-point"),
])
def test_label_smoothness_rejects_bad_input(kwargs, exc, match):
    args = dict(features=X, labels=Y, k=2)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        label_smoothness(**args)


def test_profile_and_representations_reject_bad_input():
    model = models.build("linear", seed=0)
    x, y = mnist_like(n=8)

    class NotSequential(nn.Module):
        def forward(self, v):
            return v.flatten(1)

    with pytest.raises(TypeError, match="layers can be given by index only for an nn.Sequential"):
        layer_representations(NotSequential(), x, layers=[0])
    with pytest.raises(TypeError, match="layers can be given by index only for an nn.Sequential"):
        smoothness_profile(NotSequential(), x, y, k=2, layers=[0])
    with pytest.raises(ValueError, match="layers index 2 is out of range"):
        layer_representations(model, x, layers=[2])
    with pytest.raises(TypeError, match="layers must hold integer"):
        layer_representations(model, x, layers=["1"])
    with pytest.raises(TypeError, match="layers must be a sequence"):
        layer_representations(model, x, layers=1)
    with pytest.raises(ValueError, match="layers names a module twice"):
        layer_representations(model, x, layers=[1, -1])
    with pytest.raises(ValueError, match="layers is empty"):
        layer_representations(model, x, layers=[])
    with pytest.raises(ValueError, match="batch_size must be"):
        layer_representations(model, x, batch_size=0)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        layer_representations(lambda v: v, x)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        layer_representations(model, np.zeros((2, 784)))
    with pytest.raises(ValueError, match="x must hold at least one example"):
        layer_representations(model, x[:0])
    with pytest.raises(ValueError, match="x and y differ in length"):
        smoothness_profile(model, x, y[:-1], k=2)
    with pytest.raises(ValueError, match="q must be a positive number"):
        smoothness_profile(model, x, y, k=2, q=0)
    with pytest.raises(ValueError, match="k must be"):
        smoothness_profile(model, x, y, k=8)
