"""Numbers on the docs pages come from result files: every marked study table equals what tools/docs_tables.py
builds from its files under experiments/results/, and every figure is captioned with the command that produced it
and the machine it ran on."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools import docs_tables  # noqa: E402 - the repository root must be on the path first

PAGES = sorted((ROOT / "docs").glob("*.md"))
MARKED = [p for p in PAGES if docs_tables.blocks(p.read_text())]
IMAGE = re.compile(r"^!\[[^\]]*\]\(([^)\s]+)\)\s*$")
COMMAND = re.compile(r"`[^`]*\b(?:python|make)\b[^`]*`")
MACHINE = re.compile(r"\b(?:CPU|GPU)\b")


@pytest.mark.parametrize("page", MARKED, ids=lambda p: p.name)
def test_every_table_equals_its_results_files(page: Path) -> None:
    stale = docs_tables.stale(page.read_text())
    assert not stale, f"{page.name}: {stale} differ from their result files; run `make docs-tables`"


def test_every_registered_table_is_on_exactly_one_page() -> None:
    placed = [name for page in PAGES for name, _, _ in docs_tables.blocks(page.read_text())]
    assert sorted(placed) == sorted(docs_tables.tables()), "each table once, and only registered tables"


def test_the_study_pages_have_generated_tables() -> None:
    studies = {"recall", "editing", "paraphrase", "six_way", "long_recall", "language_modelling", "compression",
               "performance"}
    assert studies <= {p.stem for p in MARKED}


@pytest.mark.parametrize("name", sorted(docs_tables.tables()))
def test_tables_read_committed_result_files(name: str) -> None:
    spec = docs_tables.tables()[name]
    assert spec.sources, name
    for source in spec.sources:
        assert source.startswith(docs_tables.RESULTS) and (ROOT / source).is_file(), f"{name}: {source}"


def test_a_changed_number_makes_the_table_stale(tmp_path: Path) -> None:
    page = next(p for p in MARKED if p.name == "long_recall.md").read_text()
    row = next(line for line in page.splitlines() if line.startswith("| windowed (128) |"))
    cells = row.split(" | ")
    edited = page.replace(row, " | ".join([*cells[:-1], "x" + cells[-1]]))  # one cell of one row changed
    assert edited != page
    assert docs_tables.stale(edited) == ["long_recall.arms"]
    assert docs_tables.fill(edited) == page


def test_markers_must_close() -> None:
    with pytest.raises(ValueError, match="never closed"):
        docs_tables.blocks("<!-- table: recall.table_size -->\n| a |\n")
    with pytest.raises(KeyError, match="no table named"):
        docs_tables.fill("<!-- table: nosuch -->\n<!-- /table -->\n")


def test_formatting() -> None:
    assert [docs_tables.pct(v) for v in (0, 1, 0.845, 0.03125, "", None)] == ["0%", "100%", "84.5%", "3.1%", "-", "-"]
    assert docs_tables.change(-0.1957) == "−19.6%" and docs_tables.change(0.004, 2) == "+0.40%"
    assert docs_tables.count(10684800.0) == "10 684 800" and docs_tables.sig(0.070987) == "0.071"
    assert docs_tables.markdown(["a", "b"], [["1", "2"]], "lr") == "| a | b |\n|---|---:|\n| 1 | 2 |"


def captions(text: str) -> list[tuple[str, str]]:
    """(image target, the paragraph right after it) for every image line."""
    lines, out = text.splitlines(), []
    for i, line in enumerate(lines):
        if m := IMAGE.match(line.strip()):
            rest = lines[i + 1:]
            while rest and not rest[0].strip():
                rest = rest[1:]
            paragraph = []
            for follow in rest:
                if not follow.strip():
                    break
                paragraph.append(follow)
            out.append((m.group(1), " ".join(paragraph)))
    return out


@pytest.mark.parametrize("page", [ROOT / "README.md", *PAGES], ids=lambda p: p.name)
def test_every_figure_names_its_command_and_machine(page: Path) -> None:
    bad = [target for target, caption in captions(page.read_text())
           if not (COMMAND.search(caption) and MACHINE.search(caption))]
    assert not bad, f"{page.name}: the paragraph after these figures must name the command (`python ...` or " \
                    f"`make ...`) and the machine (its CPU): {bad}"
