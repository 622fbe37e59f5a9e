"""The information geometry behind ISO (Shi-Garrier, Bouaynaya & Delahaye, Entropy 26(2):103, 2024).

The identities of the chapter "ISO: the geometry", as checks that return ``True`` or raise
``AssertionError``, and the numerical tools that go with them.

Symbolic objects (SymPy; each check takes the object it checks as an argument, so that a test can
hand it an altered one and watch the check fail):

* :func:`sphere_map` μ(θ) = 2√θ, the Fisher simplex onto the sphere of radius 2;
* :func:`fisher_rao_expr` d(θ, θ') = 2 arccos Σ √(θ_i θ'_i) and :func:`delta_expr` δ(θ), the
  distance to the centre (1/c, …, 1/c);
* :func:`stereographic_chart` t_i = 2√θ_i / (1 − √θ_c), its inverse
  :func:`inverse_stereographic`, the conformal factor :func:`conformal_factor`
  ρ = 2 / (1 + ‖t/2‖²) and its value on the simplex :func:`rho_on_simplex` 1 − √θ_c;
* the penalties :func:`alpha_paper_expr` ε²‖A − δ²/(ρ²ε²) I‖_F and
  :func:`alpha_invariant_expr` ε²‖ρ²A − δ²/ε² I‖_F, with A = J̃J̃ᵀ.

Points of the simplex are written with s_i = √θ_i, i.e. as points of the unit sphere's positive
orthant, with s_c = √(1 − s_1² − … − s_m²) (m = c − 1), so that the constraint Σθ_i = 1 holds
identically. Every check first evaluates the difference of the two sides at a few exact rational
points (40 digits), which refutes a false identity at once and names the point, and then asks
:func:`sympy.simplify` to reduce it to 0, which proves it; a true identity that SymPy cannot reduce
fails too (with a message that says so).

Numerical tools (NumPy): :func:`fisher_rao`, :func:`delta`, :func:`boundary_distance` (the
Fisher–Rao distance to the nearest decision boundary), :func:`great_circle` (the geodesic),
:func:`fisher_length` (the length of a discretized path in the Fisher metric),
:func:`shortest_path` (a numerical minimization of that length over paths),
:func:`geodesic_circle` (points at a given Fisher–Rao distance), :func:`to_plane` (the 2-simplex
drawn in the plane) and :func:`permute_classes` (a model with its classes reordered).
"""

from __future__ import annotations

import contextlib
import math
import random
from typing import Callable, Sequence

import numpy as np
import sympy as sp

# ============================================================================ symbolic objects
def sphere_map(theta: Sequence) -> list:
    """μ(θ) = 2√θ, componentwise."""
    return [2 * sp.sqrt(x) for x in theta]


def fisher_rao_expr(theta: Sequence, theta2: Sequence):
    """d(θ, θ') = 2 arccos Σ √(θ_i θ'_i)."""
    return 2 * sp.acos(sum(sp.sqrt(a * b) for a, b in zip(theta, theta2)))


def delta_expr(theta: Sequence):
    """δ(θ) = 2 arccos Σ √(θ_i / c), the Fisher–Rao distance from θ to the centre of the simplex."""
    c = len(theta)
    return 2 * sp.acos(sum(sp.sqrt(x / c) for x in theta))


def stereographic_chart(sqrt_theta: Sequence) -> list:
    """t_i = 2√θ_i / (1 − √θ_c), i = 1..m: the stereographic projection of μ = 2√θ from the pole
    (0, …, 0, 2) onto the plane μ_c = 0. Takes s = √θ (c entries)."""
    s = list(sqrt_theta)
    return [2 * x / (1 - s[-1]) for x in s[:-1]]


def inverse_stereographic(t: Sequence) -> list:
    """s = √θ as a rational function of t: s_i = 4t_i/(‖t‖² + 4), s_c = (‖t‖² − 4)/(‖t‖² + 4).

    The point lies in the simplex (s_c ≥ 0) exactly when t ≥ 0 and ‖t‖ ≥ 2."""
    n2 = sum(x ** 2 for x in t)
    return [4 * x / (n2 + 4) for x in t] + [(n2 - 4) / (n2 + 4)]


