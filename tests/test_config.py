"""Config validation: every bad value fails before anything heavy loads, with one line naming the key."""

import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from engram.cli import check_group_choices, validated_or_exit
from engram.config import ConfigError, validate, validate_layers

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "engram" / "conf"


def composed(*overrides: str, memory: str = "engram=deepseek"):
    """The train config with `overrides`; the paper's memory unless an engram= option is given (the rules these
    tests check are written for it; the default, engram=question, has its own tests)."""
    chosen = [] if any(o.startswith("engram=") for o in overrides) or not memory else [memory]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="train", overrides=[*chosen, *overrides])


def test_default_config_is_valid():
    cfg = validate(composed(memory=""))
    assert cfg.model.name == "smollm" and cfg.variant.name == "engram"
    assert (cfg.engram.hash, cfg.engram.address, cfg.engram.gate, cfg.engram.init) == (
        "question", "fingerprint", "direct", "prepopulate")


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("engram.table_size=0", "engram.table_size"),
        ("engram.table_size=-5", "engram.table_size"),
        ("engram.table_size=abc", "engram.table_size"),
        ("engram.table_size=2.5", "engram.table_size"),
        ("engram.heads=0", "engram.heads"),
        ("engram.heads=6000", "engram.heads"),
        ("engram.gate_bias=nan", "engram.gate_bias"),
        ("engram.gate_bias=inf", "engram.gate_bias"),
        ("engram.gate_bias=open", "engram.gate_bias"),
        ("engram.hash=md5", "engram.hash"),
        ("engram.gate=relu", "engram.gate"),
        ("engram.layers=[-1]", "engram.layers"),
        ("engram.layers=[]", "engram.layers"),
        ("model.name=gpt", "model.name"),
        ("variant.name=adapter", "variant.name"),
        ("data.family=wiki", "data.family"),
        ("data.num_train=0", "data.num_train"),
        ("data.eval_seen_fraction=1.5", "data.eval_seen_fraction"),
        ("lora.r=0", "lora.r"),
    ],
)
def test_bad_value_names_key(override, key):
    with pytest.raises(ConfigError) as err:
        validate(composed(override))
    message = str(err.value)
    assert message.startswith(f"config error: {key}=") and "\n" not in message


def test_per_order_table_sizes():
    assert validate(composed("engram.table_size=[1009,2003]", "engram.max_ngram=3")).engram.table_size == [1009, 2003]
    with pytest.raises(ConfigError, match="engram.table_size"):
        validate(composed("engram.table_size=[1009,2003,3001]", "engram.max_ngram=3"))
    for sizes in ("[1009]", "[]"):  # found by test_config_fuzz: the n-gram hasher raised after the model loaded
        with pytest.raises(ConfigError, match="engram.table_size"):
            validate(composed(f"engram.table_size={sizes}"))


def test_missing_data_file(tmp_path):
    with pytest.raises(ConfigError, match=r"^config error: data.path=.*nowhere.jsonl does not exist"):
        validate(composed("data=jsonl", f"data.path={tmp_path / 'nowhere.jsonl'}"))
    with pytest.raises(ConfigError, match="data.path"):
        validate(composed("data=jsonl"))
    present = tmp_path / "facts.jsonl"
    present.write_text("")
    assert validate(composed("data=jsonl", f"data.path={present}")).data.path == str(present)


def test_layers_checked_against_model_depth(capsys):
    assert validate_layers("all", 4) == [0, 1, 2, 3]
    assert validate_layers([0, 3], 4) == [0, 3]
    with pytest.raises(ConfigError, match=r"engram.layers=\[4\] is outside the model's 4 layers"):
        validate_layers([4], 4)
    # through the entry-point path: tiny has 2 layers, known from its config without building weights
    with pytest.raises(SystemExit) as code:
        validated_or_exit(composed("model=tiny", "engram.layers=[2]"))
    assert code.value.code == 2
    expected = "config error: engram.layers=[2] is outside the model's 2 layers (0..1, or \"final\")"
    assert capsys.readouterr().err.strip() == expected


@pytest.mark.parametrize("arg", ["model=gpt5", "variant=adapter", "data=wiki", "engram=paper", "trainer=tpu"])
def test_unknown_group_option(arg, capsys):
    with pytest.raises(SystemExit) as code:
        check_group_choices([arg])
    assert code.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"config error: {arg} is not a known {arg.split('=')[0]}") and "\n" not in err


def test_known_group_options_pass():
    check_group_choices(["model=tiny", "variant=lora,engram", "engram=poc", "trainer=debug", "data.num_train=5"])


def test_schemas_registered_in_config_store():
    from hydra.core.config_store import ConfigStore

    from engram.config import register_configs

    register_configs()
    repo = ConfigStore.instance().repo
    assert {"model", "engram", "variant", "lora", "data", "logger"} <= set(repo["schema"].keys())
    node = repo["schema"]["engram"]["engram.yaml"].node
    assert OmegaConf.select(node, "table_size") == 5000


