"""The chapters execute under the tiny profile, the book builds with warnings as errors, and the
built pages show typeset math, figures and working internal links in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import nbformat
import pytest
import yaml

import htmlcheck
from conftest import REPO
from georobust.book.params import chapters

pytestmark = pytest.mark.slow
CHAPTERS = chapters()


def _glued(nb) -> dict:
    """key -> text/plain of every value the notebook glued."""
    out = {}
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            scrap = o.get("metadata", {}).get("scrapbook", {})
            key = scrap.get("mime_prefix", "") + "text/plain"
            if scrap.get("name") and key in o.get("data", {}):
                out[scrap["name"]] = o["data"][key]
    return out


# -- sources ---------------------------------------------------------------------------------
def test_every_chapter_has_a_notebook_and_a_toc_entry():
    toc = (REPO / "_toc.yml").read_text()
    for name in CHAPTERS:
        assert (REPO / "notebooks" / f"{name}.md").exists(), name
        assert f"book/chapters/{name}" in toc, name


@pytest.mark.parametrize("name", CHAPTERS)
def test_notebook_source_has_one_parameters_cell_and_no_outputs(name):
    import jupytext

    nb = jupytext.read(REPO / "notebooks" / f"{name}.md")
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{name}: {len(tagged)} cells tagged parameters"
    assert "profile" in tagged[0].source and "overrides" in tagged[0].source
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code")


# -- execution -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", CHAPTERS)
def test_chapter_executes_under_tiny_profile(tiny_book, name):
    assert tiny_book.errors[name] is None, str(tiny_book.errors[name])
    nb = nbformat.read(tiny_book.root / "book" / "chapters" / f"{name}.ipynb", as_version=4)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "remove-cell" in injected[0].metadata["tags"]
    assert nb.metadata["georobust"]["profile"] == "tiny"
    assert _glued(nb).get("profile") == "'tiny'"
    figures = list((tiny_book.root / "book" / "figures").glob(f"{name}-*.pdf"))
    assert figures, f"{name} exported no figure"
    for pdf in figures:
        assert pdf.with_suffix(".png").exists()
        assert b"CreationDate" not in pdf.read_bytes()


@pytest.mark.parametrize("name", CHAPTERS)
def test_no_stray_value_is_shown_on_the_page(tiny_book, name):
    """A visible cell whose only output is a bare repr (a cell ending with an expression, such as
    a dict of paths or a glued string) prints noise into the chapter."""
    nb = nbformat.read(tiny_book.root / "book" / "chapters" / f"{name}.ipynb", as_version=4)
    stray = [(i, o["data"]["text/plain"][:60]) for i, c in enumerate(nb.cells) if c.cell_type == "code"
             and "remove-cell" not in c.metadata.get("tags", []) and "remove-output" not in c.metadata.get("tags", [])
             for o in c.get("outputs", []) if o.get("output_type") == "execute_result" and set(o["data"]) == {"text/plain"}]
    assert not stray, f"{name}: cells print bare values: {stray}"


def test_wrong_parameter_fails_before_any_work(tmp_path):
    for args, word in ((["-p", "sigma", "-1"], "'sigma'"), (["-p", "sigmaa", "0.5"], "'sigmaa'"),
                       (["--profile", "huge"], "'huge'")):
        proc = subprocess.run([sys.executable, "-m", "georobust.book", "run", "--chapter", "cohen-radius",
                               "--book-dir", str(tmp_path), *args], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert word in proc.stderr and "Traceback" not in proc.stderr
        assert not (tmp_path / "chapters").exists(), "a kernel ran although the parameter was wrong"


def test_rerun_with_another_parameter_changes_the_output(tiny_book, tmp_path):
    from georobust.book import run_chapter

    path = run_chapter("cohen-radius", "tiny", {"sigma": 0.25}, book_dir=tmp_path, quiet=True)
    new = _glued(nbformat.read(path, as_version=4))
    old = _glued(nbformat.read(tiny_book.root / "book" / "chapters" / "cohen-radius.ipynb", as_version=4))
    changed = [k for k in old if k in new and old[k] != new[k]]
    assert changed, "changing sigma changed no glued number"
    banner = json.dumps(nbformat.read(path, as_version=4).cells[:4])
    assert "sigma = 0.25" in banner


# -- the built book --------------------------------------------------------------------------
def test_book_builds_with_warnings_as_errors(built_book):
    assert built_book.index.exists()
    assert (built_book.html / "mathjax" / "tex-chtml.js").exists(), "MathJax is not vendored into the site"
    for page in built_book.html.rglob("*.html"):
        assert "cdn.jsdelivr.net/npm/mathjax" not in page.read_text(encoding="utf-8"), page


PAGES = ["book/intro", "book/bibliography"] + [f"book/chapters/{c}" for c in CHAPTERS]


@pytest.mark.parametrize("page", PAGES)
def test_no_broken_internal_links(built_book, page):
    html = built_book.html / f"{page}.html"
    assert html.exists(), page
    assert htmlcheck.broken_links(html, built_book.html) == []


@pytest.mark.parametrize("name", CHAPTERS)
def test_chapter_page_shows_profile_figures_and_no_raw_glue(built_book, name):
    html = built_book.html / "book" / "chapters" / f"{name}.html"
    page = htmlcheck.parse(html.read_text(encoding="utf-8"))
    text = " ".join(page.text)
    assert re.search(r"Executed with the\s+tiny\s+profile", text), "the page does not say which profile produced it"
    assert "injected" not in text.lower() or "Parameters" not in text
    assert page.figures >= 1 and page.images, "no figure on the page"
    assert htmlcheck.image_problems(html) == []
    assert "{glue" not in text and "glue:text" not in text


def _require_browser():
    if htmlcheck.chromium() is None:
        if os.environ.get("CI"):
            pytest.fail("headless Chromium is missing in CI; make test installs it (apt-get install chromium)")
        pytest.skip("headless Chromium not installed (apt-get install chromium)")


@pytest.mark.parametrize("name", CHAPTERS)
def test_math_is_typeset_by_mathjax_in_chromium(built_book, name):
    _require_browser()
    html = built_book.html / "book" / "chapters" / f"{name}.html"
    dom = htmlcheck.parse(htmlcheck.rendered_dom(html))
    assert dom.math_blocks > 0, "the chapter has no math"
    assert dom.mjx >= dom.math_blocks, f"only {dom.mjx} of {dom.math_blocks} math blocks were typeset"
    assert dom.mjx_errors == 0, "MathJax reported TeX errors"
