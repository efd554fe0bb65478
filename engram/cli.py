"""Helpers shared by the thin entry points: fail fast on bad overrides, configs and input files, with one line on
stderr and exit 2, before any weights load (HYDRA_FULL_ERROR=1 adds the traceback).

`check_config` is everything the entry points check; it raises ConfigError and is what the tests fuzz.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import runpy
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from engram.conf import CONF_DIR
from engram.config import (
    EVALUATE_KEYS,
    ConfigError,
    for_variant,
    load_plugins,
    register_configs,
    schema_of,
    validate,
    validate_evaluate_keys,
    validate_layers,
)
from engram.config.merge import check_known
from engram.config.renamed import is_old
from engram.config.renamed import rule as renamed_rule
from engram.config.rules import RENAMED_EVALUATE_KEYS, one_line
from engram.extras import installed, missing_message
from engram.inputs import check_checkpoint, check_data, check_evaluate_inputs, describe_splits
from engram.memory.budget import check_memory_budget
from engram.models.loading import model_shape
from engram.variants.common import variant_spec

register_configs()  # the group YAMLs extend the schemas stored here (engram/config/schema.py); hydra is loaded anyway

log = logging.getLogger(__name__)
CHECKED_GROUPS = ("model", "variant", "engram", "lora", "data", "trainer", "logger", "optim", "experiment",
                  "hparams_search")
# the Hydra options the launcher plugins of the [launchers] extra register -> the plugin's module (without it,
# Hydra only says it could not find the option)
PLUGIN_OPTIONS = {
    "hydra/launcher/joblib": "hydra_plugins.hydra_joblib_launcher",
    "hydra/launcher/submitit_local": "hydra_plugins.hydra_submitit_launcher",
    "hydra/launcher/submitit_slurm": "hydra_plugins.hydra_submitit_launcher",
}


def exit_config_error(err: ConfigError | str) -> None:
    if os.environ.get("HYDRA_FULL_ERROR") == "1" and sys.exc_info()[0] is not None:
        traceback.print_exc()  # asked for: where the check fired
    print(one_line(str(err)), file=sys.stderr)
    sys.exit(2)


def run_checked(main: Callable[[], Any], config_name: str) -> None:
    """A Hydra entry point's command line: the one-line checks below, then `main` (Hydra reads sys.argv itself)."""
    check_group_choices(sys.argv[1:])
    check_overrides(sys.argv[1:], config_name)
    main()


def exit_expected_error(err: Exception) -> None:
    """A failure the message fully explains (e.g. a full disk): one line and exit 2. In a multirun re-raise instead,
    so Hydra records the job as failed and runs the others (the job's FAILED.txt is already written)."""
    if in_multirun():
        raise err
    exit_config_error(str(err))


def check_group_choices(argv: list[str], conf_dir: Path = CONF_DIR) -> None:
    """Reject `group=unknown` before Hydra composes (Hydra's own error is a multi-line traceback, exit 1). Options
    are the YAMLs in engram/conf/ and in the `hydra.searchpath=[file://dir,...]` directories the command line gives."""
    dirs = [conf_dir, *search_dirs(argv)]
    for arg in argv:
        if "=" not in arg or arg.startswith(("+", "~", "hydra")):
            continue
        key, value = arg.split("=", 1)
        if key not in CHECKED_GROUPS or value in ("null", ""):
            continue
        options = sorted({p.stem for d in dirs for p in (d / key).glob("*.yaml")})
        for choice in value.split(","):  # multirun: model=a,b
            if choice not in options:
                exit_config_error(ConfigError(key, choice, f"is not a known {key} (one of: {', '.join(options)})"))


def search_dirs(argv: list[str]) -> list[Path]:
    """The local config directories a command line adds (where plugins keep their YAMLs):
    `hydra.searchpath=[file://a,file://b]` and `--config-dir DIR` / `-cd DIR` / `--config-dir=DIR`."""
    out = []
    for i, arg in enumerate(argv):
        if arg.startswith("hydra.searchpath="):
            for item in arg.split("=", 1)[1].strip("[]").split(","):
                item = item.strip().strip("'\"")
                if item.startswith("file://"):
                    out.append(Path(item[len("file://"):]))
        elif arg in ("--config-dir", "-cd") and i + 1 < len(argv):
            out.append(Path(argv[i + 1]))
        elif arg.startswith("--config-dir="):
            out.append(Path(arg.split("=", 1)[1]))
    return out


HYDRA_FLAGS = ("-m", "--multirun")  # flags the pre-compose understands; any other flag skips it
# an older venv may still hold hydra-optuna-sweeper: its `hydra/sweeper: optuna` replaces the project's own (Hydra
# scans site-packages after the repo) and fails on Optuna 4
STALE_SWEEPER = "hydra_plugins.hydra_optuna_sweeper."
OWN_SWEEPER = "hydra_plugins.engram_optuna_sweeper."  # always installed; the sweep it runs needs optuna ([launchers])


