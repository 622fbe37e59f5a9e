"""The paper profile's code paths, end to end, with shrunk budgets.

The ``paper`` profile is meant for a GPU and hours of compute, so the test suite cannot run it as
it is. But it takes code paths the ``tiny`` and ``quick`` profiles never take — full MNIST, LeNet,
learning-rate milestones, the standard AutoAttack, radius caps at large n — and a bug there would
only show after hours on a GPU (one did: a radius at the sampling cap, rounded to the log's five
decimals, failed a check that allowed 1e-6). Each chapter is executed here under ``paper`` with
every *budget* overridden to something small (epochs, images, samples, seeds) and every *choice*
(model, dataset, attack version, milestones present) left as the paper profile has it.

Needs full MNIST: set ``GEOROBUST_MNIST`` to a folder with its four IDX files (``.ci/run`` does).
"""

from __future__ import annotations

import os

import nbformat
import pytest

from conftest import copy_book_sources, hermetic_outputs

MNIST = os.environ.get("GEOROBUST_MNIST")

# budgets only: nothing here changes which code runs, only how much of it
SHRUNK = {
    # the survey pages read committed files only: no budget to shrink
    "survey-map": {}, "survey-timeline": {}, "survey-results": {}, "survey-open-problems": {},
    "robustness-defined": {"n_train": 512, "n_test": 50, "epochs": 2, "pgd_steps": 5, "pgd_restarts": 1,
                           "power_iters": 100, "eps_grid": [0.0, 0.5, 1.0]},
    "neyman-pearson": {"n_candidates": 20000, "n_discrete_trials": 100},
    "cohen-radius": {"n_mc": 200000, "n_linear": 200},
    "certifying-in-practice": {"n_train": 512, "epochs": 2, "milestones": [1], "n_test": 5, "n": 2000,
                               "predict_n": 2000, "n_predict": 3, "batch_size": 2000, "n_grid": [100, 1000],
                               "n_cap_images": 3, "n_matrix": 3, "n_attack": 3, "attack_steps": 3, "attack_m": 2},
    "top-k-certification": {"n_train": 512, "epochs": 2, "milestones": [1], "n_test": 5, "n": 2000,
                            "cert_batch": 2000, "n_checks": 20, "toy_configs": 3, "toy_directions": 4,
                            "toy_radii": 4, "toy_mc": 20000},
    "verifying-relu-networks": {"n_train": 512, "epochs": 1, "eps_grid": [0.0, 0.1], "n_verify": 2, "time_limit": 5.0,
                                "pgd_steps": 5, "pgd_restarts": 1, "scaling_images": 1},
    "certified-training": {"n_train": 512, "epochs": 2, "warmup": 0, "ramp": 1, "sigmas": [0.25], "smooth_epochs": 1,
                           "n_test": 4, "n_crown": 1, "n": 2000, "pgd_steps": 3, "linf_eps": [0.1], "l2_eps": [1.58]},
    "other-noises": {"n_train": 512, "epochs": 2, "milestones": [1], "n_test": 5, "n": 2000, "cert_batch": 2000,
                     "sigmas": [0.25], "grid_cells": 301, "n_checks": 20, "check_n": 200},
    "certificates-compared": {"n_train": 512, "epochs": 2, "milestones": [1], "n_test": 5, "n": 2000,
                              "cert_batch": 2000, "sigmas": [0.25], "grid_points": 20},
    "one-framework": {"cells": 4001, "n_ellipses": 20, "n_lipschitz": 50, "grid_points": 10},
    "limits-of-smoothing": {"n_train": 512, "epochs": 2, "milestones": [1], "n_test": 10, "n": 2000,
                            "cert_batch": 2000, "sigmas": [0.25], "pool_sizes": [28, 7], "dim_n_test": 4},
    "training-for-large-radii": {"n_train": 512, "n_test": 5, "epochs": 2, "milestones": [1], "n": 2000,
                                 "cert_batch_size": 2000, "timing_rounds": 2, "soft_radius_k": 200,
                                 "soft_radius_images": 3, "smoothadv_steps": 2, "smoothadv_warmup": 1,
                                 "macer_k": 4},
    "anisotropic-certificates": {"n_checks": 40, "check_n": 100},
    "data-dependent-smoothing": {"n_train": 512, "epochs": 1, "n_test": 2, "n": 200, "cert_batch": 200, "batch": 2,
                                 "sigmas": [0.5], "ddrs_iterations": 2, "ancer_iterations": 2, "rddrs_iterations": 1,
                                 "rddrs_grad_samples": 32, "samples": 16},
    "data-dependent-soundness": {"n_train": 512, "epochs": 1, "n_test": 3, "n": 200, "cert_batch": 200,
                                 "iterations": 2, "samples": 16, "cells": 2, "train_per_cell": 2, "orders": 5},
    "fewer-samples": {"n_train": 512, "epochs": 2, "milestones": [1], "sigmas": [0.25], "n_test": 3, "n": 2000,
                      "batch_size": 2000, "n_exact": 200},
    "semantic-transformations": {"n_train": 512, "epochs": 1, "n_test": 2, "n0": 20, "n_param": 200,
                                 "rotation_budgets": [0.5], "n_rotation": 20, "n_attack": 20, "n_checks": 20,
                                 "check_n": 50},
    "smoothing-a-regressor": {"n_train": 200, "epochs": 2, "n_tracks": 2, "n_eval": 100, "n_samples": 300,
                              "attack_steps": 5, "attack_restarts": 1, "n_checks": 40, "check_n": 50},
    "iso-geometry": {"num_classes": [2, 3], "n_points": 200, "n_paths": 2, "path_nodes": 16},
    "variability": {"n_train": 512, "n_test": 40, "epochs": 2, "milestones": [1], "etas": [0.0, 0.5],
                    "seeds": [0, 1], "separated_etas": [0.5], "attack_steps": 5, "attack_restarts": 1,
                    "path_points": 5, "n_path_test": 30},
    "regularizers-compared": {"n_train": 512, "n_test": 20, "seeds": [0], "epochs": 2, "milestones": [1],
                              "at_steps": 3, "attack_steps": 5, "attack_restarts": 1, "n_autoattack": 4,
                              "noise_draws": 1, "lip_points": 20, "lip_steps": 3, "cost_repeats": 1,
                              "graph_points": 50, "linf_grid": [0.0, 0.1, 0.3], "l2_grid": [0.0, 1.0]},
}


