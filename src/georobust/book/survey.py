"""Data of the survey pages: the bibliography, the map of methods, the timeline and the table of
published certified accuracies, each read from a committed file and checked as it is read.

- ``book/references.bib`` — :func:`read_bib` parses it (no BibTeX tool needed), :func:`cited_keys`
  finds the keys a page cites, :func:`identifiers` the DOI / arXiv id / URL of an entry.
- ``data/survey/map.yml`` — the methods, the column (family) each belongs to, what it builds on,
  the chapters that treat it and its references (:func:`load_map`, drawn by :func:`draw_map`).
- ``data/survey/timeline.yml`` — the milestones, each a bibliography key and one line; the year
  comes from the bibliography (:func:`timeline`, drawn by :func:`draw_timeline`).
- ``data/published/certified_accuracy.csv`` — published certified accuracies, one row a number
  with its citation key, setting and the place it was read (:func:`read_certified`).
"""

from __future__ import annotations

import csv
import re
import textwrap
from pathlib import Path

import yaml

from .chapter import REPO_ROOT

BIB = REPO_ROOT / "book" / "references.bib"
SURVEY = REPO_ROOT / "data" / "survey"
CERTIFIED = REPO_ROOT / "data" / "published" / "certified_accuracy.csv"

_ENTRY = re.compile(r"@(\w+)\s*\{\s*([^,\s]+)\s*,", re.M)
_FIELD = re.compile(r"\s*(\w+)\s*=\s*")
# {cite}`a,b`, {cite:t}`a`, {cite:p}`a`, {cite:ps}`a`, {cite:year}`a` ...
_CITE = re.compile(r"\{cite(?::[a-z]+)?\}`([^`]+)`")


def _braced(text: str, start: int) -> tuple[str, int]:
    """The content of the brace group (or quoted string, or bare word) at ``start``; the index after it."""
    if text[start] == "{":
        depth, i = 0, start
        while True:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                return text[start + 1:i], i + 1
            i += 1
    if text[start] == '"':
        end = text.index('"', start + 1)
        return text[start + 1:end], end + 1
    m = re.match(r"[^,\s}]+", text[start:])
    return m.group(0), start + m.end()


def read_bib(path: str | Path = BIB) -> dict[str, dict]:
    """key -> {"type": ..., field: value, ...} (field names lower-case) for every entry of ``path``.

    Raises ``ValueError`` on a key that appears twice."""
    text = Path(path).read_text(encoding="utf-8")
    entries: dict[str, dict] = {}
    matches = list(_ENTRY.finditer(text))
    for m, nxt in zip(matches, matches[1:] + [None]):
        key = m.group(2)
        if key in entries:
            raise ValueError(f"bibliography key {key!r} appears twice in {path}")
        entry, i = {"type": m.group(1).lower()}, m.end()
        while True:
            f = _FIELD.match(text, i)
            if not f:
                break
            value, i = _braced(text, f.end())
            entry[f.group(1).lower()] = " ".join(value.split())
            i = re.match(r"\s*,?", text[i:]).end() + i
        rest = text[i:nxt.start() if nxt else len(text)]
        if not re.fullmatch(r"\s*\}\s*", rest):
            raise ValueError(f"entry {key!r} of {path} does not end with a single closing brace: {rest.strip()[:40]!r}")
        entries[key] = entry
    return entries


def keys_in_order(path: str | Path = BIB) -> list[str]:
    """Every entry key as written, duplicates included (for the duplicate check)."""
    return [m.group(2) for m in _ENTRY.finditer(Path(path).read_text(encoding="utf-8"))]


def cited_keys(text: str) -> set[str]:
    """Keys cited in MyST text by ``{cite}``, ``{cite:t}``, ``{cite:p}`` ... roles."""
    return {k.strip() for group in _CITE.findall(text) for k in group.split(",") if k.strip()}


