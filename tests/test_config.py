"""Config validation: every bad value fails before anything heavy loads, with one line naming the key."""

import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from engram.cli import check_group_choices, validated_or_exit
from engram.config import ConfigError, validate, validate_layers

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"


def composed(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))


def test_default_config_is_valid():
    cfg = validate(composed())
    assert cfg.model.name == "smollm" and cfg.variant.name == "engram" and cfg.engram.hash == "deepseek"


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
    assert capsys.readouterr().err.strip() == "config error: engram.layers=[2] is outside the model's 2 layers (0..1)"


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
