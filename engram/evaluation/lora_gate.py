"""Where a gated LoRA's gate opens (variant=gated_lora, engram/models/gated_lora.py): per token, teacher-forced.

Two kinds of position, as the loss sees them: an **answer position** predicts an answer token (the prompt's last
token and the answer's tokens but the last); a **prompt position** is any other real token. The gate matters at
answer positions (that is where the LoRA's logits are scored); a gate that also opens on prompt positions, or on
the general prompts, is LoRA leaking into text it was not trained for.

`gate_split_means` serves the training logs (train/gate_answer, train/gate_prompt per step) and `lora_gate_metrics`
the final statistics in eval.json (`gate/*`); `token_gates` gives what the per-run PNG draws.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from engram.data.formatting import encode_answers, encode_prompts, pad_id
from engram.evaluation.generate_eval import teacher_forced_batches
from engram.evaluation.retention import general_pairs
from engram.tracking.token_gate_plot import GateRow, plot_token_gates

BATCH = 16


def answer_positions(labels: torch.Tensor) -> torch.Tensor:
    """[B, T] bool: the positions whose next token is an answer token (labels != -100 one step ahead)."""
    out = torch.zeros_like(labels, dtype=torch.bool)
    out[:, :-1] = labels[:, 1:] != -100
    return out


def gate_split_means(gate: torch.Tensor, labels: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, float]:
    """Mean gate at answer positions and at prompt positions of one batch (NaN when a kind has none)."""
    answer = answer_positions(labels).to(gate.device)
    prompt = attention_mask.bool().to(gate.device) & ~answer & (labels.to(gate.device) == -100)

    def mean(where: torch.Tensor) -> float:
        return float(gate[where].float().mean()) if bool(where.any()) else float("nan")

    return {"gate_answer": mean(answer), "gate_prompt": mean(prompt)}


@dataclass
class TokenGates:
    """One teacher-forced example: its token ids, the gate at each position, which positions predict the answer."""

    ids: list[int]
    gate: list[float]
    answer: list[bool]


def token_gates(model: Any, prompts: Sequence[Sequence[int]], answers: Sequence[Sequence[int]], *,
                max_length: int, pad_token_id: int, batch_size: int = BATCH) -> list[TokenGates]:
    """The gate at every token of each (prompt ids, answer ids) pair, joined as training joins them."""
    out: list[TokenGates] = []
    for batch in teacher_forced_batches(model, prompts, answers, max_length, pad_token_id, batch_size):
        forward = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        gate, answer = forward.lora_gate, answer_positions(batch["labels"])
        for row in range(len(batch["input_ids"])):
            n = int(batch["attention_mask"][row].sum())  # right-padded: the real tokens come first
            out.append(TokenGates(batch["input_ids"][row, :n].tolist(), gate[row, :n].float().tolist(),
                                  answer[row, :n].tolist()))
    return out


def _means(examples: Sequence[TokenGates]) -> tuple[float, float]:
    answer = [g for e in examples for g, a in zip(e.gate, e.answer, strict=True) if a]
    prompt = [g for e in examples for g, a in zip(e.gate, e.answer, strict=True) if not a]
    return (sum(answer) / len(answer) if answer else float("nan"),
            sum(prompt) / len(prompt) if prompt else float("nan"))


def fact_token_gates(model: Any, tokenizer: Any, facts: Sequence[dict[str, Any]], prompt_format: str,
                     max_length: int) -> list[TokenGates]:
    prompts = encode_prompts(tokenizer, [str(f["prompt"]) for f in facts], prompt_format)
    answers = encode_answers(tokenizer, [str(f["answer"]) for f in facts], prompt_format)
    return token_gates(model, prompts, answers, max_length=max_length, pad_token_id=pad_id(tokenizer))


def general_token_gates(model: Any, tokenizer: Any, base_general: Sequence[str], max_length: int,
                        taught: set[str] | None = None) -> list[TokenGates]:
    prompts, answers = general_pairs(tokenizer, list(base_general), taught)
    return token_gates(model, prompts, answers, max_length=max_length, pad_token_id=pad_id(tokenizer))


def lora_gate_metrics(model: Any, tokenizer: Any, eval_records: Sequence[dict[str, Any]],
                      base_general: Sequence[str], *, prompt_format: str, max_length: int,
                      taught: set[str] | None = None) -> tuple[dict[str, float], dict[str, list[TokenGates]]]:
    """`gate/{answer,prompt}_{seen,unseen}` (eval facts), `gate/general` (every position of the general prompts
    answered as the base model answers them) and `gate/open_frac_*` (share of answer positions with g > 0.5);
    plus the examples themselves ("seen", "unseen", "general") for the plot."""
    groups = {
        "seen": fact_token_gates(model, tokenizer, [r for r in eval_records if r.get("seen")], prompt_format,
                                 max_length),
        "unseen": fact_token_gates(model, tokenizer, [r for r in eval_records if not r.get("seen")], prompt_format,
                                   max_length),
        "general": general_token_gates(model, tokenizer, base_general, max_length, taught),
    }
    metrics: dict[str, float] = {}
    for name in ("seen", "unseen"):
        if groups[name]:
            metrics[f"gate/answer_{name}"], metrics[f"gate/prompt_{name}"] = _means(groups[name])
            opened = [g > 0.5 for e in groups[name] for g, a in zip(e.gate, e.answer, strict=True) if a]
            metrics[f"gate/open_frac_{name}"] = sum(opened) / len(opened) if opened else float("nan")
    every = [g for e in groups["general"] for g in e.gate]
    if every:
        metrics["gate/general"] = sum(every) / len(every)
    return metrics, groups


def save_gate_plot(tokenizer: Any, groups: dict[str, list[TokenGates]], path: Path, per_group: int = 4,
                   title: str = "gated LoRA: gate per token") -> Path:
    """lora_gate_tokens.png: the first `per_group` seen, unseen and general examples, token by token."""
    rows = [GateRow(name, [tokenizer.decode([i]) for i in e.ids], e.gate, e.answer)
            for name in ("seen", "unseen", "general") for e in groups.get(name, [])[:per_group]]
    return plot_token_gates(rows, title, path)
