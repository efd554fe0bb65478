"""Collators: dynamic padding to the longest sequence of each batch (never to a fixed length).

Training/eval-loss batches are right-padded (the prompt is `[0, prompt_length)`), labels are -100 on padding.
Generation batches are left-padded prompts (so every row's next token follows its last prompt token) and carry the
raw records for exact-match scoring.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from engram.data.formatting import join_example


def pad(seqs: Sequence[Sequence[int]], value: int, side: str = "right") -> torch.Tensor:
    width = max((len(s) for s in seqs), default=0)
    out = torch.full((len(seqs), width), value, dtype=torch.long)
    for i, s in enumerate(seqs):
        if len(s):
            if side == "right":
                out[i, : len(s)] = torch.as_tensor(s, dtype=torch.long)
            else:
                out[i, width - len(s) :] = torch.as_tensor(s, dtype=torch.long)
    return out


def mask(seqs: Sequence[Sequence[int]], side: str = "right") -> torch.Tensor:
    return pad([[1] * len(s) for s in seqs], 0, side)


class TrainCollator:
    """features with `input_ids`, `labels`, `prompt_length` -> a right-padded batch with `prompt_lengths`."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        ids = [f["input_ids"] for f in features]
        return {
            "input_ids": pad(ids, self.pad_token_id),
            "attention_mask": mask(ids),
            "labels": pad([f["labels"] for f in features], -100),
            "prompt_lengths": torch.tensor([int(f["prompt_length"]) for f in features], dtype=torch.long),
        }


def teacher_forced_batch(prompts: Sequence[Sequence[int]], answers: Sequence[Sequence[int]], max_length: int,
                         pad_token_id: int) -> dict[str, torch.Tensor]:
    """Prompt + answer id pairs (answer eos included) joined as training joins them, as one right-padded batch."""
    features = []
    for p, a in zip(prompts, answers, strict=True):
        ids, labels, plen = join_example(list(p), list(a), max_length)
        features.append({"input_ids": ids, "labels": labels, "prompt_length": plen})
    return TrainCollator(pad_token_id)(features)


def answer_window(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(the positions worth logits, the labels they predict) of a teacher-forced or training batch: the positions
    from the shortest prompt on, since every earlier one predicts a prompt token (label -100). Pass the first as
    `logits_to_keep`: the LM head over a ~49k vocabulary is about a fifth of SmolLM2's forward cost."""
    labels = batch["labels"]
    start = max(int(batch["prompt_lengths"].min()) - 1, 0)  # position t predicts token t + 1
    return torch.arange(start, labels.shape[1] - 1, device=labels.device), labels[:, start + 1:]


class GenerationCollator:
    """(prompt ids, record) pairs -> left-padded `input_ids`, `attention_mask` and the `records` themselves."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, items: Sequence[tuple[Sequence[int], dict[str, Any]]]) -> dict[str, Any]:
        ids = [list(p) for p, _ in items]
        return {
            "input_ids": pad(ids, self.pad_token_id, side="left"),
            "attention_mask": mask(ids, side="left"),
            "records": [dict(r) for _, r in items],
        }
