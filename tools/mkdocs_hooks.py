"""MkDocs hooks for `make docs`: the site is docs/ plus the repository's top-level pages, with the links that work
on GitHub rewritten for the site.

The README is the site's home page (index.md) and CONTRIBUTING.md / CHANGELOG.md are pages; the result files the
pages show (experiments/results/...) and LICENSE / CITATION.cff are copied as they are. A page in docs/ links to
them with "../" (so the links also work on GitHub), which the site drops. docs/config.md gets its tables from the
schema dataclasses (tools/config_reference.py); a study table that differs from its result files
(tools/docs_tables.py) is a warning, so the strict build fails on it. Nothing is written into the checkout.
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the checkout's engram and tools, not an installed copy

from tools import config_reference, docs_tables  # noqa: E402 - needs the path above

log = logging.getLogger("mkdocs.hooks.engram")  # under "mkdocs": --strict counts its warnings

TOP_PAGES = {"README.md": "index.md", "CONTRIBUTING.md": "contributing.md", "CHANGELOG.md": "changelog.md"}
TOP_FILES = ("LICENSE", "CITATION.cff")
RESULTS = "experiments/results/"
LINK = re.compile(r"(\]\()([^)\s#]*)(#[^)\s]*)?(\))")


def site_target(target: str, from_docs: bool) -> str:
    """Where a link of a repository page points on the site (all site pages sit at its root)."""
    if re.match(r"^[a-z][a-z0-9+.-]*:", target) or not target:
        return target
    path = target[3:] if from_docs and target.startswith("../") else target
    if not from_docs and path.startswith("docs/"):
        return path[len("docs/"):]
    if from_docs and path == target:  # a docs page linking another docs page
        return target
    return TOP_PAGES.get(path, path)


def rewrite(markdown: str, from_docs: bool) -> str:
    out, fenced = [], False
    for line in markdown.splitlines(keepends=True):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        if not fenced:
            line = LINK.sub(lambda m: m.group(1) + site_target(m.group(2), from_docs) + (m.group(3) or "") + m.group(4),
                            line)
        out.append(line)
    return "".join(out)


def on_files(files: Files, config: Any) -> Files:
    for name, uri in TOP_PAGES.items():
        files.append(File.generated(config, uri, content=rewrite((ROOT / name).read_text(), from_docs=False)))
    for name in TOP_FILES:
        files.append(File.generated(config, name, abs_src_path=str(ROOT / name)))
    for path in sorted((ROOT / RESULTS).rglob("*")):
        if path.is_file() and path.suffix in {".png", ".html"}:
            files.append(File.generated(config, path.relative_to(ROOT).as_posix(), abs_src_path=str(path)))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    if page.file.src_uri in TOP_PAGES.values() and page.file.generated_by:
        return markdown  # rewritten when generated
    if page.file.src_uri == "config.md":
        markdown = config_reference.fill(markdown)
    if stale := docs_tables.stale(markdown):
        log.warning("docs/%s: %s differ from their result files; run `make docs-tables`", page.file.src_uri,
                    ", ".join(stale))
    return rewrite(markdown, from_docs=True)
