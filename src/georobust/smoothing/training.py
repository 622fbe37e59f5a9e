"""Training objectives for the base classifier of Gaussian randomized smoothing.

Each factory returns a callable ``objective(model, x, y, generator) -> (loss, logits)`` for the
``objective`` hook of :func:`georobust.core.train.train` (and :func:`georobust.core.zoo.trained`), with a
``key`` attribute that names the method and its hyperparameters (pass it as ``objective_key``,
so two objectives never share a cached checkpoint). All noise comes from ``generator`` (the epoch's
seeded generator that :func:`~georobust.core.train.train` passes), drawn in one call per batch with
shape (B, m, *x.shape[1:]), input-major. ``logits`` (B, C) is what the training loop reports its
accuracy with: the noisy logits for one draw, log of the averaged softmax (the soft smoothed
classifier) for several.

* :func:`gaussian_objective` — Gaussian data augmentation (Cohen, Rosenfeld & Kolter, ICML 2019):
  cross-entropy of f(x + σz), one draw per example; the same as ``train(noise_sigma=σ)``.
* :func:`smoothadv_objective` — SmoothAdv (Salman et al., NeurIPS 2019): ℓ2 PGD on the soft
  smoothed classifier, then cross-entropy on the m noisy copies of the adversarial input;
  ε ramps up linearly over ``warmup`` epochs.
* :func:`macer_objective` — MACER (Zhai et al., ICLR 2020): cross-entropy of the soft smoothed
  classifier plus λ times a hinge on its soft certified radius.
* :func:`consistency_objective` — consistency regularization (Jeong & Shin, NeurIPS 2020):
  cross-entropy on m noisy copies + λ·KL(mean ∥ each) + η·entropy of the mean.

Models are trained (or loaded) with :func:`georobust.core.zoo.trained`, whose ``return_history=True``
also gives the per-epoch history with the measured seconds of every epoch; :func:`step_seconds`
measures the cost of a training step of several objectives on equal terms.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..core import zoo
from ..core.train import bind_epoch, linear_warmup, train_step
from .attack import pgd_on_smoothed
from ..theory.radii import check_noise
from .smooth import fill_noise


# --------------------------------------------------------------------------- helpers
def _positive(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number > 0; got {value!r}")
    return float(value)


def _nonnegative(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number >= 0; got {value!r}")
    return float(value)


def _count(name, value, low=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}; got {value!r}")
    return value


def _noise(x: torch.Tensor, m: int, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise of shape (B, m, *x.shape[1:]) on x's device, in x's dtype."""
    return torch.randn((len(x), m, *x.shape[1:]), generator=generator, device=x.device, dtype=x.dtype)


def _noisy_logits(model: nn.Module, x: torch.Tensor, z: torch.Tensor, sigma: float) -> torch.Tensor:
    """Logits (B, m, C) of f(x_i + σ z_ij) for noise z of shape (B, m, …)."""
    b, m = z.shape[:2]
    return model((x.unsqueeze(1) + sigma * z).reshape(b * m, *x.shape[1:])).reshape(b, m, -1)


def _soft_log_probs(logits: torch.Tensor) -> torch.Tensor:
    """log of the averaged softmax over the noise draws: (B, m, C) -> (B, C)."""
    return torch.log(F.softmax(logits, dim=2).mean(1).clamp_min(1e-20))


def train_generator(seed: int, epoch: int, device="cpu") -> torch.Generator:
    """The noise generator :func:`georobust.core.train.train` passes to an objective in epoch ``epoch``
    (0-based) of a run with seed ``seed``."""
    return torch.Generator(device=device).manual_seed(int(seed) * 100_003 + int(epoch) + 50_000)


def soft_smoothed_radius(logits: torch.Tensor, y: torch.Tensor, sigma: float, beta: float = 1.0):
    """MACER's soft certified radius (Zhai et al. 2020) from noisy logits (B, k, C).

    G(x) = (1/k) Σ_j softmax(β f(x + σ z_j)) estimates the soft smoothed classifier; where its top
    class is y, the radius is (σ/2)(Φ⁻¹(G_y) − Φ⁻¹(max_{c≠y} G_c)), Cohen's radius with the soft
    probabilities in place of the vote frequencies (β → ∞ gives back the hard votes). Returns
    (radius (B,), correct (B,) bool); radius is 0 where the top class is not y.
    """
    probs = F.softmax(beta * logits, dim=2).mean(1)
    top2, idx = probs.topk(2, dim=1)
    correct = idx[:, 0] == y
    xi = torch.special.ndtri(top2[:, 0]) - torch.special.ndtri(top2[:, 1])
    return torch.where(correct, 0.5 * sigma * xi, torch.zeros_like(xi)), correct


