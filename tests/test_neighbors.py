"""edit/neighbors (engram/evaluation/neighbors.py): untaught questions about taught entities answered as the base
model answers them, greedy and teacher-forced. A model computing as its base scores 1; a memory of the taught facts
leaves the neighbours alone; rows planted on neighbour prompts lower exactly those."""

from __future__ import annotations

import json

import pytest
from test_recall import engram_cfg, tiny

from engram import EngramModel
from engram.data.datamodule import EngramDataModule
from engram.evaluation import neighbors
from engram.evaluation.neighbors import BaseReplies, base_replies, neighbor_metrics
from engram.evaluation.results import write_results
from engram.training.writing import write_facts

MAX_NEW = 8
BATCH = 8


def datamodule(tok) -> EngramDataModule:
    dm = EngramDataModule({"family": "exact_match", "num_train": 40, "num_eval": 12, "eval_batch_size": BATCH,
                           "eval_seen_fraction": 0.5}, tok)
    dm.setup("validate")
    return dm


def score(model, tok, dm, base):
    return neighbor_metrics(model, tok, dm, base, max_length=256, batch_size=BATCH, max_new_tokens=MAX_NEW)


def test_a_model_computing_as_its_base_scores_one(tmp_path):
    model, tok = tiny()
    dm = datamodule(tok)
    base = base_replies(model, tok, dm, MAX_NEW, BATCH, cache_dir=tmp_path, show_progress=False)
    assert len(base.answers) == len(base.ids) == len(dm.splits["neighbor"]) == 12  # 6 seen items x 2
    assert all(base.ids)  # the tiny model never stops at once: every reply is scored teacher-forced
    wrapped = EngramModel(model, engram_cfg(), tok)  # an empty memory adds exactly nothing
    metrics, rows = score(wrapped, tok, dm, base)
    assert metrics["edit/neighbors"] == 1.0 and metrics["neighbor/num_examples"] == 12
    assert metrics["edit/neighbors_tf"] == 1.0  # its own greedy tokens fed back are its argmax
    assert [r["prompt"] for r in rows] == [r["prompt"] for r in dm.splits["neighbor"]]
    assert [r["expected"] for r in rows] == base.answers and all(r["correct"] for r in rows)


def test_answers_unlike_the_reference_lower_the_score_exactly_where_they_differ(tmp_path):
    """The tiny model answers every prompt with newlines (cleaned: ""), so the reference here is a model that
    answers each neighbour prompt in a word of its own (memory rows on those prompts): the knock-out, answering "",
    then scores 0, and rows written over half of them lower exactly that half."""
    model, tok = tiny()
    dm = datamodule(tok)
    wrapped = EngramModel(model, engram_cfg(), tok)
    prompts = [r["prompt"] for r in dm.splits["neighbor"]]
    own = [{"prompt": p, "answer": f"Word{i}"} for i, p in enumerate(prompts)]
    assert write_facts(wrapped, tok, own, progress=False).recall == 1.0
    base = base_replies(wrapped, tok, dm, MAX_NEW, BATCH, cache_dir=tmp_path, show_progress=False)
    assert base.answers == [f"Word{i}" for i in range(len(prompts))]
    assert all(len(ids) > 1 and ids[-1] == tok.eos_token_id for ids in base.ids)  # the stop is fed back too
    same, _ = score(wrapped, tok, dm, base)
    assert same["edit/neighbors"] == 1.0 and same["edit/neighbors_tf"] == 1.0
    with wrapped.memories_off():  # another model: every reply differs
        other, rows = score(wrapped, tok, dm, base)
    assert other["edit/neighbors"] == 0.0 and other["edit/neighbors_tf"] < 0.5
    assert all(r["generated"] == "" for r in rows)
    # the taught facts written too (rows keyed on their exact prompts): no neighbour reply moves
    assert write_facts(wrapped, tok, dm.train_records, progress=False).recall >= 0.9
    assert score(wrapped, tok, dm, base)[0] == same
    # rows rewritten on every other neighbour prompt: exactly those answer otherwise, greedy and teacher-forced
    planted = prompts[::2]
    assert write_facts(wrapped, tok, [{"prompt": p, "answer": "Zanzibar"} for p in planted],
                       progress=False).recall == 1.0
    metrics, rows = score(wrapped, tok, dm, base)
    assert [r["prompt"] for r in rows if not r["correct"]] == planted
    assert all(r["generated"] == "Zanzibar" for r in rows if not r["correct"])
    assert metrics["edit/neighbors"] == pytest.approx(1 - len(planted) / len(rows)) == 0.5
    assert same["edit/neighbors_tf"] > metrics["edit/neighbors_tf"] > other["edit/neighbors_tf"]


def test_base_replies_are_cached_per_model_and_batching(tmp_path, monkeypatch):
    model, tok = tiny()
    dm = datamodule(tok)
    first = base_replies(model, tok, dm, MAX_NEW, BATCH, cache_dir=tmp_path, show_progress=False)
    assert len(list(tmp_path.glob("*.json"))) == 1

    def no_decoding(*_a, **_k):
        raise AssertionError("decoded again")

    monkeypatch.setattr(neighbors, "greedy_ids", no_decoding)
    assert base_replies(model, tok, dm, MAX_NEW, BATCH, cache_dir=tmp_path, show_progress=False) == first
    with pytest.raises(AssertionError, match="decoded again"):  # other batches pad otherwise: their own entry
        base_replies(model, tok, dm, MAX_NEW, BATCH // 2, cache_dir=tmp_path, show_progress=False)


def test_replies_of_other_data_are_refused_and_no_split_means_none(tmp_path):
    model, tok = tiny()
    dm = datamodule(tok)
    with pytest.raises(ValueError, match=r"^2 base replies for 12 neighbour prompts: they were decoded on other data$"):
        score(model, tok, dm, BaseReplies(["a", "b"], [[1], [2]]))
    plain = tmp_path / "plain.jsonl"
    plain.write_text("\n".join(json.dumps({"messages": [{"role": "user", "content": f"q{i}?"},
                                                        {"role": "assistant", "content": f"a{i}"}]})
                               for i in range(4)) + "\n")
    no_neighbors = EngramDataModule({"family": "jsonl", "path": str(plain), "valid_path": str(plain)}, tok)
    assert base_replies(model, tok, no_neighbors, MAX_NEW, BATCH, cache_dir=tmp_path, show_progress=False) is None


def test_eval_files_show_the_neighbours(tmp_path):
    metrics = {"eval/exact_match": 1.0, "edit/neighbors": 0.5, "neighbor/num_examples": 2.0,
               "edit/generalization": 0.25, "paraphrase/num_seen": 4.0}
    rows = [{"prompt": "Which continent is Peru in?", "expected": "South America", "generated": "Lima",
             "correct": False}, {"prompt": "Is Gold a metal?", "expected": "Yes", "generated": "Yes", "correct": True}]
    write_results(tmp_path, {"variant": "engram"}, metrics, [], neighbor_rows=rows)
    assert json.loads((tmp_path / "eval.json").read_text())["neighbor_examples"] == rows
    md = (tmp_path / "eval.md").read_text()
    assert "| neighbour questions answered as the base (2) | 50.0% |" in md
    assert "| paraphrases of seen facts (4) | 25.0% |" in md
    assert "| Which continent is Peru in? | South America | Lima |" in md and "Is Gold a metal?" not in md
