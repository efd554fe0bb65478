"""Faults survived, nothing lost (model=tiny): a SIGKILLed run resumes to the uninterrupted run's exact weights and
learning rates; a save that dies midway keeps the previous file byte for byte; a full disk stops the run with one
line and exit 2, earlier files intact; a crashing multirun job leaves the other jobs' results alone."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from _training_utils import fast_overrides, tiny_cfg
from lightning.pytorch.callbacks import Callback
from safetensors.torch import load_file

import engram.training.pipeline as pipeline
from engram.atomic import DiskFullError, atomic_write
from engram.config import ConfigError
from engram.evaluation.results import write_results
from engram.inputs import check_checkpoint
from engram.models.inject import add_engram, save_engram
from engram.models.loading import load_model
from engram.training.checkpointing import AtomicCheckpointIO
from engram.training.pipeline import run_task, train
from engram.training.variants import apply_variant

ROOT = Path(__file__).resolve().parent.parent
# 40 records in batches of 8: 5 steps per epoch, 10 in all; last.ckpt after steps 3, 5 (epoch end), 6, 9 and 10
RUN = ["variant=combined", "trainer.max_steps=-1", "trainer.max_epochs=2", "trainer.enable_checkpointing=true",
       "checkpoint.every_n_steps=3", "data.num_train=40"]
NO_SPACE = os.strerror(errno.ENOSPC)


@pytest.fixture
def cache_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    # base answers for retention are cached once for the session, outside the user's cache (subprocesses too)
    cache = str(tmp_path_factory.getbasetemp() / "engram-cache")
    monkeypatch.setenv("ENGRAM_CACHE", cache)
    return {**os.environ, "ENGRAM_CACHE": cache, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1"}


def faulty_train(env: dict[str, str], run_dir: Path, *overrides: str, **faults: str) -> subprocess.CompletedProcess:
    """train.py on model=tiny in a subprocess, with the faults of tests/_faulty_train.py (as env variables)."""
    cmd = [sys.executable, "tests/_faulty_train.py", *fast_overrides(*overrides), f"+paths.output_dir={run_dir}"]
    return subprocess.run(cmd, cwd=ROOT, env={**env, **faults}, capture_output=True, text=True, timeout=300)


class LrRecorder(Callback):
    """The lr each optimizer group actually stepped with, per global step (read from the inner optimizers)."""

    def __init__(self) -> None:
        self.lrs: dict[int, list[float]] = {}

    def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
        opt = trainer.optimizers[0]
        self.lrs[trainer.global_step] = [g["lr"] for o in getattr(opt, "optimizers", [opt]) for g in o.param_groups]


def trainable(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


# ---------------------------------------------------------------- a killed run resumes exactly


def test_sigkilled_run_resumes_to_the_uninterrupted_weights_and_lr(
    tmp_path: Path, cache_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    killed = tmp_path / "killed"
    proc = faulty_train(cache_env, killed, *RUN, ENGRAM_TEST_KILL_AT_STEP="8")
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    ckpt = torch.load(killed / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 6  # steps 7 and 8 are lost: fewer than checkpoint.every_n_steps
    assert ckpt["EngramDataModule"] == {"train_loader": {"epoch": 1, "served": 1}}  # mid-way through epoch 2
    assert not (killed / "eval.json").exists()
    check_checkpoint(str(killed))  # train.py's check before any weights load takes the run dir, as documented
    check_checkpoint(str(killed / "checkpoints"))

    build = pipeline.build_callbacks
    runs = {}
    for name, extra in (("uninterrupted", []), ("resumed", [f"ckpt_path={killed}"])):  # the run dir is enough
        recorder = LrRecorder()
        monkeypatch.setattr(pipeline, "build_callbacks",
                            lambda cfg, run_dir, *rest, r=recorder: [*build(cfg, run_dir, *rest), r])
        _, objects = train(tiny_cfg(tmp_path / name, *RUN, *extra))
        assert objects["trainer"].global_step == 10
        runs[name] = trainable(objects["model"]), recorder.lrs

    (full, full_lr), (resumed, resumed_lr) = runs["uninterrupted"], runs["resumed"]
    assert sorted(resumed_lr) == [7, 8, 9, 10]
    assert resumed_lr == {step: full_lr[step] for step in resumed_lr}  # lr schedule continues, per group
    assert len(set(map(tuple, full_lr.values()))) == 10  # (the schedule does move every step)
    assert full.keys() == resumed.keys()
    assert any(k.startswith("memories.") for k in full) and any("lora_" in k for k in full)
    different = [k for k in full if not torch.equal(full[k], resumed[k])]
    assert not different, different  # bit-identical: same batches, same optimizer state, same dropout masks


def test_a_run_dir_without_a_checkpoint_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory without checkpoints/last.ckpt"):
        check_checkpoint(str(tmp_path))
    with pytest.raises(ConfigError, match="does not exist or is not a file"):
        check_checkpoint(str(tmp_path / "nowhere"))


def test_a_config_error_survives_the_trip_to_a_multirun_parent() -> None:
    """joblib and submitit send a job's exception back pickled: it must arrive as the same one-line ConfigError
    (it arrived as a TypeError, and joblib's BrokenProcessPool hid the message)."""
    import pickle

    err = pickle.loads(pickle.dumps(ConfigError("ckpt_path", "x", "does not exist")))
    assert isinstance(err, ConfigError) and str(err) == "config error: ckpt_path=x does not exist"
    assert (err.key, err.value, err.rule) == ("ckpt_path", "x", "does not exist")
    from engram.data.families.jsonl import JsonlFormatError

    bad = pickle.loads(pickle.dumps(JsonlFormatError("facts.jsonl", 3, "invalid JSON")))
    assert isinstance(bad, JsonlFormatError) and str(bad) == "facts.jsonl:3: invalid JSON"


# ---------------------------------------------------------------- a save that dies keeps the previous file


def _write_partial_then_fail(path: Any, error: BaseException) -> None:
    """What a process killed (or a disk filled) mid-write leaves: the start of a file, under the name used."""
    if isinstance(path, str | os.PathLike):
        Path(path).write_bytes(b"partial")
    else:
        path.write(b"partial")  # a buffer
    raise error


def _checkpoint_case(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException) -> tuple[Path, Any]:
    io, path = AtomicCheckpointIO(), tmp_path / "last.ckpt"
    io.save_checkpoint({"step": 1, "w": torch.ones(4)}, path)
    monkeypatch.setattr(torch, "save", lambda obj, f, *a, **k: _write_partial_then_fail(f, error))
    return path, lambda: io.save_checkpoint({"step": 2, "w": torch.zeros(4)}, path)


def _engram_case(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException) -> tuple[Path, Any]:
    model, tok = load_model("tiny")
    model = add_engram(model, tiny_cfg(tmp_path, "variant=engram").engram, tokenizer=tok)
    path = save_engram(model, tmp_path / "engram.safetensors")
    import safetensors.torch

    monkeypatch.setattr(safetensors.torch, "save_file", lambda t, f, metadata=None: _write_partial_then_fail(f, error))
    return path, lambda: save_engram(model, path)


def _eval_case(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException) -> tuple[Path, Any]:
    row = {"prompt": "p", "expected": "a", "generated": "b", "correct": False, "category": "c", "seen": True}
    write_results(tmp_path, {"variant": "engram"}, {"eval/exact_match": 0.5}, [row])
    monkeypatch.setattr(Path, "write_text", lambda self, data, *a, **k: _write_partial_then_fail(self, error))
    return tmp_path / "eval.json", lambda: write_results(tmp_path, {"variant": "engram"}, {"eval/exact_match": 1.0},
                                                         [row])


def _lora_case(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException) -> tuple[Path, Any]:
    cfg = tiny_cfg(tmp_path, "variant=lora")
    model, tok = load_model("tiny")
    model = apply_variant(model, cfg, tok)
    pipeline.save_weights(cfg, model, tmp_path)
    path = tmp_path / "lora_adapter" / "adapter_model.safetensors"

    def dies(save_directory: str, **kwargs: Any) -> None:
        Path(save_directory).mkdir(parents=True, exist_ok=True)
        _write_partial_then_fail(Path(save_directory) / "adapter_model.safetensors", error)

    monkeypatch.setattr(model, "save_pretrained", dies)
    return path, lambda: pipeline.save_weights(cfg, model, tmp_path)


CASES = {"checkpoint": _checkpoint_case, "engram": _engram_case, "eval": _eval_case, "lora": _lora_case}


@pytest.mark.parametrize("artifact", sorted(CASES))
def test_a_save_that_dies_midway_keeps_the_previous_file(
    artifact: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, save_again = CASES[artifact](tmp_path, monkeypatch, KeyboardInterrupt())  # a kill arriving mid-write
    before = path.read_bytes()
    with pytest.raises(KeyboardInterrupt):
        save_again()
    assert path.read_bytes() == before
    assert not [p.name for p in tmp_path.rglob(".*") if ".tmp" in p.name]  # no temp file left behind


@pytest.mark.parametrize("artifact", sorted(CASES))
def test_disk_full_names_the_file_and_keeps_the_previous_one(
    artifact: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, save_again = CASES[artifact](tmp_path, monkeypatch, OSError(errno.ENOSPC, NO_SPACE))
    before = path.read_bytes()
    with pytest.raises(DiskFullError) as err:
        save_again()
    assert str(err.value).startswith("disk full while writing ") and str(err.value).endswith("; earlier files kept")
    assert NO_SPACE in str(err.value) and "\n" not in str(err.value)
    assert path.read_bytes() == before


def test_atomic_write_passes_other_errors_through_and_creates_parents(tmp_path: Path) -> None:
    target = tmp_path / "new" / "dir" / "file.txt"
    with pytest.raises(OSError) as err:
        atomic_write(target, lambda tmp: _write_partial_then_fail(tmp, OSError(errno.EIO, "I/O error")))
    assert not isinstance(err.value, DiskFullError) and not target.exists()
    assert list(target.parent.iterdir()) == []
    atomic_write(target, lambda tmp: tmp.write_text("done"))
    assert target.read_text() == "done"


# ---------------------------------------------------------------- a full disk during a run


def test_disk_full_during_training_exits_2_with_one_line(tmp_path: Path, cache_env: dict[str, str]) -> None:
    """The 2nd checkpoint write (after step 5, the end of epoch 1) finds the disk full."""
    run = tmp_path / "run"
    proc = faulty_train(cache_env, run, *RUN, ENGRAM_TEST_DISK_FULL_AT_SAVE="2")
    ckpt_path = run / "checkpoints" / "last.ckpt"
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[-1] == f"disk full while writing {ckpt_path}: {NO_SPACE}; earlier files kept"
    assert sum("disk full" in line for line in lines) == 1 and "Traceback" not in proc.stderr
    assert torch.load(ckpt_path, map_location="cpu", weights_only=False)["global_step"] == 3  # the previous one
    assert "DiskFullError" in (run / "FAILED.txt").read_text() and not (run / "eval.json").exists()


def test_disk_full_while_saving_the_memory_keeps_the_checkpoint(
    tmp_path: Path, cache_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tiny_cfg(tmp_path, "variant=engram", "trainer.enable_checkpointing=true")
    import safetensors.torch

    def no_space(tensors: Any, filename: str, metadata: Any = None) -> None:
        _write_partial_then_fail(filename, OSError(errno.ENOSPC, NO_SPACE))

    monkeypatch.setattr(safetensors.torch, "save_file", no_space)
    with pytest.raises(DiskFullError, match=r"^disk full while writing .*engram\.safetensors: .*earlier files kept$"):
        run_task(cfg)
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 2 and ckpt["state_dict"]  # the trained memory survives in the checkpoint
    assert not (tmp_path / "engram.safetensors").exists() and not (tmp_path / "eval.json").exists()
    assert "DiskFullError" in (tmp_path / "FAILED.txt").read_text()


# ---------------------------------------------------------------- one crashing job in a multirun


def test_a_crashing_multirun_job_leaves_the_finished_one_intact(tmp_path: Path, cache_env: dict[str, str]) -> None:
    """Job 0 finishes; job 1 (optim.lr=1e30: valid, but the loss is NaN by its 2nd step) crashes mid-training."""
    sweep = tmp_path / "multirun"
    cmd = [sys.executable, "train.py", "-m", *fast_overrides("variant=engram", "optim.warmup_steps=0"),
           "optim.lr=0.001,1e30", f"hydra.sweep.dir={sweep}"]
    proc = subprocess.run(cmd, cwd=ROOT, env=cache_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0  # Hydra reports the failed job at the end
    ok, failed = sweep / "0", sweep / "1"
    assert json.loads((ok / "eval.json").read_text())["info"]["global_step"] == 2, proc.stderr[-3000:]
    assert load_file(str(ok / "engram.safetensors")) and not (ok / "FAILED.txt").exists()
    assert "NonFiniteLossError" in (failed / "FAILED.txt").read_text()
    assert not (failed / "eval.json").exists() and not (failed / "engram.safetensors").exists()


def test_a_nan_loss_stops_a_single_run_with_one_line(tmp_path: Path, cache_env: dict[str, str]) -> None:
    """Outside a multirun, a NaN loss is an expected failure: one line on stderr and exit 2, no traceback."""
    cmd = [sys.executable, "train.py", *fast_overrides("variant=engram", "optim.warmup_steps=0"), "optim.lr=1e30",
           f"hydra.run.dir={tmp_path}"]
    proc = subprocess.run(cmd, cwd=ROOT, env=cache_env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and "Traceback" not in ln]
    assert "Traceback" not in proc.stderr
    assert lines[-1].startswith(("training stopped: loss is nan", "training stopped: loss is inf"))
    assert not (tmp_path / "engram.safetensors").exists()


def test_sigkilled_text_run_resumes_to_the_uninterrupted_weights(
    tmp_path: Path, cache_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same for a language-model run (data=text): its packed blocks resume mid-epoch through the same loader."""
    from test_lm_data import write_corpus

    corpus = write_corpus(tmp_path / "corpus", 40, words=200)
    # 40 blocks of 32 tokens in batches of 8: 5 steps per epoch, 10 in all; last.ckpt after steps 3, 5, 6, 9, 10
    text_run = [*RUN[:-1], "variant=engram", "data=text", f"data.path={corpus}", "data.block_size=32",
                "data.num_tokens=1280", "data.eval_tokens=64", "engram.init=zeros"]
    killed = tmp_path / "killed"
    proc = faulty_train(cache_env, killed, *text_run, ENGRAM_TEST_KILL_AT_STEP="8")
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    ckpt = torch.load(killed / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 6 and ckpt["TextDataModule"] == {"train_loader": {"epoch": 1, "served": 1}}
    runs = {}
    for name, extra in (("uninterrupted", []), ("resumed", [f"ckpt_path={killed}"])):
        _, objects = train(tiny_cfg(tmp_path / name, *text_run, *extra))
        assert objects["trainer"].global_step == 10
        runs[name] = trainable(objects["model"])
    full, resumed = runs["uninterrupted"], runs["resumed"]
    assert full.keys() == resumed.keys() and any(k.startswith("memories.") for k in full)
    assert not [k for k in full if not torch.equal(full[k], resumed[k])]
