"""Exact-match scoring and the summaries built from per-example rows."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from engram.data.families.patterns import consistency

# End-of-turn markers of the model families we use, in case a decoded text still carries one.
STOP_STRINGS = ("<|im_end|>", "<|endoftext|>", "</s>", "<|eot_id|>", "<pad>")


def clean_generation(text: str) -> str:
    """The answer part of a generated continuation: cut at an end-of-turn marker or the first newline, stripped."""
    for stop in STOP_STRINGS:
        text = text.split(stop, 1)[0]
    text = text.lstrip()
    return text.split("\n", 1)[0].strip()


def exact_match(generated: str, answer: str) -> bool:
    """True when the generated answer (cut at eos / first newline) equals the expected one, whitespace stripped."""
    return clean_generation(generated) == answer.strip()


def match_decided(text: str, answer: str) -> bool:
    """Can more tokens still change `exact_match(text + more, answer)`? Not once the cleaned answer is closed (an
    end marker, or a newline after the first text), nor once it can no longer grow into `answer`. The prefix test
    ignores whitespace: decoding more tokens may only drop a space (tokenizers' clean-up before punctuation)."""
    if any(stop in text for stop in STOP_STRINGS) or "\n" in text.lstrip():
        return True
    text = text.rstrip("\ufffd")  # a trailing half of a multi-byte character is not text yet
    partial = max((k for stop in STOP_STRINGS for k in range(1, len(stop)) if text.endswith(stop[:k])), default=0)
    head = "".join(text[: len(text) - partial].split())  # nor is the start of an end marker
    return not "".join(answer.split()).startswith(head)


def _rate(values: list[bool]) -> float:
    return sum(values) / len(values) if values else 0.0


def summarize_rows(rows: Iterable[dict[str, Any]], prefix: str = "eval") -> dict[str, float]:
    """Exact match overall, per category and seen/unseen, plus counts, from rows with `correct`/`category`/`seen`."""
    rows = list(rows)
    by_cat: dict[str, list[bool]] = defaultdict(list)
    seen: list[bool] = []
    unseen: list[bool] = []
    for r in rows:
        by_cat[str(r.get("category", "all"))].append(bool(r["correct"]))
        (seen if r.get("seen") else unseen).append(bool(r["correct"]))
    out = {
        f"{prefix}/exact_match": _rate([bool(r["correct"]) for r in rows]),
        f"{prefix}/num_examples": float(len(rows)),
        f"{prefix}/num_seen": float(len(seen)),
        f"{prefix}/num_unseen": float(len(unseen)),
    }
    if seen:
        out[f"{prefix}/exact_match_seen"] = _rate(seen)
    if unseen:
        out[f"{prefix}/exact_match_unseen"] = _rate(unseen)
    for cat in sorted(by_cat):
        out[f"{prefix}/exact_match/{cat}"] = _rate(by_cat[cat])
    return out


def per_category_counts(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """{category: {"n", "correct", "exact_match"}} for tables."""
    acc: dict[str, list[bool]] = defaultdict(list)
    for r in rows:
        acc[str(r.get("category", "all"))].append(bool(r["correct"]))
    return {c: {"n": len(v), "correct": sum(v), "exact_match": _rate(v)} for c, v in sorted(acc.items())}


def consistency_from_rows(rows: list[dict[str, Any]]) -> float:
    """patterns' consistency (engram.data.families.patterns.consistency, the one implementation) of eval rows: share
    of keys with >= 2 eval paraphrases whose generations are all the same; nan if none."""
    return consistency([{"key": str(r.get("key"))} for r in rows], [str(r.get("generated", "")) for r in rows])
