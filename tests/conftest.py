"""Shared fixtures: a copy of the book whose chapters are executed under the tiny profile."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def copy_book_sources(dest: Path) -> Path:
    """Copy the book's sources (config, toc, prose, bibliography, vendored assets) to ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for f in ("_config.yml", "_toc.yml"):
        shutil.copy(REPO / f, dest / f)
    shutil.copytree(REPO / "book", dest / "book",
                    ignore=lambda d, names: [n for n in names if Path(d).name in ("chapters", "figures")
                                             and n != "README.md"])
    return dest


@contextlib.contextmanager
def hermetic_outputs(root: Path):
    """Result logs, committed-model stores and the model cache under ``root`` while inside (every
    model trained from scratch); the environment is restored afterwards."""
    saved = {k: os.environ.get(k) for k in ("GEOROBUST_RESULTS", "GEOROBUST_CACHE", "GEOROBUST_MODELS")}
    os.environ["GEOROBUST_RESULTS"] = str(root / "results")
    os.environ["GEOROBUST_CACHE"] = str(root / "cache")
    os.environ["GEOROBUST_MODELS"] = str(root / "models")
    try:
        yield root
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def tiny_book(tmp_path_factory):
    """Every chapter executed under the tiny profile into a fresh copy of the book."""
    from georobust.book import run_chapter
    from georobust.book.params import chapters

    root = copy_book_sources(tmp_path_factory.mktemp("tiny-book"))
    errors = {}
    with hermetic_outputs(root):
        for name in chapters():
            try:
                run_chapter(name, "tiny", {}, book_dir=root / "book", quiet=True)
                errors[name] = None
            except Exception as err:  # reported by the per-chapter test
                errors[name] = err
    return SimpleNamespace(root=root, errors=errors)


@pytest.fixture(scope="session")
def built_book(tiny_book):
    """The tiny book built to HTML with warnings as errors."""
    from georobust.book import build

    failed = [k for k, v in tiny_book.errors.items() if v is not None]
    if failed:
        pytest.fail(f"chapters failed to execute, so the book cannot be built: {failed}")
    index = build(tiny_book.root, strict=True)
    return SimpleNamespace(root=tiny_book.root, index=index, html=tiny_book.root / "_build" / "html")


@pytest.fixture
def single_thread():
    """One intra-op thread: for tiny float64 matrices BLAS threads only add synchronisation, which
    is pathologically slow on a busy 2-core machine (40 ms for a 20×30 product)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def fd_gradient_error(model, fn, n_checks=2, h=1e-5):
    """Max relative error between autograd's ∇_params penalty and central differences."""
    grads = torch.autograd.grad(fn(), list(model.parameters()), allow_unused=True)
    g = torch.Generator().manual_seed(7)
    worst = 0.0
    for p, gp in zip(model.parameters(), grads):
        gp = torch.zeros_like(p) if gp is None else gp
        for _ in range(n_checks):
            i = int(torch.randint(p.numel(), (1,), generator=g))
            old = p.view(-1)[i].item()
            with torch.no_grad():
                p.view(-1)[i] = old + h
            up = fn().item()
            with torch.no_grad():
                p.view(-1)[i] = old - h
            down = fn().item()
            with torch.no_grad():
                p.view(-1)[i] = old
            fd = (up - down) / (2 * h)
            worst = max(worst, abs(gp.view(-1)[i].item() - fd) / max(abs(fd), 1e-3))
    return worst
