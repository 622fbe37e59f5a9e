"""Run the chapters under a profile, and build the book.

    python -m georobust.book list
    python -m georobust.book run --profile quick                 # every chapter
    python -m georobust.book run --chapter cohen-radius --profile quick -p sigma 0.25
    python -m georobust.book build                               # HTML, warnings as errors
    python -m georobust.book run --profile paper --chapter certifying-in-practice \
        -p data_root /path/to/mnist --budget-minutes 150          # a work session's share of a long run

``run`` validates every requested parameter before any work, converts ``notebooks/<chapter>.md``
with jupytext, executes it with papermill (parameters ``profile`` and ``overrides``), hides the
cell papermill injects, and writes ``book/chapters/<chapter>.ipynb`` atomically. Figures land in
``book/figures/``. ``build`` renders the executed chapters with Jupyter Book.

``--budget-minutes M`` lets a long run (the paper profile on a CPU) work for about M minutes: past
the deadline, training stops at its next epoch boundary and certification at its next log line
(:mod:`georobust.core.budget`), with everything done saved (checkpoints, logs, committed models);
the chapter is then not written — a partial run is never rendered as if complete — and the
command exits with status 3, saying so. Running the same command again continues.

When a paper-profile run of a chapter (``source = compute``, no overrides but device, data_root
and source) finishes, ``complete.json`` is written into its result folder
(``data/results/<chapter>/paper/``): the commit, device and time. Its logs are then whole, and
``tests/book/test_paper_logs.py`` renders every chapter so marked from its committed logs alone.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from ..core import budget
from .chapter import REPO_ROOT
from .params import ParameterError, chapters, declarations, describe, profiles, resolve

NOTEBOOKS = REPO_ROOT / "notebooks"


def parse_value(text: str):
    """A command-line value read as YAML: ``0.5`` -> 0.5, ``[0.25, 0.5]`` -> list, ``null`` -> None."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def validate(names: list[str], profile: str, overrides: dict) -> None:
    """Check every chapter's parameters before anything runs (raises ParameterError)."""
    for name in names:
        resolve(name, profile, overrides)


def run_chapter(name: str, profile: str = "quick", overrides: dict | None = None,
                book_dir: Path | None = None, notebooks: Path = NOTEBOOKS, quiet: bool = False,
                budget_minutes: float | None = None) -> Path:
    """Execute one chapter with papermill; returns the executed notebook's path.

    With ``budget_minutes`` the chapter works for about that long (an already set
    ``$GEOROBUST_DEADLINE`` is kept otherwise); if the budget runs out first it raises
    :class:`ChapterIncomplete` and writes no executed notebook."""
    import jupytext
    import nbformat
    import papermill as pm

    overrides = dict(overrides or {})
    resolve(name, profile, overrides)  # fail before starting a kernel
    book_dir = Path(book_dir or REPO_ROOT / "book").resolve()
    source = notebooks / f"{name}.md"
    if not source.exists():
        raise FileNotFoundError(f"no notebook for chapter {name!r}: expected {source}")
    out_dir = book_dir / "chapters"
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{name}.ipynb"

    nb = jupytext.read(source)
    nb.metadata.setdefault("kernelspec", {"name": "python3", "display_name": "Python 3", "language": "python"})
    with tempfile.TemporaryDirectory(prefix=f"georobust-{name}-") as tmp:
        src_ipynb = Path(tmp) / f"{name}.ipynb"
        nbformat.write(nb, src_ipynb)
        executed = Path(tmp) / f"{name}.executed.ipynb"
        env_backup = os.environ.get("GEOROBUST_BOOK_DIR")
        os.environ["GEOROBUST_BOOK_DIR"] = str(book_dir)
        try:
            ctx = budget.budget(budget_minutes) if budget_minutes is not None else contextlib.nullcontext()
            with ctx:
                pm.execute_notebook(
                    str(src_ipynb), str(executed),
                    parameters={"profile": profile, "overrides": overrides},
                    kernel_name="python3", cwd=str(notebooks), progress_bar=not quiet,
                    log_output=False, request_save_on_cell_execute=False,
                )
        except pm.PapermillExecutionError as err:
            if err.ename == "BudgetExhausted":
                raise ChapterIncomplete(f"chapter {name!r} stopped at its time budget: {err.evalue}") from None
            failed = REPO_ROOT / "_build" / "failed" / f"{name}.ipynb"
            failed.parent.mkdir(parents=True, exist_ok=True)
            if executed.exists():
                shutil.copy(executed, failed)
            raise ChapterFailed(f"chapter {name!r} failed in cell {err.exec_count}: {err.ename}: {err.evalue}\n"
                                f"the partly executed notebook is at {failed}") from None
        finally:
            if env_backup is None:
                os.environ.pop("GEOROBUST_BOOK_DIR", None)
            else:
                os.environ["GEOROBUST_BOOK_DIR"] = env_backup
        result = nbformat.read(executed, as_version=4)
        for cell in result.cells:  # the banner states the parameters; the raw cells would mislead
            tags = cell.metadata.get("tags", [])
            if ("injected-parameters" in tags or "parameters" in tags) and "remove-cell" not in tags:
                cell.metadata["tags"] = tags + ["remove-cell"]
        result.metadata["georobust"] = {"chapter": name, "profile": profile, "overrides": overrides}
        tmp_target = out_dir / f".{name}.ipynb.tmp"
        nbformat.write(result, tmp_target)
        os.replace(tmp_target, target)
    if profile == "paper":
        mark_complete(name, overrides)
    return target


