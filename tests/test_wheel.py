"""The wheel is the package: built offline, installed with --no-deps into a fresh venv outside the checkout (the
dependencies come from this environment through one .pth line, no network), its console scripts train and report
from an empty directory, with the configs the wheel carries (engram/conf/). ~40 s on 2 cores."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ("engram-train", "engram-eval", "engram-report", "engram-demo", "engram-write", "engram-compress")
SOURCES = ("pyproject.toml", "README.md", "LICENSE")


def _skip_caches_and_results(directory: str, names: list[str]) -> list[str]:
    """experiment/ links to experiments/, whose results/ are records, not package data."""
    return [n for n in names if n == "__pycache__" or (n == "results" and Path(directory).name == "experiment")]


def build_wheel(dest: Path) -> Path:
    """The wheel, built from a copy of the checkout (setuptools writes build/ and *.egg-info where it builds)."""
    src = dest / "src"
    src.mkdir()
    for name in SOURCES:
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "engram", src / "engram", ignore=_skip_caches_and_results)  # follows experiment/'s link
    shutil.copytree(ROOT / "hydra_plugins", src / "hydra_plugins", ignore=_skip_caches_and_results)  # the sweeper
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", str(dest / "dist"), str(src)])
    (wheel,) = (dest / "dist").glob("engram_lab-*.whl")
    return wheel


def run(cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(cmd[:3])} ... exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with only the wheel installed in it; this environment's packages (not its engram) on its path."""
    pytest.importorskip("setuptools", reason="the dev extra has it: the wheel is built without build isolation")
    base = tmp_path_factory.mktemp("wheel")
    wheel = build_wheel(base)
    env_dir = base / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)])
    python = env_dir / "bin" / "python"
    site = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    # appended after the venv's own site-packages; .pth files in these dirs are not run, so an editable engram's
    # import hook stays out
    deps = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (site / "deps.pth").write_text("".join(f"{d}\n" for d in deps))
    # --ignore-installed: this environment's engram-lab is visible through deps.pth and must not be touched
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
         "--ignore-installed", "-q", str(wheel)])
    return env_dir


def clean_env(env_dir: Path) -> dict[str, str]:
    """No PYTHONPATH (it would put the checkout's engram first); the venv's scripts first on PATH; offline."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(PATH=f"{env_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}", WANDB_MODE="offline", HF_HUB_OFFLINE="1")
    return env


def test_the_wheel_trains_and_reports_from_an_empty_directory(venv: Path, tmp_path: Path) -> None:
    env = clean_env(venv)
    where = run([str(venv / "bin" / "python"), "-c", "import engram.conf; print(engram.conf.CONF_DIR)"],
                cwd=tmp_path, env=env).stdout.strip()
    assert Path(where).is_relative_to(venv) and (Path(where) / "experiment" / "smoke.yaml").is_file(), where
    for script in SCRIPTS:
        assert (venv / "bin" / script).is_file(), f"{script} is not a console script of the wheel"

    run(["engram-train", "model=tiny", "trainer=debug", "logger=none"], cwd=tmp_path, env=env)
    (run_dir,) = (tmp_path / "outputs" / "default").iterdir()  # Hydra's run dir, under the cwd
    assert (run_dir / "eval.json").is_file() and (run_dir / "engram.safetensors").is_file()

    done = run(["engram-report", str(run_dir)], cwd=tmp_path, env=env)
    assert done.stdout.startswith("1 jobs (0 failed)"), done.stdout
    assert (run_dir / "report.md").is_file() and (run_dir / "results.csv").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outputs"]  # nothing else written in the cwd


@pytest.mark.parametrize(("script", "usage"), [
    ("engram-train", "engram-train [group=option ...]"),
    ("engram-eval", "engram-eval train_variants=true"),
    ("engram-report", "usage: engram-report"),
    ("engram-demo", "usage: engram-demo"),
    ("engram-write", "python -m engram.write facts.jsonl"),
    ("engram-compress", "python -m engram.compress <build|ask|eval|sweep|train|info|delete>"),
])
def test_every_console_script_has_help(venv: Path, tmp_path: Path, script: str, usage: str) -> None:
    done = run([script, "--help"], cwd=tmp_path, env=clean_env(venv))
    assert usage in done.stdout, done.stdout
