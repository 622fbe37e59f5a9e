"""What every chapter notebook does first: validate its parameters, say how it was produced.

A chapter's first code cell after its ``parameters`` cell is::

    from georobust.book.chapter import Chapter
    ch = Chapter("cohen-radius", profile, overrides)
    P = ch.params

which validates the parameters (before any computation), fixes the device and the seeds, and
gives the chapter its figure exporter (:meth:`Chapter.figure`), its glue (:meth:`Chapter.glue`)
and its result-log folder (:meth:`Chapter.log_path`). :meth:`Chapter.banner` prints which
profile, data and machine produced the page.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from .. import __version__
from .params import ParameterError, Params, resolve

REPO_ROOT = Path(__file__).resolve().parents[3]


def book_dir() -> Path:
    """Where executed chapters and exported figures go: ``$GEOROBUST_BOOK_DIR`` or ``<repo>/book``."""
    return Path(os.environ.get("GEOROBUST_BOOK_DIR", REPO_ROOT / "book"))


def results_dir() -> Path:
    """Where result logs go: ``$GEOROBUST_RESULTS`` or ``<repo>/data/results``."""
    return Path(os.environ.get("GEOROBUST_RESULTS", REPO_ROOT / "data" / "results"))


def models_dir() -> Path:
    """Where the paper profile's trained models are committed: ``$GEOROBUST_MODELS`` or ``<repo>/data/models``."""
    return Path(os.environ.get("GEOROBUST_MODELS", REPO_ROOT / "data" / "models"))