def conformal_factor(t: Sequence):
    """ρ(t) = 2 / (1 + ‖t/2‖²): the Fisher metric is ρ² I in the coordinates t."""
    return 2 / (1 + sum((x / 2) ** 2 for x in t))


def rho_on_simplex(sqrt_theta: Sequence):
    """ρ = 1 − √θ_c: the conformal factor written on the simplex. Takes s = √θ."""
    return 1 - list(sqrt_theta)[-1]


def _frobenius_sq(M: sp.Matrix):
    return sum(x ** 2 for x in M)


def alpha_paper_expr(A: sp.Matrix, rho, delta, eps):
    """The paper's penalty ε² ‖A − δ²/(ρ²ε²) I_m‖_F with A = J̃J̃ᵀ."""
    return eps ** 2 * sp.sqrt(_frobenius_sq(A - delta ** 2 / (rho ** 2 * eps ** 2) * sp.eye(A.shape[0])))


def alpha_invariant_expr(A: sp.Matrix, rho, delta, eps):
    """The chart-invariant penalty ε² ‖ρ²A − δ²/ε² I_m‖_F."""
    return eps ** 2 * sp.sqrt(_frobenius_sq(rho ** 2 * A - delta ** 2 / eps ** 2 * sp.eye(A.shape[0])))


# ============================================================================ checking machinery
def _check_c(c) -> int:
    if isinstance(c, bool) or not isinstance(c, int) or c < 2:
        raise ValueError(f"c (the number of classes) must be an integer >= 2; got {c!r}")
    return c


def _sphere_point(prefix: str, c: int):
    """A point of the unit sphere's positive orthant: free symbols s_1..s_m > 0, the point
    (s_1, …, s_m, w) with a symbol w > 0, and the substitution w = √(1 − Σ s_i²), applied once the
    expressions are built (so that SymPy knows √(w²) = w)."""
    free = sp.symbols(f"{prefix}1:{c}", positive=True)
    w = sp.Symbol(f"{prefix}{c}", positive=True)
    return list(free), list(free) + [w], {w: sp.sqrt(1 - sum(x ** 2 for x in free))}


def _points(groups, k: int = 3, seed: int = 0) -> list[dict]:
    """``k`` exact rational points for the symbol groups: each group is (symbols, kind) with kind
    "sphere" (entries in (0, 1) with Σ x² < 1) or "positive" (entries in (0, 3))."""
    rnd = random.Random(seed)
    pts = []
    for _ in range(k):
        pt = {}
        for syms, kind in groups:
            if kind == "sphere":
                q = 21 * math.ceil(math.sqrt(max(len(syms), 1)))
                pt.update({x: sp.Rational(rnd.randint(1, 20), q) for x in syms})
            else:
                pt.update({x: sp.Rational(rnd.randint(1, 60), 20) for x in syms})
        pts.append(pt)
    return pts


def _assert_zero(expr, points: list[dict], what: str, sub: dict | None = None) -> None:
    """AssertionError unless ``expr`` (a scalar or a matrix; ``sub`` substituted first) is identically
    0: refuted numerically at ``points`` or not reduced to 0 by SymPy."""
    entries = list(expr) if isinstance(expr, sp.MatrixBase) else [expr]
    entries = [sp.sympify(e).subs(sub or {}) for e in entries]
    for e in entries:
        for pt in points:
            v = sp.N(sp.sympify(e).subs(pt), 40)
            if not bool(abs(v) < sp.Float("1e-25")):
                shown = {str(k): str(val) for k, val in pt.items()}
                raise AssertionError(f"{what}: false; at {shown} the difference is {sp.N(v, 6)}")
    for e in entries:
        if sp.simplify(e) != 0:
            raise AssertionError(f"{what}: SymPy could not reduce the difference to 0 "
                                 f"(it vanished at {len(points)} test points): {sp.simplify(e)}")