@pytest.mark.parametrize(
    ("args", "needle"),
    [(["engram.table_size=0"], "config error: engram.table_size=0"), (["model=nosuch"], "config error: model=nosuch")],
)
def test_train_py_exits_2_with_one_line(args, needle, tmp_path):
    proc = subprocess.run(
        [sys.executable, "train.py", *args, f"hydra.run.dir={tmp_path}"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(needle), proc.stderr


def test_oversized_tables_refused_before_loading(capsys, monkeypatch):
    """The memory budget is checked at validation, from the model's config: one line naming engram.table_size."""
    monkeypatch.setenv("ENGRAM_MEMORY_LIMIT_GB", "1")
    with pytest.raises(SystemExit) as code:
        validated_or_exit(composed("model=tiny", "engram.table_size=10000000", "engram.dim=64", "engram.layers=[0]"))
    assert code.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("config error: engram.table_size=10000000 needs ~") and "\n" not in err
    validated_or_exit(composed("model=tiny", "engram.table_size=1000", "engram.layers=[0]"))  # small: fine


# ---------------------------------------------------------------- optimizer and trainer keys


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("optim.lr=0", "optim.lr"), ("optim.lr=-1", "optim.lr"), ("optim.lr=nan", "optim.lr"),
        ("optim.lr=inf", "optim.lr"), ("optim.lr=fast", "optim.lr"), ("optim.weight_decay=-0.1", "optim.weight_decay"),
        ("optim.betas=[0.9]", "optim.betas"), ("optim.betas=[1.0,0.999]", "optim.betas"),
        ("optim.betas=[0.9,-0.1]", "optim.betas"), ("optim.eps=0", "optim.eps"),
        ("optim.warmup_steps=-1", "optim.warmup_steps"), ("optim.warmup_steps=2.5", "optim.warmup_steps"),
        ("optim.min_lr_ratio=1.5", "optim.min_lr_ratio"), ("+optim.momentum=0.9", "optim.momentum"),
        ("trainer.max_epochs=-2", "trainer.max_epochs"), ("trainer.max_epochs=1.5", "trainer.max_epochs"),
        ("trainer.max_steps=-5", "trainer.max_steps"), ("trainer.max_steps=0", "trainer.max_steps"),
        ("trainer.max_epochs=-1", "trainer.max_epochs"),  # with max_steps=-1: an endless run
        ("+trainer.limit_train_batches=0", "trainer.limit_train_batches"),
        ("trainer.devices=0", "trainer.devices"), ("trainer.devices=[0]", "trainer.devices"),  # a list on CPU
        ("trainer.precision=fp8", "trainer.precision"), ("trainer.log_every_n_steps=0", "trainer.log_every_n_steps"),
        ("trainer.gradient_clip_val=-1", "trainer.gradient_clip_val"),
        ("trainer.accelerator=npu", "trainer.accelerator"),
        ("+trainer.strategy=ddp_magic", "trainer.strategy"), ("+trainer.logger=false", "trainer.logger"),
        ("+trainer.epochs=3", "trainer.epochs"), ("seed=-1", "seed"), ("data.seed=4294967296", "data.seed"),
        ("engram.lr_multiplier=inf", "engram.lr_multiplier"), ("engram.max_ngram=100", "engram.max_ngram"),
        ("model.dtype=float8", "model.dtype"), ("lora.target_modules=[qproj]", "lora.target_modules"),
    ],
)
def test_bad_optim_and_trainer_values_name_the_key(override, key):
    with pytest.raises(ConfigError) as err:
        validate(composed("model=tiny", override))
    assert str(err.value).startswith(f"config error: {key}=") and len(str(err.value).splitlines()) == 1


def test_zero_epochs_only_when_nothing_is_meant_to_train():
    """An untrained memory must not be reported as a result: 0 epochs is refused unless nothing trains anyway."""
    for variant in ("engram", "lora", "combined"):
        with pytest.raises(ConfigError, match=r"trainer.max_epochs=0 trains nothing"):
            validate(composed("model=tiny", f"variant={variant}", "trainer.max_epochs=0"))
    validate(composed("model=tiny", "variant=baseline", "trainer.max_epochs=0"))  # frozen: evaluated as is
    with pytest.raises(ConfigError, match="trainer.max_epochs=0"):
        validate(composed("model=tiny", "variant=baseline", "variant.finetune=full", "trainer.max_epochs=0"))
    # a memory written before training (engram.init=prepopulate) is a result without epochs; LoRA beside it is not
    validate(composed("model=tiny", "engram=recall", "trainer.max_epochs=0"))
    with pytest.raises(ConfigError, match="trainer.max_epochs=0"):
        validate(composed("model=tiny", "engram=recall", "variant=combined", "trainer.max_epochs=0"))


