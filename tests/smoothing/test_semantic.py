"""Certificates against semantic transformations (``georobust.smoothing.semantic``).

Known exact answers: for a half-space f(z) = [wᵀz + c > 0], a brightness shift moves the margin
by a·(wᵀ1), so g (smoothing over the shift) is the half-line itself and its exact certified
shift is |m|/|wᵀ1|; a contrast factor eᵏ crosses the boundary at one log-factor t₀, so the exact
certificate is |t₀|. Wrong certificates (radius above the exact one, or a wrong class) must occur
at rate ≤ α; the point estimate p̂ instead of the lower bound must fail the same test. For
rotation, Gaussian smoothing of a half-space is the half-space itself, so g(R_θx) is computed
exactly at any angle: a classifier built to flip between two grid angles is certified by the
planted bug that drops the interpolation-error term, and never by the sound certificate.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from scipy import stats
from torchvision.transforms import InterpolationMode

from georobust.smoothing import ABSTAIN, Smooth, certify_from_counts
from georobust.smoothing.semantic import (ParameterSmooth, augmentation_objective, certify_rotation,
                                          check_transformation, integer_shifts, rotate, rotation_attack,
                                          rotation_error_bounds, rotation_grid, rotation_lipschitz, transform,
                                          translate, translation_radius)

SIGNIFICANCE = 0.001


def blob_image(size=16, seed=0):
    """A smooth synthetic image (two Gaussian blobs and a bar) with a zero border."""
    g = torch.Generator().manual_seed(seed)
    ii, jj = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                            indexing="ij")
    c = torch.rand(2, 2, generator=g) * (size / 3) + size / 3
    img = sum(torch.exp(-((ii - a) ** 2 + (jj - b) ** 2) / 6.0) for a, b in c)
    img = img + 0.8 * ((jj - size / 2).abs() < 1.2).float() * ((ii - size / 2).abs() < size / 4).float()
    img[[0, -1], :] = 0
    img[:, [0, -1]] = 0
    return (img / img.max()).unsqueeze(0)


class HalfSpace(torch.nn.Module):
    """Two-class half-space on flattened inputs: logits (−m, m), m = wᵀz + c."""

    def __init__(self, w, c):
        super().__init__()
        self.w, self.c = torch.as_tensor(w, dtype=torch.float64).reshape(-1), float(c)

    def forward(self, z):
        m = z.flatten(1).double() @ self.w + self.c
        return torch.stack([-m, m], 1)


# --------------------------------------------------------------------------- transformations
def test_rotate_matches_torchvision_and_batches():
    x = blob_image(20)
    for angle in (7.5, -33.0, 90.0):
        ours = rotate(x, [angle])[0]
        ref = TF.rotate(x, angle, interpolation=InterpolationMode.BILINEAR)
        assert torch.allclose(ours, ref, atol=1e-5)
    batch = torch.stack([x, x.flip(-1)])
    out = rotate(batch, [10.0, -20.0])
    assert torch.allclose(out[1], rotate(x.flip(-1), [-20.0])[0])


def test_translate_matches_roll_with_zero_fill_and_reflection_pad():
    x = torch.rand(1, 9, 9, generator=torch.Generator().manual_seed(1))
    for dx, dy in [(2, 0), (-3, 1), (0, -4), (8, 8)]:
        ref = torch.roll(x, shifts=(dy, dx), dims=(1, 2)).clone()
        if dy > 0:
            ref[:, :dy] = 0
        elif dy < 0:
            ref[:, dy:] = 0
        if dx > 0:
            ref[:, :, :dx] = 0
        elif dx < 0:
            ref[:, :, dx:] = 0
        assert torch.equal(translate(x, [[dx, dy]], "zeros")[0], ref)
    refl = translate(x, [[2, 0]], "reflect")[0]  # column j comes from column j − 2, reflected at the edge
    assert torch.equal(refl[:, :, 2:], x[:, :, :-2]) and torch.equal(refl[:, :, 0], x[:, :, 2])


def test_integer_shifts_and_translation_radius_by_brute_force():
    shifts = integer_shifts(2.0)
    assert len(shifts) == 13 and np.all(np.diff(np.hypot(*shifts.T)) >= 0)

    class RightHalf(torch.nn.Module):  # class 1 iff the mass in the right half exceeds the left
        def forward(self, z):
            s = z[:, 0, :, z.shape[-1] // 2:].sum((1, 2)) - z[:, 0, :, :z.shape[-1] // 2].sum((1, 2))
            return torch.stack([-s, s], 1)

    xs = torch.stack([blob_image(12, s) for s in range(4)])
    model = RightHalf()
    labels = model(xs).argmax(1)
    r = translation_radius(model, xs, labels, 5.0, "zeros")
    assert np.all((r <= 5.0) | np.isclose(r, math.sqrt(26)))  # beyond the disc: the first norm not checked
    for x, y, ri in zip(xs, labels, r):
        for dx, dy in integer_shifts(5.0):
            if math.hypot(dx, dy) < ri:
                assert int(model(translate(x, [[dx, dy]], "zeros")).argmax(1)) == int(y)
        if ri <= 5.0:  # a shift at exactly that norm is misclassified
            assert any(int(model(translate(x, [[dx, dy]], "zeros")).argmax(1)) != int(y)
                       for dx, dy in integer_shifts(ri) if abs(math.hypot(dx, dy) - ri) < 1e-9)


# --------------------------------------------------------------------------- brightness and contrast
def _wrong_rates(transformation, p_true, runs, n, alpha, seed):
    """Fraction of wrong certificates (sound and point-estimate) over ``runs`` CERTIFY calls on a
    half-space placed so that the smoothed probability of its class is exactly ``p_true``."""
    d = 16
    rng = np.random.default_rng(seed)
    w = np.abs(rng.standard_normal(d)) + 0.1
    x = torch.tensor(rng.uniform(0.2, 0.8, d)).reshape(1, 4, 4)
    u = float(w @ x.numpy().reshape(-1))
    sigma = 0.3
    if transformation == "brightness":  # m + a·s with s = wᵀ1; choose c so that m = σ s Φ⁻¹(p)
        s = w.sum()
        exact = sigma * stats.norm.ppf(p_true)
        c = exact * s - u
    else:  # eᵗ u + c > 0  <=>  t > log(−c/u) = t0; class 1 has probability Φ(−t0/σ)
        exact = sigma * stats.norm.ppf(p_true)
        c = -u * math.exp(-exact)
    sm = ParameterSmooth(HalfSpace(w, c), 2, transformation, sigma, (1, 4, 4))
    rows = sm.rows(x.unsqueeze(0).expand(runs, 1, 4, 4).contiguous())
    counts = sm.sample_counts(rows, [int(v) for v in rng.integers(0, 2**62, runs)], 10, n, 4096)
    cls, rad = certify_from_counts(counts[:, 0], counts[:, 1], alpha, sigma)
    sound = np.mean((cls != ABSTAIN) & ((cls != 1) | (rad > exact)))
    p_hat = np.minimum(counts[:, 1, 1] / n, 1 - 1e-12)
    point = np.mean((p_hat > 0.5) & (sigma * stats.norm.ppf(np.maximum(p_hat, 0.5)) > exact))
    return sound, point, exact


@pytest.mark.parametrize("transformation", ["brightness", "contrast"])
def test_parameter_certificate_fails_at_most_alpha_and_the_point_estimate_is_caught(transformation):
    runs, n, alpha = 400, 200, 0.05
    sound, point, _ = _wrong_rates(transformation, 0.85, runs, n, alpha, seed=3)
    assert stats.binomtest(int(round(sound * runs)), runs, alpha, alternative="greater").pvalue > SIGNIFICANCE
    assert stats.binomtest(int(round(point * runs)), runs, alpha, alternative="greater").pvalue < SIGNIFICANCE


@pytest.mark.parametrize("transformation", ["brightness", "contrast"])
def test_parameter_certificate_approaches_the_exact_answer(transformation):
    """With many samples the certified parameter radius is below and close to the exact one."""
    exact = 0.3 * stats.norm.ppf(0.9)
    d = 16
    rng = np.random.default_rng(5)
    w = np.abs(rng.standard_normal(d)) + 0.1
    x = torch.tensor(rng.uniform(0.2, 0.8, d)).reshape(1, 4, 4)
    u = float(w @ x.numpy().reshape(-1))
    c = exact * w.sum() - u if transformation == "brightness" else -u * math.exp(-exact)
    sm = ParameterSmooth(HalfSpace(w, c), 2, transformation, 0.3, (1, 4, 4))
    cls, rad = sm.certify(x, 100, 20000, 0.001, 5000, torch.Generator().manual_seed(0))
    assert cls == 1 and 0.8 * exact < rad <= exact
    # the exact answer: transforming by −0.999·exact keeps the class (g = f here), by −1.001·exact flips it
    f = HalfSpace(w, c)
    assert int(f(transform(transformation, x.unsqueeze(0), -0.999 * exact)).argmax(1)) == 1
    assert int(f(transform(transformation, x.unsqueeze(0), -1.001 * exact)).argmax(1)) == 0


# --------------------------------------------------------------------------- rotation
def test_rotation_error_bound_is_sound_and_needs_its_lipschitz_term(monkeypatch):
    x = blob_image(16)
    grid = rotation_grid(6.0, 3.0)
    bound = rotation_error_bounds(x, grid, fine=1)
    x64 = x.double()
    rng = np.random.default_rng(0)
    true = np.array([float((rotate(x64, g + rng.uniform(-1.5, 1.5, 400)) - rotate(x64, [g])).flatten(1).norm(dim=1).max())
                     for g in grid])
    assert np.all(true <= bound)
    import georobust.smoothing.semantic as sem
    monkeypatch.setattr(sem.rotation, "rotation_lipschitz", lambda img: 0.0)  # planted bug
    assert np.any(true > sem.rotation_error_bounds(x, grid, fine=1))


def test_lipschitz_constant_bounds_the_derivative():
    x = blob_image(16).double()
    lip = rotation_lipschitz(x)
    h = 1e-4
    for a in (-20.0, 3.0, 41.0):
        deriv = (rotate(x, [a + h]) - rotate(x, [a - h])).norm() / (2 * math.radians(h))
        assert float(deriv) <= lip


def _flipping_half_space(x, max_angle, step, seed):
    """A half-space with margin about 1 at every grid angle and −1 halfway between two of them: the
    minimum-norm w with those margins at the grid images and at one rotation between them."""
    rng = np.random.default_rng(seed)
    x64 = x.double()
    grid = rotation_grid(max_angle, step)
    bad = float(grid[rng.integers(len(grid) - 1)] + step * rng.uniform(0.3, 0.7))
    a = rotate(x64, np.append(grid, bad)).flatten(1).numpy()
    target = np.append(1.0 + 0.2 * rng.uniform(size=len(grid)), -1.0)
    w = a.T @ np.linalg.solve(a @ a.T, target)
    return HalfSpace(w, 0.0), 1.0 / np.linalg.norm(w) / 3.0, bad


def test_rotation_certificate_never_contradicted_and_the_dropped_error_term_is():
    x = blob_image(16)
    tried, dropped, sound_wrong = 0, 0, 0
    for seed in range(8):
        f, sigma, bad_angle = _flipping_half_space(x, 2.0, 2.0, seed)
        tried += 1
        assert int(f(rotate(x, [bad_angle])).argmax(1)) == 0  # the flip exists (g = f for a half-space)
        sm = Smooth(f, 2, float(sigma))
        cert = certify_rotation(sm, x, [2.0], 2.0, 50, 2000, 0.01, 4096, torch.Generator().manual_seed(seed))
        bug = certify_rotation(sm, x, [2.0], 2.0, 50, 2000, 0.01, 4096, torch.Generator().manual_seed(seed),
                               use_errors=False)
        dropped += int(bug.certified[0])
        sound_wrong += int(cert.certified[0])  # every certificate here would be contradicted
        attack = rotation_attack(sm, x, np.linspace(-2, 2, 4001)[::20].tolist() + [float(bad_angle)], 200, 0.01,
                                 4096, torch.Generator().manual_seed(seed))
        assert attack[-1] == 0  # the grid attack (with the bad angle on its grid) finds the flip
    assert tried == 8 and dropped >= 7 and sound_wrong == 0
    # a half-space far from x: certified, and the exact check at dense angles agrees
    w = np.ones(x.numel())
    f = HalfSpace(w, -float(rotate(x.double(), np.linspace(-4, 4, 801)).flatten(1).sum(1).min()) + 5.0)
    cert = certify_rotation(Smooth(f, 2, 0.5), x, [2.0, 4.0], 1.0, 50, 2000, 0.01, 4096, torch.Generator().manual_seed(1))
    assert cert.certified.all() and cert.predicted == 1
    assert (f(rotate(x, np.linspace(-4, 4, 801))).argmax(1) == 1).all()
    attack = rotation_attack(Smooth(f, 2, 0.5), x, np.linspace(-4, 4, 9), 200, 0.01, 4096, torch.Generator())
    assert (attack == 1).all()


def test_rotation_budgets_are_nested():
    x = blob_image(16)
    f = HalfSpace(np.ones(x.numel()), -float(x.sum()) * 0.9)
    cert = certify_rotation(Smooth(f, 2, 0.3), x, [0.0, 2.0, 6.0], 2.0, 20, 500, 0.01, 4096, torch.Generator().manual_seed(0))
    assert list(cert.budgets) == [0.0, 2.0, 6.0]
    assert np.all(np.diff(cert.certified.astype(int)) <= 0)  # certified at a budget => at every smaller one


# --------------------------------------------------------------------------- training and bad input
def test_augmentation_objectives_run():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(144, 3))
    x, y = torch.rand(5, 1, 12, 12), torch.tensor([0, 1, 2, 0, 1])
    for name, kw in [("rotation", {"sigma": 0.1, "max_angle": 30}), ("brightness", {"sigma_b": 0.3, "sigma_k": 0.3}),
                     ("translation", {"shift_sigma": 3.0})]:
        loss, out = augmentation_objective(name, **kw)(model, x, y, torch.Generator().manual_seed(0))
        assert out.shape == (5, 3) and torch.isfinite(loss)


def test_bad_input_is_refused_by_name():
    x = blob_image(8)
    sm = Smooth(HalfSpace(np.ones(64), 0.0), 2, 0.5)
    with pytest.raises(ValueError, match="transformation must be one of brightness, contrast, translation, rotation"):
        check_transformation("shear")
    with pytest.raises(ValueError, match="transformation must be one of brightness, contrast"):
        ParameterSmooth(HalfSpace(np.ones(64), 0.0), 2, "rotation", 0.3, (1, 8, 8))
    with pytest.raises(ValueError, match="sigma must be a finite number > 0"):
        ParameterSmooth(HalfSpace(np.ones(64), 0.0), 2, "brightness", -0.3, (1, 8, 8))
    with pytest.raises(ValueError, match="budgets must be angles >= 0"):
        certify_rotation(sm, x, [-5.0], 1.0, 10, 10, 0.01, 64)
    with pytest.raises(ValueError, match=r"max_angle \(5\) must be a multiple of step \(2\)"):
        certify_rotation(sm, x, [5.0], 2.0, 10, 10, 0.01, 64)
    with pytest.raises(ValueError, match="step must be a finite number > 0"):
        rotation_grid(4.0, 0.0)
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        certify_rotation(sm, x, [2.0], 1.0, 10, 0, 0.01, 64)
    with pytest.raises(ValueError, match="alpha must be a number in"):
        certify_rotation(sm, x, [2.0], 1.0, 10, 10, 1.5, 64)
    with pytest.raises(ValueError, match="square"):
        rotate(torch.rand(1, 8, 9), [3.0])
    with pytest.raises(ValueError, match="padding must be one of zeros, reflect; got 'wrap'"):
        translate(x, [[1, 0]], "wrap")
    with pytest.raises(ValueError, match="reflection padding allows"):
        translate(x, [[8, 0]], "reflect")
    with pytest.raises(ValueError, match="max_norm must be a finite number >= 0"):
        integer_shifts(-1.0)
    with pytest.raises(ValueError, match="sigma_b must be a finite number >= 0"):
        augmentation_objective("brightness", sigma_b=-1.0)
    with pytest.raises(ValueError, match="smooth must be a Smooth with Gaussian noise"):
        certify_rotation(Smooth(HalfSpace(np.ones(64), 0.0), 2, 0.5, noise="laplace"), x, [2.0], 1.0, 10, 10, 0.01, 64)


def test_same_seed_same_result_and_device_agnostic():
    x = blob_image(16)
    f = HalfSpace(np.ones(x.numel()), -float(x.sum()) * 0.95)
    a = certify_rotation(Smooth(f, 2, 0.3), x, [4.0], 2.0, 20, 300, 0.01, 4096, torch.Generator().manual_seed(7))
    b = certify_rotation(Smooth(f, 2, 0.3), x, [4.0], 2.0, 20, 300, 0.01, 4096, torch.Generator().manual_seed(7))
    assert np.array_equal(a.radii, b.radii)
    if torch.cuda.is_available():
        fc = HalfSpace(np.ones(x.numel()), -float(x.sum()) * 0.95)
        fc.w = fc.w.cuda()
        c = certify_rotation(Smooth(fc, 2, 0.3), x.cuda(), [4.0], 2.0, 20, 300, 0.01, 4096,
                             torch.Generator(device="cuda").manual_seed(7))
        assert c.certified.shape == a.certified.shape
