"""The bibliography: every entry identified (DOI, arXiv id or URL) and checked (a row in
data/published/bibliography-checks.md), every cited key present, every entry cited, no duplicate.
Fast: it reads files, it executes no notebook."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from conftest import REPO
from georobust.book import survey

BIB = REPO / "book" / "references.bib"
CHECKS = REPO / "data" / "published" / "bibliography-checks.md"

# entries allowed to be uncited for now (none: the data-dependent smoothing chapters cite theirs)
NOT_YET_CITED: set = set()


def _pages() -> list:
    """Every page source that can cite: chapter notebooks (survey pages included) and book/*.md."""
    return sorted((REPO / "notebooks").glob("*.md")) + sorted((REPO / "book").glob("*.md"))


def _cited() -> dict[str, set[str]]:
    return {str(p.relative_to(REPO)): survey.cited_keys(p.read_text(encoding="utf-8")) for p in _pages()}


def _data_citations() -> set[str]:
    """Keys cited by the survey data files, whose pages render them as citations."""
    bib = survey.read_bib(BIB)
    keys = {k for n in survey.load_map(bib=bib)["nodes"] for k in n.get("refs", [])}
    keys |= {m["key"] for m in survey.timeline(bib=bib)[0]}
    keys |= {r["key"] for r in survey.read_certified(bib=bib)}
    keys |= {k for p in survey.load_open_problems(bib=bib) for k in p.get("refs", [])}
    return keys


def test_at_least_80_entries_each_with_an_identifier():
    entries = survey.read_bib(BIB)
    assert len(entries) >= 80, f"only {len(entries)} entries"
    missing = [k for k, e in entries.items() if not survey.identifiers(e)]
    assert missing == [], f"entries with no DOI, arXiv id or URL: {missing}"


def test_no_duplicate_key_doi_or_arxiv_id():
    keys = survey.keys_in_order(BIB)
    assert [k for k, n in Counter(keys).items() if n > 1] == []
    seen: dict[tuple[str, str], str] = {}
    for key, entry in survey.read_bib(BIB).items():
        for kind, value in survey.identifiers(entry):
            if kind == "url":
                continue
            assert (kind, value) not in seen, f"{key} and {seen[(kind, value)]} share {kind} {value}"
            seen[(kind, value)] = key


def test_every_cited_key_is_in_the_bibliography():
    entries = survey.read_bib(BIB)
    missing = {page: sorted(keys - set(entries)) for page, keys in _cited().items() if keys - set(entries)}
    assert missing == {}, f"cited but not in book/references.bib: {missing}"


def test_every_entry_is_cited():
    cited = set().union(*_cited().values()) | _data_citations()
    uncited = sorted(set(survey.read_bib(BIB)) - cited - NOT_YET_CITED)
    assert uncited == [], f"entries nothing cites: {uncited}"


def test_the_allowlist_only_holds_real_entries():
    assert NOT_YET_CITED <= set(survey.read_bib(BIB))


def test_every_entry_says_where_it_was_checked():
    """A row per key in bibliography-checks.md; an entry that could not be checked says so in the .bib."""
    rows = dict(re.findall(r"^\| (\S+) \| (.+?) \| .+ \|$", CHECKS.read_text(encoding="utf-8"), re.M))
    entries = survey.read_bib(BIB)
    assert sorted(set(entries) - set(rows)) == [], "entries with no record of where they were checked"
    assert sorted(set(rows) - set(entries) - {"key"}) == [], "records of entries that are not in the .bib"
    for key, entry in entries.items():
        if "unchecked" in entry.get("note", "").lower():
            assert re.match(r"unchecked: \S", entry["note"]), f"{key}: say why it is unchecked"


def test_parser_and_citation_roles():
    text = "see {cite}`a,b` and {cite:t}`c` or {cite:p}`d`; {cite:ps}`e, f` but not `g`"
    assert survey.cited_keys(text) == {"a", "b", "c", "d", "e", "f"}
    entries = survey.read_bib(BIB)
    assert entries["cohen2019"]["year"] == "2019" and "Rosenfeld" in entries["cohen2019"]["author"]
    assert ("doi", "10.1098/rsta.1933.0009") in survey.identifiers(entries["neyman1933"])


def test_duplicate_key_is_caught(tmp_path):
    bib = tmp_path / "r.bib"
    bib.write_text("@misc{a, title = {x}, url = {u}}\n@misc{a, title = {y}, url = {v}}\n")
    with pytest.raises(ValueError, match="appears twice"):
        survey.read_bib(bib)


def test_a_stray_brace_is_caught(tmp_path):
    bib = tmp_path / "r.bib"
    bib.write_text("@misc{a, title = {x}, url = {u}}\n}\n@misc{b, title = {y}, url = {v}}\n")
    with pytest.raises(ValueError, match="entry 'a' .* single closing brace"):
        survey.read_bib(bib)
