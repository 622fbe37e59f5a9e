"""Synthetic trajectories, the next-positions predictor and the displacement attack.

The simulator is checked against the kinematics it states (straight flight: equal steps on a line;
a coordinated turn: equal chords 2(v/ω)·sin(ω·dt/2) on a circle of radius v/ω) and its measurement
noise against its standard deviation; the attack against the exact answer for a linear predictor
(the largest displacement of one output point over the ℓ2 ball is ε times the spectral norm of its
2×(2·past) Jacobian block)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from georobust.core.attacks import pgd_l2_objective
from georobust.core.trajectories import (TrackConfig, TrajectoryMLP, displacement_attack, simulate_tracks,
                                         train_predictor)

QUIET = dict(speed_noise=0.0, heading_noise=0.0, position_noise=0.0)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_shapes_reproducibility_and_dtype():
    a, ta = simulate_tracks(7, 12, gen(1))
    b, tb = simulate_tracks(7, 12, gen(1))
    assert a.shape == ta.shape == (7, 12, 2) and a.dtype == torch.float64
    assert torch.equal(a, b) and torch.equal(ta, tb)
    assert not torch.equal(a, simulate_tracks(7, 12, gen(2))[0])


def test_straight_flight_takes_equal_steps_on_a_line():
    cfg = TrackConfig(p_turn=0.0, **QUIET)
    _, true = simulate_tracks(20, 15, gen(), cfg)
    steps = true.diff(dim=1)
    lengths = steps.norm(dim=-1)
    assert torch.allclose(lengths, lengths[:, :1].expand_as(lengths), atol=1e-9)
    assert torch.all((lengths[:, 0] >= cfg.speed[0] * cfg.dt - 1e-9) & (lengths[:, 0] <= cfg.speed[1] * cfg.dt + 1e-9))
    cross = steps[:, 1:, 0] * steps[:, :-1, 1] - steps[:, 1:, 1] * steps[:, :-1, 0]
    assert cross.abs().max() < 1e-9


def test_a_coordinated_turn_moves_on_a_circle_of_radius_v_over_omega():
    rate = 2.0
    cfg = TrackConfig(p_turn=1.0, turn_rate=(rate, rate), turn_angle=(1000.0, 1000.0), speed=(0.2, 0.2), **QUIET)
    _, true = simulate_tracks(5, 20, gen(3), cfg)
    omega = rate * math.pi / 180
    chord = 2 * (0.2 / omega) * math.sin(omega * cfg.dt / 2)
    assert torch.allclose(true.diff(dim=1).norm(dim=-1), torch.full((5, 19), chord, dtype=torch.float64), atol=1e-9)
    for track in true.numpy():  # the circumcentre of three points is at distance v/ω from all
        a, b, c = track[0], track[7], track[15]
        d = 2 * (a[0] * (b[1] - c[1]) + b[0] * (c[1] - a[1]) + c[0] * (a[1] - b[1]))
        ux = ((a @ a) * (b[1] - c[1]) + (b @ b) * (c[1] - a[1]) + (c @ c) * (a[1] - b[1])) / d
        uy = ((a @ a) * (c[0] - b[0]) + (b @ b) * (a[0] - c[0]) + (c @ c) * (b[0] - a[0])) / d
        radii = np.linalg.norm(track - np.array([ux, uy]), axis=1)
        assert np.allclose(radii, 0.2 / omega, atol=1e-6)


def test_measurement_noise_has_the_stated_standard_deviation():
    cfg = TrackConfig(position_noise=0.05)
    measured, true = simulate_tracks(500, 10, gen(4), cfg)
    noise = (measured - true).numpy().ravel()
    stat = np.sum(noise**2) / cfg.position_noise**2
    assert stats.chi2.ppf(0.0005, noise.size) < stat < stats.chi2.ppf(0.9995, noise.size)


@pytest.mark.parametrize("kwargs, name", [(dict(dt=0.0), "dt"), (dict(speed=(0.3, 0.2)), "speed"),
                                          (dict(p_turn=1.5), "p_turn"), (dict(position_noise=-1.0), "position_noise"),
                                          (dict(segment=(0.0, 10.0)), "segment"), (dict(turn_angle=(10.0, 5.0)), "turn_angle")])
def test_bad_config_is_refused_by_name(kwargs, name):
    with pytest.raises(ValueError, match=f"^{name} must"):
        TrackConfig(**kwargs)


def test_bad_arguments_are_refused_by_name():
    with pytest.raises(ValueError, match="^num must"):
        simulate_tracks(0, 5, gen())
    with pytest.raises(ValueError, match="^length must"):
        simulate_tracks(3, 0, gen())
    with pytest.raises(ValueError, match="^generator must"):
        simulate_tracks(3, 5, 0)
    with pytest.raises(ValueError, match="^past must"):
        TrajectoryMLP(0, 3)
    with pytest.raises(ValueError, match=r"^track must have shape \(m, 4, 2\)"):
        TrajectoryMLP(4, 3)(torch.zeros(2, 5, 2))


def test_the_predictor_is_translation_equivariant_and_learns():
    model = TrajectoryMLP(8, 4, generator=gen(9)).double()
    same = TrajectoryMLP(8, 4, generator=gen(9)).double()
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), same.parameters()))
    measured, true = simulate_tracks(600, 12, gen(5))
    shift = torch.tensor([30.0, -12.0], dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(model(measured[:, :8] + shift), model(measured[:, :8]) + shift, atol=1e-9)
    losses = train_predictor(model, measured[:, :8], true[:, 8:], epochs=8, lr=3e-3, noise_sigma=0.1, generator=gen(6))
    assert len(losses) == 8 and losses[-1] < 0.5 * losses[0]
    assert not model.training


class LinearPredictor(torch.nn.Module):
    def __init__(self, past, future, seed=0):
        super().__init__()
        self.a = torch.randn(2 * future, 2 * past, generator=gen(seed), dtype=torch.float64)
        self.future = future

    def forward(self, track):
        return (track.flatten(1) @ self.a.T).view(-1, self.future, 2)


def test_the_attack_reaches_the_exact_largest_displacement_of_a_linear_predictor():
    past, future, eps = 6, 3, 0.4
    model = LinearPredictor(past, future)
    tracks, _ = simulate_tracks(10, past, gen(7))
    adv, disp = displacement_attack(model, tracks, eps, steps=200, restarts=2, step_size=eps / 20, generator=gen(8))
    exact = eps * torch.linalg.matrix_norm(model.a[-2:], ord=2)
    assert torch.all((adv - tracks).flatten(1).norm(dim=1) <= eps * (1 + 1e-9))
    assert torch.all(disp <= exact * (1 + 1e-9)) and torch.all(disp >= 0.99 * exact)


def test_pgd_objective_refuses_bad_input_and_does_nothing_at_zero_budget():
    x = torch.randn(3, 4, generator=gen(), dtype=torch.float64)
    assert torch.equal(pgd_l2_objective(lambda z: z.sum(1), x, 0.0), x)
    with pytest.raises(ValueError, match="^eps must"):
        pgd_l2_objective(lambda z: z.sum(1), x, -1.0)
    with pytest.raises(ValueError, match="^steps must"):
        pgd_l2_objective(lambda z: z.sum(1), x, 1.0, steps=0)
    with pytest.raises(ValueError, match="^x must"):
        pgd_l2_objective(lambda z: z.sum(1), torch.zeros(3, dtype=torch.long), 1.0)


def test_a_turn_ends_after_its_heading_change():
    """Turns of exactly 45° at 1.5°/s with dt = 5 s: each lasts 6 steps of 7.5°. A step's chord points
    along the mean heading of the step, so chord 5 is 37.5° from chord 0, and chord 6 (the first of
    the first of the next turn) is 45° from it if that turn goes the same way, 37.5° if it goes the
    other way — which some tracks do, so the first turn stopped at 45°."""
    cfg = TrackConfig(p_turn=1.0, turn_rate=(1.5, 1.5), turn_angle=(45.0, 45.0), dt=5.0, **QUIET)
    _, true = simulate_tracks(6, 9, gen(11), cfg)
    steps = true.diff(dim=1)
    heading = torch.rad2deg(torch.atan2(steps[..., 1], steps[..., 0]))
    turned = lambda j: (torch.remainder(heading[:, j] - heading[:, 0] + 180, 360) - 180).abs()  # noqa: E731
    assert torch.allclose(turned(5), torch.full((6,), 37.5, dtype=torch.float64), atol=1e-6)
    after = turned(6)
    same, other = (after - 45.0).abs() < 1e-6, (after - 37.5).abs() < 1e-6
    assert torch.all(same | other) and other.any()
