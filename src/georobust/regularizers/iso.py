"""ISO: the partial-isometry regularizer of Shi-Garrier, Bouaynaya & Delahaye (Entropy 26(2):103, 2024).

A classifier x ↦ f(x) = softmax(z(x)) ∈ Δ^c is pushed towards a *partial isometry* from
(ℝ^d, ‖·‖₂) to the simplex with the Fisher metric Σ dθ_i²/θ_i, scaled so that a step of length
ε moves f(x) by its Fisher–Rao distance δ(x) to the centre of the simplex. With m = c − 1:

* stereographic coordinates t_i = 2√θ_i / (1 − √θ_c), i = 1..m, in which the Fisher metric is
  ρ²I_m with ρ = 2 / (1 + ‖t/2‖²). On the simplex this is exactly ρ = 1 − √θ_c, because
  ‖t/2‖² = (1 − θ_c)/(1 − √θ_c)² = (1 + √θ_c)/(1 − √θ_c); the tests check it numerically and
  with sympy;
* δ(x) = 2 arccos Σ_i √(f_i(x)/c), the Fisher–Rao distance from f(x) to (1/c, …, 1/c);
* J̃ = ∂t/∂x (m×d), A = J̃J̃ᵀ, λ = δ²/(ρ²ε²) and the penalty α(x) = ε² ‖A − λI_m‖_F;
* the training loss (1 − η)·CE + η·mean α.

Computation. By the chain rule J̃ = T J_z with T = ∂t/∂z (m×c, closed form) and J_z = ∂z/∂x.
Because t does not change when a constant is added to all logits, T = T̃Uᵀ with U (c×m) an
orthonormal basis of 1^⊥, so A = T̃ G T̃ᵀ with the m×m logit Gram G = (J_zᵀU)ᵀ(J_zᵀU). The m
vector–Jacobian products J_zᵀU_j are taken with ``torch.func.vjp`` (vmapped), which keeps their
graph: the penalty's gradient reaches the parameters *through the Jacobian* (the pitfall of a
Jacobian taken without ``create_graph=True``, which detaches it, is tested against).

Estimators (``method``):

* ``"exact"`` — m VJPs for every input.
* ``"fast"`` — the exact Gram of ``num_samples`` inputs drawn uniformly without replacement,
  and for *every* input the control variate α̃_n = ε²‖T̃_n Ĝ T̃_nᵀ − λ_n I‖_F with Ĝ the mean
  Gram of the drawn inputs (T̃_n and λ_n come free with the forward pass). The value is
  mean_n α̃_n + mean_{n∈S}(α_n − α̃_n). For any Ĝ chosen independently of the draw S this is
  exactly unbiased for the batch mean of α (and its gradient for the gradient); taking Ĝ from
  S itself leaves an O(1/|S|) bias. With ``num_samples=3`` on batches of 128 MNIST images
  (LeNet at initialization, after 2 and after 10 epochs of plain training) the bias was within
  ±1% (not significant over 150 draws) and one draw's mean |relative error| 5–7% (0.1–0.4%
  after 10 epochs, when the control variate captures the large values almost entirely); a
  plain mean over 3 random inputs is off by 10–25% there. With ``num_samples`` equal to the
  batch size it equals ``"exact"``. Cost: m·num_samples VJPs instead of m·N.
* ``"jvp"`` — forward mode, no backpropagation for the Jacobian: ``num_probes`` Gaussian input
  directions u (k ≥ 2) per input, y = J̃u by ``torch.func.jvp``; with K = (y_iᵀy_j) the
  statistic mean_{i≠j}K_ij² − 2λ mean_i K_ii + λ²m is *unbiased for ‖A − λI‖_F²* (so for α²);
  α is its clipped square root, biased. The sketch lives in d dimensions (Wishart noise of
  order (‖A‖_F² + (tr A)²)/k), so it needs many probes: on LeNet/MNIST 8 probes gave 6–15%
  error against 5% for ``"fast"`` with 4 samples (see ``benchmarks/regularizers.py``).

``metric="euclidean"`` is the ablation with the Euclidean metric of the simplex instead of
Fisher's (:func:`euclidean_chart`). ``invariant=True`` uses ε²‖ρ²A − (δ²/ε²)I‖_F instead: the
pullback metric ρ²J̃ᵀJ̃ does not depend on the chart, and the paper's α equals this invariant
discrepancy times ρ⁻² = (1 − √f_c)⁻², which weights inputs confidently predicted as the last
class (the stereographic pole) without bound. After 10 epochs of plain LeNet training, the 9%
of a batch predicted as the last class carried 99.998% of the batch's α (median 27,000 against
18 for the others; invariant variant: 23 against 18).

All samples are treated as independent (the model must not mix the batch, e.g. BatchNorm in
training mode). Randomness comes from an explicit ``torch.Generator`` (None: the global one).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

METHODS = ("exact", "fast", "jvp")
METRICS = ("fisher", "euclidean")


# --------------------------------------------------------------------------- validation
def check_input(x) -> None:
    """ValueError unless ``x`` is a floating-point batch (N×…, N ≥ 1, at least 2-D)."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ValueError(f"x must be a floating-point torch.Tensor; got {type(x).__name__}"
                         + (f" of dtype {x.dtype}" if isinstance(x, torch.Tensor) else ""))
    if x.dim() < 2 or x.shape[0] < 1:
        raise ValueError(f"x must be a batch of shape N×… with N ≥ 1 and at least 2 dimensions; got shape {tuple(x.shape)}")


