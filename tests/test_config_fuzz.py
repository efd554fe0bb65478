"""Property tests: random values at every config key, random lines in a JSONL file. Whatever comes in, the checks the
entry points run (`engram.cli.check_config`) either accept it or raise one ConfigError line naming the key (and the
file:line for data) -- never another exception. In process, so a few hundred examples take seconds; the
subprocess tests in test_bad_inputs.py show the entry points print that line and exit 2."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf
from omegaconf.errors import GrammarParseError

from engram.cli import check_config
from engram.config import ConfigError, EvaluateConfig, TrainConfig
from engram.data.families.jsonl import JsonlFormatError, read_jsonl

ROOT = Path(__file__).resolve().parent.parent
# no example database: nothing written into the checkout; the fixtures are read-only, so sharing them is fine
FUZZ = settings(deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def leaf_keys(node, prefix: str = "") -> list[str]:
    """Dotted keys of every value that is not a mapping (lists count as values: the user sets them whole)."""
    keys = []
    for k in node:
        child = node[k] if not OmegaConf.is_config(node) else OmegaConf.select(node, str(k), throw_on_missing=False)
        full = f"{prefix}{k}"
        if OmegaConf.is_dict(child) or isinstance(child, dict):
            keys += leaf_keys(child, full + ".")
        else:
            keys.append(full)
    return keys


@pytest.fixture(scope="module")
def base():
    """evaluate.yaml (train.yaml + evaluate's keys) on the tiny model: a valid config every example starts from
    (train_variants=true: evaluate.py needs exactly one mode, and this one checks every row's config too)."""
    with initialize_config_dir(config_dir=str(ROOT / "engram" / "conf"), version_base="1.3"):
        cfg = compose("evaluate", overrides=["model=tiny", "data.num_train=50", "data.num_eval=10",
                                             "train_variants=true"])
    check_config(cfg, evaluate=True)
    return cfg


def all_keys(cfg) -> list[str]:
    """Every key of the schema (model.path, data.test_path, ... even where the chosen yaml lacks them) and every
    trainer/optim key of the composed config."""
    keys = {k for schema in (TrainConfig, EvaluateConfig) for k in leaf_keys(OmegaConf.structured(schema))}
    keys |= set(leaf_keys(cfg))
    return sorted(k for k in keys if not k.startswith(("paths", "hydra")))


ANY_VALUE = st.one_of(
    st.integers(-3, 3),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.none(),
    st.booleans(),
    st.lists(st.one_of(st.integers(-5, 40), st.text(max_size=4), st.floats(-2, 2), st.none()), max_size=4),
    st.sampled_from([10**30, -1, 0, 1, 0.5, "", "all", "auto", "${nope}", "???", "none", "last", [], {}, {"a": 1},
                     "/", ".", "train.py", 2**63, -(2**63), 1e308]),
)


def set_key(cfg, key: str, value) -> object:
    out = copy.deepcopy(cfg)
    OmegaConf.set_struct(out, False)  # like `+key=value`: keys the yaml lacks are added
    try:
        OmegaConf.update(out, key, value, merge=False, force_add=True)
    except GrammarParseError:  # a broken interpolation ("${") that OmegaConf (and Hydra's override parser) refuses
        reject()
    return out


def assert_accepted_or_one_line(cfg, key: str) -> None:
    try:
        check_config(cfg, evaluate=True)
    except ConfigError as e:
        message = str(e)
        assert len(message.splitlines()) == 1 and message.startswith("config error: "), message
        assert key in message, f"{key} not named in: {message}"


@settings(FUZZ, max_examples=200)
@given(data=st.data())
def test_any_value_at_any_key_is_accepted_or_named(base, data):
    key = data.draw(st.sampled_from(all_keys(base)), label="key")
    value = data.draw(ANY_VALUE, label="value")
    assert_accepted_or_one_line(set_key(base, key, value), key)


VALID = {
    "optim.lr": st.floats(1e-6, 1.0),
    "optim.weight_decay": st.floats(0.0, 1.0),
    "optim.eps": st.floats(1e-12, 1e-3),
    "optim.min_lr_ratio": st.floats(0.0, 1.0),
    "optim.warmup_steps": st.integers(0, 1000),
    "optim.betas": st.lists(st.floats(0.0, 0.999), min_size=2, max_size=2),
    "trainer.max_epochs": st.integers(1, 50),
    "trainer.max_steps": st.one_of(st.just(-1), st.integers(1, 10**6)),
    "trainer.log_every_n_steps": st.integers(1, 100),
    "trainer.gradient_clip_val": st.one_of(st.none(), st.floats(0.0, 10.0)),
    "trainer.devices": st.one_of(st.just("auto"), st.integers(1, 4)),
    "trainer.precision": st.sampled_from(["32-true", "bf16-mixed", "16-mixed", 32, "64-true"]),
    "engram.table_size": st.integers(16, 20000),
    "engram.gate_bias": st.floats(-10.0, 10.0),
    "engram.layers": st.sampled_from([[0], [1], [0, 1], "all"]),
    "data.num_train": st.integers(1, 300),
    "seed": st.integers(0, 2**32 - 1),
}


@settings(FUZZ, max_examples=40)
@given(data=st.data())
def test_valid_values_pass(base, data):
    key = data.draw(st.sampled_from(sorted(VALID)), label="key")
    check_config(set_key(base, key, data.draw(VALID[key], label="value")), evaluate=True)


# ---------------------------------------------------------------- JSONL lines


def message(role_content: list) -> str:
    return json.dumps({"messages": [{"role": r, "content": c} for r, c in role_content]})


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=3), max_leaves=8)
LINES = st.one_of(
    st.binary(max_size=40),
    st.text(max_size=40).map(str.encode),
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    st.lists(st.tuples(st.sampled_from(["user", "assistant", "system", 3]), st.one_of(st.text(max_size=6), st.none(),
                                                                                     st.integers())),
             max_size=3).map(lambda m: message(m).encode()),
    st.just(message([("user", "q?"), ("assistant", "a")]).encode()),
    # a good line with any "paraphrases" value (a list of non-empty strings, or a bad line)
    st.one_of(JSON_VALUES, st.lists(st.text(max_size=6), max_size=3)).map(
        lambda v: json.dumps({**json.loads(message([("user", "q?"), ("assistant", "a")])), "paraphrases": v}).encode()),
)


@settings(FUZZ, max_examples=100)
@given(lines=st.lists(LINES, min_size=1, max_size=6))
def test_random_jsonl_lines_give_records_or_file_and_line(tmp_path, base, lines):
    path = tmp_path / "fuzz.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    try:
        records = read_jsonl(path)
    except JsonlFormatError as e:
        physical = path.read_bytes().split(b"\n")
        assert 1 <= e.line <= len(physical) and str(e).startswith(f"{path}:{e.line}: ")
        before = tmp_path / "before.jsonl"  # every line above the one named is fine: it is the first bad one
        before.write_bytes(b"\n".join(physical[: e.line - 1]) + b"\n")
        read_jsonl(before)
        with pytest.raises(ConfigError, match=rf"^config error: data\.path={path}:{e.line} "):
            check_config(set_key(set_key(base, "data.family", "jsonl"), "data.path", str(path)), evaluate=True)
    else:
        assert all(r["prompt"].strip() and r["answer"].strip() for r in records)
        assert all(r["paraphrases"] and all(p.strip() for p in r["paraphrases"]) for r in records if "paraphrases" in r)
