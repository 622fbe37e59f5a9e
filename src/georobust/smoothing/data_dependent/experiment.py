"""Running the data-dependent methods over a data set, with resumable logs.

:func:`run_method` optimizes each input's noise with one method, certifies it with
:class:`~georobust.smoothing.anisotropic.AnisotropicSmooth` (that noise, fixed, for that input),
and appends one line per input to a TSV log (:data:`COLUMNS`), so a stopped run resumes where it
stopped. The certificate of each line is a per-input certificate: valid for the smoothed classifier
with that input's noise, not for a classifier that chooses its noise from the point
(:mod:`~georobust.smoothing.data_dependent.soundness`).

Methods (:data:`METHODS`): ``"rs"`` (isotropic σ, Cohen et al.), ``"ddrs"``, ``"ancer"``,
``"rddrs"`` (affine-invariant metric), ``"rddrs_log_euclidean"``, and ``"rddrs_cheap"`` (RDDRS with
``cheap_factor`` times fewer gradient samples, drawn in antithetic pairs (z, −z) as a control
variate, each step shortened to at most ``cheap_max_step`` in the affine-invariant distance: the
cheaper setting whose loss is measured). ANCER
and the RDDRS variants start from the DDRS σ_x of the same input, read from the DDRS log.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch

from ..anisotropic import AnisotropicSmooth
from ..smooth import ABSTAIN, _model_device
from .ancer import optimize_ancer
from .ddrs import optimize_ddrs
from .rddrs import optimize_rddrs

__all__ = ["COLUMNS", "METHODS", "run_method", "read_dd_log", "RotatedModel", "random_rotation"]

COLUMNS = ["idx", "label", "predict", "gap", "radius_l2", "radius_proxy", "sigma_min", "sigma_geo", "correct",
           "optimize_seconds", "certify_seconds"]
METHODS = ("rs", "ddrs", "ancer", "rddrs", "rddrs_log_euclidean", "rddrs_cheap")


def read_dd_log(path) -> dict[str, np.ndarray]:
    """The columns of a log written by :func:`run_method` (complete lines only)."""
    path = Path(path)
    if not path.exists():
        return {c: np.zeros(0) for c in COLUMNS}
    lines = path.read_text().splitlines()
    if not lines or lines[0].split("\t") != COLUMNS:
        raise ValueError(f"{path}: not a data-dependent smoothing log (expected the header {COLUMNS})")
    rows = [ln.split("\t") for ln in lines[1:] if ln.count("\t") == len(COLUMNS) - 1]
    out = {c: np.array([r[i] for r in rows], dtype=float) for i, c in enumerate(COLUMNS)}
    for c in ("idx", "label", "predict", "correct"):
        out[c] = out[c].astype(np.int64)
    return out


def _prepare(path: Path) -> set[int]:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text("\t".join(COLUMNS) + "\n")
        os.replace(tmp, path)
        return set()
    text = path.read_text()
    if text and not text.endswith("\n"):  # a line cut by an interruption: drop it
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text[: text.rfind("\n") + 1])
        os.replace(tmp, path)
    return set(read_dd_log(path)["idx"].tolist())


def _summaries(kind_scales):
    """(λ_min, det^{1/d}) of each optimized scale: (B,) σ, (B, d) θ or (B, d, d) C."""
    s = kind_scales
    if s.ndim == 1:
        return s.double(), s.double()
    if s.ndim == 2:
        return s.double().min(1).values, torch.exp(torch.log(s.double()).mean(1))
    lam = torch.linalg.eigvalsh(s.double())
    return lam[:, 0], torch.exp(torch.log(lam).mean(1))


def run_method(method: str, model, images, labels, sigma: float, log_path, *, n0: int, n: int, alpha: float,
               cert_batch: int, settings: dict, batch: int = 8, seed: int = 0, ddrs_log=None, progress=None):
    """Optimize and certify every input of (images, labels) with ``method``; append to ``log_path``.

    ``settings``: keyword arguments of the optimizers, by name ``"ddrs"``, ``"ancer"``, ``"rddrs"``
    (and ``"cheap_factor"``, ``"cheap_max_step"`` for ``"rddrs_cheap"``). Inputs are processed ``batch`` at a time, each
    batch with its own generator seeded from (``seed``, its first index), so a resumed log has the
    law of an uninterrupted one. ``progress``: optional callable(count) after each batch.
    Returns the log's columns.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    if method not in ("rs", "ddrs") and ddrs_log is None:
        raise ValueError(f"method {method!r} starts from the DDRS sigma: pass ddrs_log (the DDRS log of these inputs)")
    path = Path(log_path)
    done = _prepare(path)
    images = torch.as_tensor(images)
    labels = np.asarray(torch.as_tensor(labels).cpu()).astype(np.int64)
    start_sigma = None
    if ddrs_log is not None:
        d = read_dd_log(ddrs_log)
        start_sigma = dict(zip(d["idx"].tolist(), d["sigma_min"].tolist()))
    todo = [i for i in range(len(images)) if i not in done]
    shape = tuple(images.shape[1:])
    device = _model_device(model) or images.device
    for first in range(0, len(todo), batch):
        idx = todo[first:first + batch]
        xs = images[idx].to(device)
        gen = torch.Generator(device=device).manual_seed(int(seed) * 1_000_003 + int(idx[0]))
        t0 = time.perf_counter()
        if method == "rs":
            scales, kind_scale = None, float(sigma)
            summary = (torch.full((len(idx),), float(sigma)), torch.full((len(idx),), float(sigma)))
        else:
            if method == "ddrs":
                opt = optimize_ddrs(model, xs, float(sigma), generator=gen, **settings.get("ddrs", {}))
            else:
                missing = [i for i in idx if i not in start_sigma]
                if missing:
                    raise ValueError(f"ddrs_log has no sigma for inputs {missing[:5]}: run DDRS on them first")
                s0 = torch.tensor([start_sigma[i] for i in idx], dtype=xs.dtype, device=device)
                if method == "ancer":
                    opt = optimize_ancer(model, xs, s0, generator=gen, **settings.get("ancer", {})).flatten(1)
                else:
                    kw = dict(settings.get("rddrs", {}))
                    if method == "rddrs_log_euclidean":
                        kw["metric"] = "log_euclidean"
                    if method == "rddrs_cheap":
                        kw["grad_samples"] = max(2, int(kw.get("grad_samples", 20000)) // int(settings.get("cheap_factor", 8)))
                        kw["antithetic"] = True
                        kw["max_step"] = float(settings.get("cheap_max_step", 1.0))
                    opt, _ = optimize_rddrs(model, xs, s0, generator=gen, **kw)
            scales, kind_scale = opt, opt[0] if opt.ndim > 1 else float(opt[0])
            summary = _summaries(opt)
        t1 = time.perf_counter()
        sm = AnisotropicSmooth(model, int(settings.get("num_classes", 10)), kind_scale, input_shape=shape)
        classes, gaps = sm.certify_batch(xs, n0, n, alpha, cert_batch, gen,
                                         scales=None if scales is None else list(scales))
        t2 = time.perf_counter()
        lines = []
        for j, i in enumerate(idx):
            smin, sgeo = float(summary[0][j]), float(summary[1][j])
            c, g = int(classes[j]), float(gaps[j])
            lines.append("\t".join([str(i), str(labels[i]), str(c), f"{g:.6f}", f"{smin * g:.6f}", f"{sgeo * g:.6f}",
                                    f"{smin:.6f}", f"{sgeo:.6f}", str(int(c == labels[i] and c != ABSTAIN)),
                                    f"{(t1 - t0) / len(idx):.4f}", f"{(t2 - t1) / len(idx):.4f}"]))
        with open(path, "a") as fh:
            fh.write("\n".join(lines) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        if progress is not None:
            progress(len(idx))
    return read_dd_log(path)


def random_rotation(d: int, generator: torch.Generator) -> torch.Tensor:
    """A random orthogonal d×d matrix (QR of a Gaussian matrix, signs fixed: Haar-distributed)."""
    a = torch.randn(d, d, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(a)
    return q * torch.sign(torch.diagonal(r)).unsqueeze(0)


class RotatedModel(torch.nn.Module):
    """f̃(u) = f(Qᵀu): the classifier rotated with the input space, so f̃(Qx) = f(x)."""

    def __init__(self, model, rotation: torch.Tensor, input_shape):
        super().__init__()
        self.model = model
        self.register_buffer("rotation", rotation.float())
        self.input_shape = tuple(input_shape)

    def forward(self, u):
        back = (u.flatten(1) @ self.rotation.to(u.dtype)).reshape((len(u),) + self.input_shape)  # rows uᵀQ = (Qᵀu)ᵀ
        return self.model(back)

    @staticmethod
    def rotate(images, rotation):
        """Qx for every image (rows xᵀQᵀ)."""
        return (images.flatten(1) @ rotation.T.to(images.dtype)).reshape(images.shape)
