"""Retention of general knowledge: the share of ~50 general prompts a trained model still answers like its base.

The base model's greedy answers are computed once per base model and cached as JSON under
`cache_root()/retention/`, keyed by the model's identity (its config and a fingerprint of its weights), the prompt
set and the decoding length. A memory that raises recall but breaks general answers shows up as retention < 1.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import torch
import yaml

from engram.atomic import atomic_write_text
from engram.evaluation.generate_eval import generate_texts
from engram.models.loading import cache_root

log = logging.getLogger(__name__)

PROMPTS_FILE = Path(__file__).with_name("general_prompts.yaml")


def load_general_prompts(path: Path | None = None) -> list[dict[str, Any]]:
    """Items `{"id", "kind", "messages"}` (a single `prompt` becomes one user message)."""
    data = yaml.safe_load(Path(path or PROMPTS_FILE).read_text())
    items = []
    for item in data["prompts"]:
        messages = item.get("messages") or [{"role": "user", "content": item["prompt"]}]
        items.append({"id": item["id"], "kind": item.get("kind", "general"), "messages": messages})
    return items


def format_general_prompt(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    turns = [f"{'Q' if m['role'] != 'assistant' else 'A'}: {m['content']}" for m in messages]
    return "\n".join(turns) + "\nA:"


def model_fingerprint(model: torch.nn.Module) -> str:
    """Identity of a model: its config plus per-tensor weight sums (cheap, changes when any weight changes)."""
    h = hashlib.sha256()
    config = getattr(model, "config", None)
    h.update((config.to_json_string(use_diff=False) if config is not None else type(model).__name__).encode())
    with torch.no_grad():
        for name, p in model.state_dict().items():
            total, norm = p.sum(dtype=torch.float64).item(), p.abs().sum(dtype=torch.float64).item()
            h.update(f"{name}:{tuple(p.shape)}:{total:.6e}:{norm:.6e}".encode())
    return h.hexdigest()[:20]


def answers_cache_file(model: torch.nn.Module, prompts: Any, max_new_tokens: int, cache_dir: Path) -> Path:
    """Where the base model's answers to `prompts` (any JSON) are cached: keyed by the model's identity, the prompts
    and the decoding length."""
    key = hashlib.sha256(
        json.dumps([model_fingerprint(model), prompts, max_new_tokens], sort_keys=True).encode()
    ).hexdigest()[:20]
    return cache_dir / f"{key}.json"


def base_answers(
    model: torch.nn.Module, tokenizer: Any, max_new_tokens: int = 24, batch_size: int = 16,
    cache_dir: Path | None = None, show_progress: bool = True,
) -> list[str]:
    """The untouched base model's greedy answers to the general prompts, from the cache when present."""
    prompts = load_general_prompts()
    cache_dir = Path(cache_dir or cache_root() / "retention")
    path = answers_cache_file(model, prompts, max_new_tokens, cache_dir)
    if path.is_file():
        cached = json.loads(path.read_text())
        if [c["id"] for c in cached] == [p["id"] for p in prompts]:
            return [c["answer"] for c in cached]
    texts = [format_general_prompt(tokenizer, p["messages"]) for p in prompts]
    answers = generate_texts(model, tokenizer, texts, max_new_tokens, batch_size, "retention: base answers",
                             show_progress)
    # atomic, with a temp name unique per process: parallel jobs never read half a file or share a temp file
    atomic_write_text(path, json.dumps([{"id": p["id"], "answer": a} for p, a in zip(prompts, answers, strict=True)],
                                       indent=1))
    log.info("cached base answers for retention in %s", path)
    return answers


def measure_retention(
    model: torch.nn.Module, tokenizer: Any, base: list[str], max_new_tokens: int = 24, batch_size: int = 16,
    show_progress: bool = True, taught: set[str] | None = None,
) -> tuple[float, list[dict[str, Any]]]:
    """(share of general prompts answered exactly as the base model did, per-prompt rows).

    `taught`: the prompts training taught (the facts' question texts). A general prompt that is one of them (a
    single user turn with the same text, e.g. "What is the capital of Japan?" when capitals are trained) is not
    unrelated to training, so its row is marked `taught` and left out of the share."""
    prompts = load_general_prompts()
    texts = [format_general_prompt(tokenizer, p["messages"]) for p in prompts]
    answers = generate_texts(model, tokenizer, texts, max_new_tokens, batch_size, "retention", show_progress,
                             check_cache=True)
    taught = {t.strip() for t in taught or ()}
    rows = [
        {"id": p["id"], "kind": p["kind"], "base": b, "now": a, "unchanged": a.strip() == b.strip(),
         "taught": _single_turn(p["messages"]) in taught}
        for p, b, a in zip(prompts, base, answers, strict=True)
    ]
    scored = [r for r in rows if not r["taught"]]
    return sum(r["unchanged"] for r in scored) / max(1, len(scored)), rows


def general_pairs(tokenizer: Any, base: list[str], taught: set[str] | None = None,
                  ) -> tuple[list[list[int]], list[list[int]]]:
    """(prompt ids, base answer ids) of the general prompts that are not `taught` fact prompts: what the
    teacher-forced checks (memory entering, token-level locality) run on."""
    taught = {t.strip() for t in taught or ()}
    kept = [(p, a) for p, a in zip(load_general_prompts(), base, strict=True)
            if _single_turn(p["messages"]) not in taught]
    prompts = [format_general_prompt(tokenizer, p["messages"]) for p, _ in kept]
    prompt_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"] if kept else []
    answer_ids = tokenizer([str(a) for _, a in kept], add_special_tokens=False)["input_ids"] if kept else []
    return prompt_ids, answer_ids


def _single_turn(messages: list[dict[str, str]]) -> str | None:
    return messages[0]["content"].strip() if len(messages) == 1 else None
