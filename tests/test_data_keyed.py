"""data=entity and data=user_prefs: deterministic by seed at any scale, several facts per ID, unseen facts belong to
IDs never trained, paraphrases present, bad settings one line + exit 2."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from engram.config import ConfigError, register_configs, validate
from engram.data import RECORD_KEYS, build_splits

ROOT = Path(__file__).resolve().parent.parent
FAMILIES = ("entity", "user_prefs")


def splits(family: str, **kw):
    return build_splits({"family": family, **kw})


def ident(r) -> str:
    return r["key"].split(":")[1]


@pytest.mark.parametrize("family", FAMILIES)
def test_same_seed_same_records_other_seed_differs(family):
    a, b = splits(family, num_train=300, num_eval=40, seed=3), splits(family, num_train=300, num_eval=40, seed=3)
    assert a == b
    c = splits(family, num_train=300, num_eval=40, seed=4)
    assert {r["key"] for r in c["train"]} != {r["key"] for r in a["train"]}


@pytest.mark.parametrize("family", FAMILIES)
def test_an_ids_facts_do_not_depend_on_the_scale(family):
    small = {r["key"]: r for r in splits(family, num_train=60, num_eval=10)["train"]}
    large = {r["key"]: r for r in splits(family, num_train=6000, num_eval=10)["train"]}
    assert small.keys() <= large.keys() and all(large[k] == r for k, r in small.items())


@pytest.mark.parametrize("family", FAMILIES)
def test_shape_facts_per_id_and_short_answers(family):
    s = splits(family, num_train=300, num_eval=40, facts_per_id=3)
    assert len(s["train"]) == 300 and len(s["eval"]) == 40
    for r in s["train"]:
        assert tuple(r) == RECORD_KEYS and r["seen"]
        assert r["prompt"].startswith(f"[{ident(r)}] ")  # the ID addresses the fact
        assert 1 <= len(r["answer"].split()) <= 3 and "\n" not in r["answer"]
    per_id = Counter(ident(r) for r in s["train"])
    assert set(per_id.values()) == {3}  # 300 = 100 IDs x 3 facts, each a different attribute
    assert all(len({r["category"] for r in s["train"] if ident(r) == i}) == 3 for i in list(per_id)[:20])


@pytest.mark.parametrize("family", FAMILIES)
def test_unseen_facts_belong_to_ids_never_trained_and_seen_ones_were_trained(family):
    s = splits(family, num_train=200, num_eval=50, eval_seen_fraction=0.4)
    train_ids, train_keys = {ident(r) for r in s["train"]}, {r["key"] for r in s["train"]}
    seen = [r for r in s["eval"] if r["seen"]]
    unseen = [r for r in s["eval"] if not r["seen"]]
    assert (len(seen), len(unseen)) == (20, 30)
    assert all(r["key"] in train_keys for r in seen)
    assert not {ident(r) for r in unseen} & train_ids
    trained = {r["key"]: (r["prompt"], r["answer"]) for r in s["train"]}
    assert all(trained[r["key"]] == (r["prompt"], r["answer"]) for r in seen)


@pytest.mark.parametrize("family", FAMILIES)
def test_paraphrases_keep_the_id_and_the_answer(family):
    s = splits(family, num_train=100, num_eval=20)
    assert all(len(r["paraphrases"]) == 2 for r in s["eval"])
    assert len(s["paraphrase"]) == 40
    for r in s["eval"]:
        assert all(p.startswith(f"[{ident(r)}] ") and p != r["prompt"] for p in r["paraphrases"])
    by_key = {r["key"]: r for r in s["eval"]}
    assert all(p["answer"] == by_key[p["key"]]["answer"] for p in s["paraphrase"])


def test_categories_choose_the_attributes():
    s = splits("entity", num_train=60, num_eval=10, categories=["birth_year", "instrument"], facts_per_id=2)
    assert {r["category"] for r in s["train"] + s["eval"]} == {"birth_year", "instrument"}
    assert all(r["answer"].isdigit() for r in s["train"] if r["category"] == "birth_year")


def test_scales_to_100k():
    s = splits("user_prefs", num_train=100_000, num_eval=100)
    assert len(s["train"]) == 100_000 and len({r["key"] for r in s["train"]}) == 100_000


@pytest.mark.parametrize(("override", "key"), [
    ({"facts_per_id": 0}, "data.facts_per_id"),
    ({"facts_per_id": 6}, "data.facts_per_id"),  # entity has 5 attributes
    ({"categories": ["nope"]}, "data.categories"),
    ({"categories": ["birth_year"], "facts_per_id": 2}, "data.facts_per_id"),
])
def test_bad_settings_name_the_key(override, key):
    register_configs()
    from omegaconf import OmegaConf

    from engram.config import TrainConfig
    cfg = OmegaConf.structured(TrainConfig)
    cfg.data.family = "entity"
    for k, v in override.items():
        cfg.data[k] = v
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    assert str(err.value).startswith(f"config error: {key}=")


def test_train_py_bad_setting_is_one_line_and_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "train.py", "data=user_prefs", "data.facts_per_id=9",
                           f"hydra.run.dir={tmp_path}"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("config error: data.facts_per_id=9 must be an integer in [1, 7]")
