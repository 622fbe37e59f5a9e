"""Figure export with stable names: ``<name>.pdf`` and ``<name>.png`` side by side, with provenance.

The PDF carries its provenance in its metadata (``Title``: the stable name; ``Subject``: chapter,
profile, overrides, data and commit; ``Creator``: georobust and its version) and no creation
date, so the same figure from the same run gives the same bytes. The PNG is written at 200 dpi
with the same text in its ``Description``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

PNG_DPI = 200


def export(fig, name: str, folder: str | os.PathLike, dpi: int = PNG_DPI,
           provenance: str | None = None, creator: str = "georobust") -> dict[str, Path]:
    """Write ``fig`` as ``folder/name.pdf`` and ``folder/name.png``, atomically.

    ``provenance`` (one line: how the figure was made) goes into the PDF's ``Subject`` and the
    PNG's ``Description``.
    """
    if not name or any(c in name for c in "/\\ ") or name.startswith("."):
        raise ValueError(f"figure name must be a plain file stem without spaces or slashes; got {name!r}")
    if dpi < PNG_DPI:
        raise ValueError(f"dpi must be at least {PNG_DPI} (figures are printed); got {dpi!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pdf_meta = {"CreationDate": None, "Title": name, "Creator": creator}
    png_meta = {"Title": name, "Software": creator}
    if provenance:
        pdf_meta["Subject"] = provenance
        png_meta["Description"] = provenance
    out = {}
    for ext, extra in (("pdf", {"metadata": pdf_meta}), ("png", {"dpi": dpi, "metadata": png_meta})):
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
