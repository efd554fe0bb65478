"""exact_match: determinism, scale, categories, seen/unseen split and spot-checked facts."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from engram.config import ConfigError
from engram.data import RECORD_KEYS, build_splits
from engram.data.families import exact_match as em


def splits(**kw):
    return build_splits({"family": "exact_match", **kw})


def find(records, key):
    hits = [r for r in records if (r["key"] if isinstance(r, dict) else r.key) == key]
    assert hits, f"no record with key {key}"
    return hits[0]


def test_records_have_the_common_shape():
    s = splits(num_train=100, num_eval=20)
    for r in s["train"] + s["eval"] + s["paraphrase"]:
        # eval records also carry their other wordings and neighbour questions (tests/test_data_paraphrase.py,
        # tests/test_data_neighbors.py); the rest is the common shape
        expected = (*RECORD_KEYS, "paraphrases", "neighbors") if r in s["eval"] else RECORD_KEYS
        assert tuple(r) == expected
        assert all(isinstance(r[k], str) and r[k] for k in ("prompt", "answer", "category", "key"))
        assert isinstance(r["seen"], bool)
        assert "\n" not in r["answer"] and len(r["answer"]) <= 60  # short, single-line answers for exact match
    assert all(r["seen"] for r in s["train"])


def test_same_seed_same_records_other_seed_differs():
    a, b = splits(num_train=500, num_eval=50, seed=3), splits(num_train=500, num_eval=50, seed=3)
    assert a == b
    c = splits(num_train=500, num_eval=50, seed=4)
    assert c["train"] != a["train"]
    syn = lambda s: {r["key"]: r["answer"] for r in s["train"] if r["category"] == "synthetic"}  # noqa: E731
    assert syn(a) != syn(c)


@pytest.mark.parametrize("num_train", [100, 20_000])
def test_scale_gives_exact_counts(num_train):  # its speed: benchmarks/run.py --only data
    s = splits(num_train=num_train, num_eval=100)
    assert len(s["train"]) == num_train
    assert len(s["eval"]) == 100
    assert len({r["key"] for r in s["train"]}) == num_train  # no fact repeated to reach the scale


def test_large_scale_is_filled_by_synthetic_pairs():
    s = splits(num_train=20_000, num_eval=10)
    counts = Counter(r["category"] for r in s["train"])
    assert counts["synthetic"] > 10_000
    unseen_http = sum(1 for r in s["eval"] if r["category"] == "http_codes" and not r["seen"])
    assert counts["http_codes"] + unseen_http == len(em.http_facts())  # every real fact used before synthetic


def test_every_category_present_in_train_and_eval():
    s = splits(num_train=100, num_eval=70, eval_seen_fraction=0.5)
    assert set(r["category"] for r in s["train"]) == set(em.CATEGORIES)
    assert set(r["category"] for r in s["eval"] if r["seen"]) == set(em.CATEGORIES)
    assert set(r["category"] for r in s["eval"] if not r["seen"]) == set(em.CATEGORIES)


def test_category_subset_and_unknown_category():
    s = splits(num_train=200, num_eval=20, categories=["capitals", "http_codes"])
    assert {r["category"] for r in s["train"] + s["eval"]} == {"capitals", "http_codes"}
    with pytest.raises(ConfigError, match=r"data\.categories.*'planets'"):
        splits(categories=["capitals", "planets"])


def test_too_many_items_without_synthetic_fails_naming_the_key():
    with pytest.raises(ConfigError, match=r"data\.num_train=5000"):
        splits(num_train=5000, num_eval=10, categories=["http_codes"])


@pytest.mark.parametrize("fraction", [0.0, 0.3, 1.0])
def test_seen_unseen_split_is_honoured(fraction):
    s = splits(num_train=1000, num_eval=100, eval_seen_fraction=fraction)
    train_keys = {r["key"] for r in s["train"]}
    train_pairs = {(r["prompt"], r["answer"]) for r in s["train"]}
    seen = [r for r in s["eval"] if r["seen"]]
    unseen = [r for r in s["eval"] if not r["seen"]]
    assert len(seen) == round(100 * fraction) and len(unseen) == 100 - len(seen)
    assert all(r["key"] in train_keys and (r["prompt"], r["answer"]) in train_pairs for r in seen)
    assert not any(r["key"] in train_keys for r in unseen)
    assert len({r["key"] for r in s["eval"]}) == 100  # no eval item asked twice


def test_synthetic_pairs_look_like_the_seed_study():
    facts = em.synthetic_facts(1000, seed=0)
    assert len({f.key for f in facts}) == 1000
    for f in facts:
        assert re.fullmatch(r"What is the value of SYN_\d{5}\?", f.prompt)
        assert re.fullmatch(r"0x[0-9A-F]{6}", f.answer)
        assert f.key == "synthetic:" + f.prompt.split()[-1].rstrip("?")
    assert em.synthetic_facts(60_000, seed=0)[0].key.count("_") == 1  # wider ids once 5 digits get crowded


def test_spot_check_facts():
    assert find(em.http_facts(), "http_codes:404").answer == "Not Found"
    assert find(em.port_facts(), "ports:22").answer == "ssh"
    assert find(em.port_facts(), "ports:443").answer == "https"
    assert find(em.element_facts(), "elements:8").answer == "Oxygen"
    assert find(em.element_facts(), "elements:Oxygen").answer == "8"
    assert find(em.element_facts(), "elements:118").answer == "Oganesson"
    assert find(em.capital_facts(), "capitals:France").answer == "Paris"
    assert find(em.capital_facts(), "capitals:Japan").answer == "Tokyo"
    assert find(em.capital_facts(), "capitals:Vatican City State").answer == "Vatican City"
    km = find(em.unit_facts(), "unit_conversions:5 km->m")
    assert (km.prompt, km.answer) == ("Convert 5 km to m.", "5000")
    assert find(em.unit_facts(), "unit_conversions:2 in->cm").answer == "5.08"
    assert find(em.unit_facts(), "unit_conversions:5.08 cm->in").answer == "2"
    assert find(em.acronym_facts(), "acronyms:CPU").answer == "Central Processing Unit"


def test_sources_are_sizeable_and_keys_unique():
    for name, source in em.SOURCES.items():
        facts = source()
        assert len(facts) >= 50, name
        assert len({f.key for f in facts}) == len(facts), name
    assert len(em.element_facts()) == 2 * 118


def test_ports_fall_back_to_the_shipped_list_when_the_system_list_is_missing(monkeypatch, tmp_path):
    monkeypatch.setenv("ENGRAM_SERVICES_FILE", str(tmp_path / "no-such-services"))
    assert em.services_source() == em.SERVICES_FALLBACK
    ports = {f.key: f.answer for f in em.port_facts()}
    assert ports["ports:22"] == "ssh" and ports["ports:80"] == "http" and len(ports) > 100
    s = splits(num_train=100, num_eval=20)  # the whole family still builds
    assert any(r["category"] == "ports" for r in s["train"])


def test_ports_read_a_services_file(monkeypatch, tmp_path):
    services = tmp_path / "services"
    services.write_text("# comment\nfoo\t\t12345/tcp\t\tfooalias  # trailing\nbar 12345/tcp\nbaz 999/udp\n")
    monkeypatch.setenv("ENGRAM_SERVICES_FILE", str(services))
    assert em.services_source() == services
    assert [(f.key, f.answer) for f in em.port_facts()] == [("ports:12345", "foo")]
