"""CROWN without matrices: back-substitution through the network's own layers, in torch.

The numpy CROWN of :mod:`.relu_network` unfolds every convolution into a dense matrix, which is
out of reach for a network such as ``ibp_medium`` (its second convolution alone is a
4,608 × 21,632 matrix, and unfolding it applies the layer to 21,632 basis images). Here a layer is
only ever applied as a linear operator to a batch of *specification rows* — the coefficients of
the linear functions being bounded — through its adjoint:

* ``Linear``: A ↦ A W;
* ``Conv2d`` (zero padding): A ↦ ``torch.nn.grad.conv2d_input`` (torch's transposed convolution,
  which fixes the output padding from the input shape), other padding modes through
  ``torch.func.vjp`` of the layer;
* ``Flatten``: a reshape;

and the bias enters as A·layer(0). The rows are processed in chunks, so the memory is
chunk × (widest layer) numbers, never (layer width)².

:func:`crown_matrix_free` computes the same bounds as :func:`.relu_network.crown` — the same
relaxation (chord above; slope 1 if u ≥ −l else 0 below), layer by layer, on the ℓ∞ box ∩ domain or
the ℓ2 ball — and is tested equal to it to 1e-9. An upper bound is the negated lower bound of the
negated row, so one pass over [I; −I] gives both. Float64 throughout, on the device of the model.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn

from .lipschitz import UnsupportedLayerError
from .relu_network import supported_layers

DENSE_LIMIT = 2 ** 25  # numbers (256 MiB of float64) above which "auto" leaves the dense form


class _Layer:
    """One affine layer in float64: its input and output shapes (no batch), its output at 0 (the
    bias, broadcast), and its adjoint applied to a batch of rows."""

    def __init__(self, layer: nn.Module, in_shape: tuple[int, ...], device):
        self.in_shape = in_shape
        self.layer = copy.deepcopy(layer).to(device=device, dtype=torch.float64)
        with torch.no_grad():
            zero = self.layer(torch.zeros((1,) + in_shape, dtype=torch.float64, device=device))
        self.bias = zero[0]
        self.out_shape = tuple(zero.shape[1:])

    def adjoint(self, a: torch.Tensor) -> torch.Tensor:
        """Rows a (N, *out_shape) ↦ a ∘ (linear part of the layer), shape (N, *in_shape)."""
        lay = self.layer
        if isinstance(lay, nn.Flatten):
            return a.reshape((a.shape[0],) + self.in_shape)
        if isinstance(lay, nn.Linear):
            return a @ lay.weight
        if lay.padding_mode == "zeros":
            return torch.nn.grad.conv2d_input((a.shape[0],) + self.in_shape, lay.weight, a, lay.stride, lay.padding,
                                              lay.dilation, lay.groups)
        z = torch.zeros((a.shape[0],) + self.in_shape, dtype=a.dtype, device=a.device)
        _, pull = torch.func.vjp(lambda t: lay(t) - self.bias, z)
        return pull(a)[0]


def _blocks(model: nn.Module, input_shape, device) -> list[list[_Layer]]:
    """The affine layers between consecutive ReLUs (block k maps the input of pre-activation k)."""
    layers = supported_layers(model)
    shape = tuple(int(s) for s in input_shape)
    blocks, cur = [], []
    for i, layer in enumerate(layers):
        if isinstance(layer, nn.ReLU):
            if not any(not isinstance(l.layer, nn.Flatten) for l in cur):
                raise UnsupportedLayerError(f"layer {i} (ReLU) must follow an affine layer (Linear or Conv2d)")
            blocks.append(cur)
            cur = []
            continue
        lay = _Layer(layer, shape, device)
        cur.append(lay)
        shape = lay.out_shape
    if not any(not isinstance(l.layer, nn.Flatten) for l in cur):
        raise UnsupportedLayerError("the network must end with an affine layer (Linear or Conv2d), not a ReLU")
    blocks.append(cur)
    return blocks


def dense_size(model: nn.Module, input_shape) -> int:
    """Numbers the dense form of :func:`.relu_network.affine_form` allocates for its largest layer
    (the d × d basis it applies the layer to, plus the d × n matrix it gets back)."""
    biggest = 0
    for block in _blocks(model, input_shape, "cpu"):
        for lay in block:
            d, n = math.prod(lay.in_shape), math.prod(lay.out_shape)
            biggest = max(biggest, d * (d + n))
    return biggest


def _relaxation(l, u):
    """CROWN's lines a_low·z ≤ relu(z) ≤ a_up·z + c_up on [l, u] (as in :mod:`.relu_network`)."""
    one, zero = torch.ones_like(u), torch.zeros_like(u)
    a_up = torch.where(l >= 0, one, torch.where(u <= 0, zero, u / torch.where(u > l, u - l, one)))
    c_up = torch.where((l < 0) & (u > 0), -a_up * l, zero)
    a_low = torch.where(l >= 0, one, torch.where(u <= 0, zero, (u >= -l).to(u.dtype)))
    return a_low, a_up, c_up


