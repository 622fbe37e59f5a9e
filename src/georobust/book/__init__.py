"""The book machinery: parameters and profiles, the chapter runner, provenance, figures, run
records and tables.

* :mod:`~georobust.book.params` and ``profiles.yml`` — every chapter parameter, declared once.
* :mod:`~georobust.book.chapter` — :class:`Chapter`: validated parameters, seeds, provenance
  banner, glue, figures, log folders.
* :mod:`~georobust.book.runner` — ``python -m georobust.book list | run | build``.
* :mod:`~georobust.book.runs` — the ``run.json`` record of a folder of result logs.
* :mod:`~georobust.book.published` — published numbers (``data/published/``) beside ours, with the
  standard error of the difference.
* :mod:`~georobust.book.figures`, :mod:`~georobust.book.tables` — figure export, Markdown tables.

Layer 2 (the top): may import from every other subpackage; nothing imports from it.
"""

from . import chapter, figures, params, published, runner, runs, tables
from .chapter import REPO_ROOT, Chapter
from .params import ParameterError, resolve
from .runner import ChapterFailed, ChapterIncomplete, build, main, run_chapter
from .runs import open_run, read_run, update_run
from .tables import counted, markdown_table

__all__ = ["chapter", "figures", "params", "published", "runner", "runs", "tables", "REPO_ROOT", "Chapter", "ParameterError",
           "resolve", "ChapterFailed", "ChapterIncomplete", "build", "main", "run_chapter", "open_run", "read_run", "update_run",
           "markdown_table", "counted"]