def pick_device(name: str) -> torch.device:
    """``auto`` -> cuda, then mps, then cpu; a named device must be available."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ParameterError("parameter 'device' is 'cuda' but CUDA is not available here; use cpu or auto")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ParameterError("parameter 'device' is 'mps' but MPS is not available here; use cpu or auto")
    return torch.device(name)


def git_commit() -> str:
    """Short commit of the repository (with ``+dirty`` if it has changes), or ``unknown``."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class Chapter:
    """Validated parameters, device, seeds and outputs of one chapter run."""

    def __init__(self, name: str, profile: str = "quick", overrides: Mapping[str, Any] | None = None):
        self.params: Params = resolve(name, profile, overrides)
        self.name = name
        self.profile = profile
        self.device = pick_device(self.params.device)
        self.seed = self.params.seed
        self.data_description = "none"

    # -- randomness: explicit generators, one stream per use ---------------------------------
    def generator(self, stream: int = 0, device: torch.device | str | None = None) -> torch.Generator:
        """A torch generator seeded from the chapter seed and a stream number."""
        g = torch.Generator(device=device or self.device)
        g.manual_seed(self.seed * 1_000_003 + stream)
        return g

    def rng(self, stream: int = 0) -> np.random.Generator:
        """A NumPy generator seeded from the chapter seed and a stream number."""
        return np.random.default_rng([self.seed, stream])

    # -- provenance ----------------------------------------------------------------------------
    def provenance(self) -> dict[str, str]:
        over = ", ".join(f"{k} = {self.params.values[k]!r}" for k in self.params.overridden) or "none"
        dev = str(self.device)
        if self.device.type == "cuda":
            dev += f" ({torch.cuda.get_device_name(self.device)})"
        return {
            "profile": self.profile,
            "overrides": over,
            "data": self.data_description,
            "device": dev,
            "seed": str(self.seed),
            "source": self.params.source,
            "georobust": f"{__version__} (commit {git_commit()})",
            "torch": torch.__version__,
            "python": platform.python_version(),
            "executed": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        }

    def banner(self, data: str | None = None):
        """Display (and glue as ``profile``) which profile, data and machine produced this page."""
        if data is not None:
            self.data_description = data
        p = self.provenance()
        self.glue("profile", p["profile"])
        details = " · ".join(f"{k} {p[k]}" for k in ("overrides", "seed", "source", "georobust", "torch",
                                                           "python", "executed"))
        text = (
            "```{admonition} How this page was produced\n:class: note\n"
            f"Executed with the **{p['profile']}** profile on **{p['device']}**. Data: {p['data']}.\n\n"
            f"{details}.\n\n"
            "Re-execute it with `python -m georobust.book run --chapter "
            f"{self.name} --profile PROFILE [-p NAME VALUE ...]`.\n```\n"
        )
        try:
            from IPython.display import Markdown, display
        except ImportError:  # outside a kernel
            print(text)
            return None
        display(Markdown(text))
        return None

    # -- outputs -------------------------------------------------------------------------------
    def glue(self, key: str, value: Any, display: bool = False) -> None:
        """Glue ``value`` under ``key`` for ``{glue:}`` roles in the chapter's prose.

        Returns None, so a cell that ends with a glue call shows nothing on the page.
        """
        if hasattr(value, "item") and tuple(getattr(value, "shape", (1,))) == ():
            value = value.item()  # numpy / torch scalars: glue the plain Python number
        try:
            from myst_nb import glue
        except ImportError:  # outside the book tooling: nothing to glue into
            return None
        glue(key, value, display=display)
        return None

    def figure_folder(self) -> Path:
        """``book/figures/<run>/``: the profile's name, plus a hash of result-changing overrides
        (as for logs), so a quick run never overwrites a paper run's figures."""
        return book_dir() / "figures" / self._run_name()

    def figure(self, fig, name: str, glue: bool = True, link: bool = True) -> None:
        """Export ``fig`` as ``book/figures/<run>/<chapter>-<name>.{pdf,png}`` and glue it as ``fig-<name>``.

        File names are stable (they are cited from the papers); the PDF's metadata say how it was
        made (chapter, profile, overrides, data, commit) and it is byte-reproducible (no creation
        date). With ``link`` the cell displays a download link to the PDF under its stable name.
        Returns None, so a cell that ends with it shows nothing else on the page.
        """
        from .figures import export

        stem = f"{self.name}-{name}"
        p = self.provenance()
        provenance = (f"georobust chapter {self.name}, figure {name}; profile {p['profile']}; overrides "
                      f"{p['overrides']}; data {p['data']}; commit {p['georobust']}")
        paths = export(fig, stem, self.figure_folder(), provenance=provenance, creator=f"georobust {__version__}")
        if glue:
            self.glue(f"fig-{name}", fig, display=False)
        import matplotlib.pyplot as plt

        plt.close(fig)
        if link:
            rel = os.path.relpath(paths["pdf"], book_dir() / "chapters").replace(os.sep, "/")
            try:
                from IPython.display import Markdown, display
            except ImportError:
                return None
            display(Markdown(f"Figure file: {{download}}`{stem}.pdf <{rel}>` ({self.profile} profile; "
                             "the PDF's metadata say how it was made)"))
        return None

    def model_store(self) -> Path | None:
        """Folder of this chapter's committed models, ``data/models/<chapter>/paper/``, for the paper
        profile run as it is (overrides of device, data_root or source only); None otherwise, and
        such runs keep their models in the cache (:mod:`georobust.core.zoo`). Pass it to
        :func:`georobust.core.zoo.trained` with a name."""
        run = self._run_name()
        return models_dir() / self.name / run if run == "paper" else None

    def _run_name(self) -> str:
        changed = {k: self.params.values[k] for k in self.params.overridden
                   if k not in ("device", "data_root", "source")}
        run = self.profile
        if changed:
            import hashlib
            import json

            run += "-" + hashlib.sha256(json.dumps(changed, sort_keys=True, default=str).encode()).hexdigest()[:8]
        return run

    def log_path(self, filename: str) -> Path:
        """Path of a result log of this chapter: ``data/results/<chapter>/<run>/<filename>``.

        ``<run>`` is the profile name, followed by a short hash of the overrides that change results
        (all but ``device``, ``data_root`` and ``source``), so a run with ``-p`` overrides never
        replaces the profile's own logs.
        """
        return results_dir() / self.name / self._run_name() / filename
