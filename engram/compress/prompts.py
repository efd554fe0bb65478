"""Prompts for the three ways of giving the model a document: the full text, k `[ENGRAM]` placeholders, or nothing.

A question is asked in the chat format with a short system message; the assistant's reply starts with the
question's cloze stem ("Alva Morrendt was born in"), so the model's next words are the answer.
- `full`:    user = "<document>\n\n<question>"
- `replace`: user = "[ENGRAM]...[ENGRAM]\n\n<question>"  (the placeholders stand where the document would)
- `prefix`:  "[ENGRAM]...[ENGRAM]" before the whole chat, user = "<question>"
- `none`:    user = "<question>"
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engram.compress.inject import ENGRAM_TOKEN

SYSTEM = "Answer from the given text."


@dataclass(frozen=True)
class Encoded:
    ids: list[int]
    answer_start: int  # index of the first answer token in `ids` (== len(ids) when there is no answer)


def chat_prompt(tokenizer: Any, question: str, stem: str, context: str = "", placement: str = "replace",
                k: int = 0) -> str:
    """The prompt text, ending where the answer starts. `k` placeholders go where `placement` says; `context` is
    the document text for the full-context condition (k = 0)."""
    holders = ENGRAM_TOKEN * k
    body = context if context else (holders if placement == "replace" else "")
    user = f"{body}\n\n{question}" if body else question
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if placement == "prefix":
        text = holders + text
    return text + stem if stem else text


def encode(tokenizer: Any, prompt: str, answer: str = "") -> Encoded:
    """Token ids of prompt + " " + answer, and where the answer starts (the prompt's ids are a prefix)."""
    prompt_ids = list(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    if not answer:
        return Encoded(prompt_ids, len(prompt_ids))
    ids = list(tokenizer(prompt + " " + answer, add_special_tokens=False)["input_ids"])
    start = len(prompt_ids)
    if ids[:start] != prompt_ids:  # the answer merged into the prompt's last token: encode the answer alone
        ids = prompt_ids + list(tokenizer(" " + answer, add_special_tokens=False)["input_ids"])
    return Encoded(ids, start)
