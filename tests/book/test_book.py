"""The chapters execute under the tiny profile, the book builds with warnings as errors, and the
built pages show typeset math, figures and working internal links in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

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
def test_the_set_up_cell_is_shown_collapsed(name):
    """Later cells use ``ch`` and ``P``: the cell that makes them is on the page (collapsed), so a
    reader can follow every cell."""
    import jupytext

    nb = jupytext.read(REPO / "notebooks" / f"{name}.md")
    setup = [c for c in nb.cells if c.cell_type == "code" and "ch = Chapter(" in c.source]
    assert len(setup) == 1 and "hide-input" in setup[0].metadata.get("tags", [])
    assert "remove-cell" not in setup[0].metadata.get("tags", []) and "remove-input" not in setup[0].metadata.get("tags", [])


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
    figures = list((tiny_book.root / "book" / "figures" / "tiny").glob(f"{name}-*.pdf"))
    assert figures, f"{name} exported no figure"
    for pdf in figures:
        png = pdf.with_suffix(".png")
        assert png.exists()
        data = pdf.read_bytes()
        assert b"CreationDate" not in data
        assert f"georobust chapter {name}".encode() in data and b"profile tiny" in data and b"commit" in data
        assert round(_png_dpi(png)) >= 200, png  # stored as pixels per metre (7874 for 200 dpi)


def _png_dpi(path) -> float:
    """Horizontal resolution of a PNG from its pHYs chunk (pixels per metre -> dpi)."""
    import struct

    data = path.read_bytes()
    i = data.find(b"pHYs")
    assert i > 0, f"{path} has no resolution chunk"
    ppm_x, _, unit = struct.unpack(">IIB", data[i + 4:i + 13])
    assert unit == 1
    return ppm_x * 0.0254


@pytest.mark.parametrize("name", CHAPTERS)
def test_no_stray_value_is_shown_on_the_page(tiny_book, name):
    """A visible cell whose only output is a bare repr (a cell ending with an expression, such as
    a dict of paths or a glued string) prints noise into the chapter."""
    nb = nbformat.read(tiny_book.root / "book" / "chapters" / f"{name}.ipynb", as_version=4)
    stray = [(i, o["data"]["text/plain"][:60]) for i, c in enumerate(nb.cells) if c.cell_type == "code"
             and "remove-cell" not in c.metadata.get("tags", []) and "remove-output" not in c.metadata.get("tags", [])
             for o in c.get("outputs", []) if o.get("output_type") == "execute_result" and set(o["data"]) == {"text/plain"}]
    assert not stray, f"{name}: cells print bare values: {stray}"


# what a reader should not see: Python reprs and template phrasing
RAW = [(r"\{'[^']*': ", "a dict repr"), (r"\barray\(\[", "a numpy array repr"), (r"\btensor\(", "a tensor repr"),
       (r"\[\s*-?\d+\.\d*(e-?\d+)?\s+-?\d+\.\d*", "a printed numpy array"),
       (r"\w\(s\)", "an '(s)' template"),
       (r"(?<![\d.,])1 (runs|groups|seeds|images|times|values|points|epochs|samples|steps|draws|starts|classes)\b",
        "a plural after 1"),
       (r"(?<![\d.,])0 (times?|values?|groups?)\b", "a bare 0 count")]


def reader_visible_text(nb):
    """(cell index, text) of everything a reader sees from the outputs: visible streams, displayed
    values of visible cells, and every glued value (glue shows wherever the prose refers to it)."""
    for i, cell in enumerate(nb.cells):
        tags = cell.metadata.get("tags", [])
        hidden = "remove-cell" in tags or "remove-output" in tags
        for o in cell.get("outputs", []):
            if o.get("output_type") == "stream" and o.get("name") == "stdout" and not hidden:
                yield i, o["text"]
            glued = bool(o.get("metadata", {}).get("scrapbook"))
            if glued or not hidden:
                for key in ("text/markdown", "text/html") if not glued else ("text/plain", "text/markdown", "text/html"):
                    value = o.get("data", {}).get(key)
                    if isinstance(value, str) or isinstance(value, list):
                        yield i, "".join(value)


def text_problems(nb) -> list[str]:
    found = []
    for i, text in reader_visible_text(nb):
        for pattern, what in RAW:
            for m in re.finditer(pattern, text):
                found.append(f"cell {i}: {what}: {text[max(0, m.start() - 40):m.end() + 20]!r}")
        lines = text.splitlines()
        if sum(len(re.findall(r"\S {2,}\S", line)) >= 2 for line in lines) >= 3 and "|" not in text[:3]:
            found.append(f"cell {i}: a fixed-width text table: {text[:80]!r}")
    return found


def test_text_checks_catch_reprs_and_templates():
    bad = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(outputs=[
        nbformat.v4.new_output("stream", name="stdout", text="acc: {'top-1': 0.78}\n"),
        nbformat.v4.new_output("display_data", data={"text/markdown": "we saw 1 groups and 2 time(s)"}),
        nbformat.v4.new_output("stream", name="stdout", text="eta  clean  robust\n0.1  0.9  0.5\n0.2  0.8  0.6\n"),
    ])])
    bad.cells[0].outputs.append(nbformat.v4.new_output("stream", name="stdout", text="r : [0.  1.5 2. ]\n"))
    found = " ".join(text_problems(bad))
    for what in ("a dict repr", "a plural after 1", "'(s)' template", "fixed-width", "printed numpy array"):
        assert what in found, what
    good = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(outputs=[
        nbformat.v4.new_output("display_data", data={"text/markdown": "| a | b |\n|---|---|\n| 1 run | 0.5 |"})])])
    assert text_problems(good) == []


@pytest.mark.parametrize("name", CHAPTERS)
def test_no_repr_or_template_text_in_the_outputs(tiny_book, name):
    nb = nbformat.read(tiny_book.root / "book" / "chapters" / f"{name}.ipynb", as_version=4)
    assert text_problems(nb) == []


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


PAGES = ["book/intro", "book/run-it-yourself", "book/bibliography"] + [f"book/chapters/{c}" for c in CHAPTERS]


@pytest.mark.parametrize("page", PAGES)
def test_no_broken_internal_links(built_book, page):
    html = built_book.html / f"{page}.html"
    assert html.exists(), page
    assert htmlcheck.broken_links(html, built_book.html) == []


def test_the_map_links_every_chapter_it_names(built_book):
    """Every chapter that data/survey/map.yml names and the book contains is linked from the map's
    page, and each link resolves; a chapter not yet in the book is named as forthcoming."""
    from georobust.book import survey

    html = built_book.html / "book" / "chapters" / "survey-map.html"
    page = htmlcheck.parse(html.read_text(encoding="utf-8"))
    linked = {Path(link.split("#")[0]).stem for link in page.links if ".html" in link and "://" not in link}
    named = {c for node in survey.load_map()["nodes"] for c in node.get("chapters", [])}
    in_book = survey.book_chapters(built_book.root / "_toc.yml")
    assert named & in_book, "the map links no chapter"
    assert sorted((named & in_book) - linked) == [], "chapters of the map that its page does not link"
    assert htmlcheck.broken_links(html, built_book.html) == []


@pytest.mark.parametrize("name", CHAPTERS)
def test_chapter_page_shows_profile_figures_and_no_raw_glue(built_book, name):
    html = built_book.html / "book" / "chapters" / f"{name}.html"
    page = htmlcheck.parse(html.read_text(encoding="utf-8"))
    text = " ".join(page.text)
    assert re.search(r"Executed with the\s+tiny\s+profile", text), "the page does not say which profile produced it"
    assert "injected" not in text.lower() or "Parameters" not in text
    assert page.figures >= 1 and page.images, "no figure on the page"
    pdfs = [link for link in page.links if link.endswith(".pdf") and "_downloads/" in link]
    assert len(pdfs) >= page.figures, f"{page.figures} figures but {len(pdfs)} links to PDFs"
    for link in pdfs:
        assert (html.parent / link).resolve().exists(), link
        assert Path(link).name.startswith(f"{name}-"), link
    assert htmlcheck.image_problems(html) == []
    assert "{glue" not in text and "glue:text" not in text
    # the reader's text: prose and outputs, not the (collapsed) code of the cells
    prose = " ".join(htmlcheck.parse(re.sub(r'<div class="highlight-ipython3[^"]*"><div class="highlight"><pre>.*?</pre>',
                                            "", html.read_text(encoding="utf-8"), flags=re.S)).text)
    raw = [f"{what}: {prose[max(0, m.start() - 40):m.end() + 20]!r}" for pattern, what in RAW
           for m in re.finditer(pattern, prose)]
    assert raw == [], "the page shows reprs or template phrasing (prose included)"


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
