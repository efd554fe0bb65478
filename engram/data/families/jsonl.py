"""Messages-format JSONL: read any such file as records, and write records back (the export format).

One line per example:
`{"messages": [{"role": "user", "content": PROMPT}, {"role": "assistant", "content": ANSWER}],
  "category": ..., "key": ..., "value": ANSWER, "paraphrases": ["other wording", ...],
  "neighbors": ["untaught question about the same entity", ...]}`. `category` defaults to "jsonl", `key` to the
prompt. `seen` is not stored: it is recomputed as "the key occurs in the training split", which gives back what the
generator said. `paraphrases` (optional; a list of non-empty strings, [] = none) are other wordings of the prompt
with the same answer: those of the eval records become the "paraphrase" split (see `engram.data.build_splits`; no
eval record with paraphrases -> no such split). `neighbors` (optional, the same form) are questions about the same
entity that were NOT taught ("When was X founded?" beside "Who founded X?"): those of the seen eval records become
the "neighbor" split, scored against the base model's own answers (`edit/neighbors`). Export writes both for the
eval records of exact_match (and entity / user_prefs), so its files read back with the same splits.

Splits: `data.path` is the training file. The eval split is, in this order of preference:
  `data.valid_path`                   the valid file (a `data.test_path` is then scored apart as the "test" split);
  `data.test_path`                    without a valid file, the test file: EVERY fact of `data.path` is taught and
                                      the test file is both the eval split and the "test" split (decoded once);
  neither                             a seeded `data.split_fraction` of `data.path`, which is then not taught.
Blank lines are skipped; any other bad line raises `JsonlFormatError` naming `file:line: reason`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from engram.config.rules import check as rule
from engram.data.records import NEIGHBORS, PARAPHRASES, Record, as_data_cfg, mark_seen, record, rng, with_questions

DEFAULT_CATEGORY = "jsonl"
generated = False  # data=jsonl is not built from data.seed: no cap on num_train + num_eval
from_files = True  # no training records or an empty test file: data.path / data.test_path is to blame


class JsonlFormatError(ValueError):
    """A line of a messages-format file is malformed; the message is `file:line: reason`."""

    def __init__(self, path: str | Path, line: int, reason: str) -> None:
        self.path, self.line, self.reason = str(path), line, reason
        super().__init__(f"{path}:{line}: {reason}")

    def __reduce__(self) -> tuple[type, tuple[str, int, str]]:
        return (type(self), (self.path, self.line, self.reason))  # pickled across a multirun's process boundary


def _parse_line(text: str) -> Record:
    """One line -> record, or ValueError(reason)."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"invalid JSON ({e.msg} at column {e.colno})") from None
    except RecursionError:
        raise ValueError("invalid JSON (nested too deeply)") from None
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    messages = obj.get("messages")
    if not isinstance(messages, list):
        raise ValueError('missing "messages" list')
    roles = [m.get("role") if isinstance(m, dict) else None for m in messages]
    if roles != ["user", "assistant"]:
        raise ValueError(f"messages must be one user then one assistant message, got roles {roles}")
    for m in messages:
        if not isinstance(m.get("content"), str):
            raise ValueError(f'the {m["role"]} message has no string "content"')
        if not m["content"].strip():  # an empty answer would be "matched" by an empty generation
            raise ValueError(f'the {m["role"]} message has an empty "content"')
    prompt, answer = messages[0]["content"], messages[1]["content"]
    category = obj.get("category", DEFAULT_CATEGORY)
    key = obj.get("key", prompt)
    for name, value in (("category", category), ("key", key)):
        if not isinstance(value, str):
            raise ValueError(f'"{name}" must be a string, got {type(value).__name__}')
    out = record(prompt, answer, category, key, True)
    for field in (PARAPHRASES, NEIGHBORS):
        out = with_questions(out, field, _questions(obj, field))
    return out


def _questions(obj: dict[str, Any], field: str) -> list[str]:
    """The optional "paraphrases" / "neighbors" field, or ValueError(reason): a list of non-empty strings."""
    value = obj.get(field, [])
    if not isinstance(value, list):
        raise ValueError(f'"{field}" must be a list of strings, got {type(value).__name__}')
    for i, p in enumerate(value):
        if not isinstance(p, str):
            raise ValueError(f'"{field}" item {i} must be a string, got {type(p).__name__}')
        if not p.strip():  # like an empty prompt: nothing to ask
            raise ValueError(f'"{field}" item {i} is empty')
    return value


def read_jsonl(path: str | Path) -> list[Record]:
    """Every record of a messages-format file (seen=True; the split decides seen for eval)."""
    path = Path(os.path.expanduser(str(path)))
    records = []
    try:
        f = path.open("rb")  # bytes: a line that is not UTF-8 is reported with its number, like any other bad line
    except OSError as e:
        raise JsonlFormatError(path, 0, f"cannot be read ({e.strerror or e})") from None
    with f:
        for lineno, raw in enumerate(f, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise JsonlFormatError(path, lineno, f"is not UTF-8 (byte 0x{raw[e.start]:02x} at column "
                                                    f"{e.start + 1})") from None
            if not text.strip():
                continue
            try:
                records.append(_parse_line(text))
            except ValueError as e:
                raise JsonlFormatError(path, lineno, str(e)) from None
    return records


def to_messages(r: Record) -> dict[str, Any]:
    """One record as a messages-format line; "paraphrases" / "neighbors" only when the record has some (read_jsonl's
    inverse)."""
    line = {
        "messages": [{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["answer"]}],
        "category": r["category"],
        "key": r["key"],
        "value": r["answer"],
    }
    for field in (PARAPHRASES, NEIGHBORS):
        if r.get(field):
            line[field] = list(r[field])
    return line


def write_jsonl(records: Iterable[Record], path: str | Path) -> int:
    """Write records as messages-format lines; returns how many were written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(to_messages(r), ensure_ascii=False) + "\n")
            n += 1
    return n


def build_jsonl(data_cfg: Any) -> dict[str, list[Record]]:
    """train / eval (/ test) records from the files (see the module doc); eval records keep their paraphrases and
    neighbours."""
    cfg = as_data_cfg(data_cfg)
    train = read_jsonl(cfg.path)
    tests = read_jsonl(cfg.test_path) if cfg.test_path else None
    if cfg.valid_path:
        evals = read_jsonl(cfg.valid_path)
    elif tests is not None:  # the user's test file is the held-out part: carving more out would untrain facts
        evals = tests
    else:  # seeded split of the one file; at least one eval item when a fraction is asked for
        train = list(train)
        rng(cfg.seed, "jsonl", "split").shuffle(train)
        n_valid = round(len(train) * float(cfg.split_fraction))
        if cfg.split_fraction > 0 and len(train) > 1:
            n_valid = min(max(n_valid, 1), len(train) - 1)
        evals, train = train[:n_valid], train[n_valid:]
    train = train[: int(cfg.num_train)]
    keys = {r["key"] for r in train}
    splits = {"train": train, "eval": mark_seen(evals[: int(cfg.num_eval)], keys)}
    if tests is not None:
        splits["test"] = mark_seen(tests, keys)
    return splits


build = build_jsonl  # the family (engram/registry.py): records from files, so num_train / num_eval only cap them


def check(d: Any) -> None:
    rule(bool(d.path), "data.path", d.path, "is required for data=jsonl (a messages-format .jsonl file)")
