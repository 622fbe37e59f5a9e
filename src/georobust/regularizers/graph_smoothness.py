"""Label smoothness on layer similarity graphs: the Laplacian-networks measure of Lassance, Gripon
& Ortega ("Laplacian networks: bounding indicator function smoothness for neural networks
robustness", arXiv 1805.10133; APSIPA Trans. Signal Inf. Process. 10, e2, 2021).

For N examples with labels y and their representations x_1^ℓ, …, x_N^ℓ at layer ℓ:

* the similarity graph W^ℓ: cosine similarity W_ij = ⟨x_i, x_j⟩ / (‖x_i‖‖x_j‖) (the rows are
  L2-normalized first, as in the authors' code; an all-zero row has similarity 0 to every
  example), no self-loops; sparsified by keeping, for each example, its k most similar *other*
  examples, and symmetrized by union: the edge ij is kept if j is among the k nearest
  neighbours of i *or* i among those of j, with weight W_ij (the cosine is symmetric);
* the combinatorial Laplacian L^ℓ = D^ℓ − W^ℓ, D^ℓ = diag(Σ_j W^ℓ_ij);
* the smoothness of the label indicator signals s_c = 1[y = c]:

      σ^ℓ = Σ_c s_cᵀ (L^ℓ)^m s_c,

  which for m = 1 (the default) is Σ_{(i,j): y_i ≠ y_j} W^ℓ_ij over *ordered* pairs, i.e. twice
  the total weight of the undirected edges joining examples of different classes: it is 0 when
  no edge crosses a class boundary and grows as examples of different classes become neighbours;
* the regularizer on consecutive layers Σ_ℓ |σ^{ℓ+1} − σ^ℓ|^q, which penalizes large changes,
  from one layer to the next, in how close examples of different classes are, and so asks the
  class boundaries to vary smoothly through the network (the paper's abstract).

What is taken from where. The similarity graph of each layer's representations, the smoothness
Σ_c s_cᵀ L s_c of the class indicators with L = D − W, and the penalty on consecutive layers are
the paper's. The details were checked against the authors' released code
(github.com/cadurosar/laplacian_networks, ``gsp.py``): cosine similarity of L2-normalized rows,
the combinatorial (unnormalized) Laplacian without a ½ factor, the union symmetrization
``min(1, A + Aᵀ)`` of the k-nearest-neighbour mask, an optional power L^m (``power`` here),
and |σ^{ℓ+1} − σ^ℓ| (q = 1) averaged over the consecutive pairs of ReLU outputs. The paper's text
itself could not be consulted here, so the following are choices, exposed as arguments:

* ``k`` counts neighbours *other than the example itself*. The released code sorts the whole
  similarity row, so its k includes the example (self-similarity 1): its k is this k + 1. Self
  loops do not change s_cᵀ L s_c. The released CIFAR training script leaves k unset, which is
  the complete graph: ``k=None`` here. The default k = 10 is ours.
* ``clip_negative=True`` sets negative cosines to 0 so that W is a valid (non-negative) graph and
  σ ≥ 0. The released code does not clip; on ReLU outputs (the layers it regularizes) and on
  non-negative images every cosine is ≥ 0 anyway, so the choice only matters for the logits or
  for inputs with negative entries.
* :func:`smoothness_profile` includes the input and the logits besides the activations and
  reports the *sum* Σ_ℓ |Δσ|^q (the released code divides it by the number of differences and
  uses m = 2 with weight γ^m, γ = 0.01, when training).

σ depends on N and k (it is a sum over edges): compare values computed on the same examples
with the same k. Everything is deterministic: ties between equal similarities are broken in
favour of the smaller index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

KERNELS = ("cosine",)

ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU,
               nn.SiLU, nn.Mish, nn.Sigmoid, nn.Tanh, nn.Softplus, nn.Hardtanh, nn.Hardswish,
               nn.Hardsigmoid, nn.LogSigmoid, nn.Softsign, nn.Tanhshrink)
"""Module types after which :func:`layer_representations` takes a representation by default."""


# ------------------------------------------------------------------------------ representations
def _chosen_indices(model: nn.Module, layers: Sequence[int] | None) -> list[int] | None:
    """Indices of the modules of ``model`` whose outputs are taken (None: just the output)."""
    if layers is None:
        if not isinstance(model, nn.Sequential):
            return None
        n = len(model)
        if n == 0:
            raise ValueError("model is an empty nn.Sequential: it has no layers")
        return sorted({i for i, m in enumerate(model) if isinstance(m, ACTIVATIONS)} | {n - 1})
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"layers can be given by index only for an nn.Sequential model; got "
                        f"{type(model).__name__} (use layers=None for its input and output)")
    if isinstance(layers, (int, np.integer)) or not isinstance(layers, Sequence):
        raise TypeError(f"layers must be a sequence of module indices or None; got {layers!r}")
    n = len(model)
    out = []
    for i in layers:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"layers must hold integer module indices; got {i!r}")
        if not -n <= i < n:
            raise ValueError(f"layers index {i} is out of range for a Sequential of {n} modules "
                             f"(allowed: {-n} to {n - 1})")
        out.append(int(i) % n)
    if len(set(out)) != len(out):
        raise ValueError(f"layers names a module twice: {list(layers)!r}")
    if not out:
        raise ValueError("layers is empty: name at least one module (or pass None)")
    return sorted(out)


def layer_representations(model: nn.Module, x: torch.Tensor, layers: Sequence[int] | None = None,
                          batch_size: int = 1000) -> list[torch.Tensor]:
    """The flattened input followed by the flattened outputs of the chosen modules (N×D_ℓ each).

    ``model`` is a classifier; for an ``nn.Sequential`` (such as :func:`georobust.core.models.lenet`,
    ``small_cnn``, ``linear``) the input is passed through the modules one by one and the output
    of module i is kept for every i in ``layers`` (indices into the Sequential, negative allowed;
    returned in network order). ``layers=None`` takes the output of every activation module (see
    :data:`ACTIVATIONS`: for LeNet the ReLUs, before max-pooling) and the final output (the
    logits); for ``models.linear`` that is just the logits. A model that is not an
    ``nn.Sequential`` accepts only ``layers=None`` and gives [input, output].

    Guarantees: one forward pass over ``x`` in chunks of ``batch_size``, without gradients, with
    the model in eval mode (each submodule's train/eval flag is restored afterwards); the tensors
    are detached, on ``x``'s device with the model's output dtype, and row n belongs to ``x[n]``.
    Cited: Lassance, Gripon & Ortega (2021), who build their graphs on such intermediate
    representations.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor; got {type(x).__name__}")
    if x.dim() < 1 or len(x) == 0:
        raise ValueError(f"x must hold at least one example (shape N×…); got shape {tuple(x.shape)}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}")
    indices = _chosen_indices(model, layers)
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    chunks: list[list[torch.Tensor]] = []
    try:
        with torch.no_grad():
            for start in range(0, len(x), int(batch_size)):
                h = x[start:start + int(batch_size)]
                outs = [h.flatten(1)]
                if indices is None:
                    outs.append(model(h).flatten(1))
                else:
                    wanted = set(indices)
                    for i, module in enumerate(model[:indices[-1] + 1]):
                        h = module(h)
                        if i in wanted:
                            outs.append(h.flatten(1))
                chunks.append(outs)
    finally:
        for m, training in modes:
            m.training = training
    return [torch.cat(parts).detach() for parts in zip(*chunks)]


# ------------------------------------------------------------------------------ smoothness
def _check_labels(labels, n: int, device: torch.device) -> torch.Tensor:
    if not isinstance(labels, torch.Tensor):
        if not isinstance(labels, (np.ndarray, list, tuple)):
            raise TypeError(f"labels must be a tensor of integer class indices; got {type(labels).__name__}")
        labels = torch.as_tensor(np.asarray(labels))
    if labels.dtype == torch.bool or labels.is_floating_point() or labels.is_complex():
        raise TypeError(f"labels must be integers (class indices); got dtype {labels.dtype}")
    if labels.dim() != 1:
        raise ValueError(f"labels must be 1-D (one class index per example); got shape {tuple(labels.shape)}")
    if len(labels) != n:
        raise ValueError(f"labels and features differ in length: {len(labels)} labels for {n} examples")
    if n and int(labels.min()) < 0:
        raise ValueError(f"labels must be non-negative class indices; got {int(labels.min())}")
    return labels.to(device=device, dtype=torch.long)


def similarity_graph(features: torch.Tensor, k: int | None = 10, kernel: str = "cosine",
                     clip_negative: bool = True) -> torch.Tensor:
    """The symmetric N×N weight matrix W of the k-nearest-neighbour similarity graph.

    W_ij = max(cos(x_i, x_j), 0) (no clipping with ``clip_negative=False``) if j is among the k
    most similar examples to i or i among those of j, else 0; the diagonal is 0. ``k=None``: the
    complete graph. Guarantees: W = Wᵀ exactly, zero diagonal, W ≥ 0 when clipping, every example
    keeps edges to (at least) its k nearest others, ties broken towards the smaller index; the
    dtype and device are those of ``features`` and W is differentiable with respect to them (the
    neighbour selection itself is piecewise constant). See the module docstring
    for what follows Lassance, Gripon & Ortega (2021) and what is a choice.
    """
    if not isinstance(features, torch.Tensor):
        raise TypeError(f"features must be a torch.Tensor; got {type(features).__name__}")
    if not features.is_floating_point():
        raise TypeError(f"features must be a floating-point tensor; got dtype {features.dtype}")
    if features.dim() != 2:
        raise ValueError(f"features must be 2-D (N examples × D); got shape {tuple(features.shape)}")
    n = len(features)
    if n < 1:
        raise ValueError("features must hold at least one example")
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {', '.join(KERNELS)}; got {kernel!r}")
    if k is not None:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k < n:
            raise ValueError(f"k must be an integer with 1 <= k < N = {n} (or None for the complete "
                             f"graph); got {k!r}")
        k = int(k)
    if not isinstance(clip_negative, bool):
        raise TypeError(f"clip_negative must be a bool; got {clip_negative!r}")
    z = F.normalize(features, p=2, dim=1)
    sim = z @ z.T
    sim = (sim + sim.T) / 2  # exactly symmetric despite rounding
    if clip_negative:
        sim = sim.clamp_min(0)
    eye = torch.eye(n, dtype=torch.bool, device=features.device)
    sim = sim.masked_fill(eye, 0)
    if k is None or k == n - 1:
        return sim
    scores = sim.detach().masked_fill(eye, -float("inf"))
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]
    mask = torch.zeros(n, n, dtype=torch.bool, device=features.device)
    mask.scatter_(1, order, True)
    return sim * (mask | mask.T)


