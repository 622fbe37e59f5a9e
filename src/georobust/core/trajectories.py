"""Synthetic aircraft-like 2-D trajectories, a small next-positions predictor, and an attack on it.

No external data: every track is simulated.

* :func:`simulate_tracks` — horizontal tracks made of segments of constant velocity (straight
  flight) and coordinated turns (constant speed and constant turn rate: the position moves on a
  circle of radius v/ω), each segment of random kind, duration and turn rate, with small process
  noise on speed and heading and Gaussian measurement noise on the reported positions.
  Positions in km, time step ``dt`` in seconds. The defaults are illustrative values for a
  cruising airliner seen by a surveillance radar, not fitted to any data set.
* :class:`TrajectoryMLP` — a multilayer perceptron that predicts the next ``future`` positions
  from the last ``past`` ones. It works on the track relative to its last observed position,
  divided by a length scale (so it is translation-equivariant by construction), and returns
  absolute positions: the model's input and output are in km, so an ℓ2 budget on the input is a
  budget in km over all past positions together.
* :func:`train_predictor` — Adam on the mean squared error (km²), optionally with Gaussian noise
  added to the inputs (the noise of the smoothing that will be applied to the predictor).
* :func:`displacement_attack` — ℓ2 PGD (:func:`georobust.core.attacks.pgd_l2_objective`) that
  pushes one predicted point (by default the last) as far as possible from its clean value.

Everything takes an explicit ``torch.Generator`` and runs on the device of its tensors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .attacks import pgd_l2_objective


@dataclass(frozen=True)
class TrackConfig:
    """Parameters of :func:`simulate_tracks` (units: km, s, degrees).

    ``speed``: range of the initial ground speed (km/s); ``turn_rate``: range of |ω| in a turn
    (deg/s); ``turn_angle``: range of the heading change of a turn (deg; the turn lasts
    angle/|ω|); ``segment``: range of the duration of a straight segment (s); ``p_turn``:
    probability that a new segment is a turn (left or right with equal probability); ``speed_noise``: standard deviation of
    the per-step change of speed (km/s); ``heading_noise``: standard deviation of the per-step
    heading jitter (deg); ``position_noise``: standard deviation of the measurement noise on each
    coordinate (km); ``area``: half-width of the square of start positions (km)."""

    dt: float = 10.0
    speed: tuple[float, float] = (0.20, 0.25)
    turn_rate: tuple[float, float] = (0.5, 3.0)
    turn_angle: tuple[float, float] = (15.0, 90.0)
    segment: tuple[float, float] = (60.0, 300.0)
    p_turn: float = 0.5
    speed_noise: float = 0.001
    heading_noise: float = 0.2
    position_noise: float = 0.05
    area: float = 100.0

    def __post_init__(self):
        for name in ("dt", "area"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0; got {getattr(self, name)!r}")
        for name in ("speed", "turn_rate", "turn_angle", "segment"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi < math.inf:
                raise ValueError(f"{name} must be a range (low, high) with 0 < low <= high; got {(lo, hi)!r}")
        if not 0 <= self.p_turn <= 1:
            raise ValueError(f"p_turn must be in [0, 1]; got {self.p_turn!r}")
        for name in ("speed_noise", "heading_noise", "position_noise"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0; got {getattr(self, name)!r}")


def _uniform(shape, bounds, generator, dtype):
    lo, hi = bounds
    return lo + (hi - lo) * torch.rand(shape, generator=generator, dtype=dtype, device=generator.device)


def simulate_tracks(num: int, length: int, generator: torch.Generator, config: TrackConfig = TrackConfig(),
                    dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """``num`` tracks of ``length`` positions: (measured, true), each of shape (num, length, 2), km.

    Every track starts at a uniform point of [−area, area]², with a uniform heading and a speed in
    ``config.speed``. At each step, a track whose segment has ended draws a new one: a turn with
    probability ``p_turn`` (rate ±U(turn_rate), lasting U(turn_angle)/|rate|), else straight flight
    lasting U(segment) seconds.
    The state then advances exactly over ``dt``: straight, p += v·dt·(cos ψ, sin ψ); turning at rate
    ω, p += (v/ω)·(sin(ψ+ω·dt) − sin ψ, cos ψ − cos(ψ+ω·dt)) and ψ += ω·dt; then speed and heading
    take their process noise. Measured positions are the true ones plus N(0, position_noise²) per
    coordinate. Runs on ``generator``'s device.
    """
    if isinstance(num, bool) or not isinstance(num, int) or num < 1:
        raise ValueError(f"num must be an integer >= 1; got {num!r}")
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ValueError(f"length must be an integer >= 1; got {length!r}")
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator; got {type(generator).__name__}")
    c, g = config, generator
    dev = g.device
    deg = math.pi / 180
    pos = _uniform((num, 2), (-c.area, c.area), g, dtype)
    heading = _uniform((num,), (-math.pi, math.pi), g, dtype)
    speed = _uniform((num,), c.speed, g, dtype)
    omega = torch.zeros(num, dtype=dtype, device=dev)
    left = torch.zeros(num, dtype=dtype, device=dev)  # time left in the current segment (s)
    true = torch.empty((num, length, 2), dtype=dtype, device=dev)
    for t in range(length):
        true[:, t] = pos
        new = left <= 0
        if bool(new.any()):
            m = int(new.sum())
            turn = torch.rand(m, generator=g, dtype=dtype, device=dev) < c.p_turn
            sign = torch.where(torch.rand(m, generator=g, dtype=dtype, device=dev) < 0.5, -1.0, 1.0).to(dtype)
            rate = _uniform((m,), c.turn_rate, g, dtype) * deg * sign
            omega[new] = torch.where(turn, rate, torch.zeros_like(rate))
            angle = _uniform((m,), c.turn_angle, g, dtype) * deg
            left[new] = torch.where(turn, angle / rate.abs(), _uniform((m,), c.segment, g, dtype))
        turning = omega != 0
        safe = torch.where(turning, omega, torch.ones_like(omega))
        new_heading = heading + omega * c.dt
        step_turn = torch.stack([torch.sin(new_heading) - torch.sin(heading),
                                 torch.cos(heading) - torch.cos(new_heading)], 1) * (speed / safe)[:, None]
        step_straight = torch.stack([torch.cos(heading), torch.sin(heading)], 1) * (speed * c.dt)[:, None]
        pos = pos + torch.where(turning[:, None], step_turn, step_straight)
        heading = new_heading + c.heading_noise * deg * torch.randn(num, generator=g, dtype=dtype, device=dev)
        speed = (speed + c.speed_noise * torch.randn(num, generator=g, dtype=dtype, device=dev)).clamp_min(1e-3)
        left = left - c.dt
    measured = true + c.position_noise * torch.randn(true.shape, generator=g, dtype=dtype, device=dev)
    return measured, true


class TrajectoryMLP(nn.Module):
    """Predicts the next ``future`` positions from the last ``past`` ones: input (m, past, 2), output
    (m, future, 2), both absolute positions in km.

    f(x) = x_last + scale · MLP((x − x_last) / scale) with two hidden ReLU layers of width
    ``hidden``; ``scale`` (km) only sets the order of magnitude the network works in. With
    ``generator``, the weights are initialised from it (PyTorch's default law for linear layers,
    uniform on ±1/√fan_in), so that the model does not depend on the global random state.
    """

    def __init__(self, past: int, future: int, hidden: int = 64, scale: float = 10.0,
                 generator: torch.Generator | None = None):
        super().__init__()
        for name, value in (("past", past), ("future", future), ("hidden", hidden)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
        if not scale > 0:
            raise ValueError(f"scale must be > 0; got {scale!r}")
        self.past, self.future, self.scale = past, future, float(scale)
        self.net = nn.Sequential(nn.Linear(2 * past, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, 2 * future))
        if generator is not None:
            with torch.no_grad():
                for layer in self.net:
                    if isinstance(layer, nn.Linear):
                        bound = 1 / math.sqrt(layer.in_features)
                        for p in (layer.weight, layer.bias):
                            p.copy_((2 * torch.rand(p.shape, generator=generator, device=generator.device) - 1) * bound)

    def forward(self, track: torch.Tensor) -> torch.Tensor:
        if track.ndim != 3 or track.shape[1:] != (self.past, 2):
            raise ValueError(f"track must have shape (m, {self.past}, 2); got {tuple(track.shape)}")
        last = track[:, -1:, :]
        rel = ((track - last) / self.scale).flatten(1).to(self.net[0].weight.dtype)
        out = self.net(rel).view(-1, self.future, 2).to(track.dtype)
        return last + self.scale * out


def train_predictor(model: TrajectoryMLP, past: torch.Tensor, future: torch.Tensor, *, epochs: int,
                    batch_size: int = 128, lr: float = 1e-3, noise_sigma: float = 0.0,
                    generator: torch.Generator) -> list[float]:
    """Adam on the mean squared error between ``model(past + noise)`` and ``future`` (km²), the
    noise N(0, noise_sigma²) per coordinate drawn afresh for every batch (0: none). Shuffling and
    noise come from ``generator`` (on the tensors' device). Returns the mean training loss of each
    epoch; leaves the model in eval mode."""
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an integer >= 1; got {epochs!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1; got {batch_size!r}")
    if not noise_sigma >= 0:
        raise ValueError(f"noise_sigma must be >= 0; got {noise_sigma!r}")
    if past.shape[0] != future.shape[0]:
        raise ValueError(f"past and future must hold the same number of tracks; got {past.shape[0]} and {future.shape[0]}")
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(past), generator=generator, device=generator.device).to(past.device)
        total = 0.0
        for i in range(0, len(past), batch_size):
            idx = order[i:i + batch_size]
            xb = past[idx]
            if noise_sigma > 0:
                xb = xb + noise_sigma * torch.randn(xb.shape, generator=generator, dtype=xb.dtype, device=xb.device)
            loss = ((model(xb) - future[idx]) ** 2).sum(-1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.detach().item() * len(idx)
        losses.append(total / len(past))
    model.eval()
    return losses


def displacement_attack(model: nn.Module, past: torch.Tensor, eps: float, *, point: int = -1, steps: int = 50,
                        restarts: int = 2, step_size: float | None = None,
                        generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """ℓ2 PGD on the input tracks (‖δ‖₂ ≤ eps over all past positions of a track) that maximizes the
    distance between the predicted position number ``point`` and its clean prediction (steps,
    restarts, step size and generator as in :func:`~georobust.core.attacks.pgd_l2_objective`).

    Returns (perturbed tracks, displacement in km per track). The displacement is what the attack
    found: a lower bound on the largest displacement within the budget."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            clean = model(past)[:, point]

        def objective(z):
            return (model(z)[:, point] - clean).norm(dim=-1)

        adv = pgd_l2_objective(objective, past, eps, steps=steps, restarts=restarts,
                                   step_size=step_size, generator=generator)
        with torch.no_grad():
            return adv, objective(adv)
    finally:
        model.train(was_training)