def soft_votes_against_hard(logits: torch.Tensor, y: torch.Tensor, sigma: float, betas) -> dict:
    """How close MACER's soft votes and soft radius are to the hard ones, for each β of ``betas``.

    ``logits``: noisy logits (B, k, C) of B inputs; ``y``: their labels. The hard votes are the
    frequencies p̂ of each class among the k arg maxes; Cohen's radius at those frequencies,
    (σ/2)(Φ⁻¹(p̂_A) − Φ⁻¹(p̂_B)), is finite on the inputs whose top class is y and whose votes are
    not unanimous ("split"). For each β: ``tv`` — mean total-variation distance between G^β and
    p̂; ``agree`` — share of inputs where both have the same top class; ``radius_gap`` — mean
    |soft radius − Cohen's radius| over the split inputs (NaN if there are none). As β → ∞ all
    three tend to their hard values (0, 1, 0) when no draw has a tie.
    """
    votes = F.one_hot(logits.argmax(2), logits.shape[2]).to(logits.dtype).mean(1)
    top2, idx = votes.topk(2, dim=1)
    hard = 0.5 * sigma * (torch.special.ndtri(top2[:, 0]) - torch.special.ndtri(top2[:, 1]))
    split = torch.isfinite(hard) & (idx[:, 0] == y)
    rows = []
    for beta in betas:
        soft = F.softmax(beta * logits, dim=2).mean(1)
        radius, _ = soft_smoothed_radius(logits, y, sigma, beta)
        gap = (radius - hard)[split].abs()
        rows.append({"beta": float(beta), "tv": float(0.5 * (soft - votes).abs().sum(1).mean()),
                     "agree": float((soft.argmax(1) == idx[:, 0]).to(logits.dtype).mean()),
                     "radius_gap": float(gap.mean()) if len(gap) else float("nan")})
    return {"images": len(y), "k": logits.shape[1], "sigma": float(sigma), "n_split": int(split.sum()),
            "hard_radius_mean": float(hard[split].mean()) if split.any() else float("nan"), "rows": rows}


# --------------------------------------------------------------------------- the objectives
@dataclass(frozen=True)
class GaussianObjective:
    """Gaussian data augmentation (Cohen et al. 2019): CE of f(x + σz), one draw per example."""

    sigma: float

    @property
    def key(self) -> str:
        return f"gaussian(sigma={self.sigma!r})"

    def __call__(self, model, x, y, generator):
        # one draw per example, drawn exactly as train(noise_sigma=σ) draws it
        z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        logits = model(x + self.sigma * z)
        return F.cross_entropy(logits, y), logits


@dataclass(frozen=True)
class NoiseAugmentationObjective:
    """Data augmentation with Laplace or uniform noise; see :func:`noise_objective`."""

    noise: str
    sigma: float

    @property
    def key(self) -> str:
        return f"noise-augmentation(noise={self.noise!r}, sigma={self.sigma!r})"

    def __call__(self, model, x, y, generator):
        logits = model(x + fill_noise(torch.empty_like(x), self.noise, self.sigma, generator))
        return F.cross_entropy(logits, y), logits


def noise_objective(noise: str, sigma: float):
    """Data augmentation with the smoothing noise ``noise`` of standard deviation σ per coordinate
    (the noises of :class:`~georobust.smoothing.smooth.Smooth`): minimize E[CE(f(x + ε), y)], one
    draw per example and step, as Yang et al. (ICML 2020) train for each noise. For ``"gaussian"``
    this is :func:`gaussian_objective` (same draws, same cache key)."""
    sigma = _positive("sigma", sigma)
    if check_noise(noise) == "gaussian":
        return GaussianObjective(sigma)
    return NoiseAugmentationObjective(noise, sigma)


def gaussian_objective(sigma: float) -> GaussianObjective:
    """Gaussian data augmentation: minimize E_z[CE(f(x + σz), y)] (Cohen et al. 2019, Sec. 4),
    one noise draw per example and step. Equivalent to ``train(noise_sigma=sigma)``."""
    return GaussianObjective(_positive("sigma", sigma))


@dataclass(frozen=True)
class SmoothAdvObjective:
    """SmoothAdv (Salman et al. 2019); see :func:`smoothadv_objective`."""

    sigma: float
    eps: float
    steps: int
    m: int
    warmup: int

    @property
    def key(self) -> str:
        return (f"smoothadv(sigma={self.sigma!r}, eps={self.eps!r}, steps={self.steps}, m={self.m}, "
                f"warmup={self.warmup})")

    def eps_at(self, epoch: int) -> float:
        """The budget of epoch ``epoch`` (0-based): ε·min(1, (epoch+1)/warmup)."""
        return linear_warmup(self.eps, epoch, self.warmup)

    def __call__(self, model, x, y, generator, epoch=None):
        eps = linear_warmup(self.eps, epoch, self.warmup)
        z = _noise(x, self.m, generator)  # one set of draws for the attack and the update
        x_adv = x
        if eps > 0:
            was_training = model.training
            model.eval()
            try:
                eps_t = torch.full((len(x),), eps, device=x.device, dtype=x.dtype)
                x_adv = pgd_on_smoothed(model, x.detach(), y, sigma=self.sigma, eps=eps_t, steps=self.steps,
                                        step_size=2.0 * eps_t / self.steps, draw_noise=lambda: z)
            finally:
                model.train(was_training)
        logits = _noisy_logits(model, x_adv, z, self.sigma)
        loss = F.cross_entropy(logits.flatten(0, 1), y.repeat_interleave(self.m))
        return loss, _soft_log_probs(logits)


