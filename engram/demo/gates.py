"""Gate readout: one prompt answered by the base model (memories off) and by the memory model, and how much memory
entered at every prompt and answer token, per memory layer.

The value at a token is what the memory's trace of that forward says entered at that position
(`MemoryTrace.entering`: the gate times the share of heads whose rows the address let through; 0 where the hash
kept nothing). A memory at
position t shapes the prediction of token t + 1, so with hash=answer the last prompt token lights up (it predicts
the first answer token) and so does every answer token but the last. For the memory's answer it is read from one
teacher-forced forward over prompt + answer, with the prompt length generation used, so the keys are the ones
greedy decoding looked up.

A language-model run (data=text) trained on raw text, not chat: its prompts are encoded as plain text (RAW_TEXT),
without any template, and both models continue them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from engram.data.formatting import encode_prompts
from engram.evaluation.generate_eval import eval_mode, greedy_ids
from engram.models.engram_model import EngramModel

RAW_TEXT = "text"  # the demo's prompt format of data=text runs: the prompt's own tokens, continued as written


@dataclass
class TokenGates:
    """`tokens[i]` (display text) got `gates[layer][i]` of memory; `tokens[answer_start:]` are the answer."""

    tokens: list[str]
    answer_start: int
    gates: dict[int, list[float]] = field(default_factory=dict)

    def prompt(self, layer: int) -> list[tuple[str, float]]:
        return list(zip(self.tokens[: self.answer_start], self.gates[layer][: self.answer_start], strict=True))

    def answer(self, layer: int) -> list[tuple[str, float]]:
        return list(zip(self.tokens[self.answer_start :], self.gates[layer][self.answer_start :], strict=True))


@dataclass
class Comparison:
    """One prompt: the base model's answer (memories off), the memory model's answer and its per-token gates."""

    prompt: str
    base_answer: str
    memory_answer: str
    trace: TokenGates
    label: str = ""  # where the prompt came from ("trained fact", "general", "typed")


def compare(model: EngramModel, tokenizer: Any, prompt: str, prompt_format: str = "chat", max_new_tokens: int = 24,
            label: str = "") -> Comparison:
    """Both answers to `prompt` (greedy) and the gate of every token of prompt + memory answer."""
    ids = encode_prompt(tokenizer, prompt, prompt_format)
    with model.memories_off():  # the same weights, the memories add nothing: the base model
        base = answer_ids(model, tokenizer, ids, max_new_tokens)
    answer = answer_ids(model, tokenizer, ids, max_new_tokens)
    gates = read_gates(model, ids + answer, len(ids))
    start = 0 if prompt_format == RAW_TEXT else display_start(tokenizer, ids, prompt)  # raw text: no template
    tokens = [piece(tokenizer, i) for i in (ids + answer)[start:]]
    trace = TokenGates(tokens, len(ids) - start, {layer: values[start:] for layer, values in gates.items()})
    return Comparison(prompt, _decode(tokenizer, base), _decode(tokenizer, answer), trace, label)


def encode_prompt(tokenizer: Any, prompt: str, prompt_format: str) -> list[int]:
    """The prompt's ids as generation starts from them: the run's format (chat, plain) or, for RAW_TEXT, the text's
    own tokens as the packed training blocks held them (no special tokens added)."""
    if prompt_format != RAW_TEXT:
        return encode_prompts(tokenizer, [prompt], prompt_format)[0]
    ids = list(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    return ids or [int(tokenizer.eos_token_id)]  # nothing to continue: start where a document starts (after eos)


def answer_ids(model: EngramModel, tokenizer: Any, prompt_ids: list[int], max_new_tokens: int) -> list[int]:
    """The greedy continuation of one prompt, cut before the first eos/pad (the end of the answer)."""
    ids = torch.tensor([prompt_ids], dtype=torch.long)
    with eval_mode(model):
        out = greedy_ids(model, tokenizer, ids, torch.ones_like(ids), max_new_tokens)[0, len(prompt_ids) :].tolist()
    stop = {i for i in (tokenizer.eos_token_id, tokenizer.pad_token_id) if i is not None}
    return out[: next((k for k, t in enumerate(out) if t in stop), len(out))]


def read_gates(model: EngramModel, ids: list[int], prompt_length: int) -> dict[int, list[float]]:
    """{memory layer: memory entering at each of `ids`} from one teacher-forced forward."""
    batch = torch.tensor([ids], dtype=torch.long, device=next(model.parameters()).device)
    # eval: an address that records writers (fingerprint) must not claim rows here
    with eval_mode(model), model.tracing() as traces:
        model(input_ids=batch, attention_mask=torch.ones_like(batch),
              prompt_lengths=torch.tensor([prompt_length], device=batch.device))
    return {layer: [round(float(v), 4) for v in traces[layer].entering()[0].tolist()] for layer in model.layers}


def display_start(tokenizer: Any, ids: list[int], text: str) -> int:
    """Index of the first prompt token that shows the user's text: the chat template's system turn before it is
    left out of the display (the tokens after it, up to the generation prompt, stay: that is where memory enters)."""
    pieces = [piece(tokenizer, i) for i in ids]
    at = "".join(pieces).rfind(text.strip()[:40]) if text.strip() else -1
    if at < 0:
        return 0
    length = 0
    for k, p in enumerate(pieces):
        length += len(p)
        if length > at:
            return k
    return 0


def piece(tokenizer: Any, token_id: int) -> str:
    """One token's text as it is decoded alone (special tokens included, so the template stays visible)."""
    return tokenizer.decode([int(token_id)], skip_special_tokens=False)


def layer_name(layer: int, depth: int) -> str:
    """'layer 3', or 'final' for the memory after the last of `depth` decoder layers."""
    return "final" if layer >= depth else f"layer {layer}"


def _decode(tokenizer: Any, ids: list[int]) -> str:
    return tokenizer.decode(ids, skip_special_tokens=True)  # not stripped: an answer of newlines shows as such
