"""Data-dependent randomized smoothing: the noise chosen per input, and what it certifies.

* :mod:`~.surrogate` — the soft smoothed classifier and the proxy gap every optimizer ascends.
* :mod:`~.ddrs` — DDRS, a per-input σ_x (Alfarra et al., UAI 2022).
* :mod:`~.ancer` — ANCER, a per-input diagonal covariance (Eiras et al., TMLR 2022).
* :mod:`~.rddrs` — RDDRS, a per-input full SPD covariance by Riemannian ascent (Labarbarie et al.
  2022), with the affine-invariant or the log-Euclidean metric.
* :mod:`~.experiment` — every method over a data set, with resumable logs; the rotation wrapper.
* :mod:`~.spd` — exponential, logarithm and gradients on the SPD cone.

The certificate of one fixed noise is :class:`~georobust.smoothing.anisotropic.AnisotropicSmooth`.
A noise chosen from the test input itself does not define one smoothed classifier, so the
per-input certificate is not a certificate of a classifier (Súkeník, Kuvshinov & Günnemann,
ICML 2022); :mod:`~.soundness` builds the counterexample, the memory-based certification of
Alfarra et al. and a variant sound by construction.
"""

from . import ancer, ddrs, experiment, rddrs, soundness, spd, surrogate
from .ancer import ancer_objective, optimize_ancer
from .ddrs import ddrs_objective, optimize_ddrs
from .experiment import COLUMNS, METHODS, RotatedModel, random_rotation, read_dd_log, run_method
from .rddrs import METRICS, optimize_rddrs, rddrs_euclidean_gradient, rddrs_objective
from .soundness import (CERTIFICATE_LABELS, PartitionSmooth, VoronoiPartition, ideal_ddrs, memory_certify,
                        naive_violations, stripe_probabilities)

__all__ = ["ancer", "ddrs", "experiment", "COLUMNS", "METHODS", "RotatedModel", "random_rotation", "read_dd_log",
           "run_method", "rddrs", "soundness", "spd", "surrogate", "CERTIFICATE_LABELS", "PartitionSmooth",
           "VoronoiPartition", "ideal_ddrs", "memory_certify", "naive_violations", "stripe_probabilities", "ancer_objective", "optimize_ancer", "ddrs_objective",
           "optimize_ddrs", "METRICS", "optimize_rddrs", "rddrs_euclidean_gradient", "rddrs_objective"]
