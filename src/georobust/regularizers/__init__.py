"""Regularizers for robustness, and the tools to study what they do.

* :mod:`~georobust.regularizers.iso` — ISO, the partial-isometry penalty under the Fisher
  metric (exact, fast, chart-invariant; and its Euclidean variant).
* :mod:`~georobust.regularizers.geometry` — the Fisher geometry behind ISO, checked with SymPy.
* :mod:`~georobust.regularizers.jacobian` — Jacobian regularization (Hoffman et al. 2019).
* :mod:`~georobust.regularizers.parseval` — Parseval networks' retraction (Cissé et al. 2017).
* :mod:`~georobust.regularizers.adversarial_training` — PGD adversarial training (Madry et al.).
* :mod:`~georobust.regularizers.interpolation` — loss barriers along weight interpolations,
  and ISO's separated steps.
* :mod:`~georobust.regularizers.graph_smoothness` — label smoothness on k-NN graphs of each
  layer (Lassance et al.).

Layer 1: imports from ``core`` and ``theory`` only.
"""

from . import adversarial_training, geometry, graph_smoothness, interpolation, iso, jacobian, parseval
from .adversarial_training import pgd_objective, pgd_perturb
from .graph_smoothness import label_smoothness, similarity_graph, smoothness_profile
from .interpolation import SeparatedStep, barrier, interpolate, path_barriers, path_metrics
from .iso import euclidean_chart, fisher_chart, helmert_basis, iso_euclidean_penalty, iso_objective, iso_penalty
from .jacobian import jacobian_objective, jacobian_penalty
from .parseval import parseval_deviation, parseval_retraction

__all__ = ["adversarial_training", "geometry", "graph_smoothness", "interpolation", "iso", "jacobian", "parseval",
           "pgd_objective", "pgd_perturb", "label_smoothness", "similarity_graph", "smoothness_profile",
           "SeparatedStep", "barrier", "interpolate", "path_barriers", "path_metrics", "euclidean_chart",
           "fisher_chart", "helmert_basis", "iso_euclidean_penalty", "iso_objective", "iso_penalty",
           "jacobian_objective", "jacobian_penalty", "parseval_deviation", "parseval_retraction"]
