"""Study tables generated from result files: `make docs-tables` (python tools/docs_tables.py) rewrites every table
between `<!-- table: NAME ... -->` and `<!-- /table -->` in docs/*.md from the files under experiments/results/
that its builder reads; `--check` only reports the tables that differ. tests/test_docs_tables.py and the mkdocs
hook (so `make docs`) fail on a table that no longer matches its files.

A builder is a function registered with `@table(name, *sources)` in one of SPEC_MODULES; it gets the source paths
and returns the table's markdown. Numbers are read and formatted here, never typed into a page; what a page says
around a table (labels, which rows) is the builder's.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import json
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DOCS = ROOT / "docs"
RESULTS = "experiments/results/"
SPEC_MODULES = ("tools.tables_facts", "tools.tables_models")
OPEN = re.compile(r"^<!-- table: (?P<name>[\w.-]+)\b.*-->$")
CLOSE = "<!-- /table -->"
Builder = Callable[..., str]


@dataclass(frozen=True)
class Spec:
    name: str
    sources: tuple[str, ...]  # repository-relative, under experiments/results/
    build: Builder


_TABLES: dict[str, Spec] = {}


def table(name: str, *sources: str) -> Callable[[Builder], Builder]:
    """Register `build(*source_paths) -> markdown` as the table `name`."""

    def register(build: Builder) -> Builder:
        if name in _TABLES:
            raise ValueError(f"table {name!r} is registered twice")
        _TABLES[name] = Spec(name, tuple(sources), build)
        return build

    return register


def tables() -> dict[str, Spec]:
    for module in SPEC_MODULES:  # importing a spec module registers its tables
        importlib.import_module(module)
    return _TABLES


def render(spec: Spec) -> str:
    """The whole block: the opening marker (naming the sources), the table, the closing marker."""
    body = spec.build(*(ROOT / s for s in spec.sources)).strip("\n")
    return f"<!-- table: {spec.name} · from {', '.join(spec.sources)} · make docs-tables -->\n\n{body}\n\n{CLOSE}"


def blocks(text: str) -> list[tuple[str, int, int]]:
    """(name, first line, last line) of each marked block; ValueError on an unclosed or nested one."""
    out, start, name = [], None, ""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if m := OPEN.match(line.strip()):
            if start is not None:
                raise ValueError(f"table {name!r} (line {start + 1}) is not closed before line {i + 1}")
            start, name = i, m.group("name")
        elif line.strip() == CLOSE:
            if start is None:
                raise ValueError(f"line {i + 1}: {CLOSE} without an opening marker")
            out.append((name, start, i))
            start = None
    if start is not None:
        raise ValueError(f"table {name!r} (line {start + 1}) is never closed")
    return out


def fill(text: str) -> str:
    """`text` with every marked table regenerated from its files."""
    specs = tables()
    lines = text.splitlines()
    for name, start, end in reversed(blocks(text)):
        if name not in specs:
            raise KeyError(f"no table named {name!r} in {', '.join(SPEC_MODULES)}")
        lines[start:end + 1] = render(specs[name]).splitlines()
    return "\n".join(lines) + ("\n" if text.endswith("\n") else "")


def stale(text: str) -> list[str]:
    """Names of the marked tables whose text differs from what their files give."""
    specs, lines = tables(), text.splitlines()
    return [name for name, start, end in blocks(text)
            if name not in specs or "\n".join(lines[start:end + 1]) != render(specs[name])]


# ---------------------------------------------------------------- reading result files


def csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def by_label(rows: Sequence[dict[str, str]], key: str = "label") -> dict[str, dict[str, str]]:
    return {row[key]: row for row in rows}


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def md_table(path: Path, *first_headers: str) -> list[dict[str, str]]:
    """The rows of the first markdown table in `path` whose header starts with the cells `first_headers`."""
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        cells = split_row(line)
        if cells[:len(first_headers)] == list(first_headers) and i + 1 < len(lines) \
                and set(lines[i + 1]) <= set("|-: "):
            rows = []
            for row in lines[i + 2:]:
                if not row.startswith("|"):
                    break
                rows.append(dict(zip(cells, split_row(row), strict=True)))
            return rows
    raise ValueError(f"{path.relative_to(ROOT)}: no table starting with {' | '.join(first_headers)}")


def md_metrics(path: Path) -> dict[str, str]:
    """An eval.md's `| metric | value |` table as {metric: value} (the first of repeated metrics wins)."""
    out: dict[str, str] = {}
    for row in md_table(path, "metric", "value"):
        out.setdefault(row["metric"], row["value"])
    return out


def split_row(line: str) -> list[str]:
    line = line.strip()
    if not (line.startswith("|") and line.endswith("|")):
        return []
    return [cell.strip() for cell in line[1:-1].split("|")]


# ---------------------------------------------------------------- formatting


def missing(value: Any) -> bool:
    return value is None or value == "" or value == "-"


def pct(value: Any, digits: int = 1) -> str:
    """0.845 -> 84.5%; exactly 0 and 1 without decimals (0%, 100%); missing -> -."""
    if missing(value):
        return "-"
    v = float(value) * 100
    return f"{v:.0f}%" if v in (0.0, 100.0) else f"{v:.{digits}f}%"


def change(value: Any, digits: int = 1) -> str:
    """A relative change with its sign: -0.1957 -> −19.6% (a typographic minus, as the pages write it)."""
    if missing(value):
        return "-"
    text = f"{float(value) * 100:+.{digits}f}%"
    return text.replace("-", "−")


def fixed(value: Any, digits: int) -> str:
    return "-" if missing(value) else f"{float(value):.{digits}f}"


def sig(value: Any, digits: int = 3) -> str:
    return "-" if missing(value) else f"{float(value):.{digits}g}"


def count(value: Any) -> str:
    """An integer with spaces between thousands: 10684800 -> 10 684 800."""
    return "-" if missing(value) else f"{round(float(value)):,}".replace(",", " ")


def markdown(header: Sequence[str], rows: Sequence[Sequence[str]], align: str | None = None) -> str:
    """A markdown table; `align` has one letter per column, l or r (default: all left)."""
    rule = ["---:" if a == "r" else "---" for a in (align or "l" * len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(rule) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------- command line


def pages() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate the docs' study tables from experiments/results/.")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a table is out of date")
    args = parser.parse_args(argv)
    out_of_date = 0
    for page in pages():
        text = page.read_text()
        if not blocks(text):
            continue
        names = stale(text)
        out_of_date += len(names)
        for name in names:
            print(f"{page.relative_to(ROOT)}: table {name} {'differs from' if args.check else 'regenerated from'} "
                  "its results files")
        if names and not args.check:
            page.write_text(fill(text))
    return 1 if args.check and out_of_date else 0


if __name__ == "__main__":
    from tools.docs_tables import main as module_main  # the spec modules register into tools.docs_tables, not __main__

    sys.exit(module_main())
