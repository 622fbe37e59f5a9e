"""The survey pages' data files are read and checked by georobust.book.survey: a wrong key, an
unknown node or an empty source is refused with a message naming it. Fast: no notebook runs."""

from __future__ import annotations

import pytest

from georobust.book import survey

BIB = {"a2019": {"type": "misc", "year": "2019", "author": "Doe, Jane and Roe, R.", "eprint": "1811.00001"},
       "b2020": {"type": "misc", "year": "2020", "author": "Poe, E."}}


def test_the_committed_files_are_consistent():
    bib = survey.read_bib()
    spec = survey.load_map(bib=bib)
    assert {n["column"] for n in spec["nodes"]} == set(spec["columns"])
    rows, strands = survey.timeline(bib=bib)
    assert [r["year"] for r in rows] == sorted(r["year"] for r in rows) and set(strands) >= {r["strand"] for r in rows}
    certified = survey.read_certified(bib=bib) + survey.mnist_rows()
    assert {r["dataset"] for r in certified} == {"MNIST", "CIFAR-10", "ImageNet"}
    assert {r["norm"] for r in certified} == {"l2", "linf"}
    assert {r["kind"] for r in certified} >= {"smoothing", "verification"}
    assert all(0 <= r["certified_accuracy"] <= 100 and r["read_from"] for r in certified)
    assert survey.load_open_problems(bib=bib)


def test_first_year_is_the_arxiv_year_when_earlier():
    assert survey.first_year(BIB["a2019"]) == 2018
    assert survey.first_year(BIB["b2020"]) == 2020
    assert survey.short_authors(BIB["a2019"]) == "Doe and Roe" and survey.short_authors(BIB["b2020"]) == "Poe"
    assert survey.short_authors({"author": "M{\\\"u}ller, Mark and Eckert, F. and Vechev, M."}) == "Müller et al."
    assert survey.detex("{\\v{C}}encov, Vor{\\'a}{\\v{c}}ek") == "Čencov, Voráček"


def test_a_map_with_an_unknown_node_or_key_is_refused(tmp_path):
    path = tmp_path / "map.yml"
    path.write_text("columns: {c: {title: C, color: white}}\n"
                    "nodes:\n  - {id: x, label: X, column: c, builds_on: [y], refs: [a2019]}\n")
    with pytest.raises(ValueError, match="builds on an unknown node 'y'"):
        survey.load_map(path, bib=BIB)
    path.write_text("columns: {c: {title: C, color: white}}\nnodes:\n  - {id: x, label: X, column: c, refs: [zz]}\n")
    with pytest.raises(ValueError, match="cites 'zz'"):
        survey.load_map(path, bib=BIB)


def test_a_published_number_without_source_or_key_is_refused(tmp_path):
    head = ",".join(survey.CERTIFIED_COLUMNS)
    path = tmp_path / "c.csv"
    path.write_text(f"# comment\n{head}\nMNIST,l2,0.5,0.5,90,m,smoothing,net,a2019,,\n")
    with pytest.raises(ValueError, match="row 2: empty read_from"):
        survey.read_certified(path, bib=BIB)
    path.write_text(f"{head}\nMNIST,l2,0.5,0.5,90,m,smoothing,net,nokey,,repo\n")
    with pytest.raises(ValueError, match="key 'nokey' is not in the bibliography"):
        survey.read_certified(path, bib=BIB)
    path.write_text(f"{head}\nMNIST,l2,0.5,0.5,0.9,m,smoothing,net,a2019,,repo\n")
    assert survey.read_certified(path, bib=BIB)[0]["certified_accuracy"] == pytest.approx(0.9)


def test_results_table_has_one_column_a_radius_and_numbered_sources():
    rows = [dict(dataset="D", norm="l2", radius=r, radius_label=f"{r:g}", certified_accuracy=a, method="m",
                 kind="smoothing", network="n", key="a2019", setting="s", read_from=src)
            for r, a, src in ((0.5, 60.0, "one"), (1.0, 40.0, "one"))]
    rows.append(dict(rows[0], method="v", kind="verification", read_from="two", certified_accuracy=70.0))
    table, sources = survey.results_table(rows, "D", "l2")
    assert sources == ["one", "two"]
    lines = table.splitlines()
    assert lines[0].startswith("| method | kind | network | r = 0.5 | r = 1 |")
    assert "| 60.0 | 40.0 |" in table and "| 70.0 | – |" in table and "{cite:t}`a2019`" in table
