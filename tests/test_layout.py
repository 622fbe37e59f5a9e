"""The package's layout: subpackages mirror the book's parts, and imports only run down the layers.

The rule (stated in ``georobust/__init__.py``): a module may import from its own subpackage and
from subpackages of a strictly lower rank in ``georobust.LAYERS``. Every import statement of every
module under ``src/georobust`` (top level or inside functions) is parsed and checked.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import georobust

SRC = Path(georobust.__file__).parent


def _imported_subpackages(path: Path, src: Path) -> set[tuple[str, int]]:
    """(subpackage, line) for every georobust subpackage that ``path`` imports."""
    parts = path.relative_to(src).with_suffix("").parts  # e.g. ("smoothing", "logs")
    package = ["georobust", *parts[:-1]]  # the package a relative import starts from
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
                targets = [mod] if node.module else [f"{mod}.{a.name}" for a in node.names]
            else:
                mod = node.module or ""
                targets = [mod] if mod != "georobust" else [f"georobust.{a.name}" for a in node.names]
        for t in targets:
            bits = t.split(".")
            if bits[0] == "georobust" and len(bits) > 1 and bits[1] in georobust.LAYERS:
                found.add((bits[1], node.lineno))
    return found


def _violations(src: Path = SRC) -> list[str]:
    bad = []
    for path in sorted(src.rglob("*.py")):
        rel = path.relative_to(src)
        if len(rel.parts) == 1:
            continue  # georobust/__init__.py holds only the version and the layer table
        own = rel.parts[0]
        for sub, line in _imported_subpackages(path, src):
            if sub != own and georobust.LAYERS[sub] >= georobust.LAYERS[own]:
                bad.append(f"{rel}:{line} imports georobust.{sub} (rank {georobust.LAYERS[sub]}) "
                           f"from georobust.{own} (rank {georobust.LAYERS[own]})")
    return bad


def test_every_subpackage_imports_and_says_what_it_holds():
    for name in georobust.LAYERS:
        mod = importlib.import_module(f"georobust.{name}")
        assert mod.__doc__ and len(mod.__doc__.strip()) > 80, name
        assert mod.__all__ and all(hasattr(mod, n) for n in mod.__all__), name


def test_no_flat_module_is_left_at_the_top():
    assert sorted(p.name for p in SRC.glob("*.py")) == ["__init__.py"]
    assert {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()} == set(georobust.LAYERS)


def test_imports_only_run_down_the_layers():
    assert _violations() == []


def test_the_check_catches_an_upward_import(tmp_path):
    """A planted upward import (core importing smoothing, relative and absolute) is reported."""
    fake = tmp_path / "georobust"
    for sub in georobust.LAYERS:
        (fake / sub).mkdir(parents=True)
        (fake / sub / "__init__.py").write_text("")
    (fake / "__init__.py").write_text("")
    (fake / "core" / "bad.py").write_text("def f():\n    from ..smoothing import Smooth\n")
    (fake / "core" / "worse.py").write_text("import georobust.book.runner\n")
    (fake / "regularizers" / "side.py").write_text("from georobust import smoothing\n")
    (fake / "smoothing" / "ok.py").write_text("from ..core import zoo\nfrom . import smooth\n")
    bad = _violations(fake)
    assert len(bad) == 3 and any("core/bad.py" in b for b in bad) and any("core/worse.py" in b for b in bad)
    assert any("regularizers/side.py" in b for b in bad)


@pytest.mark.parametrize("name", sorted(georobust.LAYERS))
def test_subpackages_import_in_a_fresh_interpreter(name):
    import subprocess
    import sys

    subprocess.run([sys.executable, "-c", f"import georobust.{name}"], check=True)