# ============================================================================ checks
def check_sphere_isometry(c: int = 3, sphere_map: Callable = sphere_map, radius=2) -> bool:
    """μ sends the simplex into the sphere of the given radius and pulls its Euclidean metric back to
    the Fisher metric: Σμ_i² = radius² when Σθ_i = 1, and (J_μE)ᵀ(J_μE) = Eᵀ diag(1/θ) E, where the
    columns of E = [I_m; −1ᵀ] span the tangent space {u : Σu_i = 0} of the simplex."""
    c = _check_c(c)
    m = c - 1
    theta = sp.symbols(f"theta1:{c + 1}", positive=True)
    on_simplex = {theta[-1]: 1 - sum(theta[:-1])}
    pts = [{k: v / 2 for k, v in p.items()} for p in _points([(theta[:-1], "sphere")])]  # Σθ_i < 1
    mu = sp.Matrix(list(sphere_map(list(theta))))
    _assert_zero((sum(x ** 2 for x in mu) - radius ** 2).subs(on_simplex), pts,
                 f"c={c}: the image of the simplex lies on the sphere of radius {radius}")
    E = sp.Matrix.vstack(sp.eye(m), -sp.ones(1, m))
    JE = mu.jacobian(theta) * E
    fisher = E.T * sp.diag(*[1 / x for x in theta]) * E
    _assert_zero((JE.T * JE - fisher).subs(on_simplex), pts,
                 f"c={c}: the pullback of the sphere's metric is the Fisher metric")
    return True