def check_logits(z: torch.Tensor, n: int, num_classes: int | None = None) -> int:
    """The number of classes c, or ValueError unless ``z`` looks like N×c logits with c ≥ 2.

    Rows that are all non-negative and sum to 1 are taken for probabilities (a model ending in
    softmax), which these regularizers must not be given.
    """
    if num_classes is not None and (not isinstance(num_classes, int) or num_classes < 2):
        raise ValueError(f"num_classes must be an integer >= 2 or None; got {num_classes!r}")
    if z.dim() != 2 or z.shape[0] != n:
        raise ValueError(f"the model must return logits of shape N×c (N={n}); got shape {tuple(z.shape)}")
    c = z.shape[1]
    if c < 2:
        raise ValueError(f"the model must return logits for c >= 2 classes; got c={c}")
    if num_classes is not None and c != num_classes:
        raise ValueError(f"the model returns {c} logits per input but num_classes={num_classes}")
    with torch.no_grad():
        if bool((z >= 0).all()) and bool(torch.allclose(z.sum(1), torch.ones_like(z[:, 0]), atol=1e-5)):
            raise ValueError("the model's outputs are non-negative and sum to 1: they look like "
                             "probabilities, but logits (pre-softmax scores) are required")
    return c


def call_model(fn: Callable, x: torch.Tensor):
    """``fn()`` (a forward pass on ``x``), with a model that rejects ``x`` reported as ValueError."""
    try:
        return fn()
    except torch.OutOfMemoryError:
        raise
    except RuntimeError as err:
        raise ValueError(f"the model cannot be applied to x of shape {tuple(x.shape)}: {err}") from err


def _check_eps(eps) -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps <= 0:
        raise ValueError(f"eps must be a finite number > 0 (the l2 budget); got {eps!r}")
    return float(eps)


def _check_eta(eta) -> float:
    if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not 0 <= eta <= 1:
        raise ValueError(f"eta must be a number in [0, 1]; got {eta!r}")
    return float(eta)


def _check_options(method, metric, num_samples, num_probes, reduction) -> None:
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}; got {metric!r}")
    if method == "fast" and (isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1):
        raise ValueError(f"num_samples must be an integer >= 1; got {num_samples!r}")
    if method == "jvp" and (isinstance(num_probes, bool) or not isinstance(num_probes, int) or num_probes < 2):
        raise ValueError(f"num_probes must be an integer >= 2 (the unbiased statistic uses pairs); got {num_probes!r}")
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none'; got {reduction!r}")


# --------------------------------------------------------------------------- charts
def helmert_basis(c: int, dtype=None, device=None) -> torch.Tensor:
    """An orthonormal basis (c×(c−1)) of the hyperplane {v : Σ v_i = 0} (Helmert's)."""
    U = torch.zeros(c, c - 1, dtype=dtype, device=device)
    for j in range(1, c):
        U[:j, j - 1] = 1.0
        U[j, j - 1] = -float(j)
        U[:, j - 1] /= math.sqrt(j * (j + 1))
    return U


def _delta_sq(sqrt_p: torch.Tensor) -> torch.Tensor:
    """δ² = (2 arccos Σ √(p_i/c))², written as 16·asin²(r/2), r = ‖√p − √(1/c)‖, to stay smooth at
    the centre (where arccos has an infinite derivative)."""
    c = sqrt_p.shape[-1]
    s = (sqrt_p - c ** -0.5).pow(2).sum(-1) / 4  # sin²(angle/2), in [0, 1/2]
    small = s < 1e-3
    s_safe = torch.where(small, torch.ones_like(s), s)
    ratio = torch.where(small, 1 + s / 6 + 3 * s ** 2 / 40 + 5 * s ** 3 / 112,
                        torch.asin(s_safe.sqrt()) / s_safe.sqrt())  # asin(√s)/√s
    return 16 * s * ratio ** 2