def test_trainer_rules_know_what_lightning_accepts(monkeypatch):
    """The argument names are read from Lightning's source without importing it, and equal the imported class's
    signature (also the fallback's answer); the copied choices match the installed Lightning."""
    import importlib.util
    import inspect
    import typing

    import lightning as L
    from lightning.fabric.connector import _PRECISION_INPUT
    from lightning.pytorch.accelerators import AcceleratorRegistry
    from lightning.pytorch.strategies import StrategyRegistry

    from engram.config.trainer import ACCELERATORS, PRECISIONS, RULES, SET_BY_PIPELINE, STRATEGIES, trainer_arguments

    params = set(inspect.signature(L.Trainer.__init__).parameters) - {"self"}
    assert trainer_arguments() | set(SET_BY_PIPELINE) == params
    assert set(RULES) <= trainer_arguments()  # every rule is for an argument Lightning has
    assert set(PRECISIONS) == {v for lit in typing.get_args(_PRECISION_INPUT) for v in typing.get_args(lit)}
    assert set(AcceleratorRegistry.available_accelerators()) <= set(ACCELERATORS)
    assert set(StrategyRegistry.available_strategies()) | {"auto"} == set(STRATEGIES)
    parsed = trainer_arguments()
    trainer_arguments.cache_clear()
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)  # no source file: inspect the class
    try:
        assert trainer_arguments() == parsed
    finally:
        trainer_arguments.cache_clear()


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["optim.lrr=1"], "Could not override 'optim.lrr'"),
        (["data.pathh=x"], "Could not override 'data.pathh'"),
        (["engram.table_size=[1,"], "no viable alternative"),
        (["trainer.max_epochs=1,2"], "Ambiguous value"),
        (["-m", "optim.lr=1e-3,2e-3", "optim.eps=1,2", "engram.gat_bias=0,1"], "engram.gat_bias"),
    ],
)
def test_command_line_that_does_not_compose_is_one_line(argv, needle, capsys):
    from engram.cli import check_overrides

    with pytest.raises(SystemExit) as code:
        check_overrides(argv, "train")
    assert code.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("config error: the command line does not compose: ") and needle in err
    assert len(err.splitlines()) == 1


def test_sweeps_compose_with_their_first_value():
    from engram.cli import check_overrides

    check_overrides(["-m", "optim.lr=1e-3,1e-2", "engram.table_size=range(1000,3000,1000)", "variant=lora,engram"],
                    "train")
    check_overrides(["-m", "hparams_search=optuna", "model=tiny", "engram.gate_bias=interval(-8.0, 0.0)"], "train")
    check_overrides(["train_variants=true", "experiment=smoke"], "evaluate")


def _yaml_files_and_schemas():
    from engram.config import SCHEMAS, EvaluateConfig, TrainConfig, schema_defaults

    out = [(p, group, schema_defaults(cls)) for group, cls in SCHEMAS.items()
           for p in sorted((CONF / group).glob("*.yaml"))]
    out.append((CONF / "train.yaml", "root", schema_defaults(TrainConfig)))
    out.append((CONF / "evaluate.yaml", "evaluate", schema_defaults(EvaluateConfig)))
    return out


def test_defaults_have_one_home_the_dataclasses():
    """Every group YAML extends its schema (engram/config/schema.py) and sets only what that option changes: a value
    equal to the dataclass default would be a second home for it."""
    twice, unschema = [], []
    for path, group, defaults in _yaml_files_and_schemas():
        raw = OmegaConf.to_container(OmegaConf.load(path))
        entries = [list(d)[0] if isinstance(d, dict) else d for d in raw.pop("defaults", [])]
        if path.name != "evaluate.yaml" and f"/schema/{group}@_here_" not in entries:
            unschema.append(str(path.relative_to(CONF)))
        for key, value in raw.items():
            if key in defaults and value == defaults[key]:
                twice.append(f"{path.relative_to(CONF)}: {key}={value}")
    assert not unschema, f"YAMLs not starting from their schema (defaults: [/schema/<group>@_here_: ...]): {unschema}"
    assert not twice, f"defaults written in a YAML as well as in engram/config/schema.py: {twice}"


def test_composed_groups_carry_every_schema_default():
    from engram.config import SCHEMAS, schema_defaults

    cfg = composed("model=tiny", "engram=poc")
    for group, cls in SCHEMAS.items():
        assert set(schema_defaults(cls)) <= set(cfg[group]), group
    assert cfg.engram.table_size == 5000 and cfg.engram.hash == "poc" and cfg.checkpoint.every_n_steps == 16


@pytest.mark.parametrize(("config", "keys"), [("train", ("run", "sweep")), ("evaluate", ("run",))])
def test_two_runs_started_in_the_same_second_get_directories_of_their_own(config: str, keys: tuple[str, ...]):
    """Run dirs are named by the start time to the microsecond: jobs launched together never share one."""
    hydra_dirs = OmegaConf.load(CONF / f"{config}.yaml").hydra
    for key in keys:
        written = str(OmegaConf.to_container(hydra_dirs, resolve=False)[key]["dir"])  # unresolved: the pattern
        pattern = re.search(r"\$\{now:([^}]*)\}", written).group(1)
        first, second = (datetime(2026, 1, 1, 12, 0, 0, micro).strftime(pattern) for micro in (1000, 2000))
        assert first != second and sorted([second, first]) == [first, second]
