"""Neighbour questions (untaught questions about taught entities): exact_match's NEIGHBORS, the attributes an ID of
entity / user_prefs was not given, jsonl's "neighbors" field, the "neighbor" split built from the seen eval records,
and the export round trip. None is a taught prompt, a paraphrase or a retention prompt."""

from __future__ import annotations

import json
import re

import pytest

from engram.data import build_splits
from engram.data.__main__ import main
from engram.data.families import exact_match as em
from engram.data.families.entity import ENTITY
from engram.data.families.jsonl import read_jsonl
from engram.data.families.user_prefs import USER_PREFS
from engram.data.records import neighbor_split, record, with_neighbors
from engram.evaluation.retention import load_general_prompts

KEYED = {"entity": ENTITY, "user_prefs": USER_PREFS}


def msg(prompt, answer, **extra):
    return json.dumps({"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}],
                       **extra})


def retention_prompts() -> set[str]:
    return {m["content"].strip().lower() for p in load_general_prompts() for m in p["messages"] if m["role"] == "user"}


def assert_untaught(s):
    """Every neighbour question is asked once, none is a fact prompt or paraphrase of the data or a retention prompt,
    and each neighbours a seen eval record (its key and category), in eval order."""
    questions = [r["prompt"] for r in s["neighbor"]]
    assert questions and len(set(questions)) == len(questions)
    facts = {r["prompt"] for r in s["train"] + s["eval"]} | {p for r in s["eval"] for p in r.get("paraphrases", ())}
    assert not set(questions) & facts
    assert not {q.strip().lower() for q in questions} & retention_prompts()
    seen = {r["key"]: r for r in s["eval"] if r["seen"]}
    for n in s["neighbor"]:
        assert n["answer"] == "" and n["seen"] and n["prompt"] in seen[n["key"]]["neighbors"]
        assert n["category"] == seen[n["key"]]["category"]
    order = [r["key"] for r in s["eval"] if r["seen"]]
    assert [n["key"] for n in s["neighbor"]] == sorted((n["key"] for n in s["neighbor"]), key=order.index)


# ---------------------------------------------------------------- exact_match


@pytest.mark.parametrize("source", [*em.SOURCES, "synthetic"])
def test_every_fact_has_two_neighbour_questions_about_its_entity(source):
    facts = em.synthetic_facts(200, 5) if source == "synthetic" else em.SOURCES[source]()
    general = retention_prompts()
    for f in facts:
        asked = {f.prompt, *f.paraphrases}
        assert len(f.neighbors) == 2 and len({*f.neighbors, *asked}) == 2 + len(asked)  # other questions
        for q in f.neighbors:
            assert "{" not in q and q.strip() == q and q.endswith(("?", "."))
            assert any(v in q for v in f.fields.values())  # about the same entity
            assert q.lower() not in general  # never a retention prompt


def test_every_kind_has_neighbour_templates_and_spot_checks():
    assert set(em.NEIGHBORS) == set(em.WORDINGS)
    find = lambda facts, key: next(f for f in facts if f.key == key)  # noqa: E731
    assert find(em.capital_facts(), "capitals:France").neighbors == [
        "What is the official language of France?", "Which continent is France in?"]
    assert find(em.element_facts(), "elements:Oxygen").neighbors[0] == "What is the chemical symbol of Oxygen?"
    five = find(em.unit_facts(), "unit_conversions:5 km->m")  # the reverse conversion
    assert (five.prompt, five.neighbors[0]) == ("Convert 5 km to m.", "Convert 5 m to km.")


@pytest.mark.parametrize("category", em.CATEGORIES)
def test_every_category_gets_neighbour_records_of_its_seen_items(category):
    s = build_splits({"family": "exact_match", "categories": [category], "num_train": 40, "num_eval": 10,
                      "eval_seen_fraction": 0.5})
    assert all(len(r["neighbors"]) == 2 for r in s["eval"])  # unseen items carry them too (export), unused
    assert len(s["neighbor"]) <= 2 * sum(r["seen"] for r in s["eval"])
    assert_untaught(s)


def test_neighbour_split_is_deterministic_and_drops_a_drawn_fact():
    a = build_splits({"family": "exact_match", "num_train": 300, "num_eval": 40, "seed": 3})
    assert a["neighbor"] == build_splits({"family": "exact_match", "num_train": 300, "num_eval": 40, "seed": 3})[
        "neighbor"]
    assert_untaught(a)
    # "Convert 60 s to min." neighbours "Convert 60 min to s." and is itself a fact: taught, it is no neighbour
    taught = record("Convert 60 s to min.", "1", "unit_conversions", "unit_conversions:60 s->min", True)
    fact = with_neighbors(record("Convert 60 min to s.", "3600", "unit_conversions", "k", True),
                          ["Convert 60 s to min.", "Which is larger, min or s?"])
    assert [n["prompt"] for n in neighbor_split([fact], [taught])] == ["Which is larger, min or s?"]
    assert neighbor_split([{**fact, "seen": False}]) == []  # an untaught fact's neighbours test nothing


