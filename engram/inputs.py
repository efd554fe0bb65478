"""The files a config names, checked before any weights load: data files (parsed in full), a Lightning checkpoint
(`ckpt_path`), a saved memory (`engram_path`) and run dirs for evaluate.py. Each problem is one `ConfigError`
naming the key and the file (and line, for data). Only the standard library, omegaconf and the record builders
are used: no torch, no transformers.
"""

from __future__ import annotations

import glob
import json
import os
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from engram import registry
from engram.config.rules import ConfigError, first_line
from engram.data import build_splits
from engram.data.families.jsonl import JsonlFormatError
from engram.models.headers import (
    ENGRAM_FILE_FORMAT,
    ENGRAM_OLD_FORMATS,
    GATE_FILE,
    HeaderError,
    engram_file,
    lightning_checkpoint_keys,
    safetensors_header,
)
from engram.variants.common import variant_spec

ENGRAM_FILE_FORMATS = (ENGRAM_FILE_FORMAT, *ENGRAM_OLD_FORMATS)  # old formats are converted on load
LIGHTNING_KEYWORDS = ("last", "best", "hpc", "registry")  # ckpt_path values Lightning resolves itself
SEQUENTIAL_STATE, STATE_CURVE = "sequential_state", "curve.json"  # a sequential run's state after its last batch
# the job configs of a multirun or train_variants=true; bounded, so multirun_dir=/ does not walk the whole disk
JOB_CONFIGS = tuple("*/" * depth + ".hydra/config.yaml" for depth in range(4))


def _path(p: str) -> Path:
    return Path(os.path.expanduser(p))


def check_data(data: Any) -> dict[str, list[dict[str, Any]]]:
    """Build the splits the run will train and score on (~0.5 s for 500 facts): bad lines, unknown categories and
    too-small sources fail here, not after the model has loaded."""
    try:
        splits = build_splits(data)
    except JsonlFormatError as e:
        key = next((f"data.{k}" for k in ("path", "valid_path", "test_path")
                    if getattr(data, k, None) and _path(getattr(data, k)) == Path(e.path)), "data.path")
        raise ConfigError(key, f"{e.path}:{e.line}", e.reason) from None
    from_files = registry.attribute("family", data.family, "from_files", False)
    if not splits["train"]:
        key = "data.path" if from_files else "data.num_train"
        raise ConfigError(key, data.path if from_files else data.num_train, "gives no training records")
    if from_files and data.test_path and not splits.get("test"):
        raise ConfigError("data.test_path", data.test_path, "has no records")
    return splits


def describe_splits(data: Any, splits: dict[str, list[dict[str, Any]]]) -> str:
    """The run's first line about its data: how many facts are taught, how many scored and where they come from (for
    a text corpus, the documents of each split)."""
    if registry.attribute("family", data.family, "language_model", False):
        where = f"data.path={data.path}" if data.path else f"data.corpus={data.corpus}"
        return (f"data={data.family}: {where}, {len(splits['train'])} documents to train on, {len(splits['eval'])} "
                f"to validate on, {len(splits.get('test') or [])} to test on (each document in one split)")
    n_eval, n_seen = len(splits["eval"]), sum(bool(r.get("seen")) for r in splits["eval"])
    source = ""
    if registry.attribute("family", data.family, "from_files", False):
        source = ("data.valid_path" if data.valid_path else "data.test_path; every fact of data.path is taught"
                  if data.test_path else f"{float(data.split_fraction):.0%} of data.path (data.split_fraction), "
                  "not taught")
        source = f"; eval: {source}"
    test = splits.get("test")
    extra = f"; test file: {len(test)} scored apart" if test is not None and test != splits["eval"] else ""
    return (f"data={data.family}: {len(splits['train'])} facts taught, {n_eval} for evaluation ({n_eval - n_seen} "
            f"held out, {n_seen} taught){source}{extra}")


def resolve_ckpt_path(ckpt_path: str | None) -> str | None:
    """A run dir (or its checkpoints/ dir) means its last.ckpt; anything else goes to Lightning unchanged."""
    if not ckpt_path:
        return None
    path = _path(ckpt_path)
    if path.is_dir():
        for candidate in (path / "checkpoints" / "last.ckpt", path / "last.ckpt"):
            if candidate.is_file():
                return str(candidate)
    return ckpt_path


def sequential_state(run_dir: str | Path) -> Path:
    """Where a sequential run (sequential.batch > 0) keeps its state after each batch (engram/training/
    sequential_state.py writes it; `ckpt_path=<run dir>` resumes from it)."""
    return _path(str(run_dir)) / SEQUENTIAL_STATE


def check_sequential_resume(ckpt_path: str, variant: str, batch: int, epochs: int) -> None:
    """`ckpt_path` is the run dir of a sequential run that taught its batches as this run will (variant,
    sequential.batch, sequential.epochs) and finished one."""
    curve = sequential_state(ckpt_path) / STATE_CURVE
    if not curve.is_file():
        raise ConfigError("ckpt_path", ckpt_path, f"has no {SEQUENTIAL_STATE}/{STATE_CURVE}: not the run dir of a "
                          "sequential run (sequential.batch > 0) that finished a batch")
    try:
        payload = json.loads(curve.read_text())
        recorded = {"variant": payload["variant"], "sequential.batch": payload["batch"],
                    "sequential.epochs": payload["epochs"]}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError("ckpt_path", ckpt_path, f"{curve.name} is unreadable ({first_line(e)})") from None
    for key, value in {"variant": variant, "sequential.batch": batch, "sequential.epochs": epochs}.items():
        if recorded[key] != value:
            raise ConfigError("ckpt_path", ckpt_path, f"was taught with {key}={recorded[key]}, this run has "
                              f"{key}={value}: resume with the same settings")