COMPLETE_FILE = "complete.json"


def mark_complete(name: str, overrides: dict) -> Path | None:
    """After a paper-profile run of ``name`` that computed its results, record in its result folder
    that the logs are complete (``complete.json``: commit, device, UTC time); returns its path, or
    None for a run that rendered from logs, a run with overrides (its logs are not the profile's
    own), or a chapter that writes no logs."""
    from .chapter import Chapter, git_commit
    from .runs import _write_json

    ch = Chapter(name, "paper", overrides)
    folder = ch.log_path("")
    if ch.params.source != "compute" or ch.model_store() is None or not folder.is_dir():
        return None
    record = {"chapter": name, "profile": "paper", "commit": git_commit(), "device": str(ch.device),
              "completed": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    path = folder / COMPLETE_FILE
    _write_json(path, record)  # atomic, like the run records
    return path


class ChapterFailed(RuntimeError):
    """A chapter notebook raised during execution."""


class ChapterIncomplete(RuntimeError):
    """A chapter stopped at its time budget; what it did is saved and a rerun continues."""


EXIT_INCOMPLETE = 3


def build(root: Path = REPO_ROOT, strict: bool = True) -> Path:
    """Build the HTML book at ``root`` with Jupyter Book; returns the path of ``index.html``."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    missing = [f for f in _toc_files(toc) if not any((root / (f + ext)).exists() for ext in (".md", ".ipynb"))]
    if missing:
        raise FileNotFoundError(
            "the book needs these pages, which do not exist yet: " + ", ".join(missing)
            + "\nexecute the chapters first: python -m georobust.book run"
        )
    cmd = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()",
           "build", str(root), "--builder", "html"]
    if strict:
        cmd += ["-W", "-n", "--keep-going"]
    env = dict(os.environ, PYDEVD_DISABLE_FILE_VALIDATION="1")
    proc = subprocess.run(cmd, cwd=root, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"the book build failed (exit {proc.returncode}); see the warnings above")
    return root / "_build" / "html" / "index.html"


def _toc_files(toc: dict) -> list[str]:
    files = [toc["root"]]
    for part in toc.get("parts", [toc]):
        for ch in part.get("chapters", []):
            files.append(ch["file"])
            files += [s["file"] for s in ch.get("sections", [])]
    return files


def _list() -> None:
    print("Profiles:")
    for name, text in profiles().items():
        print(f"  {name:6s} {text}")
    for ch in chapters():
        print(f"\nChapter {ch}:")
        for pname, decl in declarations(ch).items():
            value = decl["value"]
            shown = ", ".join(f"{k}={v}" for k, v in value.items()) if isinstance(value, dict) else str(value)
            print(f"  {pname:14s} {describe(decl):48s} [{shown}]")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m georobust.book", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list profiles, chapters and their parameters")
    p_run = sub.add_parser("run", help="execute chapters with papermill")
    p_run.add_argument("--profile", default="quick", help="tiny, quick (default) or paper")
    p_run.add_argument("--chapter", action="append", dest="chapters", metavar="NAME",
                       help="chapter to run (repeatable); default: all")
    p_run.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                       help="override a parameter; VALUE is read as YAML (0.5, [0.25, 0.5], null)")
    p_run.add_argument("--book-dir", type=Path, default=None, help="where chapters/ and figures/ go (default book/)")
    p_run.add_argument("--budget-minutes", type=float, default=None, metavar="M",
                       help="work for about M minutes, then stop cleanly (exit 3); rerun to continue")
    p_build = sub.add_parser("build", help="build the HTML book with warnings as errors")
    p_build.add_argument("--root", type=Path, default=REPO_ROOT)
    p_all = sub.add_parser("all", help="run every chapter under --profile, then build")
    p_all.add_argument("--profile", default="quick")
    args = parser.parse_args(argv)

    try:
        if args.command == "list":
            _list()
            return 0
        if args.command in ("run", "all"):
            names = (getattr(args, "chapters", None) or chapters())
            overrides = {k: parse_value(v) for k, v in getattr(args, "param", [])}
            validate(names, args.profile, overrides)
            minutes = getattr(args, "budget_minutes", None)
            if minutes is not None and not minutes >= 0:
                raise ParameterError(f"--budget-minutes must be >= 0; got {minutes!r}")
            with budget.budget(minutes) if minutes is not None else contextlib.nullcontext():
                for name in names:
                    t0 = time.perf_counter()
                    print(f"[georobust] running chapter {name} (profile {args.profile})", flush=True)
                    path = run_chapter(name, args.profile, overrides, getattr(args, "book_dir", None))
                    print(f"[georobust] {name}: {time.perf_counter() - t0:.0f} s -> {path}", flush=True)
        if args.command in ("build", "all"):
            index = build(getattr(args, "root", REPO_ROOT))
            print(f"[georobust] the book is at {index}")
    except ChapterIncomplete as err:
        print(f"[georobust] not complete: {err}\n[georobust] nothing was rendered for it; its checkpoints, "
              "logs and stored models are saved: run the same command again to continue", file=sys.stderr)
        return EXIT_INCOMPLETE
    except (ParameterError, ChapterFailed, FileNotFoundError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
