"""Scorers that keep only the exact match (knock-out, rewordings) stop a row once its match is decided: the same
scores as decoding every token, fewer tokens decoded."""

from __future__ import annotations

import random

import pytest
import torch
from test_gated_lora import tiny_pair  # noqa: F401  (the fixture)
from test_recall import engram_cfg, facts, tiny

from engram import EngramModel
from engram.evaluation.generate_eval import evaluate_generation, greedy_ids, new_token_ids
from engram.evaluation.metrics import exact_match, match_decided
from engram.training.writing import write_facts


@pytest.mark.parametrize(("text", "answer", "decided"), [
    ("Paris", "Paris", False),  # " Hilton" could still follow
    ("Par", "Paris", False),
    ("", "Paris", False),
    ("  \n", "Paris", False),  # leading blank lines are stripped before the answer starts
    ("Paris\nThe capital", "Paris", True),  # the first line is the answer
    ("Paris<|im_end|>", "Paris", True),
    ("The capital of", "Paris", True),  # can never become "Paris"
    ("Washington ,", "Washington, D.C.", False),  # a space that decoding more tokens may still drop
    ("caf\ufffd", "café", False),  # half a multi-byte character
    ("Paris<|im", "Paris", False),  # the start of an end marker
])
def test_when_a_match_is_decided(text: str, answer: str, decided: bool) -> None:
    assert match_decided(text, answer) is decided


def test_a_decided_match_never_changes_as_the_text_grows() -> None:
    """Over random texts: once decided, every longer text has the same exact match as the text where it was
    decided."""
    rng = random.Random(0)
    alphabet = ["Pa", "ris", " ", "\n", "X", ".", "<|im_end|>", "Paris"]
    for _ in range(3000):
        answer = rng.choice(["Paris", "Pa ris", "X.", "Paris X"])
        full = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))
        cuts = [i for i in range(len(full) + 1) if match_decided(full[:i], answer)]
        if cuts:
            assert exact_match(full[:cuts[0]], answer) == exact_match(full, answer), (full, answer)


def test_match_only_scores_like_full_decoding_with_fewer_tokens() -> None:
    model, tok = tiny()
    taught = facts(16)
    written = EngramModel(model, engram_cfg(), tok)
    write_facts(written, tok, taught[:8], progress=False)  # half the facts recalled, half not
    records = [{**f, "seen": i < 8} for i, f in enumerate(taught)]
    texts = [tok.apply_chat_template([{"role": "user", "content": r["prompt"]}], tokenize=False,
                                     add_generation_prompt=True) for r in records]
    tok.padding_side = "left"
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    batch = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "records": records}
    full = evaluate_generation(written, tok, [batch], 24, show_progress=False, check_cache=False)
    short = evaluate_generation(written, tok, [batch], 24, show_progress=False, check_cache=False, match_only=True)
    assert [r["correct"] for r in short.rows] == [r["correct"] for r in full.rows]
    assert short.metrics["eval/exact_match_seen"] == full.metrics["eval/exact_match_seen"] >= 0.75
    assert short.metrics["eval/exact_match_unseen"] == full.metrics["eval/exact_match_unseen"]
    # against answers it does not give (each taught row expects its neighbour's), a row stops at its first token
    other = [r["answer"] for r in records[1:8] + records[:1]]
    with torch.no_grad():
        every = greedy_ids(written, tok, enc["input_ids"][:8], enc["attention_mask"][:8], 24)
        cut = greedy_ids(written, tok, enc["input_ids"][:8], enc["attention_mask"][:8], 24, stop_when_decided=other)
    prompt = enc["input_ids"].shape[1]
    every_new, cut_new = new_token_ids(tok, every, prompt), new_token_ids(tok, cut, prompt)
    assert all(c == e[: len(c)] for c, e in zip(cut_new, every_new, strict=True))  # the same tokens, fewer
    assert sum(map(len, cut_new)) < sum(map(len, every_new))


def test_the_gated_lora_decoder_honours_a_stopping_criterion(tiny_pair) -> None:  # noqa: F811
    model, tok, _, ids, mask = tiny_pair
    kw = {"max_new_tokens": 6, "pad_token_id": tok.pad_token_id, "eos_token_id": tok.eos_token_id}

    def after_two(seq: torch.Tensor, scores: object) -> torch.Tensor:
        return torch.full((len(seq),), seq.shape[1] >= ids.shape[1] + 2, dtype=torch.bool)

    free = model.generate(input_ids=ids, attention_mask=mask, **kw)
    stopped = model.generate(input_ids=ids, attention_mask=mask, stopping_criteria=[after_two], **kw)
    assert stopped.shape[1] == ids.shape[1] + 2 < free.shape[1]
    assert torch.equal(stopped, free[:, : stopped.shape[1]])
