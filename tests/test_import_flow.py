"""Imports flow one way, down engram.LAYERS (documented in engram/__init__.py): every import in every engram module,
at module level or inside a function, goes to its own layer or a lower one."""

from __future__ import annotations

import ast
from pathlib import Path

import engram

PACKAGE = Path(engram.__file__).resolve().parent


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int | None:
    """Index in engram.LAYERS (0 = top), None for the package root (its lazy API is by name, not import)."""
    for i, peers in enumerate(engram.LAYERS):
        if any(module == p or module.startswith(p + ".") for p in peers):
            return i
    return None


def engram_imports(path: Path, package: str = "") -> list[tuple[int, str]]:
    """(line, imported module) of every absolute or relative engram import in the file, wherever it sits;
    `package`: the file's package (for relative imports), found from its place under engram by default."""
    out = []
    if not package:
        package = module_name(path) if path.name == "__init__.py" else module_name(path).rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the importing package
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            # `from engram import models` imports a subpackage: judge by the names too
            out += [(node.lineno, f"{target}.{a.name}" if target == "engram" else target) for a in node.names]
    return [(line, name) for line, name in out if name == "engram" or name.startswith("engram.")]


def test_every_module_belongs_to_a_layer():
    unplaced = [module_name(p) for p in PACKAGE.rglob("*.py") if module_name(p) != "engram"
                and layer_of(module_name(p)) is None]
    assert not unplaced, f"add these to engram.LAYERS: {unplaced}"


def test_no_import_goes_up_the_flow():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        importer = layer_of(module_name(path))
        if importer is None:
            continue
        for line, target in engram_imports(path):
            imported = layer_of(target)
            if imported is not None and imported < importer:
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {target} "
                              f"(layer {engram.LAYERS[imported]} is above {engram.LAYERS[importer]})")
    assert not upward, "imports up the flow:\n" + "\n".join(upward)


def test_the_check_sees_function_level_imports(tmp_path):
    """A lazy import inside a function is an import too (how evaluation used to reach into training)."""
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from engram.training.pipeline import run_task\n    from ..training import x\n")
    assert engram_imports(source, "engram.evaluation") == [(2, "engram.training.pipeline"), (3, "engram.training")]
    assert layer_of("engram.training.pipeline") < layer_of("engram.evaluation.evaluate")
