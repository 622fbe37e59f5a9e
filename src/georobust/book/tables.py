"""Tables for the book's pages."""

from __future__ import annotations


def markdown_table(header, rows) -> str:
    """A Markdown table: ``header`` (column titles) and ``rows`` (lists of already formatted cells)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