def check_fisher_rao_distance(c: int = 3, distance: Callable = fisher_rao_expr) -> bool:
    """``distance`` is the Fisher–Rao distance d(θ, θ') = 2 arccos Σ√(θ_iθ'_i).

    Checks, on the simplex (in s = √θ, r = √θ'):

    1. d(θ, θ) = 0 and d(θ', θ) = d(θ, θ');
    2. the eikonal equation ‖grad_θ d‖_g = 1, the Fisher norm of the gradient being
       Σ θ_i (∂_i d)² − (Σ θ_i ∂_i d)² for the partial derivatives ∂_i in ℝ^c: every curve from θ'
       to θ is therefore at least d(θ, θ') long;
    3. the great circle a(τ) = (sin((1−τ)φ) s + sin(τφ) r)/sin φ, φ = arccos(s·r), pulled back to
       θ(τ) = a(τ)², joins θ to θ' with constant Fisher speed 2φ, so it is 2φ long: d(θ, θ') must
       equal 2φ.
    """
    c = _check_c(c)
    s_free, s, sub_s = _sphere_point("s", c)
    r_free, r, sub_r = _sphere_point("r", c)
    sub = {**sub_s, **sub_r}
    th, th2 = [x ** 2 for x in s], [x ** 2 for x in r]
    pts = _points([(s_free, "sphere"), (r_free, "sphere")])
    _assert_zero(distance(th, th), pts, f"c={c}: d(theta, theta) = 0", sub)
    _assert_zero(distance(th2, th) - distance(th, th2), pts, f"c={c}: d is symmetric", sub)

    # 2. the eikonal equation, with the partial derivatives taken in R^c
    x = sp.symbols(f"x1:{c + 1}", positive=True)
    y = sp.symbols(f"y1:{c + 1}", positive=True)
    d_xy = distance(list(x), list(y))
    grad = [sp.diff(d_xy, v) for v in x]
    norm_sq = sum(v * g ** 2 for v, g in zip(x, grad)) - sum(v * g for v, g in zip(x, grad)) ** 2
    at = {**dict(zip(x, th)), **dict(zip(y, th2))}
    _assert_zero(norm_sq.subs(at) - 1, pts, f"c={c}: the Fisher norm of grad d is 1", sub)

    # 3. the great circle: (a) Σ (d(a_i²)/dτ)² / a_i² = 4 q(x', y') for a = x s + y r, any x(τ), y(τ),
    # with the quadratic form q(u, v) = u²Σs² + 2uv Σsr + v²Σr² (free symbols: pure algebra) ...
    tau = sp.symbols("tau", real=True)
    fx, fy = sp.Function("x")(tau), sp.Function("y")(tau)
    S, R = sp.symbols(f"S1:{c + 1}", positive=True), sp.symbols(f"R1:{c + 1}", positive=True)
    a = [fx * u + fy * v for u, v in zip(S, R)]
    speed_sq = sum(sp.diff(ai ** 2, tau) ** 2 / ai ** 2 for ai in a)
    xp, yp = sp.diff(fx, tau), sp.diff(fy, tau)
    q = xp ** 2 * sum(u ** 2 for u in S) + 2 * xp * yp * sum(u * v for u, v in zip(S, R)) \
        + yp ** 2 * sum(v ** 2 for v in R)
    if sp.simplify(sp.cancel(speed_sq - 4 * q)) != 0:
        raise AssertionError("the Fisher speed of theta = a^2 is not 4|a'|^2")
    # (b) ... on the sphere Σs² = Σr² = 1 ...
    _assert_zero(sum(u ** 2 for u in s) - 1, pts, f"c={c}: s lies on the unit sphere", sub)
    _assert_zero(sum(v ** 2 for v in r) - 1, pts, f"c={c}: r lies on the unit sphere", sub)
    # (c) ... so with C = s·r and the slerp coefficients the speed is 2 arccos C for all τ, and the
    # curve runs from s (τ = 0) to r (τ = 1)
    C = sp.symbols("C", positive=True)
    phi = sp.acos(C)
    xs, ys = sp.sin((1 - tau) * phi) / sp.sin(phi), sp.sin(tau * phi) / sp.sin(phi)
    q_slerp = (sp.diff(xs, tau) ** 2 + 2 * C * sp.diff(xs, tau) * sp.diff(ys, tau) + sp.diff(ys, tau) ** 2)
    if sp.simplify(4 * q_slerp - 4 * phi ** 2) != 0:
        raise AssertionError("the great circle does not have constant speed 2 arccos(s.r)")
    if [xs.subs(tau, 0), ys.subs(tau, 0), xs.subs(tau, 1), ys.subs(tau, 1)] != [1, 0, 0, 1]:
        raise AssertionError("the great circle does not join s to r")
    length = 2 * sp.acos(sum(u * v for u, v in zip(s, r)))
    _assert_zero(distance(th, th2) - length, pts,
                 f"c={c}: d(theta, theta') equals the Fisher length of the great circle", sub)
    return True


def check_delta(c: int = 3, delta: Callable = delta_expr, distance: Callable = fisher_rao_expr) -> bool:
    """δ(θ) is the Fisher–Rao distance from θ to the centre (1/c, …, 1/c), and its chord form
    sin²(δ/4) = ‖√θ − √(1/c)‖²/4 holds (the form in which :mod:`georobust.regularizers.iso` computes δ², smooth
    at the centre)."""
    c = _check_c(c)
    s_free, s, sub = _sphere_point("s", c)
    th = [x ** 2 for x in s]
    pts = _points([(s_free, "sphere")])
    centre = [sp.Rational(1, c)] * c
    _assert_zero(delta(th) - distance(th, centre), pts, f"c={c}: delta is the distance to the centre", sub)
    chord_sq = sum((x - 1 / sp.sqrt(c)) ** 2 for x in s)
    _assert_zero(sp.sin(delta(th) / 4) ** 2 - chord_sq / 4, pts,
                 f"c={c}: sin^2(delta/4) = |sqrt(theta) - sqrt(1/c)|^2/4", sub)
    return True


