"""Keep an experiment README's tables equal to the CSVs its ``run.py`` last wrote (issue #40 item 7).

A table the README shows from a results file sits between two markers, and is rendered from that file,
never copied by hand::

    <!-- table: results/paper_vs_simulated.csv; where: paper!=; columns: system, metric, paper, simulated; error: paper, simulated -->
    | system | metric | ... |
    <!-- end table -->

The path is relative to the README. Options, each ``name: value``, separated by ``;``:

- ``where: COL=VALUE`` keeps the rows whose COL is exactly VALUE; ``COL!=VALUE`` the others (``COL!=``: a
  non-empty COL). Repeat it to require several.
- ``columns: A, B, C`` shows these columns, in this order (default: all).
- ``pivot: ROW by COL of VALUE``: one line per ROW value, one column per COL value, cells VALUE (rows and
  columns in the order the CSV first shows them).
- ``error: PAPER, SIMULATED`` adds an ``error`` column, SIMULATED / PAPER - 1 as a percentage.
- ``digits: N`` writes numbers with N significant digits (default: as the CSV has them).

``python experiments/readme_tables.py`` lists the tables that differ from their CSV (exit 1 if any);
``--update`` rewrites them. ``tests/test_readme_tables.py`` fails while any differs.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from pathlib import Path

EXPERIMENTS = Path(__file__).resolve().parent
MARKED = re.compile(r"(<!-- table: (?P<spec>.*?) -->\n)(?P<body>.*?)(<!-- end table -->)", re.S)


class TableError(ValueError):
    """A marker that names no file, an unknown column or option: the message names the README and marker."""


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _cell(text: str, digits: int | None) -> str:
    """A CSV value as the table shows it: integers as written, other numbers to ``digits`` significant digits
    (whole numbers from 10**digits up, without an exponent: 1,043 s reads better than 1.04e+03)."""
    value = _number(text)
    if digits is None or value is None or re.fullmatch(r"-?\d+", text):
        return text
    if abs(value) >= 10 ** digits:
        return f"{value:.0f}"
    return f"{value:.{digits}g}"


def _parse(spec: str) -> tuple[str, dict[str, list[str]]]:
    """``PATH; name: value; ...`` -> the path and each option's values (``where`` may repeat)."""
    path, *parts = [part.strip() for part in spec.split(";")]
    options: dict[str, list[str]] = {}
    for part in parts:
        name, sep, value = part.partition(":")
        if not sep or name.strip() not in ("where", "columns", "pivot", "error", "digits"):
            raise TableError(f"option {part!r}: expected where:, columns:, pivot:, error: or digits:")
        options.setdefault(name.strip(), []).append(value.strip())
    return path, options


def _columns(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def render(spec: str, base: Path) -> str:
    """The markdown table a marker's ``spec`` asks for, read from its CSV (relative to ``base``)."""
    path, options = _parse(spec)
    csv_path = base / path
    if not csv_path.is_file():
        raise TableError(f"{path}: no such results file (run the experiment's run.py first)")
    with csv_path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    header = list(rows[0]) if rows else []

    def known(name: str) -> str:
        if name not in header:
            raise TableError(f"{path}: no column {name!r} (it has {', '.join(header)})")
        return name

    for condition in options.get("where", []):
        match = re.fullmatch(r"\s*([^!=]+?)\s*(!?=)\s*(.*)", condition)
        if not match:
            raise TableError(f"where: {condition!r}: expected COLUMN=VALUE or COLUMN!=VALUE")
        name, op, value = known(match.group(1)), match.group(2), match.group(3).strip()
        rows = [row for row in rows if (row[name] == value) == (op == "=")]
    digits = int(options["digits"][-1]) if "digits" in options else None

    if "pivot" in options:
        match = re.fullmatch(r"(.+?) by (.+?) of (.+)", options["pivot"][-1])
        if not match:
            raise TableError(f"pivot: {options['pivot'][-1]!r}: expected ROW by COLUMN of VALUE")
        row_key, col_key, value_key = (known(group.strip()) for group in match.groups())
        lines = list(dict.fromkeys(row[row_key] for row in rows))
        heads = list(dict.fromkeys(row[col_key] for row in rows))
        cells: dict[tuple[str, str], str] = {}
        for row in rows:
            cell = (row[row_key], row[col_key])
            if cell in cells:
                raise TableError(f"pivot: more than one row with {row_key}={cell[0]}, {col_key}={cell[1]} "
                                 f"(narrow the rows with where:)")
            cells[cell] = row[value_key]
        names = [row_key] + heads
        table = [[line] + [cells.get((line, head), "") for head in heads] for line in lines]
    else:
        names = [known(name) for name in _columns(options["columns"][-1])] if "columns" in options else header
        table = [[row[name] for name in names] for row in rows]
        if "error" in options:
            paper, simulated = (known(name) for name in _columns(options["error"][-1]))
            names = names + ["error"]
            for line, row in zip(table, rows):
                p, s = _number(row[paper]), _number(row[simulated])
                line.append(f"{s / p - 1:+.0%}" if p and s is not None else "")

    table = [[_cell(text, digits) for text in line] for line in table]
    numeric = [all(_number(line[i]) is not None or line[i] in ("",) or line[i].endswith("%")
                   for line in table) and any(line[i] for line in table) for i in range(len(names))]
    out = ["| " + " | ".join(names) + " |",
           "| " + " | ".join("---:" if right else "---" for right in numeric) + " |"]
    out += ["| " + " | ".join(line) + " |" for line in table]
    return "\n".join(out) + "\n"


def stale_tables(readme: Path, update: bool = False) -> list[str]:
    """The marked tables of ``readme`` that differ from their CSV (rewritten in place with ``update``)."""
    text = readme.read_text(encoding="utf-8")
    stale: list[str] = []

    def fresh(match: re.Match) -> str:
        try:
            table = render(match.group("spec"), readme.parent)
        except TableError as exc:
            raise TableError(f"{readme}: <!-- table: {match.group('spec')} -->: {exc}") from None
        if table != match.group("body"):
            stale.append(f"{readme}: {match.group('spec').split(';')[0]}")
        return match.group(1) + table + match.group(4)

    new = MARKED.sub(fresh, text)
    if update and new != text:
        readme.write_text(new, encoding="utf-8")
    return stale


def marked_readmes(root: Path = EXPERIMENTS) -> list[Path]:
    """Every markdown file under ``root`` with at least one table marker."""
    return [path for path in sorted(root.rglob("*.md")) if MARKED.search(path.read_text(encoding="utf-8"))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("readmes", nargs="*", type=Path, help="default: every marked .md under experiments/")
    parser.add_argument("--update", action="store_true", help="rewrite the tables that differ from their CSV")
    args = parser.parse_args(argv)
    try:
        stale = [line for path in (args.readmes or marked_readmes()) for line in stale_tables(path, args.update)]
    except (TableError, OSError) as exc:
        print(f"readme_tables: {exc}", file=sys.stderr)
        return 2
    for line in stale:
        print(f"{'updated' if args.update else 'differs'}: {line}")
    return 0 if args.update or not stale else 1


if __name__ == "__main__":
    sys.exit(main())
