"""The README and docs/: a README read in two minutes with exactly two set-up commands, its `make run` table equal
to the committed record of that run, every relative link and anchor resolving, and no issue-tracker words."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("*.md"))
TOP = [README] + [ROOT / n for n in ("CONTRIBUTING.md", "CHANGELOG.md") if (ROOT / n).is_file()]
LINK = re.compile(r"!?\[(?:[^\]]|\n)*?\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~)")


def prose(text: str) -> list[str]:
    """The lines outside fenced code blocks."""
    out, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line.strip()):
            fenced = not fenced
            continue
        if not fenced:
            out.append(line)
    return out


def github_slug(heading: str) -> str:
    """GitHub's heading anchor: lower case, punctuation but - and _ dropped, each space a hyphen."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def mkdocs_slug(heading: str) -> str:
    """Python-Markdown's toc anchor (mkdocs): the same, but runs of spaces and hyphens become one hyphen."""
    text = re.sub(r"[^\w\s-]", "", heading.replace("`", "")).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(path: Path) -> tuple[set[str], set[str]]:
    heads = [line.lstrip("#").strip() for line in prose(path.read_text()) if re.match(r"^#{1,6} ", line)]
    return {github_slug(h) for h in heads}, {mkdocs_slug(h) for h in heads}


def setup_block() -> list[str]:
    """The command lines of the first code block of the README's set-up section."""
    text = README.read_text()
    section = text.split("## Set up and run", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "the set-up section has no bash block"
    return [line for line in block.group(1).splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_readme_is_short() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; move detail to a docs/ page"


def test_readme_has_exactly_two_setup_commands() -> None:
    commands = [line.split("#", 1)[0].strip() for line in setup_block()]
    assert commands == ["make run", "make test"]


def test_readme_run_table_is_the_committed_record() -> None:
    """The table under "What `make run` prints" is experiments/results/default_run/printed.txt, line for line."""
    record = (ROOT / "experiments/results/default_run/printed.txt").read_text()
    section = README.read_text().split("## What `make run` prints", 1)[1].split("\n## ", 1)[0]
    shown = re.search(r"```\n(.*?)```", section, re.S)
    assert shown, "no printed table under the make-run heading"
    strip = lambda text: [line.rstrip() for line in text.strip("\n").splitlines()]  # noqa: E731
    assert strip(shown.group(1)) == strip(record)


@pytest.mark.parametrize("page", TOP + PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page: Path) -> None:
    text = "\n".join(prose(page.read_text()))
    broken = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        dest = (page.parent / path_part).resolve() if path_part else page
        if not dest.exists():
            broken.append(f"{target}: no such file")
            continue
        if anchor and dest.suffix == ".md":
            gh, mk = anchors(dest)
            if anchor not in gh or anchor not in mk:
                broken.append(f"{target}: no heading with that anchor in {dest.name}")
    assert not broken, f"{page.name}: " + "; ".join(broken)


@pytest.mark.parametrize("page", TOP + PAGES, ids=lambda p: p.name)
def test_no_tracker_words(page: Path) -> None:
    """Statements, not references to the tracker: "issue 13", "issue-8 targets", "the issue's target"."""
    text = page.read_text()
    hits = re.findall(r"\bissues?[ -]\d+\b|\bthe issue's\b|\bissues? \d+ and \d+", text, re.I)
    assert not hits, f"{page.name}: {hits}"


def test_every_docs_page_is_linked_from_the_readme_or_the_docs_index() -> None:
    linked = set()
    for page in [README, ROOT / "docs" / "index.md"]:
        if page.is_file():
            for target in LINK.findall(page.read_text()):
                linked.add((page.parent / target.partition("#")[0]).resolve())
    orphans = [p.name for p in PAGES if p.resolve() not in linked and p.name != "index.md"]
    assert not orphans, f"docs pages no one links to: {orphans}"


def test_the_site_nav_lists_every_docs_page() -> None:
    """mkdocs.yml's nav and docs/ agree (the README, CONTRIBUTING and CHANGELOG pages are added by its hook)."""
    yaml = pytest.importorskip("yaml")
    cfg = yaml.safe_load((ROOT / "mkdocs.yml").read_text())

    def pages(node: object) -> list[str]:
        if isinstance(node, str):
            return [node]
        if isinstance(node, list):
            return [p for item in node for p in pages(item)]
        if isinstance(node, dict):
            return [p for value in node.values() for p in pages(value)]
        return []

    nav = set(pages(cfg["nav"]))
    files = {p.name for p in PAGES}
    assert files - nav == set(), "docs pages missing from mkdocs.yml's nav"
    assert nav - files == {"index.md", "contributing.md", "changelog.md"}
