"""Behavioural patterns (code idioms, facts, output formats, error fixes) with paraphrased prompts.

The items live in `patterns.yaml` (shipped with the package). Every paraphrase of an item becomes one record with
the item's `key` (`<category>:<id>`): that key is the consistency group, so a metric can check that all paraphrases
of a key got the same answer (`consistency` below) next to plain exact match.

Split: items are shuffled by `seed`. Unseen eval items are whole items never trained. Training uses every paraphrase
of the other items except the last one, which is held out, so seen eval items (all their paraphrases) also test
whether a trained behaviour carries over to a new wording. `num_train` larger than the paraphrases available repeats
them (like extra epochs); `num_eval` is capped by the paraphrases available.
"""

from __future__ import annotations

import functools
import itertools
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from engram.config import ConfigError
from engram.data.records import Record, as_data_cfg, eval_counts, record, rng

PATTERNS_FILE = Path(__file__).with_name("patterns.yaml")


@functools.cache
def load_items(path: Path = PATTERNS_FILE) -> tuple[dict[str, Any], ...]:
    """Items as `{"key", "category", "answer", "prompts"}`; checks the file's shape once."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    items = []
    for category, entries in data.items():
        for entry in entries:
            prompts = entry.get("prompts") or []
            if not isinstance(entry.get("answer"), str) or len(prompts) < 2:
                raise ValueError(f"{path.name}: {category}/{entry.get('id')}: needs a string answer and >= 2 prompts")
            items.append({"key": f"{category}:{entry['id']}", "category": category, "answer": entry["answer"],
                          "prompts": tuple(prompts)})
    return tuple(items)


def categories() -> list[str]:
    return list(dict.fromkeys(i["category"] for i in load_items()))


def _records(item: dict[str, Any], prompts: Sequence[str], seen: bool) -> list[Record]:
    return [record(p, item["answer"], item["category"], item["key"], seen) for p in prompts]


def build_patterns(data_cfg: Any) -> dict[str, list[Record]]:
    cfg = as_data_cfg(data_cfg)
    known = categories()
    cats = list(cfg.categories) if cfg.categories else known
    for c in cats:
        if c not in known:
            raise ConfigError("data.categories", cats, f"has {c!r}, not one of {', '.join(known)}")
    items = [i for i in load_items() if i["category"] in cats]
    rng(cfg.seed, "patterns", "items").shuffle(items)
    n_seen, n_unseen = eval_counts(int(cfg.num_eval), float(cfg.eval_seen_fraction))

    unseen: list[Record] = []
    while items and len(unseen) < n_unseen:  # whole items, so every unseen key has all its paraphrases
        item = items.pop(0)
        unseen += _records(item, item["prompts"], False)
    unseen = unseen[:n_unseen]

    pool = [r for item in items for r in _records(item, item["prompts"][:-1], True)]
    rng(cfg.seed, "patterns", "train").shuffle(pool)
    train = list(itertools.islice(itertools.cycle(pool), int(cfg.num_train))) if pool else []
    trained = {r["key"] for r in train}

    seen: list[Record] = []
    for item in items:
        if len(seen) >= n_seen:
            break
        if item["key"] in trained:
            seen += _records(item, item["prompts"], True)
    return {"train": train, "eval": seen[:n_seen] + unseen}


def consistency(records: Sequence[Record], generations: Sequence[str]) -> float:
    """Share of keys with >= 2 eval paraphrases whose generations (stripped) are all the same; nan if none."""
    by_key: dict[str, set[str]] = defaultdict(set)
    counts: dict[str, int] = defaultdict(int)
    for r, g in zip(records, generations, strict=True):
        by_key[r["key"]].add(g.strip())
        counts[r["key"]] += 1
    groups = [k for k, n in counts.items() if n >= 2]
    if not groups:
        return float("nan")
    return sum(len(by_key[k]) == 1 for k in groups) / len(groups)


build = build_patterns  # the family (engram/registry.py)
paraphrased = True  # eval/consistency: the share of items answered alike over their paraphrases