def label_smoothness(features: torch.Tensor, labels, k: int | None = 10, kernel: str = "cosine", *,
                     power: int = 1, clip_negative: bool = True) -> torch.Tensor:
    """σ = Σ_c s_cᵀ L^m s_c: the smoothness of the label indicators on the features' similarity graph.

    ``features`` is N×D (one row per example, floating point), ``labels`` N integer class
    indices ≥ 0. L = D − W is the combinatorial Laplacian of :func:`similarity_graph` (cosine
    similarity, k nearest other examples, union-symmetrized; ``k=None``: complete graph) and s_c
    the indicator of class c; ``power`` is m (Lassance, Gripon & Ortega 2021 use L; their released
    training code also allows L^m and trains with m = 2).

    Guarantees: a 0-dim tensor with the dtype and device of ``features``, differentiable with
    respect to them; for m = 1 it is computed as Σ_{i≠j, y_i≠y_j} W_ij over ordered pairs (twice
    the weight of the edges between classes; the tests check it against s_cᵀ(D − W)s_c built by
    hand), so it is ≥ 0 (when clipping) and exactly 0 when a single class is present or no edge
    joins two classes, does not change when the examples are permuted (up to ties among
    similarities) or a row is multiplied by a positive number (cosine kernel), and does not
    depend on how the classes are numbered.
    """
    if isinstance(power, bool) or not isinstance(power, (int, np.integer)) or power < 1:
        raise ValueError(f"power must be a positive integer (the exponent m of L^m); got {power!r}")
    w = similarity_graph(features, k=k, kernel=kernel, clip_negative=clip_negative)
    y = _check_labels(labels, len(features), features.device)
    if power == 1:  # Σ_c s_cᵀ L s_c = Σ_{y_i ≠ y_j} W_ij, summed directly: exactly 0 without cross edges
        return (w * (y[:, None] != y[None, :])).sum()
    onehot = F.one_hot(y, int(y.max()) + 1).to(w.dtype)
    lap = torch.diag(w.sum(1)) - w
    z = onehot
    for _ in range(int(power)):
        z = lap @ z
    return (onehot * z).sum()