def check_overrides(argv: list[str], config_name: str, conf_dir: Path = CONF_DIR) -> None:
    """Compose the command line once before Hydra does: an unknown key (`optim.lrr=1`), bad override syntax or a
    missing option would otherwise be Hydra's multi-line error with exit 1. In a multirun each sweep counts with
    its first value (the jobs' values are validated per job). For evaluate.py also its mode: a bad combination
    of keys is refused before any job starts."""
    check_renamed(argv, evaluate=config_name == "evaluate")
    command_line_plugins(argv)
    if any(a.startswith("-") and a not in HYDRA_FLAGS for a in argv):
        return
    try:
        overrides = _first_job([a for a in argv if a not in HYDRA_FLAGS], multirun=any(a in HYDRA_FLAGS for a in argv))
        with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
            cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
    except Exception as e:  # noqa: BLE001 - whatever Hydra refuses, in one line
        if plugin := missing_plugin(str(e)):
            exit_config_error(plugin)
            return
        lines = []
        for line in str(e).splitlines():
            if line.startswith(("Config search path", "See https")):
                break
            lines.append(line.strip())
        message = " ".join(x for x in lines if x) or type(e).__name__
        exit_config_error(f"config error: the command line does not compose: {message}")
        return
    sweeper = str(OmegaConf.select(cfg, "hydra.sweeper._target_", default=""))
    if sweeper.startswith(OWN_SWEEPER) and not installed("optuna"):
        exit_config_error(missing_message("optuna"))
    if sweeper.startswith(STALE_SWEEPER):
        exit_config_error("config error: hydra/sweeper=optuna is hydra-optuna-sweeper's (Optuna < 3), left installed "
                          "from an older lock: pip uninstall hydra-optuna-sweeper (hydra_plugins/engram_optuna_sweeper "
                          "replaces it)")
    try:  # here too, not only in the job: a multirun with an unknown key is refused before any job starts
        check_known(OmegaConf.to_container(cfg, resolve=False), schema_of("train"),
                    EVALUATE_KEYS if config_name == "evaluate" else ())
        if config_name == "evaluate":
            validate_evaluate_keys(cfg)
    except ConfigError as e:
        exit_config_error(e)


def check_renamed(argv: list[str], evaluate: bool = False) -> None:
    """A key under its old spelling (engram.hybrid_topk=16, data.num_facts=8, evaluate.py's four_way=true): one line
    naming the new one, exit 2 (Hydra would say only that the key is not in the config)."""
    for arg in argv:
        key, _, value = arg.partition("=")
        old = key.lstrip("+~")
        if evaluate and old in RENAMED_EVALUATE_KEYS:
            new, what = RENAMED_EVALUATE_KEYS[old]
            exit_config_error(ConfigError(old, value, f"was renamed: use {new}={value or 'true'} ({what})"))
        if is_old(old, {} if value.lstrip().startswith("{") else value):  # engram.offload={to: host} is new
            exit_config_error(ConfigError(old, value, renamed_rule(old, value)))


def command_line_plugins(argv: list[str]) -> None:
    """Import the plugins a command line names (`plugins=[a,b]`) and store the schemas again, so a plugin kind's own
    keys (engram.<kind>.*) are in the composed config and `engram.<kind>.<key>=...` overrides compose; a plugin
    that cannot be imported is one line, exit 2. Plugins named only in a YAML still load, at validation, with their
    keys' defaults."""
    for arg in argv:
        key, _, value = arg.partition("=")
        if key.lstrip("+") == "plugins" and value.strip("[] "):
            try:
                load_plugins({"plugins": [m.strip().strip("'\"") for m in value.strip("[]").split(",") if m.strip()]})
            except ConfigError as e:
                exit_config_error(e)
            register_configs()


def missing_plugin(message: str) -> str | None:
    """The line naming the [launchers] extra when Hydra could not find an option that a missing plugin registers
    (hydra/launcher=joblib|slurm|submitit_*); None for any other compose error."""
    for option, module in PLUGIN_OPTIONS.items():
        named = any(f"Could not {verb} '{option}'" in message for verb in ("find", "load"))  # a YAML's default: load
        if named and not installed(module):
            return missing_message(module)
    return None


def _first_job(overrides: list[str], multirun: bool) -> list[str]:
    """The overrides with every sweep (a=1,2 / interval(..) / range(..)) replaced by its first value."""
    if not multirun:
        return overrides
    out = []
    for o in OverridesParser.create().parse_overrides(overrides):
        if not o.is_sweep_override():
            out.append(o.input_line)
            continue
        value = o.value()
        first = str(value.start) if isinstance(value, IntervalSweep) else next(iter(o.sweep_string_iterator()))
        out.append(f"{o.get_key_element()}={first}")
    return out


def check_config(cfg: DictConfig, evaluate: bool = False) -> DictConfig:
    """Validate a composed config and the files and model it names; the typed config, or ConfigError."""
    return checked_config(cfg, evaluate)[0]