# ---------------------------------------------------------------- entity, user_prefs


@pytest.mark.parametrize("family", KEYED)
def test_keyed_neighbours_are_the_attributes_the_id_was_not_given(family):
    s = build_splits({"family": family, "num_train": 120, "num_eval": 30, "facts_per_id": 2})  # 60 whole IDs
    assert_untaught(s)
    first = {c: a.wordings[0] for c, a in KEYED[family].attributes.items()}
    for r in (r for r in s["eval"] if r["seen"]):
        fields = fields_of(r["prompt"], first[r["category"]])  # the ID (and the person's name)
        given = {t["category"] for t in s["train"] if t["key"].split(":")[1] == fields["id"]}
        assert len(given) == 2
        assert r["neighbors"] == [w.format_map(fields) for c, w in first.items() if c not in given]


def fields_of(prompt: str, wording: str) -> dict[str, str]:
    """{"id", "name"} read back from a prompt rendered from `wording` ("" for a family without names)."""
    pattern = re.escape(wording).replace(re.escape("{id}"), "(?P<id>[^]]+)").replace(re.escape("{name}"),
                                                                                       "(?P<name>.+)")
    match = re.fullmatch(pattern, prompt)
    assert match, (prompt, wording)
    return {"name": "", **match.groupdict()}


@pytest.mark.parametrize("family", KEYED)
def test_keyed_facts_using_every_attribute_have_no_neighbour_split(family):
    every = len(KEYED[family].attributes)
    s = build_splits({"family": family, "num_train": 3 * every, "num_eval": 6, "facts_per_id": every})
    assert "neighbor" not in s and not any("neighbors" in r for r in s["eval"])
    narrowed = build_splits({"family": family, "num_train": 20, "num_eval": 6, "facts_per_id": 2,
                             "categories": list(KEYED[family].attributes)[:2]})
    assert "neighbor" not in narrowed  # the attributes in play are data.categories'


# ---------------------------------------------------------------- jsonl, export


def test_jsonl_neighbors_field_makes_the_split_of_seen_eval_lines(tmp_path):
    train, valid = tmp_path / "t.jsonl", tmp_path / "v.jsonl"
    train.write_text(msg("q0?", "a0", key="k0") + "\n" + msg("q1?", "a1", key="k1", neighbors=["n of q1?"]) + "\n")
    valid.write_text("\n".join([
        msg("q0?", "a0", key="k0", neighbors=["When was zero made?", "q1?", "Who made zero?"]),  # q1? is taught
        msg("q5?", "a5", key="k5", neighbors=["unseen: unused?"]),
        msg("q1?", "a1", key="k1", neighbors=[]),  # [] = none
    ]) + "\n")
    s = build_splits({"family": "jsonl", "path": str(train), "valid_path": str(valid)})
    assert [(n["prompt"], n["answer"], n["key"]) for n in s["neighbor"]] == [
        ("When was zero made?", "", "k0"), ("Who made zero?", "", "k0")]
    assert [("neighbors" in r) for r in s["eval"]] == [True, True, False]
    plain = tmp_path / "plain.jsonl"
    plain.write_text("\n".join(msg(f"q{i}?", f"a{i}") for i in range(6)) + "\n")
    assert "neighbor" not in build_splits({"family": "jsonl", "path": str(plain), "valid_path": str(plain)})


def test_export_then_jsonl_gives_the_same_neighbour_split(tmp_path):
    out = tmp_path / "facts.jsonl"
    assert main(["export", "data=entity", "data.num_train=60", "data.num_eval=12", "data.seed=4", f"out={out}"]) == 0
    valid = tmp_path / "facts.valid.jsonl"
    assert all(json.loads(line)["neighbors"] for line in valid.read_text().splitlines())
    original = build_splits({"family": "entity", "num_train": 60, "num_eval": 12, "seed": 4})
    back = build_splits({"family": "jsonl", "path": str(out), "valid_path": str(valid)})
    assert back["neighbor"] == original["neighbor"] and back["neighbor"]
    assert read_jsonl(valid)[0]["neighbors"] == original["eval"][0]["neighbors"]
