"""Exact match, summaries, retention cache and the results files (tiny model where a model is needed)."""

import json

import pytest

from engram.evaluation.metrics import clean_generation, exact_match, summarize_rows
from engram.evaluation.results import write_results


@pytest.mark.parametrize(
    ("generated", "answer", "ok"),
    [
        (" Paris", "Paris", True),
        ("Paris<|im_end|>garbage", "Paris", True),
        ("Paris\nThe capital is Paris.", "Paris", True),
        ("paris", "Paris", False),
        ("Paris.", "Paris", False),
        ("", "Paris", False),
    ],
)
def test_exact_match(generated: str, answer: str, ok: bool) -> None:
    assert exact_match(generated, answer) is ok


def test_clean_generation_cuts_at_eos_and_newline() -> None:
    assert clean_generation("  80</s> more") == "80"
    assert clean_generation("\n\n") == ""


def test_summary_overall_category_seen_unseen() -> None:
    rows = [
        {"correct": True, "category": "capitals", "seen": True},
        {"correct": False, "category": "capitals", "seen": False},
        {"correct": True, "category": "ports", "seen": True},
        {"correct": True, "category": "ports", "seen": False},
    ]
    m = summarize_rows(rows)
    assert m["eval/exact_match"] == 0.75
    assert m["eval/exact_match_seen"] == 1.0 and m["eval/exact_match_unseen"] == 0.5
    assert m["eval/exact_match/capitals"] == 0.5 and m["eval/exact_match/ports"] == 1.0


def test_results_files(tmp_path) -> None:
    rows = [{"prompt": "Q1", "expected": "a", "generated": "b", "correct": False, "category": "c", "seen": True}]
    metrics = {**summarize_rows(rows), "eval/retention": 0.9, "params/trainable": 10, "params/total": 100}
    js, md = write_results(tmp_path, {"variant": "engram", "model": "tiny", "data": "x"}, metrics, rows)
    data = json.loads(js.read_text())
    assert data["metrics"]["eval/retention"] == 0.9 and data["examples"][0]["prompt"] == "Q1"
    text = md.read_text()
    assert "retention" in text and "90.0%" in text and "| c | 1 | 0 |" in text


def test_retention_base_answers_cached_per_model(tmp_path, monkeypatch) -> None:
    import engram.evaluation.retention as ret
    from engram.models.loading import load_model

    model, tok = load_model("tiny")
    first = ret.base_answers(model, tok, max_new_tokens=4, cache_dir=tmp_path, show_progress=False)
    assert len(first) == len(ret.load_general_prompts()) >= 45
    assert len(list(tmp_path.glob("*.json"))) == 1

    def no_generation(*args, **kwargs):
        raise AssertionError("cached answers must not be regenerated")

    monkeypatch.setattr(ret, "generate_texts", no_generation)
    assert ret.base_answers(model, tok, max_new_tokens=4, cache_dir=tmp_path, show_progress=False) == first
    monkeypatch.undo()

    score, rows = ret.measure_retention(model, tok, first, max_new_tokens=4, show_progress=False)
    assert score == 1.0 and all(r["unchanged"] for r in rows)  # same model: nothing changed

    other, _ = load_model("tiny", seed=1)  # different weights -> another cache entry
    ret.base_answers(other, tok, max_new_tokens=4, cache_dir=tmp_path, show_progress=False)
    assert len(list(tmp_path.glob("*.json"))) == 2


def test_retention_falls_when_an_open_memory_changes_answers(tmp_path) -> None:
    """An opened memory (gate forced open, large random rows) must change general answers: retention < 1, and
    each row's `unchanged` says whether its answer really equals the base answer."""
    import engram.evaluation.retention as ret
    from engram.models.loading import load_model
    from tests.test_generation import lively, open_memory

    model, tok = load_model("tiny")
    lively(model)
    base = ret.base_answers(model, tok, max_new_tokens=6, cache_dir=tmp_path, show_progress=False)
    open_memory(model, tok, hash="deepseek", gate="mlp", gate_bias=8.0, init_std=2.0)
    score, rows = ret.measure_retention(model, tok, base, max_new_tokens=6, show_progress=False)
    assert score < 0.5
    assert score == sum(r["unchanged"] for r in rows) / len(rows)
    assert all(r["unchanged"] == (r["now"].strip() == r["base"].strip()) for r in rows)
    assert [r["base"] for r in rows] == base