def checked_config(cfg: DictConfig, evaluate: bool = False) -> tuple[DictConfig, str | None]:
    """check_config's typed config, and the line saying how many facts the run teaches and scores (None when it
    teaches nothing: evaluate.py without train_variants).

    Cheap checks first: values (no I/O), then the model's config.json / GGUF header, the accelerator, the data
    (built as the run will build it), a checkpoint and, for evaluate.py, the run dirs and memory file.
    """
    typed = validate(cfg, EVALUATE_KEYS if evaluate else ())  # a root key of neither schema is refused
    ev = validate_evaluate_keys(cfg) if evaluate else None
    check_model(typed)
    check_accelerator(typed.trainer)
    splits = check_data(typed.data)
    sequential = typed.sequential.batch > 0 and not evaluate
    check_checkpoint(typed.ckpt_path, (typed.variant.name, typed.sequential.batch, typed.sequential.epochs)
                     if sequential else None)
    if ev is not None:
        check_evaluate_inputs(ev)
        if ev.train_variants:  # every row's own config (e.g. engram_hybrid's address settings) before anything trains
            for variant in ev.variants:
                for_variant(typed, variant)
    check_budget(typed)  # last: the hash kind's layout imports torch (~2 s), so every cheap check fails first
    return typed, describe_splits(typed.data, splits) if ev is None or ev.train_variants else None


def validated_or_exit(cfg: DictConfig, evaluate: bool = False) -> DictConfig:
    """The typed, validated config; on a bad value print `config error: key=value rule` and exit 2. A run that
    teaches logs first how many facts it teaches and holds out (from the splits the check built)."""
    try:
        typed, data_line = checked_config(cfg, evaluate)
        if data_line:
            log.info(data_line)
        return typed
    except ConfigError as e:
        if in_multirun():  # one bad job of a sweep: record it and let Hydra run the others
            note_job_failure(str(e))
            raise
        exit_config_error(e)
        raise  # unreachable; keeps type checkers happy


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def note_job_failure(message: str) -> None:
    """FAILED.txt in the job's run dir (what the training task wrapper writes too), for report.py."""
    out = Path(HydraConfig.get().runtime.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "FAILED.txt").write_text(message + "\n")


def check_model(cfg: DictConfig) -> None:
    """The model exists (config.json / GGUF header, no weights); for a memory, engram.layers against its depth and
    a LoRA rank that fits its width (the tables against free RAM: check_budget, last)."""
    depth, hidden_size = model_shape(cfg.model)  # ModelUnavailableError is a ConfigError
    variant = variant_spec(cfg.variant.name)
    if variant.engram:
        validate_layers(cfg.engram.layers, depth)
    if variant.lora and cfg.lora.r > hidden_size:
        raise ConfigError("lora.r", cfg.lora.r, f"must be <= the model's hidden size ({hidden_size})")


def check_budget(cfg: DictConfig) -> None:
    """The memory's tables and optimizer state fit in the free RAM (from the model's config, before weights)."""
    if variant_spec(cfg.variant.name).engram:
        depth, hidden_size = model_shape(cfg.model)
        check_memory_budget(cfg.engram, len(validate_layers(cfg.engram.layers, depth)), hidden_size)


def check_accelerator(trainer: Any) -> None:
    """A GPU accelerator needs a GPU here (Lightning would refuse only after the model has loaded)."""
    accelerator = trainer.get("accelerator", "auto")
    if accelerator not in ("gpu", "cuda", "mps"):
        return
    no_gpu = ConfigError("trainer.accelerator", accelerator, "but no GPU is available here; use trainer=cpu")
    if not _torch_may_have_gpu(accelerator):
        raise no_gpu
    import torch  # lazy: torch costs ~2-5 s (measured with -X importtime); only a GPU build of torch gets this far

    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if not {"gpu": cuda or mps, "cuda": cuda, "mps": mps}[accelerator]:
        raise no_gpu
    devices = trainer.get("devices", "auto")
    count = torch.cuda.device_count() if cuda and accelerator != "mps" else 1
    if isinstance(devices, int) and devices > count:
        raise ConfigError("trainer.devices", devices, f"but only {count} GPU(s) are available here")


def _torch_may_have_gpu(accelerator: str) -> bool:
    """False when the installed torch is a CPU-only build (its version.py says so; torch is not imported)."""
    spec = importlib.util.find_spec("torch")
    locations = list(spec.submodule_search_locations or []) if spec else []
    version_file = next((Path(d) / "version.py" for d in locations if (Path(d) / "version.py").is_file()), None)
    if version_file is None:
        return True  # unknown layout: let torch answer
    build = runpy.run_path(str(version_file))
    if accelerator == "mps":
        return sys.platform == "darwin"
    return bool(build.get("cuda") or build.get("hip")) or (accelerator == "gpu" and sys.platform == "darwin")
