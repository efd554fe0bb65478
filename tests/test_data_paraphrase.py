"""Paraphrase generalisation data: exact_match's other wordings, the "paraphrase" split, jsonl's "paraphrases" field,
the export round trip and the datamodule's batches of it."""

from __future__ import annotations

import json

import pytest

from engram.data import build_splits
from engram.data.__main__ import main
from engram.data.families import exact_match as em
from engram.data.families.jsonl import JsonlFormatError, read_jsonl

SAME = ("answer", "category", "key", "seen")


def splits(**kw):
    return build_splits({"family": "exact_match", **kw})


def msg(prompt, answer, **extra):
    return json.dumps({"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}],
                       **extra})


def assert_aligned(s):
    """The paraphrase split is each eval record's paraphrases in turn, with its answer, category, key and seen."""
    expected = [(p, *(r[k] for k in SAME)) for r in s["eval"] for p in r.get("paraphrases", [])]
    assert [(p["prompt"], *(p[k] for k in SAME)) for p in s["paraphrase"]] == expected
    assert all("paraphrases" not in p for p in s["paraphrase"])


# ---------------------------------------------------------------- exact_match wordings


def test_original_prompts_are_unchanged():
    """Existing results depend on these texts: the first wording of each kind is the prompt trained and scored on."""
    assert {kind: w[0] for kind, w in em.WORDINGS.items()} == {
        "capital": "What is the capital of {name}?",
        "element_name": "Which element has atomic number {number}?",
        "element_number": "What is the atomic number of {name}?",
        "port": "Which service uses TCP port {port}?",
        "http": "What is the reason phrase of HTTP status {code}?",
        "unit": "Convert {amount} {src} to {dst}.",
        "acronym": "What does {acronym} stand for?",
        "synthetic": "What is the value of {name}?",
    }


@pytest.mark.parametrize("source", [*em.SOURCES, "synthetic"])
def test_every_fact_has_two_other_wordings_of_the_same_question(source):
    facts = em.synthetic_facts(200, 5) if source == "synthetic" else em.SOURCES[source]()
    kinds = set()
    for f in facts:
        kinds.add(f.kind)
        assert len(f.paraphrases) >= 2
        assert len({f.prompt, *f.paraphrases}) == len(f.paraphrases) + 1  # all different from each other
        for p in f.paraphrases:
            assert "{" not in p and p.strip() == p and p.endswith(("?", "."))
            assert all(v in p for v in f.fields.values())  # asks about the same entity (country, number, ...)
    if source == "elements":  # both directions are paraphrased (units: every fact, reverse included, is above)
        assert kinds == {"element_name", "element_number"}


def test_spot_checked_paraphrases():
    find = lambda facts, key: next(f for f in facts if f.key == key)  # noqa: E731
    france = find(em.capital_facts(), "capitals:France")
    assert france.paraphrases == ["Which city is the capital of France?", "France has which city as its capital?"]
    back = find(em.unit_facts(), "unit_conversions:5.08 cm->in")  # the reverse direction
    assert (back.prompt, back.paraphrases[0], back.answer) == ("Convert 5.08 cm to in.", "How many in are in 5.08 cm?",
                                                              "2")
    oxygen = find(em.element_facts(), "elements:Oxygen")
    assert oxygen.paraphrases[0] == "Which atomic number does Oxygen have?" and oxygen.answer == "8"


@pytest.mark.parametrize("category", em.CATEGORIES)
def test_every_category_gets_paraphrase_records(category):
    s = splits(categories=[category], num_train=40, num_eval=10, eval_seen_fraction=0.5)
    assert len(s["paraphrase"]) == 2 * len(s["eval"]) == 20
    for r in s["eval"]:
        assert len(r["paraphrases"]) == 2 and r["prompt"] not in r["paraphrases"]
    assert_aligned(s)
    assert all(p["category"] == category for p in s["paraphrase"])


# ---------------------------------------------------------------- the split