def identifiers(entry: dict) -> list[tuple[str, str]]:
    """("doi" | "arxiv" | "url", value) of an entry: its DOI, its arXiv id (``eprint`` with
    ``archiveprefix = arXiv``, or an ``arxiv`` field) and its URL."""
    out = []
    if entry.get("doi"):
        out.append(("doi", entry["doi"].lower()))
    if entry.get("eprint") and entry.get("archiveprefix", "arxiv").lower() == "arxiv":
        out.append(("arxiv", entry["eprint"]))
    if entry.get("arxiv"):
        out.append(("arxiv", entry["arxiv"]))
    if entry.get("url"):
        out.append(("url", entry["url"]))
    return out


_ACCENTS = {'"': "\u0308", "'": "\u0301", "`": "\u0300", "^": "\u0302", "~": "\u0303", "v": "\u030c"}


def detex(text: str) -> str:
    """TeX accents and braces to Unicode: ``M{\\"u}ller`` -> ``Müller``, ``{\\v{C}}encov`` -> ``Čencov``."""
    import unicodedata

    text = re.sub(r"\\([\"'`^~v])\{?(\w)\}?", lambda m: m.group(2) + _ACCENTS[m.group(1)], text)
    return unicodedata.normalize("NFC", text.replace("{", "").replace("}", ""))


def short_authors(entry: dict) -> str:
    """"Cohen et al." / "Hein and Andriushchenko" / "Ehlers" from the author field."""
    names = [n.strip() for n in detex(entry.get("author", "")).split(" and ") if n.strip()]
    last = [n.split(",")[0] if "," in n else n.split()[-1] for n in names]
    if not last:
        return "?"
    return last[0] if len(last) == 1 else f"{last[0]} and {last[1]}" if len(last) == 2 else f"{last[0]} et al."


def book_chapters(toc: str | Path = REPO_ROOT / "_toc.yml") -> set[str]:
    """Chapters that are in the book: a notebook in ``notebooks/`` and an entry in ``_toc.yml``."""
    text = Path(toc).read_text(encoding="utf-8")
    listed = set(re.findall(r"book/chapters/([\w-]+)", text))
    return {n for n in listed if (REPO_ROOT / "notebooks" / f"{n}.md").exists()}


# -- the map -------------------------------------------------------------------------------------
def load_map(path: str | Path = SURVEY / "map.yml", bib: dict | None = None) -> dict:
    """The map's columns and nodes; every parent must be a node and every reference a bib key."""
    spec = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    bib = read_bib() if bib is None else bib
    ids = [n["id"] for n in spec["nodes"]]
    if len(set(ids)) != len(ids):
        raise ValueError("a node id appears twice in the map")
    for n in spec["nodes"]:
        if n["column"] not in spec["columns"]:
            raise ValueError(f"node {n['id']!r}: unknown column {n['column']!r}")
        for p in n.get("builds_on", []):
            if p not in ids:
                raise ValueError(f"node {n['id']!r} builds on an unknown node {p!r}")
        for k in n.get("refs", []):
            if k not in bib:
                raise ValueError(f"node {n['id']!r} cites {k!r}, which is not in the bibliography")
    return spec


def map_positions(spec: dict) -> dict[str, tuple[float, float]]:
    """Node id -> (x, y): one column per family, nodes stacked in the file's order."""
    pos, rows = {}, {}
    for n in spec["nodes"]:
        col = list(spec["columns"]).index(n["column"])
        rows[col] = rows.get(col, -1) + 1
        pos[n["id"]] = (col, -rows[col])
    return pos


