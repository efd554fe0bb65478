"""Keys that moved into a kind's own section (engram.hybrid_topk -> engram.hybrid.topk, data.num_facts ->
data.long_recall.num_facts, engram.offload=host -> engram.offload.to=host): a command line or YAML with the old
spelling is one line naming the new one, exit 2; a run dir or engram.safetensors saved before the move still loads."""

from __future__ import annotations

import json

import pytest
import safetensors.torch
import torch
from omegaconf import OmegaConf
from safetensors import safe_open

from engram import add_engram, load_engram, save_engram
from engram.config import ConfigError, validate
from engram.config.renamed import RENAMED, upgrade
from engram.models import load_model
from engram.models.inject import read_engram_config
from engram.tracking.run_dirs import read_config

# the flat keys an engram config had before the move, and where they are now
OLD_ENGRAM = {"hybrid_topk": 4, "hybrid_key_dim": 16, "hybrid_gain_init": 0.5, "question_threshold": 0.3,
              "question_capacity": 64, "key_shuffle": False, "conv_kernel": 3, "offload": "none",
              "offload_dir": None, "offload_reuse": False}


def test_every_old_key_has_a_new_home_in_the_schema():
    from engram.config import TrainConfig

    schema = OmegaConf.structured(TrainConfig)
    for old, new in RENAMED.items():
        assert OmegaConf.select(schema, new, default="missing") != "missing", new
        assert old.split(".")[0] == new.split(".")[0]  # within its group


def test_upgrade_moves_old_keys_and_keeps_new_ones():
    saved = {"engram": {"table_size": 64, **OLD_ENGRAM}, "data": {"family": "long_recall", "num_facts": 8,
                                                                   "fixed_facts": False}}
    new = upgrade(saved)
    assert new["engram"]["hybrid"] == {"topk": 4, "key_dim": 16, "gain_init": 0.5}
    assert new["engram"]["question"] == {"threshold": 0.3, "capacity": 64}
    assert new["engram"]["offload"] == {"to": "none", "dir": None, "reuse": False}
    assert new["engram"]["context"] == {"conv_kernel": 3} and new["engram"]["deepseek"] == {"key_shuffle": False}
    assert new["data"]["long_recall"] == {"num_facts": 8, "fixed_facts": False}
    assert not (set(OLD_ENGRAM) - {"offload"}) & set(new["engram"]) and saved["engram"]["hybrid_topk"] == 4  # a copy
    assert upgrade(new) == new  # nothing old left: a no-op
    assert upgrade({"hybrid_topk": 2}, "engram") == {"hybrid": {"topk": 2}}  # an engram file's config


def test_an_old_run_dir_config_reads_and_validates_in_the_new_spelling(tmp_path):
    from hydra import compose, initialize_config_dir

    from engram.conf import CONF_DIR
    from engram.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = OmegaConf.to_container(compose("train", overrides=["model=tiny", "data=long_recall"]))
    for group, moved in (("engram", ("hybrid", "question", "deepseek", "context", "offload")),
                         ("data", ("long_recall",))):
        for section in moved:  # written the old way: flat keys, no section
            cfg[group].pop(section)
    cfg["engram"].update(OLD_ENGRAM)
    cfg["data"].update({"vocab_size": 64, "num_facts": 8, "distraction_min": 10, "distraction_max": 20})
    (tmp_path / ".hydra").mkdir()
    OmegaConf.save(cfg, tmp_path / ".hydra" / "config.yaml")
    with pytest.raises(ConfigError, match="engram.hybrid_topk=4 was renamed: use engram.hybrid.topk=4"):
        validate(OmegaConf.load(tmp_path / ".hydra" / "config.yaml"))  # as a config to run: the new spelling
    typed = validate(read_config(tmp_path))  # as a run's record: translated
    assert typed.engram.hybrid.topk == 4 and typed.engram.context.conv_kernel == 3
    assert typed.data.long_recall.num_facts == 8 and typed.engram.offload.to == "none"


def test_an_engram_file_saved_with_the_old_keys_loads(tmp_path):
    cfg = dict(table_size=300, heads=4, dim=32, max_ngram=3, layers=[1], seed=0, hash="deepseek", gate="context",
               address="hybrid", hybrid={"topk": 4, "key_dim": 16})
    model, tok = load_model("tiny")
    model = add_engram(model, cfg, tokenizer=tok)
    path = save_engram(model, tmp_path / "new")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    flat = json.loads(meta["engram_config"])  # rewritten as a file of before the move
    for section, keys in (("hybrid", ("topk", "key_dim", "gain_init")), ("question", ("threshold", "capacity"))):
        flat.update({f"{section}_{k}": v for k, v in flat.pop(section).items() if k in keys})
    flat["key_shuffle"], flat["conv_kernel"] = flat.pop("deepseek")["key_shuffle"], flat.pop("context")["conv_kernel"]
    offload = flat.pop("offload")
    flat.update(offload=offload["to"], offload_dir=offload["dir"], offload_reuse=offload["reuse"])
    old = tmp_path / "old.safetensors"
    safetensors.torch.save_file(safetensors.torch.load_file(str(path)), str(old),
                                metadata={**meta, "engram_config": json.dumps(flat)})
    read = read_engram_config(old)
    assert read.hybrid.topk == 4 and read.hybrid.key_dim == 16 and read.context.conv_kernel == 4
    fresh = add_engram(load_model("tiny")[0], cfg, tokenizer=tok)
    load_engram(fresh, old)  # the structural keys (hybrid.topk, ...) are compared in their new spelling
    ids = torch.randint(4, 2000, (1, 8))
    with torch.no_grad():
        assert torch.equal(fresh(ids).logits, model(ids).logits)
    with pytest.raises(ConfigError, match="engram.hybrid_topk=4 was renamed: use engram.hybrid.topk=4"):
        add_engram(load_model("tiny")[0], {**cfg, "hybrid_topk": 4}, tokenizer=tok)  # Python callers: refused


@pytest.mark.parametrize(("arg", "line"), [
    ("engram.hybrid_topk=16", "config error: engram.hybrid_topk=16 was renamed: use engram.hybrid.topk=16"),
    ("engram.question_threshold=0.5", "use engram.question.threshold=0.5"),
    ("engram.conv_kernel=3", "use engram.context.conv_kernel=3"),
    ("engram.key_shuffle=true", "use engram.deepseek.key_shuffle=true"),
    ("engram.offload=host", "config error: engram.offload=host was renamed: use engram.offload.to=host"),
    ("+engram.offload_reuse=true", "use engram.offload.reuse=true"),
    ("data.eval_distractions=[5,50]", "use data.long_recall.eval_distractions=[5,50]"),
])
def test_an_old_spelling_on_the_command_line_is_one_line_naming_the_new(arg, line, capsys):
    from engram.cli import check_overrides

    with pytest.raises(SystemExit) as code:
        check_overrides(["model=tiny", arg], "train")
    err = capsys.readouterr().err.strip()
    assert code.value.code == 2 and len(err.splitlines()) == 1 and line in err, err


def test_the_new_spellings_compose():
    from engram.cli import check_overrides

    check_overrides(["model=tiny", "engram.offload.to=host", "engram.hybrid.topk=4", "data.long_recall.num_facts=8",
                     "engram.offload={to: none}"], "train")
