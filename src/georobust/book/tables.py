"""Tables for the book's pages."""

from __future__ import annotations


def markdown_table(header, rows) -> str:
    """A Markdown table: ``header`` (column titles) and ``rows`` (lists of already formatted cells)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def counted(n: int, noun: str, plural: str | None = None, zero: str = "no") -> str:
    """``n`` and ``noun`` with the number agreeing: "no groups", "1 group", "3 groups" (``plural``
    for irregular nouns; ``zero`` replaces 0)."""
    n = int(n)
    word = noun if n == 1 else (plural or noun + "s")
    return f"{zero if n == 0 else f'{n:,}'} {word}"