def draw_map(spec: dict, width: float = 15.0):
    """The map: one box a method, one column a family, an arrow from what it builds on."""
    import matplotlib.pyplot as plt

    pos = map_positions(spec)
    depth = max(-y for _, y in pos.values()) + 1
    fig, ax = plt.subplots(figsize=(width, 1.15 * depth + 1.2))
    colors = {c: v["color"] for c, v in spec["columns"].items()}
    for n in spec["nodes"]:
        x, y = pos[n["id"]]
        for p in n.get("builds_on", []):
            px, py = pos[p]
            # same column: straight to the next box, bowed out past the boxes in between
            rad = 0.12 if px != x else (0.0 if abs(py - y) <= 1 else -0.32 - 0.04 * abs(py - y))
            ax.annotate("", xy=(x, y), xytext=(px, py), zorder=1,
                        arrowprops=dict(arrowstyle="-|>", color="0.55", lw=0.9, shrinkA=26, shrinkB=26,
                                        connectionstyle=f"arc3,rad={rad}"))
    for n in spec["nodes"]:
        x, y = pos[n["id"]]
        label = "\n".join(textwrap.wrap(n["label"], 22))
        ax.text(x, y, label, ha="center", va="center", fontsize=8.2, zorder=2,
                bbox=dict(boxstyle="round,pad=0.4", fc=colors[n["column"]], ec="0.3", lw=0.6))
    for c, (name, v) in enumerate(spec["columns"].items()):
        ax.text(c, 0.75, "\n".join(textwrap.wrap(v["title"], 20)), ha="center", va="bottom",
                fontsize=9, fontweight="bold")
    ax.set_xlim(-0.6, len(spec["columns"]) - 0.4)
    ax.set_ylim(-depth + 0.4, 1.5)
    ax.axis("off")
    fig.tight_layout()
    return fig


# -- the timeline --------------------------------------------------------------------------------
def first_year(entry: dict) -> int:
    """The year a work first appeared: its arXiv year (from the id, ``YYMM.NNNNN``) when that is
    earlier than the year of the entry, else the entry's year."""
    year = int(entry["year"])
    m = re.match(r"(\d{2})(\d{2})\.\d{4,5}$", entry.get("eprint", ""))
    return min(year, 2000 + int(m.group(1))) if m else year


def timeline(path: str | Path = SURVEY / "timeline.yml", bib: dict | None = None) -> tuple[list[dict], dict]:
    """(milestones, strands): milestones {"key", "year", "who", "what", "strand"} sorted by year,
    the year (:func:`first_year`) and the authors read from the bibliography entry of ``key``;
    strands: name -> {"title", "color"}."""
    bib = read_bib() if bib is None else bib
    spec = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    rows = []
    for m in spec["milestones"]:
        if m["key"] not in bib:
            raise ValueError(f"milestone {m['what']!r} cites {m['key']!r}, which is not in the bibliography")
        e = bib[m["key"]]
        year = first_year(e)
        rows.append({"key": m["key"], "year": year, "who": short_authors(e), "what": m["what"],
                     "strand": m["strand"]})
    strands = spec["strands"]
    unknown = {r["strand"] for r in rows} - set(strands)
    if unknown:
        raise ValueError(f"milestones with unknown strands: {sorted(unknown)}")
    return sorted(rows, key=lambda r: (r["year"], list(strands).index(r["strand"]))), strands


