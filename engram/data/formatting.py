"""Prompt/answer text and token ids, exactly as training and generation see them.

`chat`: the tokenizer's chat template with `add_generation_prompt=True`; the target is `answer + eos`.
`plain`: `"Q: {prompt}\\nA:"`; the target is `" " + answer + eos`.
Prompt and answer are tokenised separately, so the prompt ids in training equal the ids generation starts from.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

log = logging.getLogger(__name__)

PROMPT_FORMATS = ("chat", "plain")


def format_prompt(tokenizer: Any, prompt: str, prompt_format: str) -> str:
    if prompt_format == "plain":
        return f"Q: {prompt}\nA:"
    if prompt_format == "chat":
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError("data.prompt_format=chat needs a tokenizer with a chat template (or use plain)")
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
    raise ValueError(f"data.prompt_format={prompt_format} is not one of {', '.join(PROMPT_FORMATS)}")


def format_answer(tokenizer: Any, answer: str, prompt_format: str) -> str:
    """The target text, eos included (for display; `encode_answers` appends the eos id itself)."""
    return (" " if prompt_format == "plain" else "") + answer + (tokenizer.eos_token or "")


def eos_id(tokenizer: Any) -> int:
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no eos token; answers need one to end generation")
    return int(tokenizer.eos_token_id)


def pad_id(tokenizer: Any) -> int:
    """The pad id, falling back to eos (padding is masked everywhere, so its value never reaches the loss)."""
    return int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_id(tokenizer))


def encode_prompts(tokenizer: Any, prompts: Sequence[str], prompt_format: str) -> list[list[int]]:
    texts = [format_prompt(tokenizer, p, prompt_format) for p in prompts]
    # chat templates write their own special tokens into the text; plain lets the tokenizer add BOS if it uses one
    return tokenizer(texts, add_special_tokens=prompt_format == "plain")["input_ids"]


def encode_answers(tokenizer: Any, answers: Sequence[str], prompt_format: str) -> list[list[int]]:
    lead = " " if prompt_format == "plain" else ""
    ids = tokenizer([lead + a for a in answers], add_special_tokens=False)["input_ids"]
    eos = eos_id(tokenizer)
    return [list(x) + [eos] for x in ids]


def join_example(prompt_ids: list[int], answer_ids: list[int], max_length: int) -> tuple[list[int], list[int], int]:
    """(input_ids, labels, prompt_length): labels are -100 on the prompt. Over max_length, the prompt loses its start
    (its end holds the question and the generation prompt); the answer is cut only if it alone is too long."""
    answer_ids = answer_ids[:max_length]
    keep = max_length - len(answer_ids)
    prompt_ids = prompt_ids[len(prompt_ids) - keep :] if keep > 0 else []
    return prompt_ids + answer_ids, [-100] * len(prompt_ids) + answer_ids, len(prompt_ids)


def encode_batch(batch: dict[str, list[Any]], tokenizer: Any, prompt_format: str, max_length: int) -> dict[str, list]:
    """`datasets.map(batched=True)` function: records -> input_ids, labels, prompt_length (+ prompt_ids)."""
    prompts = encode_prompts(tokenizer, batch["prompt"], prompt_format)
    answers = encode_answers(tokenizer, batch["answer"], prompt_format)
    out: dict[str, list] = {"input_ids": [], "labels": [], "prompt_length": [], "prompt_ids": prompts}
    cut = 0
    for p, a in zip(prompts, answers, strict=True):
        ids, labels, plen = join_example(p, a, max_length)
        cut += len(p) + len(a) > max_length
        out["input_ids"].append(ids)
        out["labels"].append(labels)
        out["prompt_length"].append(plen)
    if cut:
        log.warning("%d examples longer than data.max_length=%d lost the start of their prompt", cut, max_length)
    return out