def fisher_chart(z: torch.Tensor):
    """Stereographic chart of the Fisher simplex at logits ``z`` (N×c).

    Returns (t, T, ρ, δ²): t (N×m), T = ∂t/∂z (N×m×c, closed form), ρ = 1 − √θ_c (the metric
    is ρ²I in t), δ² the squared Fisher–Rao distance to the centre. Computed from
    log-softmax, so probabilities close to 0 or 1 do not overflow.
    """
    logp = F.log_softmax(z, dim=-1)
    p = logp.exp()
    s = (0.5 * logp).exp()  # √θ
    log_rest = torch.logsumexp(z[:, :-1], dim=-1) - torch.logsumexp(z, dim=-1)  # log(1 − θ_c)
    rho = log_rest.exp() / (1 + s[:, -1])  # 1 − √θ_c = (1 − θ_c)/(1 + √θ_c)
    t = 2 * s[:, :-1] / rho[:, None]
    c = z.shape[1]
    eye = torch.eye(c, dtype=z.dtype, device=z.device)
    ds = 0.5 * s[:, :, None] * (eye - p[:, None, :])  # ∂√θ_i/∂z_j
    T = 2 * ds[:, :-1] / rho[:, None, None] + 2 * (s[:, :-1, None] / rho[:, None, None] ** 2) * ds[:, -1:, :]
    return t, T, rho, _delta_sq(s)


def euclidean_chart(z: torch.Tensor):
    """The Euclidean ablation's chart: coordinates u = Uᵀ(p − 1/c) in an orthonormal basis U of the
    simplex's tangent space (so the metric is I, ρ = 1), T = ∂u/∂z = Uᵀ(diag p − ppᵀ), and
    δ² = ‖p − 1/c‖² the squared Euclidean distance to the centre. Returns (u, T, ρ, δ²)."""
    p = F.softmax(z, dim=-1)
    c = z.shape[1]
    U = helmert_basis(c, z.dtype, z.device)
    u = (p - 1.0 / c) @ U
    T = U.T @ (torch.diag_embed(p) - p[:, :, None] * p[:, None, :])
    return u, T, torch.ones_like(p[:, 0]), (p - 1.0 / c).pow(2).sum(-1)


CHARTS = {"fisher": fisher_chart, "euclidean": euclidean_chart}


# --------------------------------------------------------------------------- pieces
def _forward_gram(model: nn.Module, x: torch.Tensor, num_classes):
    """Logits z (N×c) and the logit Gram G = (J_zᵀU)ᵀ(J_zᵀU) (N×m×m) by m vmapped VJPs, graph kept."""
    check_input(x)
    z, vjp_fn = call_model(lambda: torch.func.vjp(model, x), x)
    c = check_logits(z, x.shape[0], num_classes)
    U = helmert_basis(c, z.dtype, z.device)
    cot = U.T[:, None, :].expand(c - 1, x.shape[0], c)
    (g,) = torch.func.vmap(vjp_fn)(cot)  # m×N×…: rows of UᵀJ_z
    g = g.reshape(c - 1, x.shape[0], -1)
    return z, torch.einsum("jnd,knd->njk", g, g)


def _alpha_from_sq(sq: torch.Tensor, eps: float) -> torch.Tensor:
    """ε²·√sq with a zero (not NaN) gradient where sq = 0."""
    pos = sq > 0
    return eps ** 2 * torch.where(pos, sq, torch.ones_like(sq)).sqrt() * pos


def _discrepancy_sq(A: torch.Tensor, rho, delta_sq, eps: float, invariant: bool) -> torch.Tensor:
    """‖wA − λI‖_F² per input, with w = 1, λ = δ²/(ρ²ε²) (paper) or w = ρ², λ = δ²/ε² (invariant)."""
    if invariant:
        A, lam = rho[:, None, None] ** 2 * A, delta_sq / eps ** 2
    else:
        lam = delta_sq / (rho ** 2 * eps ** 2)
    eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
    return (A - lam[:, None, None] * eye).pow(2).sum((-2, -1))


def _rand_index(n: int, k: int, generator, device) -> torch.Tensor:
    gdev = generator.device if generator is not None else device
    return torch.randperm(n, generator=generator, device=gdev)[:k].to(device)