def _lower(blocks, relax, k, a, x0, lo, hi, eps, norm):
    """Lower bounds of the rows ``a`` (N, *out_shape of block k) · z_k over the input set, by
    back-substitution through blocks k, …, 0 and the relaxed ReLUs between them."""
    n = a.shape[0]
    c = torch.zeros(n, dtype=a.dtype, device=a.device)
    for j in range(k, -1, -1):
        for lay in reversed(blocks[j]):
            c = c + (a.reshape(n, -1) @ lay.bias.reshape(-1))
            a = lay.adjoint(a)
        if j == 0:
            break
        a_low, a_up, c_up = relax[j - 1]
        shape = a.shape
        a = a.reshape(n, -1)
        pos, neg = a.clamp(min=0), a.clamp(max=0)
        c = c + neg @ c_up
        a = (pos * a_low + neg * a_up).reshape(shape)
    a = a.reshape(n, -1)
    if norm == "l2":
        return a @ x0 + c - eps * torch.linalg.vector_norm(a, dim=1)
    mid, rad = (lo + hi) / 2, (hi - lo) / 2
    return a @ mid + c - a.abs() @ rad


def crown_matrix_free(model: nn.Module, x0, eps: float, norm: str = "linf", domain=None, spec=None,
                      chunk: int | None = None, hidden=None):
    """CROWN bounds [(l_1, u_1), …, (l_L, u_L)] (numpy, flattened) on every pre-activation of
    ``model`` for inputs in the ℓ∞ ball of radius ``eps`` around ``x0`` ∩ ``domain`` (or the ℓ2 ball;
    ``domain`` is then ignored, which is sound) — the bounds of :func:`.relu_network.crown`,
    computed without forming any layer's matrix. With ``spec`` (m × n_L) the last entry bounds
    spec @ z_L. ``chunk``: specification rows per backward pass (default: as many as fit in
    about 256 MiB per row buffer). ``hidden``: bounds [(l_1, u_1), …, (l_{L−1}, u_{L−1})] to use
    for the hidden layers instead of computing them (e.g. IBP's, which gives CROWN-IBP); only the
    last entry is then computed."""
    if norm not in ("linf", "l2"):
        raise ValueError(f"norm must be 'linf' or 'l2'; got {norm!r}")
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating)) or not (eps >= 0 and math.isfinite(eps)):
        raise ValueError(f"eps must be a finite number >= 0; got {eps!r}")
    if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1):
        raise ValueError(f"chunk must be an integer >= 1 or None; got {chunk!r}")
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    x = torch.as_tensor(np.asarray(x0.detach().cpu() if isinstance(x0, torch.Tensor) else x0, dtype=np.float64),
                        device=device)
    blocks = _blocks(model, tuple(x.shape), device)
    x = x.reshape(-1)
    lo, hi = x - eps, x + eps
    if domain is not None and norm == "linf":
        lo, hi = lo.clamp(min=float(domain[0])), hi.clamp(max=float(domain[1]))
    width = max(math.prod(lay.in_shape) for b in blocks for lay in b)
    if chunk is None:
        chunk = max(1, (2 ** 25) // width)
    depth = len(blocks)
    if hidden is not None and len(hidden) != depth - 1:
        raise ValueError(f"hidden must give bounds of the {depth - 1} hidden layers; got {len(hidden)}")
    bounds, relax = [], []
    with torch.no_grad():
        for k in range(depth):
            out_shape = blocks[k][-1].out_shape
            n_k = math.prod(out_shape)
            if k < depth - 1 and hidden is not None:
                l, u = (torch.as_tensor(np.asarray(t, dtype=np.float64), device=device).reshape(-1) for t in hidden[k])
                bounds.append((l.cpu().numpy(), u.cpu().numpy()))
                relax.append(_relaxation(l, u))
                continue
            if k == depth - 1 and spec is not None:
                s = torch.as_tensor(np.asarray(spec, dtype=np.float64), device=device)
                if s.ndim != 2 or s.shape[1] != n_k:
                    raise ValueError(f"spec must have shape (m, {n_k}); got {tuple(s.shape)}")
                rows, m = torch.cat([s, -s]), s.shape[0]
            else:
                rows, m = None, n_k
            low = torch.empty(2 * m, dtype=torch.float64, device=device)
            for start in range(0, 2 * m, chunk):
                stop = min(2 * m, start + chunk)
                if rows is not None:
                    a = rows[start:stop]
                else:  # rows e_i (first m) and −e_i (last m), built chunk by chunk
                    idx = torch.arange(start, stop, device=device)
                    a = torch.zeros((stop - start, n_k), dtype=torch.float64, device=device)
                    a[torch.arange(stop - start, device=device), idx % m] = torch.where(idx < m, 1.0, -1.0).to(a.dtype)
                low[start:stop] = _lower(blocks, relax, k, a.reshape((stop - start,) + out_shape), x, lo, hi,
                                         eps, norm)
            l, u = low[:m], -low[m:]
            bounds.append((l.cpu().numpy(), u.cpu().numpy()))
            if k < depth - 1:
                relax.append(_relaxation(l, u))
    return bounds