# ------------------------------------------------------------------------------ profile
@dataclass(frozen=True)
class SmoothnessProfile:
    """σ^ℓ layer by layer and the consecutive-layer regularizer of Lassance, Gripon & Ortega (2021).

    ``sigma``: σ^ℓ for every representation, input first and model output last (1-D tensor);
    ``names``: what each entry is ("input", then "<index>:<module type>"); ``jumps``:
    |σ^{ℓ+1} − σ^ℓ| (one fewer entry); ``max_jump``: their maximum; ``penalty``: Σ_ℓ jumps_ℓ^q,
    the quantity the paper's regularizer penalizes; ``q`` and ``k`` as used.
    """

    sigma: torch.Tensor
    names: tuple[str, ...]
    jumps: torch.Tensor
    max_jump: float
    penalty: float
    q: float
    k: int | None


def smoothness_profile(model: nn.Module, x: torch.Tensor, y, k: int | None = 10,
                       layers: Sequence[int] | None = None, *, q: float = 1.0, power: int = 1,
                       clip_negative: bool = True, batch_size: int = 1000) -> SmoothnessProfile:
    """σ^ℓ of the labels ``y`` on the k-NN similarity graph of each representation of ``x``.

    The representations are those of :func:`layer_representations` (the flattened input, then by
    default every activation and the logits); σ^ℓ is :func:`label_smoothness` with the same
    ``k``, ``power`` and ``clip_negative`` for every layer. Guarantees: ``sigma[0]`` equals
    ``label_smoothness(x.flatten(1), y, k, ...)``; all values are finite and, when clipping,
    non-negative; ``sigma`` has the dtype and device of the representations; the model is left
    in the train/eval mode it was in; deterministic. Cost: O(N²·D_ℓ) per layer, so N of a few
    thousand at most. Cited: Lassance, Gripon & Ortega (2021), whose regularizer is
    Σ_ℓ |σ^{ℓ+1} − σ^ℓ|^q (the released code: q = 1, averaged over the differences).
    """
    if isinstance(q, bool) or not isinstance(q, (int, float, np.floating, np.integer)) or not q > 0:
        raise ValueError(f"q must be a positive number; got {q!r}")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor; got {type(x).__name__}")
    y_len = getattr(y, "shape", (len(y),) if isinstance(y, (list, tuple)) else ())
    if x.dim() >= 1 and len(y_len) == 1 and y_len[0] != len(x):
        raise ValueError(f"x and y differ in length: {len(x)} != {y_len[0]}")
    reps = layer_representations(model, x, layers, batch_size=batch_size)
    indices = _chosen_indices(model, layers)
    if indices is None:
        names = ("input", "output")
    else:
        names = ("input",) + tuple(f"{i}:{type(model[i]).__name__}" for i in indices)
    sigma = torch.stack([label_smoothness(r, y, k, power=power, clip_negative=clip_negative).to(reps[-1].dtype)
                         for r in reps])
    jumps = (sigma[1:] - sigma[:-1]).abs()
    return SmoothnessProfile(sigma=sigma, names=names, jumps=jumps,
                             max_jump=float(jumps.max()) if len(jumps) else 0.0,
                             penalty=float((jumps.double() ** float(q)).sum()), q=float(q), k=k)