# --------------------------------------------------------------------------- estimators
def _exact(model, x, eps, chart, invariant, num_classes, squared):
    z, G = _forward_gram(model, x, num_classes)
    _, T, rho, delta_sq = chart(z)
    Tt = T @ helmert_basis(z.shape[1], z.dtype, z.device)  # T̃ = TU
    sq = _discrepancy_sq(Tt @ G @ Tt.transpose(1, 2), rho, delta_sq, eps, invariant)
    return (eps ** 4 * sq if squared else _alpha_from_sq(sq, eps)), z


def _fast(model, x, eps, chart, invariant, num_classes, num_samples, generator, idx=None, gram=None):
    """The control-variate estimate. ``idx`` (the draw) and ``gram`` (a Ĝ fixed in advance instead
    of the draw's mean Gram, which makes the estimate exactly unbiased) are for tests."""
    check_input(x)
    n = x.shape[0]
    k = min(num_samples, n)
    if idx is None:
        idx = _rand_index(n, k, generator, x.device)
    k = len(idx)
    z_s, G_s = _forward_gram(model, x[idx], num_classes)
    if k < n:
        rest = torch.ones(n, dtype=torch.bool, device=x.device)
        rest[idx] = False
        z_r = call_model(lambda: model(x[rest]), x)
        check_logits(z_r, int(rest.sum()), num_classes)
        z = z_s.new_empty((n, z_s.shape[1]))
        z = z.index_put((idx,), z_s).index_put((rest.nonzero().squeeze(1),), z_r)
    else:
        z = z_s.new_empty(z_s.shape).index_put((idx,), z_s)
    _, T, rho, delta_sq = chart(z)
    Tt = T @ helmert_basis(z.shape[1], z.dtype, z.device)
    G_hat = G_s.mean(0) if gram is None else gram
    proxy = _alpha_from_sq(_discrepancy_sq(Tt @ G_hat @ Tt.transpose(1, 2), rho, delta_sq, eps, invariant), eps)
    Ts = Tt[idx]
    alpha_s = _alpha_from_sq(_discrepancy_sq(Ts @ G_s @ Ts.transpose(1, 2), rho[idx], delta_sq[idx], eps, invariant), eps)
    return proxy.mean() + (alpha_s - proxy[idx]).mean(), z


def _jvp(model, x, eps, chart, invariant, num_classes, num_probes, generator, squared):
    check_input(x)
    u = torch.randn((num_probes,) + tuple(x.shape), generator=generator, dtype=x.dtype, device=x.device)
    z, zdot = call_model(lambda: torch.func.vmap(lambda v: torch.func.jvp(model, (x,), (v,)), out_dims=(None, 0))(u), x)
    c = check_logits(z, x.shape[0], num_classes)
    _, T, rho, delta_sq = chart(z)
    y = torch.einsum("nmc,knc->nkm", T, zdot)  # J̃u for each probe: N×k×m
    if invariant:
        y, lam = rho[:, None, None] * y, delta_sq / eps ** 2
    else:
        lam = delta_sq / (rho ** 2 * eps ** 2)
    K = y @ y.transpose(1, 2)
    diag = torch.diagonal(K, dim1=1, dim2=2)
    k = num_probes
    fro_sq = (K.pow(2).sum((1, 2)) - diag.pow(2).sum(1)) / (k * (k - 1))  # unbiased ‖A‖_F²
    sq = fro_sq - 2 * lam * diag.mean(1) + lam ** 2 * (c - 1)  # unbiased ‖A − λI‖_F²
    return (eps ** 4 * sq if squared else _alpha_from_sq(sq.clamp(min=0), eps)), z


TARGETS = {"delta": 1.0, "half-delta": 0.5}  # target radius of the image of the eps-ball, in units of delta


def _iso(model, x, eps, method, metric, num_samples, num_probes, generator, invariant, num_classes,
         reduction="mean", squared=False, target="delta"):
    eps = _check_eps(eps)
    _check_options(method, metric, num_samples, num_probes, reduction)
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}; got {target!r}")
    # A target radius k·δ is the target δ at budget ε/k: ε²‖A − k²δ²/(ρ²ε²)I‖ = k²·(ε/k)²‖A − δ²/(ρ²(ε/k)²)I‖
    # (likewise for the invariant form), so the penalty is k² times the penalty at ε/k.
    k = TARGETS[target]
    eps, scale = eps / k, k ** 2
    chart = CHARTS[metric]
    if method == "fast":
        if reduction == "none" or squared:
            raise ValueError("method='fast' estimates the batch mean of alpha only: use reduction='mean', squared=False")
        value, z = _fast(model, x, eps, chart, invariant, num_classes, num_samples, generator)
        return scale * value, z
    if method == "exact":
        values, z = _exact(model, x, eps, chart, invariant, num_classes, squared)
    else:
        values, z = _jvp(model, x, eps, chart, invariant, num_classes, num_probes, generator, squared)
    values = values * (scale ** 2 if squared else scale)
    return (values.mean() if reduction == "mean" else values), z


