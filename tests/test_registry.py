"""A new kind is one module + one YAML: a plugin module written here adds a toy hash, gate (with a key of its own,
engram.toy.scale) and data family, their YAMLs sit in a temp config dir on Hydra's searchpath, and the tiny model
trains with them."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from _training_utils import CONF_DIR, tiny_cfg
from safetensors.torch import load_file

from engram import registry
from engram.config import ConfigError

PLUGIN = '''
"""Toy kinds, registered at import (plugins=[toy_kinds])."""
from dataclasses import dataclass

import torch
from torch import nn

from engram import registry
from engram.config.rules import check as rule
from engram.memory.hashing import Lookup

CALLS = {"hash": 0, "gate": 0, "family": 0}


class ToyHash:
    """Unigram: head h looks up (id + h) % table_size in its own block. The least a hash needs (uses_token_map and
    table_sizes are optional)."""

    shared_table = False

    def __init__(self, table_size, heads):  # by name, from the config (engram/config/sections.py's build)
        self.heads, self.size = int(heads), int(table_size)

    def head_sizes(self, layer):
        return [self.size] * self.heads

    def lookup(self, ids, mask, prompt_lengths, new, layer):
        CALLS["hash"] += 1
        x = ids[:, -new:].long()
        keys = x.unsqueeze(-1).expand(*x.shape, self.heads)
        slots = (keys + torch.arange(self.heads, device=x.device)) % self.size
        return Lookup(slots, keys, mask[:, -new:].bool())


class ToyGate(nn.Module):
    """No gate at all: the projected memory, times engram.toy.scale, goes straight into the residual."""

    @dataclass
    class Params:  # its own keys: the section engram.toy.* (engram/config/sections.py)
        """`engram.toy.*` (gate=toy)."""

        scale: float = 1.0  # the projected rows are multiplied by this

    @staticmethod
    def check(e):  # its own rule, run by validation when engram.gate=toy
        rule(e.toy.scale > 0, "engram.toy.scale", e.toy.scale, "must be > 0")

    def __init__(self, hidden_size, mem_dim, scale=1.0):  # scale: its own key, engram.toy.scale
        super().__init__()
        self.toy_proj = nn.Linear(mem_dim, hidden_size, bias=False)
        self.scale = float(scale)

    def forward(self, h, e, keep, cache=None):
        CALLS["gate"] += 1
        out = self.toy_proj(e) * self.scale * keep.unsqueeze(-1).to(e.dtype)
        return out, torch.ones(keep.shape)  # (residual, gate [B, T])


def build_toy(cfg):
    CALLS["family"] += 1
    def rec(i):
        return {"prompt": f"toy {i}", "answer": f"{i % 7}", "category": "toy", "key": f"k{i}", "seen": True}
    return {"train": [rec(i) for i in range(cfg.num_train)], "eval": [rec(i) for i in range(cfg.num_eval)]}


def check_toy(d):  # the family's own config rule, found by validation beside `build`
    rule(d.num_eval <= d.num_train, "data.num_eval", d.num_eval, "must be <= data.num_train for data=toy")


build_toy.check = check_toy
registry.register("hash", "toy", ToyHash)
registry.register("gate", "toy", ToyGate)
registry.register("family", "toy", build_toy)
'''

YAMLS = {  # each extends its schema (engram/config/schema.py) and sets only what differs, as engram/conf/'s YAMLs do
    "engram/toy.yaml": "defaults:\n  - /schema/engram@_here_: engram\n  - _self_\n"
                       "hash: toy\ngate: toy\ntable_size: 64\nheads: 2\ndim: 16\nlayers: [0]\nsparse: false\n",
    "data/toy.yaml": "defaults:\n  - /schema/data@_here_: data\n  - _self_\n"
                     "family: toy\nnum_train: 16\nnum_eval: 4\nprompt_format: plain\n",
}


@pytest.fixture
def toy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "toy_kinds.py").write_text(PLUGIN)
    conf = tmp_path / "conf"
    for name, text in YAMLS.items():
        (conf / name).parent.mkdir(parents=True, exist_ok=True)
        (conf / name).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield conf
    for kind in ("hash", "gate", "family"):
        registry.unregister(kind, "toy")
    sys.modules.pop("toy_kinds", None)
    from engram.config import register_configs

    register_configs()  # the stored schemas without the toy section again, for the tests that follow


def test_toy_hash_gate_and_family_train_the_tiny_model(toy: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    cfg = tiny_cfg(run_dir, "plugins=[toy_kinds]", "engram=toy", "data=toy", "variant=engram",
                   "engram.table_size=64", "engram.dim=32", "data.num_train=16", "data.num_eval=4",
                   f"hydra.searchpath=[file://{toy}]")
    assert (cfg.engram.hash, cfg.engram.gate, cfg.data.family) == ("toy", "toy", "toy")
    assert cfg.engram.toy.scale == 1.0  # the plugin's own key, at its default
    from engram.training.pipeline import run_task

    run_task(cfg)
    calls = sys.modules["toy_kinds"].CALLS
    assert calls["hash"] > 0 and calls["gate"] > 0 and calls["family"] > 0
    tensors = load_file(str(run_dir / "engram.safetensors"))
    assert "layers.0.gate.toy_proj.weight" in tensors  # the toy gate's weights were trained and saved
    assert tensors["layers.0.table.weight"].shape == (2 * 64, 32 // 2)  # the toy hash's layout: 2 heads x 64 rows


def test_a_plugin_kind_owns_its_key_and_a_bad_value_is_one_line_exit_2(toy: Path, tmp_path: Path) -> None:
    """engram.toy.scale is declared in the plugin module alone (its gate's Params and check): on the command line
    it composes and trains; a bad value stops train.py with one line, exit 2, before any model code is imported."""
    import os

    from engram.cli import check_overrides
    from tests.test_bad_inputs import run_entry

    search = f"hydra.searchpath=[file://{toy}]"
    check_overrides(["plugins=[toy_kinds]", "engram=toy", "engram.toy.scale=3", search], "train")
    cfg = tiny_cfg(tmp_path / "ok", "plugins=[toy_kinds]", "engram=toy", "engram.toy.scale=3", search)
    assert cfg.engram.toy.scale == 3.0
    env = {"PYTHONPATH": os.pathsep.join([str(toy.parent), os.environ.get("PYTHONPATH", "")])}
    proc, modules = run_entry(tmp_path, "train.py", "model=tiny", "plugins=[toy_kinds]", "engram=toy",
                              "engram.toy.scale=-2", search, env=env)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and lines == ["config error: engram.toy.scale=-2.0 must be > 0"], proc.stderr
    assert "toy_kinds" in modules and not any(".modeling_" in m for m in modules), "weights could have loaded"


def test_validation_lists_a_plugin_kind_and_names_the_known_ones(toy: Path) -> None:
    from hydra import compose, initialize_config_dir

    from engram.config import validate

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        good = compose("train", overrides=["plugins=[toy_kinds]", "engram.hash=toy"])
        bad = compose("train", overrides=["plugins=[toy_kinds]", "engram.hash=nosuch"])
        missing = compose("train", overrides=["plugins=[no_such_plugin_module]"])
        family_rule = compose("train", overrides=["plugins=[toy_kinds]", "data.family=toy", "data.num_eval=900"])
    assert validate(good).engram.hash == "toy"
    assert "toy" in registry.names("hash") and "deepseek" in registry.names("hash")
    with pytest.raises(ConfigError) as err:
        validate(bad)
    message = str(err.value)
    assert message.startswith("config error: engram.hash=nosuch is not one of ") and "\n" not in message
    assert all(name in message for name in ("deepseek", "poc", "span", "toy"))
    with pytest.raises(ConfigError, match="config error: plugins=no_such_plugin_module cannot be imported"):
        validate(missing)
    with pytest.raises(ConfigError, match="config error: data.num_eval=900 must be <= data.num_train for data=toy"):
        validate(family_rule)


def test_group_choice_from_the_searchpath_is_known(toy: Path) -> None:
    from engram.cli import check_group_choices

    check_group_choices(["engram=toy", f"hydra.searchpath=[file://{toy}]"])
    check_group_choices(["--config-dir", str(toy), "engram=toy", "data=toy"])
    with pytest.raises(SystemExit):
        check_group_choices(["engram=toy"])


def test_listing_names_imports_no_kind_module_and_no_torch() -> None:
    code = textwrap.dedent("""
        import sys
        from engram import registry
        names = {kind: registry.names(kind) for kind in registry.KINDS}
        assert names["hash"] == ("answer", "deepseek", "poc", "question", "span"), names
        assert names["gate"] == ("context", "direct", "mlp"), names
        assert names["address"] == ("fingerprint", "hashed", "hybrid", "written"), names
        assert names["variant"] == ("baseline", "combined", "engram", "engram_hybrid", "gated_lora", "lora"), names
        families = ("entity", "exact_match", "jsonl", "long_recall", "patterns", "text", "user_prefs")
        assert names["family"] == families, names
        assert names["model"] == ("hf", "scratch", "smollm", "tiny"), names
        assert names["logger"] == ("csv", "many", "mlflow", "none", "tensorboard", "wandb"), names
        loaded = [m for m in sys.modules if m == "torch" or m.startswith(("engram.memory", "engram.models"))]
        assert not loaded, loaded
        # what validation reads of a kind (its keys, rules, flags) imports without torch: a kind's torch side is
        # its own module (engram/memory/gates/_context.py beside context.py), imported on first use
        for kind in ("hash", "gate", "address", "family", "model", "variant"):
            for name in names[kind]:
                registry.attribute(kind, name, "check")
        assert "torch" not in sys.modules and "transformers" not in sys.modules
    """)
    subprocess.run([sys.executable, "-c", code], check=True, cwd=CONF_DIR.parents[1])  # -c: engram from the cwd


def test_unknown_name_from_get_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="engram.gate=nosuch is not one of context, direct, mlp"):
        registry.get("gate", "nosuch")
    with pytest.raises(ValueError, match="built in"):
        registry.register("hash", "poc", object)


class StampAddress(torch.nn.Module):
    """Remembers the last key looked up per row (a buffer, as a fingerprint address would keep)."""

    def __init__(self, rows: int) -> None:
        super().__init__()
        self.register_buffer("stamp", torch.full((rows,), -1, dtype=torch.long))

    def forward(self, rows: torch.Tensor, keys: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        self.stamp[rows.reshape(-1)] = keys.reshape(-1)
        return torch.ones(rows.shape, dtype=torch.bool)


def test_an_address_kind_buffer_is_saved_in_the_engram_file_and_loaded(tmp_path: Path) -> None:
    from engram.config import EngramConfig
    from engram.models.engram_model import EngramModel
    from engram.models.loading import load_model

    registry.register("address", "stamp", StampAddress)
    try:
        cfg = EngramConfig(table_size=64, heads=2, dim=16, layers=[0], address="stamp")
        model, tokenizer = load_model("tiny")
        wrapped = EngramModel(model, cfg, tokenizer)
        wrapped(input_ids=torch.tensor([[5, 6, 7, 8]]))
        saved = wrapped.memory(0).address.stamp.clone()
        assert (saved >= 0).any()
        file = wrapped.save_engram(tmp_path)
        assert "layers.0.address.stamp" in load_file(str(file))
        fresh = EngramModel(load_model("tiny")[0], cfg, tokenizer).load_engram(file)
        assert torch.equal(fresh.memory(0).address.stamp, saved)
    finally:
        registry.unregister("address", "stamp")


def test_the_toy_kinds_satisfy_the_protocols(toy: Path) -> None:
    """A plugin's kinds are held to the same interfaces as the built-in ones (engram/protocols.py)."""
    import toy_kinds  # noqa: F401  (registers the toy kinds)

    from engram import protocols

    for kind in ("hash", "gate", "family"):
        assert protocols.problems(registry.get(kind, "toy"), protocols.PROTOCOLS[kind][0]) == []
    assert protocols.problems(registry.get("family", "toy"), protocols.FamilyOptions, optional=True) == []