# the only choices a shrunk run changes, each because no shrunk run can take the paper's: fewer-samples reads
# its fixed-n baseline from the committed certifying-in-practice logs (n = 100,000 on 500 images), which a run
# with shrunk budgets does not match (and refuses, by name); it computes its baseline instead
CHOICES = {"fewer-samples": {"baseline": "compute"}}


def test_every_chapter_has_a_shrunk_paper_run():
    from georobust.book.params import chapters

    assert sorted(SHRUNK) == sorted(chapters())


@pytest.fixture(scope="module")
def paper_root(tmp_path_factory):
    with hermetic_outputs(copy_book_sources(tmp_path_factory.mktemp("paper-book"))) as root:
        yield root


@pytest.mark.skipif(not MNIST, reason="set GEOROBUST_MNIST to a folder with real MNIST")
@pytest.mark.parametrize("name", sorted(SHRUNK))
def test_chapter_runs_the_paper_code_paths(paper_root, name):
    from georobust.book import run_chapter
    from georobust.book.params import resolve

    overrides = {"data_root": MNIST, "device": "cpu", **SHRUNK[name], **CHOICES.get(name, {})}
    def kind(value):
        return "sequence" if isinstance(value, (list, tuple)) else type(value).__name__

    paper = resolve(name, "paper", {})
    for key, value in SHRUNK[name].items():  # a budget, never a choice: a number or a list, like the paper's
        assert kind(value) in ("int", "float", "sequence"), key
        assert paper.values[key] is None or kind(paper.values[key]) == kind(value), key
    run_chapter(name, "paper", overrides, book_dir=paper_root / "book", quiet=True)
    nb = nbformat.read(paper_root / "book" / "chapters" / f"{name}.ipynb", as_version=4)
    assert not [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert nb.metadata["georobust"]["profile"] == "paper"