# --------------------------------------------------------------------------- public API
def iso_penalty(model: nn.Module, x: torch.Tensor, eps: float, method: str = "exact", *,
                metric: str = "fisher", num_samples: int = 3, num_probes: int = 8,
                generator: torch.Generator | None = None, invariant: bool = False,
                num_classes: int | None = None, reduction: str = "mean",
                squared: bool = False, target: str = "delta") -> torch.Tensor:
    """The ISO penalty α(x, f) = ε²‖J̃J̃ᵀ − δ²/(ρ²ε²) I‖_F of ``model`` at ``x``, batch mean.

    Differentiable with respect to the model's parameters through the Jacobian itself.

    ``method``: ``"exact"`` (m = c−1 VJPs per input), ``"fast"`` (exact Gram of ``num_samples``
    random inputs plus a control variate for all others; unbiased for the batch mean up to an
    O(1/num_samples) term; see the module docstring) or ``"jvp"`` (``num_probes`` forward-mode
    Gaussian probes per input; its ``squared=True`` value is unbiased for α²).
    ``metric="euclidean"``: the Euclidean ablation. ``invariant=True``: the chart-invariant
    variant ε²‖ρ²J̃J̃ᵀ − δ²/ε² I‖_F. ``reduction="none"`` gives per-input values (``"exact"``,
    ``"jvp"``); ``squared=True`` gives α² (per input, or its batch mean). ``num_classes``, when
    given, is checked against the model's output.

    ``target``: the radius the ε-ball should map onto, ``"delta"`` (δ(x), the target λ =
    δ²/(ρ²ε²) that Shi-Garrier et al. derive, transcribed by this book) or ``"half-delta"`` (δ(x)/2,
    λ = δ²/(4ρ²ε²), reported by a reader to be what the authors' released code uses).
    """
    return _iso(model, x, eps, method, metric, num_samples, num_probes, generator, invariant,
                num_classes, reduction, squared, target)[0]


def iso_euclidean_penalty(model: nn.Module, x: torch.Tensor, eps: float, method: str = "exact",
                          **kwargs) -> torch.Tensor:
    """ISO with the Euclidean metric of the simplex (the ablation).

    With p = f(x), U an orthonormal basis of the tangent space {v : Σ v_i = 0} and
    J_E = Uᵀ ∂p/∂x (m×d: the Jacobian of f in orthonormal tangent coordinates, where the
    Euclidean metric is the identity), the penalty is ε²‖J_E J_Eᵀ − (δ_E²/ε²) I_m‖_F with
    δ_E = ‖p − (1/c)1‖₂, the Euclidean distance to the centre of the simplex. It does not depend on
    the choice of U. Same options as :func:`iso_penalty`.
    """
    return iso_penalty(model, x, eps, method, metric="euclidean", **kwargs)


def iso_objective(eps: float, eta: float, method: str = "fast", *, metric: str = "fisher",
                  num_samples: int = 3, num_probes: int = 8, invariant: bool = False,
                  num_classes: int | None = None, target: str = "delta") -> Callable:
    """An ``objective`` for :func:`georobust.core.train.train`: (1 − η)·CE + η·ISO penalty.

    Returns ``fn(model, x, y, generator) -> (loss, logits)``; ``generator`` drives the random
    draws of ``"fast"``/``"jvp"``. The logits returned are those the penalty was computed
    from (no second forward pass for the penalized inputs).
    """
    eps, eta = _check_eps(eps), _check_eta(eta)
    _check_options(method, metric, num_samples, num_probes, "mean")
    if target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}; got {target!r}")

    def objective(model, x, y, generator=None):
        check_input(x)
        if not isinstance(y, torch.Tensor) or y.dim() != 1 or y.shape[0] != x.shape[0] or y.is_floating_point():
            raise ValueError(f"y must be a 1-D integer tensor of {x.shape[0]} labels; got "
                             f"{tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__}")
        if eta == 0:
            z = call_model(lambda: model(x), x)
            check_logits(z, x.shape[0], num_classes)
            return F.cross_entropy(z, y), z
        penalty, z = _iso(model, x, eps, method, metric, num_samples, num_probes, generator,
                          invariant, num_classes, target=target)
        return (1 - eta) * F.cross_entropy(z, y) + eta * penalty, z

    return objective