def smoothadv_objective(sigma: float, eps: float, steps: int = 10, m: int = 4, *,
                        warmup: int = 0) -> SmoothAdvObjective:
    """SmoothAdv (Salman et al., NeurIPS 2019), the multi-noise PGD variant of the authors' code.

    Per batch: draw m noise vectors z_j per example; find x' in the ℓ2 ball of radius ε around x
    (and in [0, 1]^d) maximizing −log((1/m) Σ_j softmax(f(x' + σz_j))_y) with ``steps`` steps of
    normalized-gradient PGD (step 2ε/steps, start at x, model in eval mode, the same z_j at every
    step); then minimize (1/m) Σ_j CE(f(x' + σz_j), y) on those same draws. With ``warmup`` > 0
    the budget of epoch e is ε·min(1, (e+1)/warmup), e being the epoch that
    :func:`georobust.core.train.train` passes (called without one, the objective uses the full ε). The authors' code splits each batch of
    B images into m mini-batches of B/m images (m noisy copies each, so a step sees B noisy
    samples); to train the same way, call ``train`` with ``batch_size = B // m``.
    """
    sigma, eps = _positive("sigma", sigma), _nonnegative("eps", eps)
    steps, m, warmup = _count("steps", steps), _count("m", m), _count("warmup", warmup, 0)
    return SmoothAdvObjective(sigma, eps, steps, m, warmup)


@dataclass(frozen=True)
class MacerObjective:
    """MACER (Zhai et al. 2020); see :func:`macer_objective`."""

    sigma: float
    k: int
    beta: float
    gamma: float
    lam: float

    @property
    def key(self) -> str:
        return (f"macer(sigma={self.sigma!r}, k={self.k}, beta={self.beta!r}, gamma={self.gamma!r}, "
                f"lam={self.lam!r})")

    def __call__(self, model, x, y, generator):
        logits = _noisy_logits(model, x, _noise(x, self.k, generator), self.sigma)     # (B, k, C)
        soft = F.softmax(logits, dim=2).mean(1)
        ce = F.nll_loss(torch.log(soft + 1e-10), y, reduction="sum")
        # hinge on the soft radius, over examples whose soft (β) smoothed prediction is correct
        probs = F.softmax(self.beta * logits, dim=2).mean(1)
        top2, idx = probs.topk(2, dim=1)
        with torch.no_grad():
            xi = torch.special.ndtri(top2[:, 0]) - torch.special.ndtri(top2[:, 1])
            keep = (idx[:, 0] == y) & torch.isfinite(xi) & (xi <= self.gamma)
        # recompute on the kept rows only, so no gradient passes through an infinite Φ⁻¹
        p1, p2 = top2[keep, 0], top2[keep, 1]
        hinge = (self.gamma - (torch.special.ndtri(p1) - torch.special.ndtri(p2))).sum()
        loss = (ce + self.lam * 0.5 * self.sigma * hinge) / len(x)
        return loss, torch.log(soft.clamp_min(1e-20))


def macer_objective(sigma: float, k: int = 16, beta: float = 16.0, gamma: float = 8.0,
                    lam: float = 16.0) -> MacerObjective:
    """MACER (Zhai et al., ICLR 2020): maximize the certified radius without an attack.

    With k noise draws per example, Ĝ(x) = (1/k) Σ_j softmax(f(x + σz_j)) and
    G^β(x) = (1/k) Σ_j softmax(β f(x + σz_j)), the batch loss is

        (1/B) Σ_i [ −log Ĝ_{y_i}(x_i) + λ (σ/2) max(γ − ξ_i, 0) · 1{argmax G^β(x_i) = y_i} ],
        ξ_i = Φ⁻¹(G^β_{y_i}(x_i)) − Φ⁻¹(max_{c≠y_i} G^β_c(x_i)),

    so (σ/2)ξ is the soft radius of :func:`soft_smoothed_radius`. As in the authors' code, rows
    whose ξ is not finite (a probability that rounds to 0 or 1) are left out of the hinge.
    """
    return MacerObjective(_positive("sigma", sigma), _count("k", k), _positive("beta", beta),
                          _positive("gamma", gamma), _nonnegative("lam", lam))