def draw_timeline(rows: list[dict], strands: dict, since: int = 2013):
    """One row a milestone (in order of year), its dot at its year and coloured by its strand of
    research; works older than ``since`` share one slot at the left, labelled with their years."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    early = since - 2
    xs = [r["year"] if r["year"] >= since else early for r in rows]
    last = max(xs)
    fig, ax = plt.subplots(figsize=(12, 0.8 + 0.27 * len(rows)))
    for i, (r, x) in enumerate(zip(rows, xs)):
        color = strands[r["strand"]]["color"]
        ax.plot([early - 0.5, x], [-i, -i], color=color, lw=0.6, alpha=0.35, zorder=1)
        ax.plot(x, -i, "o", color=color, ms=6.5, mec="0.2", zorder=3)
        ax.text(x + 0.18, -i, f"{r['who']} ({r['year']}): {r['what']}", fontsize=7.6, va="center", ha="left")
    ticks = [early] + list(range(since, int(last) + 1))
    ax.set_xticks(ticks, [f"before {since}"] + [str(y) for y in ticks[1:]], fontsize=8)
    ax.set_xlim(early - 0.5, last + 4.2)
    ax.set_ylim(-len(rows) + 0.4, 0.8)
    ax.set_yticks([])
    ax.grid(axis="x", color="0.9", zorder=0)
    ax.spines[["top", "right", "left"]].set_visible(False)
    handles = [Line2D([], [], marker="o", ls="", color=v["color"], mec="0.2", label=v["title"]) for v in strands.values()]
    ax.legend(handles=handles, loc="upper right", fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


# -- published certified accuracies --------------------------------------------------------------
CERTIFIED_COLUMNS = ["dataset", "norm", "radius", "radius_label", "certified_accuracy", "method", "kind",
                     "network", "key", "setting", "read_from"]


def read_certified(path: str | Path = CERTIFIED, bib: dict | None = None) -> list[dict]:
    """Rows of the published certified-accuracy file, numbers as floats; every key must be in the
    bibliography and every row must say where its number was read."""
    bib = read_bib() if bib is None else bib
    with open(path, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(line for line in f if not line.startswith("#"))]
    for i, r in enumerate(rows, start=2):
        missing = [c for c in CERTIFIED_COLUMNS if c != "setting" and not (r.get(c) or "").strip()]
        if missing:
            raise ValueError(f"{path} row {i}: empty {', '.join(missing)}")
        if r["key"] not in bib:
            raise ValueError(f"{path} row {i}: key {r['key']!r} is not in the bibliography")
        r["radius"], r["certified_accuracy"] = float(r["radius"]), float(r["certified_accuracy"])
        if not 0 <= r["certified_accuracy"] <= 100:
            raise ValueError(f"{path} row {i}: certified accuracy {r['certified_accuracy']} is not a percentage")
    return rows


# MNIST results the book already keeps with their sources (data/published/): method -> bib key.
_VERIFIED_MNIST_KEYS = {"IBP": ("gowal2018", "verification"), "CROWN-IBP": ("zhang2020crownibp", "verification"),
                        "GloRo Nets": ("leino2021", "lipschitz"),
                        "LMT (baseline as reported in BCP README)": ("tsuzuku2018", "lipschitz")}
_SMOOTHING_MNIST = {"gaussian": ("Gaussian smoothing", "cohen2019"), "consistency": ("Consistency", "jeong2020"),
                    "smoothadv": ("SmoothAdv", "salman2019")}


def mnist_rows(radii=(0.5, 1.0, 1.5, 2.0)) -> list[dict]:
    """Rows in the format of :func:`read_certified` from the MNIST files of ``data/published/``:
    the verified accuracies of ``verification_mnist.csv`` whose method is in the bibliography (the
    mean where one setting has several runs), and the certified accuracies of the randomized
    smoothing logs of ``smoothing_mnist.csv`` (mean over the released runs, full test set)."""
    from . import published

    out: dict[tuple, list] = {}
    with open(published.PUBLISHED_DIR / "verification_mnist.csv", newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            if r["metric"] != "verified_accuracy" or r["method"] not in _VERIFIED_MNIST_KEYS:
                continue
            key, kind = _VERIFIED_MNIST_KEYS[r["method"]]
            net = r["network"].split(" (")[0]
            where = f"{r['source_url_or_repo']} {r['path']} @{r['commit_or_version'][:12]}"
            note = r["method"].split(" (")[1].rstrip(")") if " (" in r["method"] else "the authors' repository README"
            out.setdefault((r["threat_model"], float(r["epsilon"]), r["method"].split(" (")[0], net, key, kind, where,
                            note), []).append(float(r["value_percent"]))
    rows = []
    for (norm, eps, method, net, key, kind, where, note), vals in out.items():
        setting = note + (f"; mean of {len(vals)} runs" if len(vals) > 1 else "")
        rows.append({"dataset": "MNIST", "norm": norm, "radius": eps, "radius_label": f"{eps:g}",
                     "certified_accuracy": sum(vals) / len(vals), "method": method, "kind": kind, "network": net,
                     "key": key, "setting": setting, "read_from": where})
    for name, (method, key) in _SMOOTHING_MNIST.items():
        sigmas = sorted({r["sigma"] for r in published.read_published() if r["method"] == name})
        for s in sigmas:
            summary = published.published_summary(name, s)
            for rad in radii:
                m = summary[f"certified_accuracy@{rad}"]
                src = str(m["sources"][0])
                rows.append({"dataset": "MNIST", "norm": "l2", "radius": rad, "radius_label": f"{rad:g}",
                             "certified_accuracy": 100 * m["mean"], "method": f"{method}, σ = {s:g}",
                             "kind": "smoothing", "network": "LeNet", "key": key,
                             "setting": f"mean of {m['runs']} released runs, 10,000 test images",
                             "read_from": "data/published/smoothing_mnist.csv: recomputed from the per-image logs "
                                          f"released in {src.split('/data/')[0]}"})
    return rows


def results_table(rows: list[dict], dataset: str, norm: str) -> tuple[str, list[str]]:
    """(Markdown table, its sources): one line a (method, network, setting), one column a radius,
    each number followed by the number of its source in the list under the table."""
    from .tables import markdown_table

    sel = [r for r in rows if r["dataset"] == dataset and r["norm"] == norm]
    labels: dict[float, str] = {}
    for r in sel:
        labels.setdefault(r["radius"], r["radius_label"])
    radii = sorted(labels.items())
    sources: list[str] = []
    lines: dict[tuple, dict] = {}
    for r in sel:
        if r["read_from"] not in sources:
            sources.append(r["read_from"])
        line = lines.setdefault((r["method"], r["network"], r["setting"], r["key"], r["kind"]), {})
        line[r["radius"]] = f"{r['certified_accuracy']:.1f}"
        line["src"] = sources.index(r["read_from"]) + 1
    body = []
    for (method, net, setting, key, kind), cells in sorted(lines.items(), key=lambda kv: (kv[0][4], kv[0][0])):
        body.append([method, kind, net] + [cells.get(rad, "–") for rad, _ in radii]
                    + [f"{{cite:t}}`{key}`", setting or "as published", f"[{cells['src']}]"])
    header = ["method", "kind", "network"] + [f"r = {label}" for _, label in radii] + ["paper", "setting", "read from"]
    return markdown_table(header, body), sources


# -- open problems -------------------------------------------------------------------------------
def load_open_problems(path: str | Path = SURVEY / "open_problems.yml", bib: dict | None = None) -> list[dict]:
    """The open problems, each with ``title``, ``open``, ``refs`` (bib keys, checked) and ``shows``
    (chapter -> what it shows)."""
    bib = read_bib() if bib is None else bib
    problems = yaml.safe_load(Path(path).read_text(encoding="utf-8"))["problems"]
    for p in problems:
        missing = [k for k in p.get("refs", []) if k not in bib]
        if missing:
            raise ValueError(f"open problem {p['id']!r} cites keys not in the bibliography: {missing}")
        p["shows"] = p.get("shows") or {}
    return problems


def draw_coverage(problems: list[dict], in_book: set[str]):
    """A grid: one row an open problem, one column a chapter; a filled mark where the chapter shows
    something about the problem, an open one where that chapter is forthcoming."""
    import matplotlib.pyplot as plt

    chapters = []
    for p in problems:
        chapters += [c for c in p["shows"] if c not in chapters]
    fig, ax = plt.subplots(figsize=(1.5 + 0.55 * len(chapters), 1.2 + 0.45 * len(problems)))
    for i, p in enumerate(problems):
        for c in p["shows"]:
            j = chapters.index(c)
            filled = c in in_book
            ax.plot(j, -i, "s", ms=13, color="tab:blue" if filled else "white", mec="tab:blue", mew=1.5)
    ax.set_xticks(range(len(chapters)), chapters, rotation=40, ha="right", fontsize=8)
    ax.set_yticks([-i for i in range(len(problems))], [p["title"] for p in problems], fontsize=9)
    ax.set_xlim(-0.7, len(chapters) - 0.3)
    ax.set_ylim(-len(problems) + 0.4, 0.6)
    ax.grid(color="0.9")
    ax.set_axisbelow(True)
    fig.tight_layout()
    return fig
