"""Experiment READMEs show the tables their run.py last wrote: every marked table equals its CSV rendered by
experiments/readme_tables.py (issue #40 item 7), and the renderer computes what it says."""

from __future__ import annotations

import pytest

from experiments.readme_tables import TableError, main, marked_readmes, render, stale_tables

from .conftest import ROOT

CSV = ("figure,system,condition,metric,paper,simulated\n"
       "T5,a,hit,qps,2.0,3.0\n"
       "T5,b,hit,qps,,1.23456\n"
       'T5,b,"x=1,y=2",qps,4,1\n'
       "T6,a,hit,ttft,10,1043.2\n")


def test_every_marked_readme_table_equals_its_csv():
    readmes = marked_readmes()
    names = {str(p.relative_to(ROOT)) for p in readmes}
    assert {"experiments/tract/README.md", "experiments/beluga/README.md", "experiments/kvdirect/README.md"} <= names
    assert [line for path in readmes for line in stale_tables(path)] == []


def test_filters_columns_and_the_error_column(tmp_path):
    (tmp_path / "r.csv").write_text(CSV)
    table = render("r.csv; where: paper!=; where: figure=T5; columns: system, paper, simulated; "
                   "error: paper, simulated", tmp_path)
    assert table == ("| system | paper | simulated | error |\n| --- | ---: | ---: | ---: |\n"
                     "| a | 2.0 | 3.0 | +50% |\n| b | 4 | 1 | -75% |\n")


def test_pivot_and_significant_digits(tmp_path):
    (tmp_path / "r.csv").write_text(CSV)
    table = render("r.csv; where: condition!=x=1,y=2; pivot: system by figure of simulated; digits: 3", tmp_path)
    # rows and columns in first-seen order; b has no T6 cell; 1043.2 has more than 3 digits: no exponent
    assert table.splitlines() == ["| system | T5 | T6 |", "| --- | ---: | ---: |", "| a | 3 | 1043 |",
                                  "| b | 1.23 |  |"]


def test_a_hand_edited_table_is_reported_and_update_restores_it(tmp_path, capsys):
    (tmp_path / "r.csv").write_text(CSV)
    readme = tmp_path / "README.md"
    prose = "Prose stays.\n\n<!-- table: r.csv; where: figure=T6 -->\n| old |\n<!-- end table -->\n\nMore prose.\n"
    readme.write_text(prose)
    assert stale_tables(readme) == [f"{readme}: r.csv"]
    assert main([str(readme)]) == 1
    assert main([str(readme), "--update"]) == 0 and stale_tables(readme) == []
    text = readme.read_text()
    assert text.startswith("Prose stays.\n\n<!-- table: r.csv; where: figure=T6 -->\n| figure |")
    assert "| T6 | a | hit | ttft | 10 | 1043.2 |\n<!-- end table -->\n\nMore prose.\n" in text


@pytest.mark.parametrize("spec, message", [
    ("missing.csv", "no such results file"),
    ("r.csv; columns: system, nope", "no column 'nope'"),
    ("r.csv; sort: paper", "expected where:, columns:"),
    ("r.csv; pivot: system of paper", "expected ROW by COLUMN of VALUE"),
    ("r.csv; pivot: system by figure of paper", "more than one row with system=b, figure=T5"),
])
def test_a_bad_marker_names_what_is_wrong(tmp_path, spec, message, capsys):
    (tmp_path / "r.csv").write_text(CSV)
    with pytest.raises(TableError, match=message):
        render(spec, tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text(f"<!-- table: {spec} -->\n<!-- end table -->\n")
    assert main([str(readme)]) == 2
    assert capsys.readouterr().err.startswith(f"readme_tables: {readme}: <!-- table: {spec} -->: ")
