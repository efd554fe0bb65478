"""The configuration reference (docs/config.md on the site) is generated from the schema dataclasses: every field
of every section needs a one-line meaning in the source, and the generated page lists every field with its type
and default."""

from __future__ import annotations

import sys
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools import config_reference as ref  # noqa: E402 - the repository root must be on the path first

# Composition-only: the root keys engram/conf/compress.yaml composes, typed for the unknown-key check; their
# defaults live in that YAML and the group schemas, which the reference lists.
NOT_SCHEMAS = {"CompressRootConfig"}


def expected_keys() -> dict[str, tuple[str, object]]:
    """{dotted key: (type, default)} walked from the schemas directly (not through the generator's walk)."""
    out: dict[str, tuple[str, object]] = {}

    def walk(prefix: str, schema: type) -> None:
        instance = schema()
        for f in fields(schema):
            name = f"{prefix}.{f.name}" if prefix else f.name
            if f.default_factory is not MISSING and is_dataclass(f.default_factory):
                walk(name, f.default_factory)  # type: ignore[arg-type]
            else:
                out[name] = (str(f.type), getattr(instance, f.name))

    for prefix, _, schema in ref.roots():
        walk(prefix, schema)
    return out


def test_every_schema_field_has_a_one_line_meaning() -> None:
    missing = [key.name for section in ref.sections() for key in section.keys if not key.meaning.strip()]
    assert not missing, f"write a `# meaning` comment next to these fields in the schema: {missing}"


def test_every_section_says_what_it_is() -> None:
    bare = [section.schema.__name__ for section in ref.sections() if not section.about]
    assert not bare, f"these schema dataclasses need a docstring: {bare}"


def test_the_page_lists_every_field_with_its_type_and_default() -> None:
    page = ref.render()
    rows = {line.split(" | ")[0].strip("| `"): line for line in page.splitlines() if line.startswith("| `")}
    keys = expected_keys()
    assert set(rows) == set(keys)
    for name, (kind, default) in keys.items():
        assert f"| `{kind}` | `{ref.show(default)}` |" in rows[name], name


def test_every_schema_dataclass_is_a_section() -> None:
    """Every schema dataclass, and every kind's own keys (its `Params`, a section of its group), is on the page; a
    composed schema's bases (EngramKeys under EngramConfig) through it."""
    import engram.compress.config as compress_config
    import engram.config.schema as config
    from engram import registry
    from engram.config.sections import SECTION_KINDS

    covered = {section.schema for section in ref.sections()}
    for module in (config, compress_config):
        for name, obj in vars(module).items():
            if is_dataclass(obj) and obj.__module__ == module.__name__ and name not in NOT_SCHEMAS:
                assert any(issubclass(c, obj) for c in covered), f"{module.__name__}.{name} is not in the reference"
    assert set(config.SCHEMAS.values()) <= covered
    params = {registry.attribute(kind, name, "Params") for kinds in SECTION_KINDS.values() for kind in kinds
              for name in registry.names(kind)} - {None}
    assert params and params <= covered  # hybrid, question, long_recall, ... each a section


def test_the_docs_page_is_filled_after_its_marker() -> None:
    page = (ROOT / "docs" / "config.md").read_text()
    assert ref.MARKER in page
    filled = ref.fill(page)
    assert filled.startswith(page.split(ref.MARKER)[0])
    assert "| `engram.table_size` |" in filled and "On GitHub this page ends here" not in filled


@dataclass
class _Sample:
    """A schema with each way of writing a meaning, and the ways that give none."""

    trailing: int = 1  # the trailing comment
    # a block above,
    # two lines long
    above: str = "x"
    # a block above a blank line belongs to no field

    bare: list[int] = field(default_factory=list)
    both: bool = False  # and a trailing one
    call: list[str] = field(  # a field over several lines
        default_factory=lambda: ["a"])


def test_comments_are_read_from_the_field_and_the_lines_right_above_it() -> None:
    assert ref.field_comments(_Sample) == {"trailing": "the trailing comment",
                                           "above": "a block above, two lines long", "bare": "",
                                           "both": "and a trailing one", "call": "a field over several lines"}
    assert ref.show([1.5, None, True, "a", ""]) == '[1.5, null, true, a, ""]'