def test_paraphrase_split_is_deterministic_and_aligned_with_eval():
    a, b = splits(num_train=300, num_eval=40, seed=3), splits(num_train=300, num_eval=40, seed=3)
    assert a["paraphrase"] == b["paraphrase"] and len(a["paraphrase"]) == 80
    assert splits(num_train=300, num_eval=40, seed=4)["paraphrase"] != a["paraphrase"]
    assert_aligned(a)
    assert {p["seen"] for p in a["paraphrase"]} == {True, False}  # seen flags follow the eval item
    train_keys = {r["key"] for r in a["train"]}
    assert all(p["seen"] == (p["key"] in train_keys) for p in a["paraphrase"])
    assert not {p["prompt"] for p in a["paraphrase"]} & {r["prompt"] for r in a["train"] + a["eval"]}
    assert all("paraphrases" not in r for r in a["train"])  # train records keep the common shape


def test_seen_eval_items_do_not_change_their_train_records():
    s = splits(num_train=100, num_eval=20, eval_seen_fraction=1.0)
    train_by_key = {r["key"]: r for r in s["train"]}
    for r in s["eval"]:
        assert {k: v for k, v in r.items() if k not in ("paraphrases", "neighbors")} == train_by_key[r["key"]]


# ---------------------------------------------------------------- jsonl


def test_jsonl_paraphrases_field(tmp_path):
    train, valid = tmp_path / "t.jsonl", tmp_path / "v.jsonl"
    train.write_text(msg("q0?", "a0", key="k0") + "\n" + msg("q1?", "a1", key="k1", paraphrases=["q1 again?"]) + "\n")
    valid.write_text("\n".join([
        msg("q0?", "a0", key="k0", paraphrases=["Q zero?", "What about q0?"]),
        msg("q5?", "a5", key="k5"),
        msg("q6?", "a6", key="k6", paraphrases=[]),  # [] = none
        msg("q7?", "a7", key="k7", paraphrases=["q seven?"]),
        msg("q8?", "a8", key="k8", paraphrases=["capped away?"]),
    ]) + "\n")
    s = build_splits({"family": "jsonl", "path": str(train), "valid_path": str(valid), "num_eval": 4})
    assert [(p["prompt"], p["answer"], p["key"], p["seen"]) for p in s["paraphrase"]] == [
        ("Q zero?", "a0", "k0", True), ("What about q0?", "a0", "k0", True), ("q seven?", "a7", "k7", False),
    ]
    assert_aligned(s)
    assert [("paraphrases" in r) for r in s["eval"]] == [True, False, False, True]
    assert s["train"][1]["paraphrases"] == ["q1 again?"]  # kept on train lines, but only eval's make the split


def test_jsonl_without_paraphrases_has_no_paraphrase_split(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(msg(f"q{i}?", f"a{i}") for i in range(10)) + "\n")
    s = build_splits({"family": "jsonl", "path": str(path), "split_fraction": 0.3})
    assert set(s) == {"train", "eval"}
    assert all("paraphrases" not in r for r in s["train"] + s["eval"])


def test_jsonl_split_fraction_keeps_the_eval_part_paraphrases(tmp_path):
    path = tmp_path / "all.jsonl"
    path.write_text("\n".join(msg(f"q{i}?", f"a{i}", key=f"k{i}", paraphrases=[f"p{i}?"]) for i in range(20)) + "\n")
    cfg = {"family": "jsonl", "path": str(path), "split_fraction": 0.25, "seed": 2}
    s = build_splits(cfg)
    assert s == build_splits(cfg)
    assert [p["prompt"] for p in s["paraphrase"]] == [f"p{r['key'][1:]}?" for r in s["eval"]] and len(s["eval"]) == 5
    assert_aligned(s)


@pytest.mark.parametrize("field", ["paraphrases", "neighbors"])
@pytest.mark.parametrize(
    "value, reason",
    [
        ("q again?", '"{field}" must be a list of strings, got str'),
        (None, '"{field}" must be a list of strings, got NoneType'),
        ({"a": "b"}, '"{field}" must be a list of strings, got dict'),
        (["ok?", 3], '"{field}" item 1 must be a string, got int'),
        (["ok?", ["nested?"]], '"{field}" item 1 must be a string, got list'),
        ([""], '"{field}" item 0 is empty'),
        (["ok?", " \n "], '"{field}" item 1 is empty'),
    ],
)
def test_bad_question_list_field_is_one_line_naming_file_and_line(tmp_path, field, value, reason):
    """"paraphrases" and "neighbors" (tests/test_data_neighbors.py) are read by the same rule."""
    path = tmp_path / "d.jsonl"
    path.write_text(msg("q?", "a") + "\n" + msg("r?", "b", **{field: value}) + "\n")
    with pytest.raises(JsonlFormatError) as e:
        build_splits({"family": "jsonl", "path": str(path), "valid_path": str(path)})
    assert str(e.value) == f"{path}:2: {reason.format(field=field)}"
    assert "\n" not in str(e.value) and e.value.line == 2


