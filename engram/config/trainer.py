"""Rules for `trainer.*`: the keys go straight to `lightning.Trainer(**cfg.trainer)`, so the group stays open, but a
value Lightning would refuse (after the model has loaded) or silently misuse is caught here, with the key named.

The argument names are lightning.Trainer's own signature, read from the installed Lightning's source with `ast`
(`trainer_arguments`): importing Lightning imports torch (~8 s measured on a loaded 2-core machine, against ~15 ms
to parse the one file), and the config checks run before torch loads. A new Lightning argument is then accepted
without a release of engram-lab (Lightning checks its value). The choices some arguments take (accelerators,
strategies, precisions) are copied; a test compares them with the installed Lightning.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import inspect
import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

TRAINER_SOURCE = ("pytorch", "trainer", "trainer.py")  # where lightning.Trainer is defined, under the package
SET_BY_PIPELINE = {"logger": "logger=...", "callbacks": "the pipeline", "default_root_dir": "paths.output_dir"}
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu")
STRATEGIES = (
    "auto", "ddp", "ddp_spawn", "ddp_fork", "ddp_notebook", "ddp_find_unused_parameters_false",
    "ddp_find_unused_parameters_true", "ddp_spawn_find_unused_parameters_false",
    "ddp_spawn_find_unused_parameters_true", "ddp_fork_find_unused_parameters_false",
    "ddp_fork_find_unused_parameters_true", "ddp_notebook_find_unused_parameters_false",
    "ddp_notebook_find_unused_parameters_true", "deepspeed", "deepspeed_stage_1", "deepspeed_stage_2",
    "deepspeed_stage_2_offload", "deepspeed_stage_3", "deepspeed_stage_3_offload", "deepspeed_stage_3_offload_nvme",
    "fsdp", "fsdp_cpu_offload", "single_device", "single_xla", "xla_debug", "xla", "single_tpu",
)
PRECISIONS = ("transformer-engine", "transformer-engine-float16", "16-true", "16-mixed", "bf16-true", "bf16-mixed",
              "32-true", "64-true", "64", "32", "16", "bf16", 64, 32, 16)
PROFILERS = ("simple", "advanced", "pytorch", "xla")

Problem = tuple[str, Any, str]  # (key, value, rule): becomes `config error: trainer.<key>=<value> <rule>`


@functools.cache
def trainer_arguments() -> frozenset[str]:
    """lightning.Trainer's keyword arguments, minus the ones engram-lab sets itself (SET_BY_PIPELINE). Parsed from
    the installed source (no import; see the module docstring); where there is no source file (a zipped install),
    `inspect.signature` of the imported class."""
    spec = importlib.util.find_spec("lightning")  # finds the package without importing it
    source = Path(spec.origin).parent.joinpath(*TRAINER_SOURCE) if spec and spec.origin else None
    if source is not None and source.is_file():
        names = _init_arguments(ast.parse(source.read_text()), "Trainer")
    else:
        import lightning

        names = list(inspect.signature(lightning.Trainer).parameters)
    return frozenset(names) - {"self"} - set(SET_BY_PIPELINE)


def _init_arguments(tree: ast.Module, class_name: str) -> list[str]:
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                    a = item.args
                    return [x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
    raise ValueError(f"engram: no {class_name}.__init__ in Lightning's source; is lightning installed?")


def _anything(v: Any) -> bool:
    return True


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _num(v: Any) -> bool:
    return (isinstance(v, int | float) and not isinstance(v, bool)) and math.isfinite(v)


def _int_at_least(low: int) -> Callable[[Any], bool]:
    return lambda v: _int(v) and v >= low


def _share_or_count(v: Any) -> bool:
    """limit_*_batches, overfit_batches: a share of the batches (float in [0, 1]) or a count (int >= 0)."""
    return (_int(v) and v >= 0) or (isinstance(v, float) and 0.0 <= v <= 1.0)


def _devices(v: Any) -> bool:
    if isinstance(v, str):
        return v == "auto" or bool(re.fullmatch(r"-1|\d+|\d+(,\d+)*,?", v.strip()))
    if isinstance(v, list | tuple):
        return len(v) > 0 and all(_int(d) and d >= 0 for d in v) and len(set(v)) == len(v)
    return _int(v) and (v >= 1 or v == -1)


def _bool(v: Any) -> bool:
    return isinstance(v, bool)


# key -> (accepts the value?, the rule shown when it does not)
RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "accelerator": (lambda v: v in ACCELERATORS, f"is not one of {', '.join(ACCELERATORS)}"),
    "strategy": (lambda v: isinstance(v, str) and v in STRATEGIES, "is not a Lightning strategy (e.g. auto, ddp, "
                 "ddp_fork, fsdp, deepspeed)"),
    "devices": (_devices, 'must be a count >= 1, -1 (all), "auto", or a list of device indices'),
    "num_nodes": (_int_at_least(1), "must be an integer >= 1"),
    "precision": (lambda v: not isinstance(v, bool) and v in PRECISIONS,
                  "is not a Lightning precision (e.g. 32-true, bf16-mixed, 16-mixed)"),
    "fast_dev_run": (lambda v: _bool(v) or (_int(v) and v >= 0), "must be true/false or a batch count >= 0"),
    "max_epochs": (lambda v: v is None or (_int(v) and v >= -1), "must be an integer >= 0 (or -1: no limit)"),
    "min_epochs": (lambda v: v is None or (_int(v) and v >= 0), "must be an integer >= 0"),
    "max_steps": (_int_at_least(-1), "must be an integer >= 0 (or -1: no limit)"),
    "min_steps": (lambda v: v is None or (_int(v) and v >= 0), "must be an integer >= 0"),
    "max_time": (lambda v: v is None or isinstance(v, str | dict) or (hasattr(v, "items")), 'must be "DD:HH:MM:SS"'),
    "limit_train_batches": (lambda v: v is None or _share_or_count(v), "must be a share in [0, 1] or a count >= 0"),
    "limit_val_batches": (lambda v: v is None or _share_or_count(v), "must be a share in [0, 1] or a count >= 0"),
    "limit_test_batches": (lambda v: v is None or _share_or_count(v), "must be a share in [0, 1] or a count >= 0"),
    "limit_predict_batches": (lambda v: v is None or _share_or_count(v), "must be a share in [0, 1] or a count >= 0"),
    "overfit_batches": (_share_or_count, "must be a share in [0, 1] or a count >= 0"),
    "val_check_interval": (lambda v: v is None or (_int(v) and v >= 1) or (isinstance(v, float) and 0.0 < v <= 1.0),
                           "must be a share of an epoch in (0, 1] or a batch count >= 1"),
    "check_val_every_n_epoch": (lambda v: v is None or (_int(v) and v >= 1), "must be an integer >= 1"),
    "num_sanity_val_steps": (_int_at_least(-1), "must be an integer >= 0 (or -1: all)"),
    "log_every_n_steps": (_int_at_least(1), "must be an integer >= 1"),
    "accumulate_grad_batches": (_int_at_least(1), "must be an integer >= 1"),
    "gradient_clip_val": (lambda v: v is None or (_num(v) and v >= 0), "must be a number >= 0 (0: no clipping)"),
    "gradient_clip_algorithm": (lambda v: v in (None, "norm", "value"), "is not one of norm, value"),
    "deterministic": (lambda v: v is None or _bool(v) or v == "warn", "must be true, false or warn"),
    "benchmark": (lambda v: v is None or _bool(v), "must be true or false"),
    "profiler": (lambda v: v is None or v in PROFILERS, f"is not one of {', '.join(PROFILERS)}"),
    "reload_dataloaders_every_n_epochs": (_int_at_least(0), "must be an integer >= 0"),
    "model_registry": (lambda v: v is None or isinstance(v, str), "must be a string"),
}
for _flag in ("enable_checkpointing", "enable_progress_bar", "enable_model_summary", "inference_mode",
              "use_distributed_sampler", "detect_anomaly", "barebones", "sync_batchnorm", "enable_autolog_hparams"):
    RULES[_flag] = (lambda v: v is None or _bool(v), "must be true or false")


def trainer_problem(trainer: Any, nothing_to_train: bool) -> Problem | None:
    """The first bad `trainer.*` value as (key, value, rule), or None. `nothing_to_train`: the variant trains no
    weights (frozen baseline) or its memory is filled before training, so zero epochs is what the user means."""
    if not isinstance(trainer, Mapping):
        return ("trainer", trainer, "must be a group of lightning.Trainer arguments (e.g. trainer=cpu)")
    for key, value in trainer.items():
        if key in SET_BY_PIPELINE:
            return (f"trainer.{key}", value, f"is set by engram-lab (use {SET_BY_PIPELINE[key]})")
        if key not in trainer_arguments():
            return (f"trainer.{key}", value, "is not a lightning.Trainer argument")
        accepts, rule = RULES.get(key, (_anything, ""))  # an argument without a rule here: Lightning checks it
        if not accepts(value):
            return (f"trainer.{key}", value, rule)
    get = trainer.get
    devices = get("devices", "auto")
    if get("accelerator", "auto") == "cpu" and not (devices == "auto" or _positive_count(devices)):
        return ("trainer.devices", get("devices"), "must be a count >= 1 with trainer.accelerator=cpu")
    max_epochs, max_steps = get("max_epochs"), get("max_steps", -1)
    if max_epochs == -1 and max_steps == -1:
        return ("trainer.max_epochs", -1, "with trainer.max_steps=-1 would train forever; set one of them")
    zero = next(((k, v) for k, v in (("max_epochs", max_epochs), ("max_steps", max_steps),
                                     ("limit_train_batches", get("limit_train_batches"))) if v == 0), None)
    if zero is not None and not nothing_to_train:
        return (f"trainer.{zero[0]}", zero[1], "trains nothing, and an untrained memory would be reported as a "
                "result; use >= 1 (0 fits only variant=baseline, which trains nothing)")
    min_steps, min_epochs = get("min_steps"), get("min_epochs")
    if _int(min_steps) and max_steps != -1 and min_steps > max_steps:
        return ("trainer.min_steps", min_steps, f"must be <= trainer.max_steps ({max_steps})")
    if _int(min_epochs) and _int(max_epochs) and max_epochs != -1 and min_epochs > max_epochs:
        return ("trainer.min_epochs", min_epochs, f"must be <= trainer.max_epochs ({max_epochs})")
    return None


def _positive_count(v: Any) -> bool:
    return (_int(v) and v >= 1) or (isinstance(v, str) and v.strip().isdigit() and int(v) >= 1)