def check_stereographic_conformal_factor(c: int = 3, chart: Callable = stereographic_chart,
                                         rho: Callable = conformal_factor,
                                         inverse: Callable = inverse_stereographic) -> bool:
    """In the coordinates t = chart(√θ) the Fisher metric is ρ(t)² I_m.

    With s(t) = ``inverse(t)``: s(t) lies on the unit sphere, ``chart(s(t)) = t`` (so s is the
    inverse chart), and the Fisher metric pulled back by θ(t) = s(t)², Jᵀ diag(1/θ) J with
    J = ∂θ/∂t, equals ρ(t)² I_m. Everything is rational in t."""
    c = _check_c(c)
    m = c - 1
    t = sp.symbols(f"t1:{c}", positive=True)
    pts = _points([(t, "positive")])
    s = list(inverse(list(t)))
    _assert_zero(sum(x ** 2 for x in s) - 1, pts, f"c={c}: the inverse chart lands on the unit sphere")
    _assert_zero(sp.Matrix(list(chart(s))) - sp.Matrix(t), pts, f"c={c}: chart(inverse(t)) = t")
    theta = sp.Matrix([x ** 2 for x in s])
    J = theta.jacobian(t)
    metric = J.T * sp.diag(*[1 / x for x in theta]) * J
    _assert_zero(metric - rho(list(t)) ** 2 * sp.eye(m), pts, f"c={c}: the Fisher metric in t is rho^2 I")
    return True


def check_rho_simplifies(c: int = 3, rho: Callable = conformal_factor, chart: Callable = stereographic_chart,
                         rho_simplex: Callable = rho_on_simplex) -> bool:
    """ρ(t(θ)) = 2/(1 + ‖t/2‖²) equals ``rho_simplex(√θ)`` (1 − √θ_c) on the simplex."""
    c = _check_c(c)
    s_free, s, sub = _sphere_point("s", c)
    pts = _points([(s_free, "sphere")])
    _assert_zero(rho(list(chart(s))) - rho_simplex(s), pts, f"c={c}: rho = 1 - sqrt(theta_c) on the simplex", sub)
    return True


def check_chart_invariance(c: int = 3, pole: int = 0, frame: Callable = lambda rho: rho,
                           chart: Callable = stereographic_chart, rho: Callable = conformal_factor,
                           inverse: Callable = inverse_stereographic) -> bool:
    """Changing the stereographic pole from class c to class ``pole`` (0-based) changes the
    orthonormal frame by a rotation: with φ the transition map t ↦ t' between the two charts and ρ,
    ρ' their conformal factors, Q = (frame(ρ')/frame(ρ)) ∂φ/∂t is orthogonal for frame(ρ) = ρ.

    Since J̃' = (∂φ/∂t) J̃, this gives ρ'J̃' = Q ρJ̃, hence ρ'²J̃'J̃'ᵀ = Q (ρ²J̃J̃ᵀ) Qᵀ: the matrix
    ρ²J̃J̃ᵀ changes by a rotation only, and ‖ρ²J̃J̃ᵀ − λI‖_F does not change at all."""
    c = _check_c(c)
    if isinstance(pole, bool) or not isinstance(pole, int) or not 0 <= pole < c - 1:
        raise ValueError(f"pole must be an integer in [0, {c - 2}] (another class than the last); got {pole!r}")
    t = sp.symbols(f"t1:{c}", positive=True)
    pts = _points([(t, "positive")])
    s = list(inverse(list(t)))
    perm = list(range(c))
    perm[pole], perm[-1] = perm[-1], perm[pole]
    t2 = sp.Matrix(list(chart([s[i] for i in perm])))
    Q = frame(rho(list(t2))) / frame(rho(list(t))) * t2.jacobian(t)
    _assert_zero(Q * Q.T - sp.eye(c - 1), pts, f"c={c}, pole={pole}: the change of orthonormal frame is orthogonal")
    return True