@dataclass(frozen=True)
class ConsistencyObjective:
    """Consistency regularization (Jeong & Shin 2020); see :func:`consistency_objective`."""

    sigma: float
    m: int
    lam: float
    eta: float

    @property
    def key(self) -> str:
        return f"consistency(sigma={self.sigma!r}, m={self.m}, lam={self.lam!r}, eta={self.eta!r})"

    def __call__(self, model, x, y, generator):
        logits = _noisy_logits(model, x, _noise(x, self.m, generator), self.sigma)    # (B, m, C)
        ce = F.cross_entropy(logits.flatten(0, 1), y.repeat_interleave(self.m))
        log_p = F.log_softmax(logits, dim=2)
        mean = log_p.exp().mean(1)                                                     # F̂(x), (B, C)
        log_mean = torch.log(mean.clamp_min(1e-20))
        kl = (mean.unsqueeze(1) * (log_mean.unsqueeze(1) - log_p)).sum(2).mean(1)     # mean_j KL(F̂ ∥ F_j)
        entropy = -(mean * log_mean).sum(1)
        loss = ce + (self.lam * kl + self.eta * entropy).mean()
        return loss, log_mean


def consistency_objective(sigma: float, m: int = 2, lam: float = 10.0, eta: float = 0.5) -> ConsistencyObjective:
    """Consistency regularization (Jeong & Shin, NeurIPS 2020), with m noise draws per example:

        (1/m) Σ_j CE(F(x + σz_j), y) + λ (1/m) Σ_j KL(F̂(x) ∥ F(x + σz_j)) + η H(F̂(x)),

    F = softmax ∘ f, F̂(x) = (1/m) Σ_j F(x + σz_j), H the entropy; averaged over the batch. The
    gradient flows through F̂ too, as in the authors' code. With λ = η = 0 it is Gaussian
    augmentation with m draws per example. Like SmoothAdv's, the authors' code splits each batch of
    B images into m mini-batches of B/m images: train with ``batch_size = B // m`` to do the same.
    """
    return ConsistencyObjective(_positive("sigma", sigma), _count("m", m), _nonnegative("lam", lam),
                                _nonnegative("eta", eta))


# --------------------------------------------------------------------------- cached training
# --------------------------------------------------------------------------- training cost
def step_seconds(runs: dict, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int, lr: float,
                 rounds: int, seed: int = 0, epoch: int = 0, warmup_rounds: int = 1) -> dict[str, list[float]]:
    """Wall-clock seconds of one training step (objective, backward pass, SGD update) per method.

    ``runs`` maps a name to ``(model, objective)`` or ``(model, objective, inputs_per_step)``
    (default ``batch_size``); each model is copied (the originals are left alone) and trained with
    its own SGD optimizer (Nesterov momentum 0.9, ``lr``). In each of ``warmup_rounds + rounds``
    rounds every method takes one step on the same batch (the first ``inputs_per_step`` of
    ``batch_size`` examples drawn from (images, labels) with a generator seeded from ``seed``), in
    an order that rotates from round to round, so a machine that speeds up or slows down during
    the measurement affects all methods alike; the warm-up rounds are not counted. The objectives get the noise generator of training
    epoch ``epoch`` (:func:`train_generator`) and, if they take it, ``epoch`` itself, so a schedule
    such as SmoothAdv's warm-up is in the state of that epoch. CUDA work is synchronized before each clock reading. Returns the
    ``rounds`` step times of each method.
    """
    _count("rounds", rounds)
    _count("warmup_rounds", warmup_rounds, 0)
    _count("batch_size", batch_size)
    names = list(runs)
    states = {}
    for name in names:
        model, objective, *rest = runs[name]
        size = _count(f"inputs_per_step of {name!r}", rest[0] if rest else batch_size)
        clone = copy.deepcopy(model).train()
        device = next(clone.parameters()).device
        opt = torch.optim.SGD(clone.parameters(), lr=lr, momentum=0.9, nesterov=True)
        states[name] = (clone, bind_epoch(objective, epoch), opt, device, train_generator(seed, epoch, device), size)
    largest = max(state[5] for state in states.values())
    order_gen = torch.Generator().manual_seed(int(seed) * 100_003 + 77_777)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(warmup_rounds + rounds):
        idx = torch.randint(len(labels), (largest,), generator=order_gen)
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            clone, objective, opt, device, gen, size = states[name]
            x, y = images[idx[:size]].to(device), labels[idx[:size]].to(device)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            train_step(clone, opt, x, y, objective=objective, generator=gen)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if r >= warmup_rounds:
                times[name].append(time.perf_counter() - t0)
    return times
