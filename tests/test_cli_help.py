"""Every command a user types: --help / -h prints its usage and exits 0; an unknown config key (appended with `+` or
not, at any depth) or an unknown flag is one line on stderr naming it and exit 2, before any weights load (torch is
never imported). Real subprocesses of the entry points, each well under the suite's per-call budget."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# runs a script (train.py) or a module (engram.compress) as __main__ and, at exit, lists the modules it imported
RUNNER = """import atexit, os, runpy, sys
atexit.register(lambda: open(os.environ["MODULES_OUT"], "w").write("\\n".join(sorted(sys.modules))))
target, sys.argv = sys.argv[1], sys.argv[1:]
if target.endswith(".py"):
    runpy.run_path(target, run_name="__main__")
else:
    runpy.run_module(target, run_name="__main__", alter_sys=True)
"""


def run(tmp_path: Path, target: str, *args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    """(completed process, imported module names) of `python target args` (target: a script or a module)."""
    modules = tmp_path / "modules.txt"
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}  # one line unless a test asks
    env.update({"MODULES_OUT": str(modules), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)})
    proc = subprocess.run([sys.executable, "-c", RUNNER, target, *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env=env)
    return proc, set(modules.read_text().split()) if modules.is_file() else set()


def script(name: str) -> str:
    return str(ROOT / name)


def assert_one_line_exit_2(tmp_path: Path, target: str, args: list[str], needle: str) -> str:
    proc, modules = run(tmp_path, target, *args)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert "torch" not in modules, "weights could have loaded"
    return lines[0]


@pytest.mark.parametrize(("args", "needle"), [
    (["+nosuchkey=1"], "config error: nosuchkey=1 is not a config key"),
    (["+engram.nosuch=1"], "config error: engram.nosuch=1 is not a config key of engram"),
    (["+data.nosuch=1"], "config error: data.nosuch=1 is not a config key of data"),
    (["+engram.prepopulate.nosuch=1"], "config error: engram.prepopulate.nosuch=1 is not a config key of "
                                       "engram.prepopulate"),
    (["+engram.tabel_size=9"], "engram.tabel_size=9 is not a config key of engram (did you mean table_size?)"),
    (["+nosuch.deeper=1"], "config error: nosuch.deeper=1 is not a config key"),  # named as typed, not as a dict
    (["+engram.nosuch.deeper=1"], "config error: engram.nosuch.deeper=1 is not a config key of engram"),
    (["nosuchkey=1"], "nosuchkey"),  # without `+`: Hydra refuses it, in one line
    (["-m", "+nosuchkey=1", "seed=1,2"], "config error: nosuchkey=1 is not a config key"),  # before any job starts
    (["+trainer.nosuch=1"], "config error: trainer.nosuch=1 is not a lightning.Trainer argument"),
])
def test_train_unknown_key_is_one_line_exit_2(tmp_path: Path, args: list[str], needle: str) -> None:
    assert_one_line_exit_2(tmp_path, script("train.py"), ["model=tiny", *args], needle)
    assert not (tmp_path / "multirun").exists()  # a sweep is refused before Hydra makes its dirs


@pytest.mark.parametrize(("target", "args", "needle"), [
    (script("evaluate.py"), ["model=tiny", "train_variants=true", "+nosuchkey=1"], "nosuchkey=1 is not a config key"),
    (script("evaluate.py"), ["model=tiny", "train_variants=true", "+data.nosuch=1"], "data.nosuch=1 is not a config"),
    ("engram.compress", ["eval", "model=tiny", "+compress.head.nosuch=1"], "compress.head.nosuch=1 is not a config"),
    ("engram.compress", ["ask", "Where?", "--nosuch"], "option=--nosuch is not an option of engram.compress ask"),
    ("engram.data", ["export", "+engram.nosuch=1", "out=x.jsonl"], "engram.nosuch=1 is not a config key of engram"),
    ("engram.write", ["facts.jsonl", "--nosuch"], "option=--nosuch is not an option of engram.write"),
    (script("demo.py"), ["nosuch=1"], "config error: nosuch=1 is not a key of demo.py"),
    (script("demo.py"), ["--max-new-tokens", "abc"], "demo.py: argument --max-new-tokens: invalid int value"),
    (script("report.py"), ["/nonexistent"], "report.py: /nonexistent does not exist"),
    (script("report.py"), ["--nosuch", "x"], "report.py: unrecognized arguments: --nosuch"),
])
def test_other_entry_points_bad_input_is_one_line_exit_2(tmp_path: Path, target: str, args: list[str],
                                                         needle: str) -> None:
    assert_one_line_exit_2(tmp_path, target, args, needle)


@pytest.mark.parametrize(("target", "args", "usage"), [
    (script("train.py"), ["--help"], "usage: python train.py"),
    (script("train.py"), ["-h"], "usage: python train.py"),
    (script("evaluate.py"), ["--help"], "usage: python evaluate.py"),
    (script("report.py"), ["-h"], "usage: report.py"),
    (script("demo.py"), ["--help"], "usage: demo.py"),
    ("engram.write", ["--help"], "python -m engram.write facts.jsonl"),
    ("engram.write", ["-h"], "python -m engram.write facts.jsonl"),
    ("engram.compress", ["--help"], "python -m engram.compress <build|ask|eval|sweep|train|info|delete>"),
    ("engram.compress", ["ask", "--help"], "usage: python -m engram.compress ask QUESTION"),
    ("engram.compress", ["build", "-h"], "usage: python -m engram.compress build"),
    ("engram.compress", ["eval", "-h"], "usage: python -m engram.compress eval"),
    ("engram.compress", ["sweep", "--help"], "usage: python -m engram.compress sweep"),
    ("engram.compress", ["train", "--help"], "usage: python -m engram.compress train"),
    ("engram.data", ["--help"], "python -m engram.data export"),
    ("engram.data", ["export", "-h"], "python -m engram.data export"),
])
def test_help_prints_usage_and_exits_0(tmp_path: Path, target: str, args: list[str], usage: str) -> None:
    proc, modules = run(tmp_path, target, *args)
    assert proc.returncode == 0, proc.stderr
    assert usage in proc.stdout and not proc.stderr.strip(), proc.stdout + proc.stderr
    assert "torch" not in modules