def check_checkpoint(ckpt_path: str | None, sequential: tuple[str, int, int] | None = None) -> None:
    """`ckpt_path` is a Lightning checkpoint (read from its pickle without running it), or one of Lightning's
    keywords (last, best, ...), or a remote URL (checked by Lightning). `sequential` ((variant, batch, epochs) of a
    run with sequential.batch > 0): instead, the run dir of a sequential run taught the same way."""
    if ckpt_path and sequential is not None:
        check_sequential_resume(ckpt_path, *sequential)
        return
    if not ckpt_path or ckpt_path in LIGHTNING_KEYWORDS or "://" in ckpt_path:
        return
    path = _path(str(resolve_ckpt_path(ckpt_path)))
    if path.is_dir():
        raise ConfigError("ckpt_path", ckpt_path, "is a directory without checkpoints/last.ckpt (a run dir that "
                          "saved no checkpoint?)")
    if not path.is_file():
        raise ConfigError("ckpt_path", ckpt_path, "does not exist or is not a file")
    try:
        lightning_checkpoint_keys(path)
    except HeaderError as e:
        raise ConfigError("ckpt_path", ckpt_path, _rule(e, path)) from None


def check_engram_file(key: str, value: str, path: Path, missing: str = "does not exist") -> dict[str, Any]:
    """A memory saved by `save_engram`: a complete safetensors file whose metadata holds an engram config."""
    if not path.is_file():
        raise ConfigError(key, value, missing)
    try:
        header = safetensors_header(path)
    except HeaderError as e:
        raise ConfigError(key, value, _rule(e, path)) from None
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict) or meta.get("format") not in ENGRAM_FILE_FORMATS or "engram_config" not in meta:
        raise ConfigError(key, value, f"is a safetensors file but not an engram memory (format="
                          f"{meta.get('format') if isinstance(meta, dict) else None}; written by save_engram?)")
    try:
        config = json.loads(meta["engram_config"])
    except (TypeError, json.JSONDecodeError):
        raise ConfigError(key, value, "has a corrupt engram_config in its metadata") from None
    return config if isinstance(config, dict) else {}


def check_run_dir(key: str, value: str) -> None:
    """A trained run dir: its config, and the weights its variant saved."""
    run_dir = _path(value)
    cfg_file = run_dir / ".hydra" / "config.yaml"
    if not run_dir.is_dir():
        raise ConfigError(key, value, "does not exist or is not a directory")
    if not cfg_file.is_file():
        raise ConfigError(key, value, "is not a run dir (no .hydra/config.yaml)")
    try:
        variant = OmegaConf.select(OmegaConf.load(cfg_file), "variant.name", default=None)
    except Exception as e:  # noqa: BLE001 - a broken YAML file, in one line
        raise ConfigError(key, value, f"has an unreadable .hydra/config.yaml ({first_line(e)})") from None
    spec = variant_spec(variant, recorded=True)  # an old run's variant may be one no module declares now
    if spec.engram:
        check_engram_file(key, value, engram_file(run_dir), "has no engram.safetensors (did the run finish?)")
    if spec.lora and not (run_dir / "lora_adapter" / "adapter_config.json").is_file():
        raise ConfigError(key, value, "has no lora_adapter/adapter_config.json (did the run finish?)")
    if spec.gated and not (run_dir / GATE_FILE).is_file():
        raise ConfigError(key, value, f"has no {GATE_FILE} (did the run finish?)")


def check_evaluate_inputs(ev: Any) -> None:
    """The run dirs / memory evaluate.py was pointed at (ev: the keys typed on EvaluateConfig)."""
    if ev.engram_path:
        path = _path(ev.engram_path)
        missing = "has no engram.safetensors" if path.is_dir() else "does not exist"
        check_engram_file("engram_path", ev.engram_path, engram_file(path), missing)
    if ev.run_dir:
        check_run_dir("run_dir", ev.run_dir)
    for d in ev.run_dirs:
        if not _path(d).is_dir():
            raise ConfigError("run_dirs", d, "does not exist or is not a directory")
        if ev.reevaluate:
            check_run_dir("run_dirs", d)
    if ev.multirun_dir:
        matches = glob.glob(os.path.expanduser(ev.multirun_dir)) or [ev.multirun_dir]
        if not any(Path(m).is_dir() for m in matches):
            raise ConfigError("multirun_dir", ev.multirun_dir, "does not exist or is not a directory")
        if not any(next(Path(m).glob(pattern), None) for m in matches for pattern in JOB_CONFIGS):
            raise ConfigError("multirun_dir", ev.multirun_dir, "holds no run dirs (no */.hydra/config.yaml)")


def _rule(e: HeaderError, path: Path) -> str:
    """The header error without the path the key=value already shows."""
    text = str(e)
    return text[len(str(path)) + 1:] if text.startswith(str(path) + " ") else text