# ---------------------------------------------------------------- export round trip


def test_export_then_jsonl_gives_the_same_paraphrase_split(tmp_path):
    out = tmp_path / "facts.jsonl"
    args = ["data=exact_match", "data.num_train=200", "data.num_eval=30", "data.eval_seen_fraction=0.5", "data.seed=9"]
    assert main(["export", *args, f"out={out}"]) == 0
    valid = tmp_path / "facts.valid.jsonl"
    lines = [json.loads(line) for line in valid.read_text().splitlines()]
    assert all(len(line["paraphrases"]) == 2 for line in lines)
    assert not any("paraphrases" in json.loads(line) for line in out.read_text().splitlines())  # train has none

    original = splits(num_train=200, num_eval=30, eval_seen_fraction=0.5, seed=9)
    back = build_splits({"family": "jsonl", "path": str(out), "valid_path": str(valid)})
    assert back["paraphrase"] == original["paraphrase"] and len(back["paraphrase"]) == 60
    assert back["eval"] == original["eval"] and back["train"] == original["train"]
    assert read_jsonl(valid)[0]["paraphrases"] == original["eval"][0]["paraphrases"]


# ---------------------------------------------------------------- datamodule


@pytest.fixture(scope="module")
def tok():
    from engram.models.loading import load_tiny_tokenizer

    return load_tiny_tokenizer()


def test_datamodule_tokenises_the_paraphrase_split(tok):
    from engram.data.datamodule import EngramDataModule

    dm = EngramDataModule({"family": "exact_match", "num_train": 60, "num_eval": 12, "eval_batch_size": 5}, tok)
    dm.setup("validate")
    assert len(dm.datasets["paraphrase"]) == 24
    assert "paraphrases" not in dm.datasets["eval"].column_names  # token datasets keep the common columns
    batches = list(dm.generation_batches(split="paraphrase"))
    assert [len(b["records"]) for b in batches] == [5, 5, 5, 5, 4]
    records = [r for b in batches for r in b["records"]]
    assert records == dm.splits["paraphrase"]
    for b in batches:
        assert b["input_ids"].shape[0] == len(b["records"])
        for ids, mask, r in zip(b["input_ids"], b["attention_mask"], b["records"], strict=True):
            assert r["prompt"] in tok.decode(ids[mask.bool()].tolist())


def test_datamodule_without_paraphrases_names_the_missing_split(tok, tmp_path):
    from engram.data.datamodule import EngramDataModule

    path = tmp_path / "t.jsonl"
    # the first eval line has no paraphrases, a later one has: the datasets still build, from the common columns
    path.write_text("\n".join(msg(f"q{i}?", f"a{i}", **({"paraphrases": [f"p{i}?"]} if i == 3 else {}))
                              for i in range(6)) + "\n")
    dm = EngramDataModule({"family": "jsonl", "path": str(path), "valid_path": str(path)}, tok)
    dm.setup("validate")
    assert [r["prompt"] for b in dm.generation_batches(split="paraphrase") for r in b["records"]] == ["p3?"]

    plain = tmp_path / "plain.jsonl"
    plain.write_text("\n".join(msg(f"q{i}?", f"a{i}") for i in range(6)) + "\n")
    dm = EngramDataModule({"family": "jsonl", "path": str(plain), "valid_path": str(plain)}, tok)
    dm.setup("validate")
    assert "paraphrase" not in dm.splits
    with pytest.raises(KeyError, match="no 'paraphrase' split in data=jsonl"):
        next(dm.generation_batches(split="paraphrase"))