def check_penalty_relation(c: int = 3, paper: Callable = alpha_paper_expr,
                           invariant: Callable = alpha_invariant_expr) -> bool:
    """α_paper = ρ⁻² α_invariant for every symmetric A = J̃J̃ᵀ, ρ, δ, ε > 0 (both are ≥ 0, so the
    squares are compared)."""
    c = _check_c(c)
    m = c - 1
    A = sp.Matrix(m, m, lambda i, j: sp.Symbol(f"a{min(i, j) + 1}{max(i, j) + 1}", real=True))
    rho, delta, eps = sp.symbols("rho delta epsilon", positive=True)
    pts = _points([(sorted(A.free_symbols, key=str), "positive"), ((rho, delta, eps), "positive")])
    _assert_zero(sp.expand((rho ** 2 * paper(A, rho, delta, eps)) ** 2 - invariant(A, rho, delta, eps) ** 2),
                 pts, f"c={c}: alpha_paper = alpha_invariant / rho^2")
    return True


CHECKS = {
    "sphere isometry": check_sphere_isometry,
    "Fisher-Rao distance": check_fisher_rao_distance,
    "distance to the centre": check_delta,
    "stereographic conformal factor": check_stereographic_conformal_factor,
    "rho on the simplex": check_rho_simplifies,
    "chart invariance": check_chart_invariance,
    "penalty relation": check_penalty_relation,
}


# ============================================================================ numerical tools
def _as_prob(p) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    if p.shape[-1] < 2 or np.any(p < 0) or not np.allclose(p.sum(-1), 1.0, atol=1e-9):
        raise ValueError("expected probability vectors (last axis >= 2 entries, non-negative, summing to 1)")
    return p


def fisher_rao(p, q) -> np.ndarray:
    """d(p, q) = 2 arccos Σ √(p_i q_i), over the last axis (broadcasting)."""
    p, q = _as_prob(p), _as_prob(q)
    return 2 * np.arccos(np.clip(np.sqrt(p * q).sum(-1), 0.0, 1.0))


def delta(p) -> np.ndarray:
    """δ(p): the Fisher–Rao distance from p to the centre of the simplex."""
    p = _as_prob(p)
    return fisher_rao(p, np.full(p.shape[-1], 1.0 / p.shape[-1]))


def boundary_distance(p) -> np.ndarray:
    """β(p) = 2 arcsin((√p_(1) − √p_(2))/√2): the Fisher–Rao distance from p to the nearest point
    where the top class ties with another (p_(1) ≥ p_(2) the two largest entries)."""
    p = _as_prob(p)
    top2 = np.sort(np.sqrt(p), axis=-1)[..., -2:]
    return 2 * np.arcsin(np.clip((top2[..., 1] - top2[..., 0]) / math.sqrt(2), 0.0, 1.0))


def great_circle(p, q, n: int) -> np.ndarray:
    """The Fisher–Rao geodesic from p to q at n + 1 equally spaced times: (n+1)×c."""
    p, q = _as_prob(p), _as_prob(q)
    a, b = np.sqrt(p), np.sqrt(q)
    phi = np.arccos(np.clip(a @ b, 0.0, 1.0))
    tau = np.linspace(0.0, 1.0, n + 1)[:, None]
    if phi < 1e-12:
        return np.repeat(p[None], n + 1, axis=0)
    s = (np.sin((1 - tau) * phi) * a + np.sin(tau * phi) * b) / np.sin(phi)
    return s ** 2


def fisher_length(path) -> float:
    """Σ_k √(Σ_i Δθ_i² / θ̄_i) over the segments of a path ((K+1)×c), θ̄ the midpoint: the
    midpoint rule for the Fisher length ∫ √(Σ θ_i'²/θ_i) dτ."""
    path = np.asarray(path, dtype=float)
    d = np.diff(path, axis=0)
    mid = (path[1:] + path[:-1]) / 2
    return float(np.sqrt((d ** 2 / mid).sum(-1)).sum())


