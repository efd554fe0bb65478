"""Editing metrics (issue 14): teacher-forced token accuracy counted right for any model, efficacy / generalisation /
locality for a written memory, and edit/* in eval.json of every variant."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from _training_utils import tiny_cfg
from test_recall import engram_cfg, facts, tiny

from engram import EngramModel
from engram.evaluation.editing import fact_scores, locality_scores, token_scores
from engram.evaluation.retention import base_answers
from engram.training.pipeline import train
from engram.training.writing import write_facts


class Oracle(torch.nn.Module):
    """Predicts the true next token everywhere except at the positions listed in `wrong` (then token 0)."""

    def __init__(self, vocab: int = 50, wrong: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.vocab, self.wrong = vocab, wrong
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # so next(model.parameters()) has a device

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                logits_to_keep: int | torch.Tensor = 0) -> SimpleNamespace:
        nxt = torch.roll(input_ids, -1, dims=1)
        for t in self.wrong:
            nxt[:, t] = 0
        kept = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep  # as HF does
        return SimpleNamespace(logits=torch.nn.functional.one_hot(nxt[:, kept], self.vocab).float())


def test_token_accuracy_counts_only_answer_tokens() -> None:
    prompts, answers = [[5, 6, 7], [5, 6]], [[8, 9, 10, 11], [12, 13]]
    perfect = token_scores(Oracle(), prompts, answers, max_length=64, pad_token_id=1)
    assert perfect.token_accuracy == [1.0, 1.0] and perfect.exact == [True, True]
    # position 3 predicts the 2nd answer token of the first pair (its prompt is 3 long); in the second pair (prompt
    # 2 long, answer at positions 2-3) position 3 predicts padding, which is not scored
    one_wrong = token_scores(Oracle(wrong=(3,)), prompts, answers, max_length=64, pad_token_id=1)
    assert one_wrong.token_accuracy == [0.75, 1.0]
    assert one_wrong.exact == [False, True] and one_wrong.mean_accuracy == pytest.approx(0.875)
    prompt_only = token_scores(Oracle(wrong=(0,)), prompts, answers, max_length=64, pad_token_id=1)
    assert prompt_only.exact == [True, True]  # a wrong prediction inside the prompt is not scored


def test_token_scores_equal_the_full_logits_on_a_real_model() -> None:
    """Scoring keeps logits from the shortest prompt on only; the per-pair scores are those of the whole sequence's
    logits (compared where the top two logits are apart, so no vector unit's rounding can swap them)."""
    model, tok = tiny()
    taught = facts(12)
    prompts = [list(range(3, 3 + n)) for n in (4, 9, 6)]
    answers = [[20, 21, 22], [23, 24], [25, 26, 27, 28]]
    scores = token_scores(model, prompts, answers, max_length=64, pad_token_id=0)
    reference_right, gaps = [], []
    for prompt, answer in zip(prompts, answers, strict=True):
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([prompt + answer])).logits[0, len(prompt) - 1 : -1]
        top2 = logits.topk(2, -1).values
        gaps.append(float((top2[:, 0] - top2[:, 1]).min()))
        reference_right.append((logits.argmax(-1) == torch.tensor(answer)).tolist())
    assert min(gaps) > 1e-4
    assert scores.token_accuracy == [sum(r) / len(r) for r in reference_right]
    assert scores.exact == [all(r) for r in reference_right]
    written = EngramModel(model, engram_cfg(), tok)
    write_facts(written, tok, taught, progress=False)
    assert fact_scores(written, tok, taught, "chat", 256).exact_share >= 0.9  # an EngramModel takes the keyword too


def test_written_facts_score_efficacy_and_the_memory_keeps_locality() -> None:
    model, tok = tiny()
    taught = facts(24)
    wrapped = EngramModel(model, engram_cfg(), tok)
    with wrapped.memories_off():
        base = base_answers(wrapped.lm, tok, 8, 16, show_progress=False)
        before = fact_scores(wrapped, tok, taught, "chat", 256)
    summary = write_facts(wrapped, tok, taught, progress=False)
    after = fact_scores(wrapped, tok, taught, "chat", 256)
    assert before.exact_share == 0.0 and after.exact_share == pytest.approx(summary.recall)
    assert summary.recall >= 0.9 and after.mean_accuracy > before.mean_accuracy
    asked = {f["prompt"] for f in taught}  # a general prompt that is a taught fact ("capital of France") is left out
    locality = locality_scores(wrapped, tok, base, 256, asked)
    with wrapped.memories_off():
        reference = locality_scores(wrapped, tok, base, 256, asked)
    assert locality.token_accuracy == reference.token_accuracy  # the memory changed no general answer token
    assert reference.mean_accuracy > 0.8  # the base model's own answer, re-tokenised, is mostly its argmax


@pytest.mark.parametrize("variant", ["lora", "engram"])
def test_every_variant_reports_editing_metrics(tmp_path: Path, variant: str) -> None:
    cfg = tiny_cfg(tmp_path, f"variant={variant}")
    train(cfg)
    metrics = json.loads((tmp_path / "eval.json").read_text())["metrics"]
    keys = ("edit/efficacy", "edit/efficacy_tf", "edit/generalization", "edit/generalization_tf", "edit/locality",
            "edit/locality_tf", "paraphrase/exact_match_seen")
    for key in keys:
        assert 0.0 <= metrics[key] <= 1.0, key
    assert metrics["edit/efficacy"] == metrics["eval/exact_match_seen"]
    assert metrics["edit/locality"] == metrics["eval/retention"]
    assert metrics["edit/generalization"] == metrics["paraphrase/exact_match_seen"]
    # two other wordings per taught fact; untaught facts' rewordings are not decoded
    assert metrics["paraphrase/num_examples"] == metrics["paraphrase/num_seen"] == 2 * metrics["eval/num_seen"] > 0
    assert "paraphrase/exact_match_unseen" not in metrics
    if variant == "engram":  # the knock-out decodes the taught facts only
        assert "knockout/exact_match_seen" in metrics and "knockout/exact_match_unseen" not in metrics
    assert 0.0 <= metrics["edit/neighbors"] <= 1.0 and 0.0 <= metrics["edit/neighbors_tf"] <= 1.0  # every variant
    # where the evaluation's time went, phase by phase; the memory's own phases only with a memory
    phases = {k for k in metrics if k.startswith("time/eval_")}
    memory = {"time/eval_knockout_s", "time/eval_firing_s"}
    common = {"time/eval_facts_s", "time/eval_retention_s", "time/eval_editing_s", "time/eval_neighbors_s"}
    assert phases == (common | memory if variant == "engram" else common)
    assert all(metrics[k] > 0 for k in phases) and sum(metrics[k] for k in phases) < metrics["time/total_s"]
