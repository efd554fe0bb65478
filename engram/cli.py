"""Helpers shared by the thin entry points: fail fast on bad overrides and configs, with one line and exit 2."""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import DictConfig

from engram.config import ConfigError, validate, validate_layers

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
CHECKED_GROUPS = ("model", "variant", "engram", "lora", "data", "trainer", "logger", "optim", "experiment",
                  "hparams_search")


def exit_config_error(err: ConfigError | str) -> None:
    print(str(err), file=sys.stderr)
    sys.exit(2)


def exit_expected_error(err: Exception) -> None:
    """A failure the message fully explains (e.g. a full disk): one line and exit 2. In a multirun re-raise instead,
    so Hydra records the job as failed and runs the others (the job's FAILED.txt is already written)."""
    if in_multirun():
        raise err
    exit_config_error(str(err))


def check_group_choices(argv: list[str], conf_dir: Path = CONF_DIR) -> None:
    """Reject `group=unknown` before Hydra composes (Hydra's own error is a multi-line traceback, exit 1)."""
    for arg in argv:
        if "=" not in arg or arg.startswith(("+", "~", "hydra")):
            continue
        key, value = arg.split("=", 1)
        if key not in CHECKED_GROUPS or value in ("null", ""):
            continue
        options = sorted(p.stem for p in (conf_dir / key).glob("*.yaml"))
        for choice in value.split(","):  # multirun: model=a,b
            if choice not in options:
                exit_config_error(ConfigError(key, choice, f"is not a known {key} (one of: {', '.join(options)})"))


def validated_or_exit(cfg: DictConfig) -> DictConfig:
    """The typed, validated config; on a bad value print `config error: key=value rule` and exit 2."""
    try:
        typed = validate(cfg)
        if typed.variant.name in ("engram", "combined"):
            check_layers_fit_model(typed)
        return typed
    except ConfigError as e:
        if in_multirun():  # one bad job of a sweep: record it and let Hydra run the others
            note_job_failure(str(e))
            raise
        exit_config_error(e)
        raise  # unreachable; keeps type checkers happy


def in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def note_job_failure(message: str) -> None:
    """FAILED.txt in the job's run dir (what the training task wrapper writes too), for report.py."""
    from hydra.core.hydra_config import HydraConfig

    out = Path(HydraConfig.get().runtime.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "FAILED.txt").write_text(message + "\n")


def check_layers_fit_model(cfg: DictConfig) -> None:
    """engram.layers against the model depth, and the tables against free RAM, from the model's config alone."""
    from engram.memory.budget import check_memory_budget
    from engram.models.loading import ModelUnavailableError, model_shape

    try:
        depth, hidden_size = model_shape(cfg.model)
    except ModelUnavailableError as e:
        exit_config_error(str(e))
        return
    layers = validate_layers(cfg.engram.layers, depth)
    check_memory_budget(cfg.engram, len(layers), hidden_size)