def shortest_path(p, q, nodes: int, maxiter: int = 5000):
    """Minimize the discrete Fisher energy K Σ_k Σ_i Δθ_i²/θ̄_i over paths p = θ_0, …, θ_K = q in the
    open simplex (K = ``nodes``; the interior nodes parametrized by logits; L-BFGS from the straight
    segment, with the exact gradient). Minimizing the energy gives an evenly paced path, whose
    :func:`fisher_length` is returned with the path: (length, path). Nothing here knows the sphere."""
    from scipy.optimize import minimize

    try:  # not a declared dependency: without it, the same result, sometimes much more slowly
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        def threadpool_limits(_):
            return contextlib.nullcontext()

    p, q = _as_prob(p), _as_prob(q)
    if isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 2:
        raise ValueError(f"nodes must be an integer >= 2; got {nodes!r}")
    tau = np.linspace(0, 1, nodes + 1)[1:-1, None]
    z0 = np.log((1 - tau) * p + tau * q)

    def inner(flat):
        z = flat.reshape(z0.shape)
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    def energy(flat):
        th = inner(flat)
        path = np.vstack([p, th, q])
        d = path[1:] - path[:-1]
        mid = (path[1:] + path[:-1]) / 2
        e = nodes * (d ** 2 / mid).sum()
        r = (d / mid) ** 2 / 2  # segment k: d/dθ_k = -2d/m - r, d/dθ_{k+1} = 2d/m - r
        g_path = np.zeros_like(path)
        g_path[:-1] += -2 * d / mid - r
        g_path[1:] += 2 * d / mid - r
        g_th = nodes * g_path[1:-1]
        g_z = th * (g_th - (g_th * th).sum(-1, keepdims=True))  # through the softmax
        return e, g_z.ravel()

    # one BLAS thread: the problem is small, and multithreaded BLAS inside L-BFGS-B is ~30x slower
    # on a busy machine
    with threadpool_limits(1):
        res = minimize(energy, z0.ravel(), jac=True, method="L-BFGS-B",
                       options={"maxiter": maxiter, "maxcor": 30, "gtol": 1e-11, "ftol": 1e-15})
    path = np.vstack([p, inner(res.x), q])
    return fisher_length(path), path


def geodesic_circle(p, r: float, n: int = 400) -> np.ndarray:
    """Points at Fisher–Rao distance r from p ∈ Δ² (c = 3): n×3, NaN rows where the circle of the
    sphere leaves the positive orthant (the Fisher ball is cut by the edges of the simplex)."""
    p = _as_prob(p)
    if p.shape != (3,):
        raise ValueError("geodesic_circle draws in the 2-simplex: p must have 3 entries")
    a = np.sqrt(p)
    e1 = np.cross(a, [1.0, 1.0, 1.0]) if abs(a @ np.ones(3) / math.sqrt(3) - 1) > 1e-9 else np.array([1.0, -1.0, 0.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(a, e1)
    w = np.linspace(0, 2 * np.pi, n)[:, None]
    s = np.cos(r / 2) * a + np.sin(r / 2) * (np.cos(w) * e1 + np.sin(w) * e2)
    out = s ** 2
    out[(s < -1e-12).any(-1)] = np.nan
    return out


def to_plane(p) -> np.ndarray:
    """Barycentric coordinates on Δ² → the plane: vertices e1 → (0, 0), e2 → (1, 0), e3 → (½, √3/2)."""
    p = np.asarray(p, dtype=float)
    return np.stack([p[..., 1] + p[..., 2] / 2, p[..., 2] * math.sqrt(3) / 2], -1)


def permute_classes(model, perm):
    """``model`` with its logits reordered: class ``perm[j]`` of ``model`` becomes class j."""
    import torch

    idx = torch.as_tensor(list(perm), dtype=torch.long)
    if sorted(idx.tolist()) != list(range(len(idx))):
        raise ValueError(f"perm must be a permutation of 0..{len(idx) - 1}; got {list(perm)!r}")

    class Permuted(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = model

        def forward(self, x):
            return self.inner(x)[:, idx.to(x.device)]

    return Permuted()
