"""Gaussian randomized smoothing: PREDICT and CERTIFY, batched over many inputs, and top-k
certificates.

The smoothed classifier of a base classifier f is g(x) = argmax_c P[f(x+ε) = c], ε ~ N(0, σ²I).

* :class:`Smooth` — PREDICT and CERTIFY of Cohen, Rosenfeld & Kolter, "Certified Adversarial
  Robustness via Randomized Smoothing", ICML 2019 (their pseudocode, with the abstention test of
  PREDICT from Hung & Fithian 2019), a batched CERTIFY that packs the noisy samples of several
  inputs into the same forward batches, and the top-k certificate of Jia, Cao, Wang & Gong,
  "Certified Robustness for Top-k Predictions against Adversarial Perturbations via Randomized
  Smoothing", ICLR 2020 (Theorem 1).
* :func:`predict_from_counts`, :func:`certify_from_counts`, :func:`topk_radius`,
  :func:`certify_topk_from_counts` — the decisions from class counts, shared with the logs
  (:mod:`georobust.smoothing.logs` runs them over data sets).

Noise. Every input gets its own ``torch.Generator`` on the input's device, seeded from the
``generator`` argument (one seed per input, drawn in input order), and draws its n0 + n noise
vectors from it in pieces whose sizes depend only on (n0 + n, batch_size): the first n0 are the
selection samples, the next n the estimation samples — disjoint, independent draws. So an
input's result does not depend on which other inputs share its forward batches: ``certify_batch``
on a batch equals ``certify`` called on its rows in turn with the same generator (same
batch_size), and a resumed log equals an uninterrupted one.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import stats
from scipy.special import ndtr, ndtri
from torch import nn

from ..theory.bounds import clopper_pearson_lower, clopper_pearson_upper
from ..theory.radii import NATURAL_NORM, check_noise, laplace_scale, noise_radius, uniform_half_width

ABSTAIN = -1
_SEED_HIGH = 1 << 62


# --------------------------------------------------------------------------- statistics of counts
def predict_from_counts(counts, alpha: float) -> int:
    """PREDICT's decision from class counts: the top class, or ABSTAIN if the two-sided binomial
    test of n_A out of n_A + n_B at p = 1/2 has p-value > alpha (Cohen et al. 2019, PREDICT)."""
    counts = np.asarray(counts, dtype=np.int64)
    top2 = np.argsort(-counts, kind="stable")[:2]
    n_a, n_b = int(counts[top2[0]]), int(counts[top2[1]])
    if n_a + n_b == 0 or stats.binomtest(n_a, n_a + n_b, 0.5).pvalue > alpha:
        return ABSTAIN
    return int(top2[0])


def certify_from_counts(selection_counts, estimation_counts, alpha: float, sigma: float,
                        noise: str = "gaussian"):
    """CERTIFY's answer from counts (rows: inputs, columns: classes).

    ĉ_A = argmax of the selection counts; p̲_A = one-sided (1−α) Clopper–Pearson lower bound
    from the estimation count of ĉ_A; ABSTAIN (radius 0) if p̲_A < 1/2, else (ĉ_A, R(p̲_A)) with
    R the radius of ``noise`` in its natural norm (:func:`georobust.theory.radii.noise_radius`):
    σΦ⁻¹(p̲_A) in ℓ2 for Gaussian noise. Returns numpy arrays (classes int64, radii float64).
    """
    sel, est = np.atleast_2d(selection_counts), np.atleast_2d(estimation_counts)
    c_hat = sel.argmax(1)
    n_a = est[np.arange(len(est)), c_hat]
    p_lower = np.atleast_1d(clopper_pearson_lower(n_a, est.sum(1), alpha))
    ok = p_lower >= 0.5
    radii = np.where(ok, noise_radius(noise, sigma, np.where(ok, p_lower, 0.5)), 0.0)
    return np.where(ok, c_hat, ABSTAIN).astype(np.int64), np.atleast_1d(radii).astype(np.float64)


def topk_radius(sigma: float, p_lower, p_upper_others, k: int):
    """ℓ2 radius within which label l stays in the top-k of g (Jia et al. 2020, Theorem 1).

    ``p_lower`` (shape (B,)): lower bounds on p_l; ``p_upper_others`` (B, C−1): upper bounds on the
    other labels' probabilities. With the others' bounds sorted decreasingly as p̄_{a_1} ≥ p̄_{a_2}
    ≥ …, S_u = {a_{k−u+1}, …, a_k} (the u smallest of the k largest) and p̄_{S_u} = min(Σ_{S_u} p̄,
    1 − p̲_l). R_l = σ max_{u=1..k} t_u, t_u the root of Φ(Φ⁻¹(p̲_l) − t) = Φ(Φ⁻¹(p̄_{S_u}) + t)/u
    (0 if p̲_l ≤ p̄_{S_u}/u), found by bisection from below so the returned radius never exceeds
    the root. For k = 1 this is Cohen et al.'s (σ/2)(Φ⁻¹(p̲_A) − Φ⁻¹(p̄_B)).

    Why it holds (checked here independently of the paper): for ‖δ‖ < σt and any set U of u
    other labels, the Gaussian Neyman–Pearson bound applied to the event "f ∈ U" gives
    Σ_{i∈U} p_i(x+δ) ≤ Φ(Φ⁻¹(p_U(x)) + t), while p_l(x+δ) ≥ Φ(Φ⁻¹(p̲_l) − t); so if the root
    condition holds, some label of U is strictly below l. Every set T of k labels contains u
    labels whose bounds sum to at most Σ_{S_u} p̄ (its u smallest), so at most k−1 labels reach
    p_l(x+δ). The set S_u and the implicit equation follow the authors' code
    (github.com/jinyuan-jia/Certify_Topk, topk.py); the closed form (σ/2)(Φ⁻¹(p̲_l) −
    Φ⁻¹(p̄_{S_u}/u)) is a smaller, also valid radius (Jensen: Φ(Φ⁻¹(p)+t) is concave in p).
    """
    p_lower = np.atleast_1d(np.asarray(p_lower, dtype=float))
    others = -np.sort(-np.atleast_2d(np.asarray(p_upper_others, dtype=float)), axis=1)[:, :k]
    u = np.arange(1, others.shape[1] + 1, dtype=float)
    p_s = np.minimum(np.cumsum(others[:, ::-1], axis=1), 1.0 - p_lower[:, None])  # Σ over S_u
    a, b = ndtri(p_lower)[:, None], ndtri(p_s)
    with np.errstate(divide="ignore", invalid="ignore"):
        hi = np.where(p_lower[:, None] > p_s / u, a - ndtri(p_s / u), 0.0)  # F(hi) <= 0
    hi = np.where(np.isfinite(hi), hi, 0.0)
    lo = np.zeros_like(hi)  # invariant: lo = 0 or F(lo) > 0
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        good = ndtr(a - mid) - ndtr(b + mid) / u > 0
        lo, hi = np.where(good, mid, lo), np.where(good, hi, mid)
    lo = np.where((p_s == 0) & (p_lower[:, None] > 0), np.inf, lo)  # no mass outside l: any radius
    return float(sigma) * lo.max(axis=1)


def certify_topk_from_counts(selection_counts, estimation_counts, alpha, sigma, k, labels=None):
    """Top-k CERTIFY from counts: label l (``labels``, else the top selection class) is certified
    in the top-k of g with radius :func:`topk_radius`, from simultaneous bounds (Bonferroni over
    the C classes, as the paper's SimuEM: each Clopper–Pearson bound at level α/C, upper bounds
    capped at 1 − p̲_l). ABSTAIN (radius 0) when no positive radius is certified."""
    sel, est = np.atleast_2d(selection_counts), np.atleast_2d(estimation_counts)
    rows, num_classes = np.arange(len(est)), est.shape[1]
    lab = sel.argmax(1) if labels is None else np.asarray(labels, dtype=np.int64).reshape(-1)
    n = est.sum(1)
    p_low = np.atleast_1d(clopper_pearson_lower(est[rows, lab], n, alpha / num_classes))
    p_up = np.minimum(clopper_pearson_upper(est, n[:, None], alpha / num_classes), 1 - p_low[:, None])
    others = p_up[np.arange(num_classes)[None, :] != lab[:, None]].reshape(len(est), num_classes - 1)
    radii = topk_radius(sigma, p_low, others, k) if len(est) else np.zeros(0)
    ok = radii > 0
    return np.where(ok, lab, ABSTAIN).astype(np.int64), np.where(ok, radii, 0.0)


# --------------------------------------------------------------------------- noise
def fill_noise(out: torch.Tensor, noise: str, sigma: float, generator: torch.Generator | None) -> torch.Tensor:
    """Fill ``out`` in place with i.i.d. ``noise`` of per-coordinate standard deviation ``sigma``,
    drawn from ``generator``, and return it: N(0, σ²) (``normal_``); uniform on [−σ√3, σ√3]
    (``uniform_``); Laplace of scale σ/√2 as b·(E₁ − E₂), E₁, E₂ standard exponentials (two
    ``exponential_`` draws). Smoothing and noise-augmented training draw through this one function."""
    noise = check_noise(noise)
    if noise == "gaussian":
        return out.normal_(0.0, sigma, generator=generator)
    if noise == "uniform":
        lam = uniform_half_width(sigma)
        return out.uniform_(-lam, lam, generator=generator)
    other = torch.empty_like(out).exponential_(1.0, generator=generator)
    return out.exponential_(1.0, generator=generator).sub_(other).mul_(laplace_scale(sigma))


# --------------------------------------------------------------------------- validation helpers
def _check_int(name, value, low, high=None):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low or (
            high is not None and value > high):
        allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be an integer {allowed}; got {value!r}")
    return int(value)


def _check_alpha(alpha):
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating)) or not 0 < alpha < 1:
        raise ValueError(f"alpha must be a number in (0, 1); got {alpha!r}")
    return float(alpha)


def _model_device(model):
    """The device of the first parameter of ``model`` (None if it has none)."""
    param = next(iter(model.parameters()), None) if isinstance(model, nn.Module) else None
    return None if param is None else param.device


def _child_seeds(generator, count):
    """``count`` seeds drawn one after another from ``generator`` (None: a fresh random one)."""
    if generator is None:
        generator = torch.Generator()
        generator.seed()
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator or None; got {type(generator).__name__}")
    return [int(torch.randint(_SEED_HIGH, (1,), generator=generator, device=generator.device))
            for _ in range(count)]


def _chunks(num, per, batch_size):
    """Forward batches as lists of (input, first draw, number of draws) pieces.

    Input i draws its ``per`` samples in pieces of ``batch_size`` (each fills a batch alone) and a
    remainder piece; the remainder pieces of consecutive inputs are packed into shared batches.
    Every input's pieces come in draw order, and their sizes depend only on (per, batch_size).
    """
    full, rem = divmod(per, batch_size)
    pending = []
    for i in range(num):
        for j in range(full):
            yield [(i, j * batch_size, batch_size)]
        if rem:
            pending.append((i, full * batch_size, rem))
            if len(pending) == batch_size // rem or i == num - 1:
                yield pending
                pending = []


class Smooth:
    """The smoothed classifier g of a base classifier f (Cohen et al. 2019), with Gaussian noise by
    default, or Laplace or uniform noise (Yang et al., "Randomized Smoothing of All Shapes and
    Sizes", ICML 2020).

    ``base_classifier`` maps a batch (m, *input_shape) to logits (m, num_classes); it is put in
    eval mode and run under ``torch.inference_mode()``. Inputs set the device and dtype of the
    noise; the base classifier must live on the same device. ``input_shape`` (optional) is the
    shape of one input; when given, inputs of another shape (e.g. with a batch dimension where one
    input is expected) are refused, otherwise only shapes the base classifier rejects are.

    ``noise``: ``"gaussian"`` (N(0, σ²) per coordinate), ``"laplace"`` (scale σ/√2) or
    ``"uniform"`` (on [−σ√3, σ√3]): ``sigma`` is the **per-coordinate standard deviation** for
    every noise, so noises compare at equal variance. CERTIFY returns the radius in the noise's
    natural norm, ``smooth.norm``: ``"l2"`` for Gaussian, ``"l1"`` for Laplace and uniform
    (:mod:`georobust.theory.radii` gives the radii in the other norms each noise certifies).
    The Gaussian noise stream is unchanged by this option (same draws as before it existed).
    """

    ABSTAIN = ABSTAIN

    def __init__(self, base_classifier: nn.Module, num_classes: int, sigma: float, input_shape=None,
                 noise: str = "gaussian"):
        if not callable(base_classifier):
            raise ValueError(f"base_classifier must be a callable nn.Module; got {type(base_classifier).__name__}")
        self.base_classifier = base_classifier
        self.num_classes = _check_int("num_classes", num_classes, 2)
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float, np.floating)) or not 0 < sigma < np.inf:
            raise ValueError(f"sigma must be a finite number > 0; got {sigma!r}")
        self.sigma = float(sigma)
        self.noise = check_noise(noise)
        self.norm = NATURAL_NORM[self.noise]
        self.input_shape = None if input_shape is None else tuple(int(s) for s in input_shape)

    def _draw(self, out: torch.Tensor, generator: torch.Generator, index: int = 0) -> torch.Tensor:
        """Fill ``out`` with noise for input number ``index`` of the current call (the same law for
        every input here; :class:`~georobust.smoothing.anisotropic.AnisotropicSmooth` may give each
        input its own covariance)."""
        return fill_noise(out, self.noise, self.sigma, generator)

    # ------------------------------------------------------------------ public API
    def predict(self, x: torch.Tensor, n: int, alpha: float, batch_size: int, generator=None) -> int:
        """PREDICT (Cohen et al. 2019): the top class of n noisy samples, or ABSTAIN when
        the binomial test of the top two counts (Hung & Fithian 2019) has p-value > alpha.

        Guarantee: the probability of returning a class other than g(x) is at most alpha
        (Cohen et al. 2019, Proposition 1)."""
        n, alpha, batch_size = _check_int("n", n, 1), _check_alpha(alpha), _check_int("batch_size", batch_size, 1)
        xs = self._as_batch(x, single=True)
        counts = self.sample_counts(xs, _child_seeds(generator, 1), 0, n, batch_size)
        return predict_from_counts(counts[0, 1], alpha)

    def certify(self, x: torch.Tensor, n0: int, n: int, alpha: float, batch_size: int,
                generator=None) -> tuple[int, float]:
        """CERTIFY (Cohen et al. 2019) for one input (no batch dimension).

        Selection: the top class ĉ_A of n0 noisy samples. Estimation: n fresh, independent samples;
        p̲_A = one-sided (1−α) Clopper–Pearson lower bound on P[f(x+ε) = ĉ_A]. Returns
        (ABSTAIN, 0.0) if p̲_A < 1/2, else (ĉ_A, R(p̲_A)): σΦ⁻¹(p̲_A) for Gaussian noise, the
        ℓ1 radii of :mod:`georobust.theory.radii` for Laplace and uniform noise.

        Guarantee: with probability at least 1−α over the sampling, if a class is returned, the
        smoothed classifier g predicts it at every point of the open ball of the returned radius
        around x in the norm ``self.norm`` (Cohen et al. 2019, Theorem 1 and Proposition 2; Yang
        et al. 2020 for Laplace and uniform noise).
        """
        classes, radii = self.certify_batch(self._as_batch(x, single=True), n0, n, alpha, batch_size, generator)
        return int(classes[0]), float(radii[0])

    def certify_adaptive(self, x: torch.Tensor, n0: int, n_max: int, alpha: float, batch_size: int,
                         generator=None, **options) -> tuple[int, float, int]:
        """Adaptive CERTIFY for one input: (class or ABSTAIN, radius or 0.0, n_used).

        Selection with n0 samples as in :meth:`certify`; estimation in looks at a fixed geometric
        schedule up to n_max samples, α split over the looks, stopping once the radius is within a
        tolerance of what n_max samples would give (Chen et al., AAAI 2022). Same guarantee as
        :meth:`certify` — with probability at least 1−α a returned class and radius are correct —
        whatever the stopping rule (union bound over the looks). n_used counts all samples drawn,
        n0 included. Delegates to :func:`georobust.smoothing.adaptive.certify_adaptive`, which
        states the algorithm, its proof and the ``options`` (tolerance, first_look, growth).
        """
        from .adaptive import certify_adaptive

        return certify_adaptive(self, x, n0, n_max, alpha, batch_size, generator, **options)

    def certify_batch(self, xs: torch.Tensor, n0: int, n: int, alpha: float, batch_size: int, generator=None):
        """CERTIFY for every row of ``xs`` (shape (B, *input_shape)) in one pass of noisy batches.

        Each input's noisy samples fill forward batches of ``batch_size`` (several inputs share a
        batch when n0 + n is not a multiple of it) and are counted with one ``torch.bincount`` per
        batch. The guarantee of :meth:`certify` holds for each input separately (probability of
        a wrong certificate ≤ α per input; not simultaneously over inputs). Returns CPU tensors
        (classes int64 with ABSTAIN = −1, radii float64).
        """
        xs = self._as_batch(xs, single=False)
        n0, n, alpha, batch_size = self._check_sampling(n0, n, alpha, batch_size)
        return self._certify_seeded(xs, _child_seeds(generator, len(xs)), n0, n, alpha, batch_size)

    def certify_topk(self, x, k: int, n0: int, n: int, alpha: float, batch_size: int, generator=None,
                     label=None) -> tuple[int, float]:
        """Top-k CERTIFY (Jia et al. 2020) for one input: (l, R_l) or (ABSTAIN, 0.0).

        l is ``label`` if given (e.g. the true label, as the paper certifies it), else the top
        class of n0 selection samples; the n estimation samples give simultaneous Clopper–Pearson
        bounds on all C class probabilities (Bonferroni, level α/C each) and R_l is
        :func:`topk_radius`. Guarantee: with probability at least 1−α over the sampling, l is
        among the k classes of largest smoothed probability at every point of the open ℓ2 ball of
        radius R_l around x (ties counted against l). For k = 1 this is a CERTIFY that uses an
        upper bound on p_B at level α/C instead of 1 − p̲_A at level α.
        """
        labels = None if label is None else [label]
        classes, radii = self.certify_topk_batch(self._as_batch(x, single=True), k, n0, n, alpha,
                                                 batch_size, generator, labels)
        return int(classes[0]), float(radii[0])

    def certify_topk_batch(self, xs, k: int, n0: int, n: int, alpha: float, batch_size: int,
                           generator=None, labels=None):
        """:meth:`certify_topk` for every row of ``xs``; ``labels`` (length B) or None."""
        if self.noise != "gaussian":
            raise ValueError(f"noise: the top-k certificate (Jia et al. 2020) is derived for Gaussian noise; "
                             f"this Smooth uses {self.noise!r}")
        xs = self._as_batch(xs, single=False)
        k = _check_int("k", k, 1, self.num_classes - 1)
        n0, n, alpha, batch_size = self._check_sampling(n0, n, alpha, batch_size)
        if labels is not None:
            labels = np.asarray(torch.as_tensor(labels).cpu(), dtype=np.int64).reshape(-1)
            if len(labels) != len(xs) or np.any((labels < 0) | (labels >= self.num_classes)):
                raise ValueError(f"labels must hold {len(xs)} class indices in [0, {self.num_classes}); got {labels!r}")
        counts = self.sample_counts(xs, _child_seeds(generator, len(xs)), n0, n, batch_size)
        c, r = certify_topk_from_counts(counts[:, 0], counts[:, 1], alpha, self.sigma, k, labels)
        return torch.from_numpy(c), torch.from_numpy(r)

    # ------------------------------------------------------------------ internals
    def _certify_seeded(self, xs, seeds, n0, n, alpha, batch_size):
        counts = self.sample_counts(xs, seeds, n0, n, batch_size)
        c, r = certify_from_counts(counts[:, 0], counts[:, 1], alpha, self.sigma, self.noise)
        return torch.from_numpy(c), torch.from_numpy(r)

    @staticmethod
    def _check_sampling(n0, n, alpha, batch_size):
        return (_check_int("n0", n0, 1), _check_int("n", n, 1), _check_alpha(alpha),
                _check_int("batch_size", batch_size, 1))

    def _as_batch(self, x, single):
        name = "x" if single else "xs"
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
        if not x.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor (it sets the noise dtype); got {x.dtype}")
        xs = x.unsqueeze(0) if single else x
        if xs.ndim < 2:
            raise ValueError(f"{name} must have shape {'(*input_shape)' if single else '(B, *input_shape)'} "
                             f"with at least one input dimension; got {tuple(x.shape)}")
        if self.input_shape is not None and tuple(xs.shape[1:]) != self.input_shape:
            hint = " (one input, no batch dimension; use certify_batch for a batch)" if single else ""
            want = self.input_shape if single else ("B",) + self.input_shape
            raise ValueError(f"{name} must have shape {want}{hint}; got {tuple(x.shape)}")
        device = _model_device(self.base_classifier)
        if device is not None and device != x.device:
            raise ValueError(f"{name} is on {x.device} but base_classifier is on {device}; move one of them")
        return xs

    def sample_counts(self, xs, seeds, n0, n, batch_size):
        """Public: the raw votes behind every certificate, so one sampling pass can serve several
        certificates (CERTIFY and top-k for every k). Class counts (B, 2, C) on the CPU: [:, 0] of the first n0 noise draws of each input
        (selection), [:, 1] of its next n (estimation).

        Input i draws its n0 + n samples from its own generator (seeded with ``seeds[i]``) in the
        pieces of :func:`_chunks`; each forward batch is counted with one ``torch.bincount`` over
        keys (2·input + phase)·C + predicted class.
        """
        num, c, per = len(xs), self.num_classes, n0 + n
        gens = {}
        counts = torch.zeros(num * 2 * c, dtype=torch.int64, device=xs.device)
        buf = torch.empty((min(batch_size, per * num),) + tuple(xs.shape[1:]), dtype=xs.dtype, device=xs.device)
        if isinstance(self.base_classifier, nn.Module):
            self.base_classifier.eval()
        with torch.inference_mode():
            for step_no, chunk in enumerate(_chunks(num, per, batch_size)):
                first = chunk[0][0]
                slot = torch.empty(sum(piece[2] for piece in chunk), dtype=torch.int64, device=xs.device)
                off = 0
                for i, start, length in chunk:
                    if i not in gens:
                        gens[i] = torch.Generator(device=xs.device).manual_seed(seeds[i])
                    self._draw(buf[off:off + length], gens[i], i).add_(xs[i])
                    if start + length == per:
                        del gens[i]  # input i has drawn all its n0 + n samples
                    n_sel = min(max(n0 - start, 0), length)  # its draws before n0 are selection draws
                    slot[off:off + n_sel].fill_(2 * (i - first))
                    slot[off + n_sel:off + length].fill_(2 * (i - first) + 1)
                    off += length
                keys = slot * c + self._forward(buf[:off], first=step_no == 0).argmax(1)
                span = (chunk[-1][0] - first + 1) * 2 * c
                counts[first * 2 * c:first * 2 * c + span] += torch.bincount(keys, minlength=span)
        return counts.reshape(num, 2, c).cpu().numpy()

    def _forward(self, batch, first):
        try:
            logits = self.base_classifier(batch)
        except torch.OutOfMemoryError:
            raise
        except RuntimeError as err:
            if not first:
                raise
            raise ValueError(f"x: the base classifier cannot take inputs of shape {tuple(batch.shape[1:])} "
                             f"(dtype {batch.dtype}, device {batch.device}): {err}") from err
        if logits.ndim != 2 or logits.shape != (len(batch), self.num_classes):
            raise ValueError(f"num_classes: base_classifier returned shape {tuple(logits.shape)} for "
                             f"{len(batch)} inputs, expected ({len(batch)}, {self.num_classes})")
        return logits
