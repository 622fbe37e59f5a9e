"""Checks of a built HTML page: links and anchors (static), MathJax and figures (headless Chromium)."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-quic"]


class Page(HTMLParser):
    """Collects ids, links, images and MathJax containers of one HTML document."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids, self.links, self.images = set(), [], []
        self.math_blocks = 0          # Sphinx's <span class="math"> / <div class="math">
        self.mjx = 0                  # <mjx-container> made by MathJax
        self.mjx_errors = 0           # <mjx-merror>: TeX that MathJax could not typeset
        self.figures = 0
        self.text = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        if tag == "img" and a.get("src"):
            self.images.append(a["src"])
        if tag in ("span", "div") and "math" in (a.get("class") or "").split():
            self.math_blocks += 1
        if tag == "mjx-container":
            self.mjx += 1
        if tag == "mjx-merror":
            self.mjx_errors += 1
        if tag == "figure":
            self.figures += 1

    def handle_data(self, data):
        self.text.append(data)


def parse(html: str) -> Page:
    p = Page()
    p.feed(html)
    return p


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def rendered_dom(page: Path, budget_ms: int = 20000) -> str:
    """The DOM of ``page`` after its scripts ran (MathJax typesetting included)."""
    exe = chromium()
    if exe is None:
        raise RuntimeError("headless Chromium is needed: apt-get install chromium (make test does it)")
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run(
            [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}",
             "--dump-dom", page.resolve().as_uri()],
            capture_output=True, text=True, timeout=120,
        )
    if proc.returncode != 0 or "<html" not in proc.stdout:
        raise RuntimeError(f"chromium failed on {page}: {proc.stderr[-2000:]}")
    return proc.stdout


def screenshot(page: Path, out: Path, size: str = "1280,2400") -> Path:
    exe = chromium()
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=20000",
                        f"--window-size={size}", f"--screenshot={out}", page.resolve().as_uri()],
                       capture_output=True, timeout=120, check=True)
    return out


def broken_links(page: Path, site: Path) -> list[str]:
    """Relative links of ``page`` whose file, or whose #anchor in that file, does not exist."""
    cache: dict[Path, set] = {}
    bad = []
    for href in parse(page.read_text(encoding="utf-8")).links:
        parts = urlsplit(href)
        if parts.scheme or href.startswith("//") or href.startswith("mailto:"):
            continue
        target = (page.parent / unquote(parts.path)).resolve() if parts.path else page.resolve()
        if target.is_dir():
            target = target / "index.html"
        if not target.exists():
            bad.append(href)
            continue
        if parts.fragment and target.suffix == ".html":
            if target not in cache:
                cache[target] = parse(target.read_text(encoding="utf-8")).ids
            if parts.fragment not in cache[target]:
                bad.append(href)
    return bad


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    if head[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path} is not a PNG")
    return struct.unpack(">II", head[16:24])


def image_problems(page: Path) -> list[str]:
    """Images of ``page`` that are missing, empty, or not decodable PNGs/SVGs."""
    bad = []
    for src in parse(page.read_text(encoding="utf-8")).images:
        if src.startswith("data:") or urlsplit(src).scheme:
            continue
        f = (page.parent / unquote(urlsplit(src).path)).resolve()
        if not f.exists() or f.stat().st_size == 0:
            bad.append(f"{src}: missing")
        elif f.suffix == ".png":
            w, h = png_size(f)
            if w < 50 or h < 50:
                bad.append(f"{src}: {w}x{h}")
    return bad


__all__ = ["parse", "rendered_dom", "broken_links", "image_problems", "chromium", "screenshot", "os"]
