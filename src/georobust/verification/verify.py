"""``verify`` and ``margin_bounds``: one entry point to the four verifiers of a ReLU network.

* ``"milp"`` — complete: exact minimum margins (Tjeng et al. 2019), :mod:`.milp`;
* ``"lp"`` — the triangle LP relaxation (Ehlers 2017; Wong & Kolter 2018), :mod:`.milp`;
* ``"crown"`` — linear bounds back-substituted (Zhang et al. 2018), :mod:`.relu_network` (dense
  matrices) or :mod:`.matrix_free` (the layers as operators, for networks whose dense form is too
  large): the same bounds; ``crown_backend`` chooses (``"auto"``: matrix-free when the dense form
  would need more than :data:`.matrix_free.DENSE_LIMIT` numbers for one layer);
* ``"ibp"`` — interval bounds (Gowal et al. 2018), :mod:`.relu_network`.

``margin_bounds`` returns, for each class j ≠ label (increasing j), a lower bound on
z[label] − z[j] over the threat set; ``verify`` is True when all are > 0. Every method is sound:
True means that no point of the set is classified otherwise. MILP is also complete (up to the
solver's tolerances, and unless it times out). With the same intermediate bounds the LP bound is
at least the CROWN and IBP ones (its feasible set lies inside both relaxations), so the package
gives LP and MILP the tighter of the IBP and CROWN intermediate bounds, neuron by neuron.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from . import milp as _milp
from .matrix_free import DENSE_LIMIT, crown_matrix_free, dense_size
from .relu_network import affine_form, crown, ibp, input_box

METHODS = ("milp", "lp", "crown", "ibp")
CROWN_BACKENDS = ("auto", "dense", "matrix-free")
NORMS = {"milp": ("linf",), "lp": ("linf",), "crown": ("linf", "l2"), "ibp": ("linf", "l2")}


def _prepare(model, x, label, eps, norm, method, domain, dense=True):
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}; got {method!r}")
    if norm not in ("linf", "l2"):
        raise ValueError(f"norm must be 'linf' or 'l2'; got {norm!r}")
    if norm not in NORMS[method]:
        raise ValueError(f"norm {norm!r} is not supported by method {method!r} (it takes {', '.join(NORMS[method])})")
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating)) or not (eps >= 0 and math.isfinite(eps)):
        raise ValueError(f"eps must be a finite number >= 0; got {eps!r}")
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(np.asarray(x))
    if dense:
        form = affine_form(model, tuple(x.shape))
        n_out = form.weights[-1].shape[0]
    else:
        form = None
        n_out = _n_out(model, x)
    if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or not 0 <= label < n_out:
        raise ValueError(f"label must be a class index in [0, {n_out}); got {label!r}")
    if domain is not None:
        lo_d, hi_d = float(domain[0]), float(domain[1])
        if not lo_d <= hi_d:
            raise ValueError(f"domain must be (lo, hi) with lo <= hi; got {domain!r}")
        domain = (lo_d, hi_d)
    x0 = x.detach().to(torch.float64).cpu().numpy().reshape(-1)
    return form, x0, int(label), float(eps), domain


def _n_out(model, x):
    param = next(model.parameters(), None)
    with torch.no_grad():
        z = model(x.detach().to(dtype=param.dtype if param is not None else x.dtype,
                                device=param.device if param is not None else x.device)[None])
    return int(z.reshape(1, -1).shape[1])


def _matrix_free(model, x, method, crown_backend) -> bool:
    """Whether CROWN runs matrix-free: asked for, or ``"auto"`` and the dense form is too large."""
    if crown_backend not in CROWN_BACKENDS:
        raise ValueError(f"crown_backend must be one of {', '.join(map(repr, CROWN_BACKENDS))}; got {crown_backend!r}")
    if method != "crown" or crown_backend == "dense":
        return False
    if crown_backend == "matrix-free":
        return True
    shape = tuple(x.shape) if isinstance(x, torch.Tensor) else np.shape(x)
    return dense_size(model, shape) > DENSE_LIMIT


def _spec(n_out, label):
    others = [j for j in range(n_out) if j != label]
    spec = np.zeros((len(others), n_out))
    spec[np.arange(len(others)), label] = 1.0
    spec[np.arange(len(others)), others] = -1.0
    return spec


def margin_bounds(model: nn.Module, x, label: int, eps: float, norm: str = "linf", method: str = "milp",
                  domain=None, time_limit: float | None = None, return_info: bool = False,
                  stop_at_negative: bool = False, crown_backend: str = "auto"):
    """Lower bounds on z[label] − z[j], j ≠ label, over {x' : ‖x' − x‖ ≤ eps} ∩ domain box.

    ``x``: one input (no batch dimension); ``domain``: (lo, hi) bounds on every coordinate or None.
    MILP returns the exact minima (a "timeout" status in the info marks a proven bound instead);
    with ``stop_at_negative`` the LP and MILP stop at the first negative margin (NaN for the rest),
    which is all a yes/no verification needs. ``crown_backend``: ``"dense"``, ``"matrix-free"`` or
    ``"auto"`` (see the module docstring; the bounds are the same).
    """
    free = _matrix_free(model, x, method, crown_backend)
    form, x0, label, eps, domain = _prepare(model, x, label, eps, norm, method, domain, dense=not free)
    info = {"method": method}
    if free:
        xt = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
        spec = _spec(_n_out(model, xt), label)
        values = crown_matrix_free(model, x0.reshape(tuple(xt.shape)), eps, norm, domain, spec)[-1][0]
        info["crown_backend"] = "matrix-free"
        return (values, info) if return_info else values
    spec = _spec(form.weights[-1].shape[0], label)
    if method == "ibp" and norm == "linf":
        lo, hi = input_box(x0, eps, domain)
        values = ibp(form, lo, hi, spec)[-1][0]
    elif method == "ibp":  # ℓ2: the first map sees the ball exactly (ε‖w_i‖₂), then boxes
        w, b = (spec @ form.weights[0], spec @ form.biases[0]) if form.depth == 1 else (form.weights[0], form.biases[0])
        first = (w @ x0 + b - eps * np.linalg.norm(w, axis=1), w @ x0 + b + eps * np.linalg.norm(w, axis=1))
        values = first[0] if form.depth == 1 else ibp(form, None, None, spec, first=first)[-1][0]
    elif method == "crown":
        values = crown(form, x0, eps, norm, domain, spec)[-1][0]
        info["crown_backend"] = "dense"
    else:
        lo, hi = input_box(x0, eps, domain)
        inter = hidden_bounds(form, x0, eps, domain)
        values, solver = _milp.min_margins(form, label, lo, hi, inter, integer=method == "milp", time_limit=time_limit,
                                           stop_at_negative=stop_at_negative)
        info.update(solver)
    return (values, info) if return_info else values


def hidden_bounds(form, x0, eps, domain):
    """The tighter of IBP and CROWN bounds on every hidden pre-activation (ℓ∞ ball ∩ domain)."""
    lo, hi = input_box(x0, eps, domain)
    b_ibp = ibp(form, lo, hi)
    b_crown = crown(form, x0, eps, "linf", domain)
    return [(np.maximum(li, lc), np.minimum(ui, uc)) for (li, ui), (lc, uc) in zip(b_ibp[:-1], b_crown[:-1])]


def verify(model: nn.Module, x, label: int, eps: float, norm: str = "linf", method: str = "milp",
           domain=None, time_limit: float | None = None, crown_backend: str = "auto") -> bool:
    """True when every point of the ε-ball around ``x`` (∩ ``domain``) is classified ``label``,
    as proven by ``method`` (sound for all four; complete for ``"milp"``, which returns False on a
    timeout unless the bound it proved suffices; ``crown_backend`` as in :func:`margin_bounds`)."""
    if method != "milp":
        return bool(np.all(margin_bounds(model, x, label, eps, norm, method, domain,
                                         crown_backend=crown_backend) > 0))
    # MILP only where the LP relaxation does not already prove the margin (same answer, faster)
    form, x0, label, eps, domain = _prepare(model, x, label, eps, norm, method, domain)
    lo, hi = input_box(x0, eps, domain)
    inter = hidden_bounds(form, x0, eps, domain)
    lp, _ = _milp.min_margins(form, label, lo, hi, inter, integer=False)
    others = [j for j in range(form.weights[-1].shape[0]) if j != label]
    todo = [j for j, v in zip(others, lp) if not v > 0]
    if not todo:
        return True
    exact, _ = _milp.min_margins(form, label, lo, hi, inter, integer=True, time_limit=time_limit,
                                 stop_at_negative=True, classes=todo)
    return bool(np.all(np.nan_to_num(exact[[others.index(j) for j in todo]], nan=-1.0) > 0))


def exact_linf_radius(model: nn.Module, x, label: int, domain=None, hi: float = 1.0, tol: float = 1e-4,
                      time_limit: float | None = None) -> float:
    """The ℓ∞ robust radius of ``x`` (largest ε that MILP verifies), by bisection to ``tol``;
    0 if ``x`` itself is not classified ``label``; ``hi`` if ``hi`` is verified."""
    if not verify(model, x, label, 0.0, "linf", "milp", domain, time_limit):
        return 0.0
    if verify(model, x, label, hi, "linf", "milp", domain, time_limit):
        return float(hi)
    lo = 0.0
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if verify(model, x, label, mid, "linf", "milp", domain, time_limit) else (lo, mid)
    return lo
