"""A sequential run resumes where a kill stopped it. After every batch, what the batches taught (the memory's rows,
or the trainable weights of a LoRA variant) and the curve so far are written to `<run dir>/sequential_state/` in one
atomic swap, so the two always belong together; `ckpt_path=<that run dir>` loads them and teaches the batches after
the last one recorded. Each batch is taught from its own seed (`seed + batch`), so a resumed run ends as an
uninterrupted one does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from torch import nn

from engram.atomic import atomic_write_dir
from engram.inputs import STATE_CURVE, sequential_state
from engram.models.engram_model import EngramModel
from engram.models.headers import ENGRAM_FILE_NAME

TRAINED_FILE = "trained.safetensors"  # a LoRA variant's trainable weights (a memory: its engram.safetensors)


class ResumeError(RuntimeError):
    """The run dir to resume from taught other facts, or holds weights this model does not have."""


def save_state(model: nn.Module, run_dir: Path, curve: dict[str, Any]) -> Path:
    """The taught state of `model` and `curve` (sequential.json's payload) into run_dir/sequential_state/."""

    def write(tmp: Path) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        if isinstance(model, EngramModel):
            model.save_engram(tmp)
        else:
            save_file({name: p.detach().contiguous() for name, p in _trainable(model).items()}, str(tmp / TRAINED_FILE))
        (tmp / STATE_CURVE).write_text(json.dumps(curve, indent=1))

    return atomic_write_dir(sequential_state(run_dir), write)


def load_state(model: nn.Module, run_dir: str | Path, facts_digest: str) -> dict[str, Any]:
    """Put the state saved in run_dir/sequential_state/ into `model`; returns the curve saved with it. Refuses
    (ResumeError) a run that taught other facts (`facts_digest`) or saved other weights."""
    state = sequential_state(run_dir)
    curve = json.loads((state / STATE_CURVE).read_text())
    if curve.get("facts_digest") != facts_digest:
        raise ResumeError(f"engram: {run_dir} taught other facts (another data.* or seed); resume with the same data")
    if isinstance(model, EngramModel):
        model.load_engram(state / ENGRAM_FILE_NAME)
        return curve
    saved, trainable = load_file(str(state / TRAINED_FILE)), _trainable(model)
    if set(saved) != set(trainable) or any(saved[k].shape != trainable[k].shape for k in saved):
        raise ResumeError(f"engram: {run_dir} saved other trainable weights than this model has (another lora.* "
                          "or model?)")
    unexpected = model.load_state_dict(saved, strict=False).unexpected_keys
    if unexpected:  # a wrapper whose state_dict names differ from its parameters': nothing may be dropped silently
        raise ResumeError(f"engram: {run_dir}: weights {unexpected[:3]} have no place in this model")
    return curve


def _trainable(model: nn.Module) -> dict[str, nn.Parameter]:
    return {name: p for name, p in model.named_parameters() if p.requires_grad}
