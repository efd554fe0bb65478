"""A killed sequential run (sequential.batch > 0, the write_facts record) resumes after its last finished batch with
`ckpt_path=<run dir>` and ends where an uninterrupted run ends: the same curve, the same weights, bit for bit."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import torch
from _training_utils import tiny_cfg
from test_reliability import cache_env, faulty_train  # noqa: F401  (cache_env: the fixture)

from engram.cli import check_config
from engram.config import ConfigError
from engram.inputs import check_checkpoint
from engram.models.engram_model import EngramModel
from engram.training.pipeline import train

ARMS = {
    "lora": ("variant=lora", "sequential.epochs=2", "optim.lr=0.01"),
    "memory": ("variant=engram", "engram=question", "engram.prepopulate.steps=30"),
}
COMMON = ("trainer.max_epochs=0", "trainer.max_steps=-1", "sequential.batch=8", "data.num_train=24",
          "data.num_eval=16")


def taught_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """What the batches changed: a memory's saved state, or a LoRA variant's trainable weights."""
    if isinstance(model, EngramModel):
        return {k: v.detach().clone() for k, v in model.engram_state_dict().items()}
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def curve(run_dir: Path, name: str = "sequential.json") -> list[dict]:
    points = json.loads((run_dir / name).read_text())["points"]
    return [{k: v for k, v in p.items() if k != "teach_s"} for p in points]


@pytest.mark.parametrize("arm", sorted(ARMS))
def test_a_killed_sequential_run_resumes_to_the_uninterrupted_end(tmp_path: Path, cache_env: dict[str, str],  # noqa: F811
                                                                  arm: str) -> None:
    overrides = (*ARMS[arm], *COMMON)
    killed = tmp_path / "killed"
    proc = faulty_train(cache_env, killed, *overrides, ENGRAM_TEST_KILL_AFTER_BATCH="1")
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    # killed between its saved state and sequential.json: the state is what resumes
    assert len(curve(killed, "sequential_state/curve.json")) == 1 and not (killed / "eval.json").exists()

    _, full = train(tiny_cfg(tmp_path / "uninterrupted", *overrides))
    _, resumed = train(tiny_cfg(tmp_path / "resumed", *overrides, f"ckpt_path={killed}"))
    assert len(curve(tmp_path / "resumed")) == 3
    assert curve(tmp_path / "resumed") == curve(tmp_path / "uninterrupted")
    before, after = taught_state(full["model"]), taught_state(resumed["model"])
    assert before.keys() == after.keys() and before
    assert [k for k in before if not torch.equal(before[k], after[k])] == []  # bit-identical


def test_resuming_with_other_settings_or_from_another_dir_is_one_line(tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(tiny_cfg(run, *ARMS["memory"], *COMMON))
    other = tiny_cfg(tmp_path / "again", *ARMS["memory"], *COMMON, "sequential.batch=12", f"ckpt_path={run}")
    with pytest.raises(ConfigError, match="sequential.batch=8, this run has sequential.batch=12"):
        check_config(other)  # what train.py runs before anything loads
    with pytest.raises(ConfigError, match="variant=engram, this run has variant=lora"):
        check_checkpoint(str(run), ("lora", 8, 10))
    with pytest.raises(ConfigError, match="not the run dir of a sequential run"):
        check_checkpoint(str(tmp_path), ("engram", 8, 10))
    with pytest.raises(ConfigError, match="checkpoints/last.ckpt"):  # a normal run does not take a sequential dir
        check_checkpoint(str(run))
