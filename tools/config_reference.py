"""The configuration reference (docs/config.md on the site), generated from the schema dataclasses.

Every key of every section: its type and default from the dataclass, its meaning from the comment written next to
the field in the source (a trailing `# ...` on the field's line, and/or a comment block directly above it). So the
page cannot drift from the schema: a new field without a comment fails tests/test_config_reference.py, and the
site is built from the source each time (tools/mkdocs_hooks.py puts this page in place of docs/config.md's body).
"""

from __future__ import annotations

import ast
import inspect
import io
import re
import sys
import textwrap
import tokenize
from dataclasses import MISSING, Field, dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the checkout's engram, whoever runs this
    sys.path.insert(0, str(ROOT))

MARKER = "<!-- config-reference -->"  # docs/config.md's body from this line on is replaced by the generated one


@dataclass
class Key:
    name: str  # dotted, as on the command line (engram.prepopulate.steps)
    type: str
    default: str
    meaning: str


@dataclass
class Section:
    prefix: str  # "" for root keys
    title: str
    schema: type
    about: str  # the dataclass's docstring
    keys: list[Key]


def roots() -> list[tuple[str, str, type]]:
    """(prefix, title, schema) of each top-level schema; nested dataclass fields become sections of their own."""
    from engram.compress.config import CompressConfig
    from engram.config import EvaluateConfig, TrainConfig

    return [("", "train.py: root keys (engram/conf/train.yaml)", TrainConfig),
            ("", "evaluate.py: the keys engram/conf/evaluate.yaml adds", EvaluateConfig),
            ("compress", "python -m engram.compress: engram/conf/compress/", CompressConfig)]


def field_comments(schema: type) -> dict[str, str]:
    """{field name: its comment text}: the comment block directly above the field, then its trailing comment. A
    composed schema (EngramConfig: EngramKeys plus a section per kind, engram/config/sections.py) has no source of
    its own: its fields' comments are those of the classes it derives from (its sections are sections, not keys)."""
    out: dict[str, str] = {}
    for cls in reversed(schema.__mro__):
        if cls is object:
            continue
        try:
            source = textwrap.dedent(inspect.getsource(cls))
        except (OSError, TypeError):  # composed at run time: nothing written to read
            continue
        out.update(_comments(source))
    return out


def _comments(source: str) -> dict[str, str]:
    comments: dict[int, str] = {}
    own_line: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            row = tok.start[0]
            comments[row] = tok.string.lstrip("#").strip()
            if not tok.line[: tok.start[1]].strip():
                own_line.add(row)
    out = {}
    body = ast.parse(source).body[0]
    assert isinstance(body, ast.ClassDef)
    for node in body.body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        above, row = [], node.lineno - 1
        while row in own_line:  # a blank line or code ends the block
            above.insert(0, comments[row])
            row -= 1
        trailing = [comments[r] for r in range(node.lineno, (node.end_lineno or node.lineno) + 1)
                    if r in comments and r not in own_line]
        out[node.target.id] = " ".join(above + trailing)
    return out


def first_sentence(doc: str | None) -> str:
    text = " ".join((doc or "").split())
    return re.split(r"(?<=\.)\s", text, maxsplit=1)[0]


def own_docstring(schema: type) -> str:
    """The class's docstring; "" when it has none (@dataclass then puts the signature in __doc__)."""
    doc = schema.__doc__ or ""
    return "" if doc.startswith(schema.__name__ + "(") else doc


def show(value: Any) -> str:
    """A default as it is written in a YAML file or a command-line override."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value else '""'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {show(v)}" for k, v in value.items()) + "}"
    return repr(value)


def nested(f: Field) -> type | None:
    """The dataclass a field holds, if it is a sub-section."""
    factory = f.default_factory
    return factory if factory is not MISSING and is_dataclass(factory) else None  # type: ignore[return-value]


def sections() -> list[Section]:
    """Every section: each top-level schema's own keys, then (depth first) each dataclass-valued field."""
    out: list[Section] = []

    def walk(prefix: str, title: str, schema: type) -> None:
        meanings, defaults = field_comments(schema), schema()
        keys, subs = [], []
        for f in fields(schema):
            name = f"{prefix}.{f.name}" if prefix else f.name
            if (sub := nested(f)) is not None:
                subs.append((name, sub))
                continue
            meaning = meanings.get(f.name, "")
            keys.append(Key(name, str(f.type), show(getattr(defaults, f.name)), meaning))
        out.append(Section(prefix, title, schema, first_sentence(own_docstring(schema)), keys))
        for name, sub in subs:
            walk(name, f"`{name}`", sub)

    for prefix, title, schema in roots():
        walk(prefix, title, schema)
    return out


def cell(text: str) -> str:
    """Markdown table cell text: outside `code` spans, | would end the cell and <run dir> would read as HTML."""
    parts = text.split("`")
    for i in range(0, len(parts), 2):
        parts[i] = parts[i].replace("&", "&amp;").replace("<", "&lt;").replace("|", "\\|")
    return "`".join(parts)


def render() -> str:
    """The page body that replaces docs/config.md's from its marker on."""
    lines = []
    for section in sections():
        lines += ["", f"## {section.title}", "", f"Schema: `{section.schema.__module__}.{section.schema.__name__}`."]
        if section.about:
            lines += ["", cell(section.about)]
        lines += ["", "| key | type | default | meaning |", "|---|---|---|---|"]
        for key in section.keys:
            lines.append(f"| `{key.name}` | `{key.type}` | `{key.default}` | {cell(key.meaning)} |")
    return "\n".join(lines).lstrip("\n") + "\n"


def fill(page: str) -> str:
    """docs/config.md with everything after its marker replaced by the generated reference."""
    head, found, _ = page.partition(MARKER)
    if not found:
        raise ValueError(f"docs/config.md has no {MARKER} line")
    return head + MARKER + "\n\n" + render()


if __name__ == "__main__":
    print(render())
