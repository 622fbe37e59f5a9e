"""Figure export with stable names: ``<name>.pdf`` and ``<name>.png`` side by side."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def export(fig, name: str, folder: str | os.PathLike, dpi: int = 160) -> dict[str, Path]:
    """Write ``fig`` as ``folder/name.pdf`` and ``folder/name.png``, atomically.

    The PDF carries no creation date, so the same figure gives the same bytes.
    """
    if not name or any(c in name for c in "/\\ ") or name.startswith("."):
        raise ValueError(f"figure name must be a plain file stem without spaces or slashes; got {name!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for ext, extra in (("pdf", {"metadata": {"CreationDate": None}}), ("png", {"dpi": dpi})):
        target = folder / f"{name}.{ext}"
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=f".{ext}", dir=folder)
        os.close(fd)
        try:
            fig.savefig(tmp, format=ext, bbox_inches="tight", **extra)
            os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; figures are published
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        out[ext] = target
    return out
