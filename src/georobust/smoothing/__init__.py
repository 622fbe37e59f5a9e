"""Randomized smoothing: the smoothed classifier, its certificates, and how to train and attack it.

* :mod:`~georobust.smoothing.smooth` — :class:`Smooth` (PREDICT, CERTIFY, batched, top-k).
* :mod:`~georobust.smoothing.adaptive` — adaptive CERTIFY (``Smooth.certify_adaptive``): looks at a fixed
  schedule, α split over them, input-specific stopping; sound under optional stopping.
* :mod:`~georobust.smoothing.logs` — CERTIFY and PREDICT over a data set with resumable logs;
  certified accuracy, ACR, abstention.
* :mod:`~georobust.smoothing.training` — base-classifier training for large radii (Gaussian
  augmentation, SmoothAdv, MACER, Consistency).
* :mod:`~georobust.smoothing.attack` — PGD on the smoothed classifier (Salman et al. 2019).
* :mod:`~georobust.smoothing.anisotropic` — :class:`AnisotropicSmooth`, noise C z and its ellipsoid
  certificate; :mod:`~georobust.smoothing.data_dependent` — DDRS, ANCER, RDDRS and their soundness.
* :mod:`~georobust.smoothing.median` — :class:`MedianSmooth`, percentile smoothing of a regressor
  and its certified output bounds (Chiang et al. 2020).
* :mod:`~georobust.smoothing.plots` — certified-accuracy curves, radius against n, σ matrices.
* :mod:`~georobust.smoothing.semantic` — certificates against brightness, contrast, translation and
  rotation (TSS, Li et al. 2021): :class:`ParameterSmooth`, :func:`certify_rotation`.

Layer 1: imports from ``core`` and ``theory`` only.
"""

from . import adaptive, anisotropic, attack, data_dependent, logs, median, plots, smooth, training
from .anisotropic import AnisotropicSmooth, proxy_radius, radius_l2, region_contains
from .attack import pgd_on_smoothed, smooth_pgd_l2, smoothed_nll
from .median import MedianSmooth
from .logs import (LOG_COLUMNS, PREDICT_COLUMNS, abstention_rate, as_logged, at_cap, within_cap, attack_targets, average_certified_radius,
                   certified_accuracy, certify_dataset, certify_dataset_alphas, is_complete, predict_dataset, read_log,
                   read_predict_log, require_log)
from .plots import plot_certified_accuracy, plot_matrix, plot_radius_vs_n
from . import semantic
from .semantic import ParameterSmooth, certify_rotation, rotation_attack, translation_radius
from .smooth import (ABSTAIN, Smooth, certify_from_counts, fill_noise, certify_topk_from_counts, predict_from_counts,
                     topk_radius)
from .training import consistency_objective, gaussian_objective, macer_objective, noise_objective, smoothadv_objective

__all__ = ["adaptive", "anisotropic", "data_dependent", "AnisotropicSmooth", "proxy_radius", "radius_l2", "region_contains",
           "attack", "logs", "plots", "smooth", "training", "pgd_on_smoothed", "smooth_pgd_l2", "smoothed_nll",
           "LOG_COLUMNS", "PREDICT_COLUMNS", "abstention_rate", "as_logged", "at_cap", "within_cap", "attack_targets", "average_certified_radius",
           "certified_accuracy", "certify_dataset", "certify_dataset_alphas", "is_complete", "predict_dataset", "read_log",
           "read_predict_log", "require_log", "plot_certified_accuracy", "plot_matrix", "plot_radius_vs_n",
           "ABSTAIN", "Smooth", "certify_from_counts", "certify_topk_from_counts", "predict_from_counts",
           "topk_radius", "consistency_objective", "gaussian_objective", "macer_objective", "noise_objective",
           "smoothadv_objective", "fill_noise", "median", "MedianSmooth",
           "semantic", "ParameterSmooth", "certify_rotation", "rotation_attack", "translation_radius"]
