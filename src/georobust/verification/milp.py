"""Exact verification of a ReLU network as a mixed-integer linear program, and its LP relaxation,
solved with HiGHS through SciPy (``scipy.optimize.milp``).

Variables: the input x (in the ℓ∞ box), and for every hidden layer k its pre-activations ẑ_k and
post-activations y_k, with ẑ_k = W_k y_{k−1} + b_k (y_0 = x). Each ReLU y = max(ẑ, 0) with
pre-activation bounds l ≤ ẑ ≤ u is encoded (Tjeng, Xiao & Tedrake, "Evaluating Robustness of
Neural Networks with Mixed Integer Programming", ICLR 2019):

* stably active (l ≥ 0): y = ẑ;  stably inactive (u ≤ 0): y = 0;
* otherwise, with a binary a: y ≥ ẑ, y ≥ 0, y ≤ ẑ − l(1 − a), y ≤ u·a.

The tighter (l, u), the fewer unstable ReLUs and the smaller the big-M constants; they come from
the tighter of interval bounds and CROWN, neuron by neuron. Relaxing a ∈ {0, 1} to [0, 1] and
projecting it out gives the triangle y ≤ u(ẑ − l)/(u − l) of the LP relaxation (Ehlers 2017; Wong &
Kolter 2018). :func:`min_margins` minimizes each margin z_L[label] − z_L[j] over the input set:
exactly with the MILP (up to the solver's tolerances; a time limit turns an unfinished solve into
a reported timeout and its best proven bound), and as a lower bound with the LP.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize, sparse

from .relu_network import AffineForm


def _layout(form: AffineForm, bounds):
    """Variable indices: x, then per hidden layer ẑ_k, y_k, and a binary for each unstable ReLU."""
    d = form.weights[0].shape[1]
    idx, n = {"x": np.arange(d)}, d
    for k in range(form.depth - 1):
        m = form.weights[k].shape[0]
        idx[("z", k)] = np.arange(n, n + m)
        n += m
        idx[("y", k)] = np.arange(n, n + m)
        n += m
        l, u = bounds[k]
        unstable = np.flatnonzero((l < 0) & (u > 0))
        idx[("a", k)] = (unstable, np.arange(n, n + len(unstable)))
        n += len(unstable)
    return idx, n


def _program(form: AffineForm, bounds, lo, hi, integer: bool):
    idx, n = _layout(form, bounds)
    rows, cols, vals, b_lo, b_hi = [], [], [], [], []
    r = 0

    def add(entries, low, high):
        nonlocal r
        for c_, v_ in entries:
            rows.append(r)
            cols.append(c_)
            vals.append(v_)
        b_lo.append(low)
        b_hi.append(high)
        r += 1

    var_lo, var_hi = np.full(n, -np.inf), np.full(n, np.inf)
    var_lo[idx["x"]], var_hi[idx["x"]] = lo, hi
    integrality = np.zeros(n)
    prev = idx["x"]
    for k in range(form.depth - 1):
        w, b = form.weights[k], form.biases[k]
        z, y = idx[("z", k)], idx[("y", k)]
        l, u = bounds[k]
        var_lo[z], var_hi[z] = l, u
        var_lo[y], var_hi[y] = np.maximum(l, 0.0), np.maximum(u, 0.0)
        coo = sparse.coo_matrix(w)
        # ẑ − W y_prev = b, one row per neuron (the matrix part added in bulk below)
        for i in range(w.shape[0]):
            rows.append(r + i)
            cols.append(z[i])
            vals.append(1.0)
        rows.extend((r + coo.row).tolist())
        cols.extend(prev[coo.col].tolist())
        vals.extend((-coo.data).tolist())
        b_lo.extend(b.tolist())
        b_hi.extend(b.tolist())
        r += w.shape[0]
        unstable, a_idx = idx[("a", k)]
        pos = {int(i): int(j) for i, j in zip(unstable, a_idx)}
        for i in range(w.shape[0]):
            if l[i] >= 0:  # active: y = ẑ
                add([(y[i], 1.0), (z[i], -1.0)], 0.0, 0.0)
            elif u[i] <= 0:  # inactive: y = 0
                add([(y[i], 1.0)], 0.0, 0.0)
            else:
                add([(y[i], 1.0), (z[i], -1.0)], 0.0, np.inf)  # y ≥ ẑ  (y ≥ 0 is a variable bound)
                if integer:
                    a = pos[i]
                    var_lo[a], var_hi[a] = 0.0, 1.0
                    integrality[a] = 1
                    add([(y[i], 1.0), (z[i], -1.0), (a, -l[i])], -np.inf, -l[i])  # y ≤ ẑ − l(1 − a)
                    add([(y[i], 1.0), (a, -u[i])], -np.inf, 0.0)                     # y ≤ u a
                else:
                    s = u[i] / (u[i] - l[i])
                    add([(y[i], 1.0), (z[i], -s)], -np.inf, -s * l[i])               # y ≤ u(ẑ − l)/(u − l)
        prev = y
    # unused binaries (LP): fix to 0
    for k in range(form.depth - 1):
        _, a_idx = idx[("a", k)]
        if not integer:
            var_lo[a_idx], var_hi[a_idx] = 0.0, 0.0
    a_mat = sparse.csr_matrix((vals, (rows, cols)), shape=(r, n))
    return idx, n, prev, a_mat, np.array(b_lo), np.array(b_hi), var_lo, var_hi, integrality


def min_margins(form: AffineForm, label: int, lo, hi, bounds, *, integer: bool = True,
                time_limit: float | None = None, stop_at_negative: bool = False, classes=None):
    """Minimum (MILP) or LP lower bound of z_L[label] − z_L[j] for each j ≠ label over the box.

    ``bounds``: pre-activation bounds of the hidden layers (at least depth − 1 pairs). Returns
    (values, info): values[j'] for the classes j ≠ label in increasing order; info has ``status``
    per class ("optimal", "timeout" — then the value is the solver's proven lower bound — or
    "skipped" after a negative margin when ``stop_at_negative``) and the number of binaries.
    ``classes``: solve only for these classes j (the others get NaN and status "not asked").
    """
    idx, n, last, a_mat, b_lo, b_hi, var_lo, var_hi, integrality = _program(form, bounds, lo, hi, integer)
    w, b = form.weights[-1], form.biases[-1]
    others = [j for j in range(w.shape[0]) if j != label]
    values, status = [], []
    cons = optimize.LinearConstraint(a_mat, b_lo, b_hi)
    var_bounds = optimize.Bounds(var_lo, var_hi)
    options = {"disp": False}
    if time_limit is not None:
        options["time_limit"] = float(time_limit)
    for j in others:
        if classes is not None and j not in classes:
            values.append(np.nan)
            status.append("not asked")
            continue
        if stop_at_negative and values and np.nanmin(values + [np.inf]) < 0:
            values.append(np.nan)
            status.append("skipped")
            continue
        c = np.zeros(n)
        c[last] = w[label] - w[j]
        const = b[label] - b[j]
        res = optimize.milp(c, constraints=cons, bounds=var_bounds, integrality=integrality if integer else None,
                            options=options)
        if res.status == 0:
            values.append(float(res.fun + const))
            status.append("optimal")
        elif res.status == 1 and integer:  # time or iteration limit: keep the proven dual bound
            bound = getattr(res, "mip_dual_bound", None)
            values.append(float(bound + const) if bound is not None and np.isfinite(bound) else -np.inf)
            status.append("timeout")
        else:
            raise RuntimeError(f"HiGHS failed on the {'MILP' if integer else 'LP'} for class {j}: {res.message}")
    return np.array(values), {"status": status, "binaries": int(integrality.sum())}
