"""`python -m engram.write`: incremental writes into a trained memory; the input file is never modified; bad input
gives one line and exit 2."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _training_utils import tiny_cfg
from omegaconf import OmegaConf

from engram.data.families.jsonl import write_jsonl
from engram.data.records import record

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from engram.training.pipeline import train

    out = tmp_path_factory.mktemp("run")
    cfg = tiny_cfg(out, "engram=recall", "engram.dim=64", "engram.table_size=5000", "trainer.max_epochs=0",
                   "data.num_train=40", "data.num_eval=8")
    train(cfg)
    (out / ".hydra").mkdir(exist_ok=True)  # what Hydra writes beside a run launched by train.py
    OmegaConf.save(cfg, out / ".hydra" / "config.yaml")
    return out


def new_facts(path: Path, n: int = 20) -> Path:
    write_jsonl([record(f"What is the secret code of vault {i:03d}?", f"K{(i * 7919) % 10007:05d}", "vaults",
                        f"vault:{i}", False) for i in range(n)], path)
    return path


def write(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engram.write", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_write_adds_facts_keeps_old_ones_and_never_touches_the_input(run_dir: Path, tmp_path: Path) -> None:
    source = run_dir / "engram.safetensors"
    before = digest(source)
    out = tmp_path / "more.safetensors"
    done = write(str(new_facts(tmp_path / "new.jsonl")), f"engram={run_dir}", f"out={out}")
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout[done.stdout.index("{"):])
    assert summary["new_facts"] == 20 and summary["new_recall"] >= 0.9
    assert summary["old_facts"] == 40 and summary["old_recall_after"] >= summary["old_recall_before"] - 0.02
    assert summary["retention"] == 1.0
    assert digest(source) == before and out.is_file()

    # the new file is a complete memory: loading it recalls the new facts (checked without writing anything)
    from engram.data.families.jsonl import read_jsonl
    from engram.models.engram_model import EngramModel
    from engram.models.loading import load_model
    from engram.training.writing import recall_of

    model, tok = load_model("tiny")
    loaded = EngramModel.from_pretrained(out, model, tok)
    assert recall_of(loaded, tok, read_jsonl(tmp_path / "new.jsonl"), progress=False) >= 0.9


@pytest.mark.parametrize("case", ["missing facts", "bad line", "missing memory", "out is input", "wrong model",
                                  "bad key", "no out", "bad number"])
def test_bad_input_is_one_line_exit_2_and_the_memory_is_intact(case: str, run_dir: Path, tmp_path: Path) -> None:
    source = run_dir / "engram.safetensors"
    if case == "wrong model":  # the memory beside a config naming a tiny model of another width
        other = tmp_path / "other_run"
        (other / ".hydra").mkdir(parents=True)
        cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
        cfg.model.hidden_size = 32
        OmegaConf.save(cfg, other / ".hydra" / "config.yaml")
        shutil.copy(source, other / "engram.safetensors")
        run_dir, source = other, other / "engram.safetensors"
    before = digest(source)
    facts = new_facts(tmp_path / "new.jsonl", 3)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    out = f"out={tmp_path / 'x.safetensors'}"
    args = {
        "missing facts": [str(tmp_path / "none.jsonl"), f"engram={run_dir}", out],
        "bad line": [str(bad), f"engram={run_dir}", out],
        "missing memory": [str(facts), f"engram={tmp_path / 'nothing'}", out],
        "out is input": [str(facts), f"engram={run_dir}", f"out={source}"],
        "wrong model": [str(facts), f"engram={run_dir}", out, "retention=false"],
        "bad key": [str(facts), f"engram={run_dir}", out, "stepz=3"],
        "no out": [str(facts), f"engram={run_dir}"],
        "bad number": [str(facts), f"engram={run_dir}", out, "lr=fast"],
    }[case]
    done = write(*args)
    assert done.returncode == 2, done.stdout[-1000:] + done.stderr[-1000:]
    lines = [ln for ln in done.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, done.stderr
    assert digest(source) == before and not (tmp_path / "x.safetensors").exists()
