"""The one record shape every data family produces, and small helpers the families share.

A record is a plain dict `{"prompt": str, "answer": str, "category": str, "key": str, "seen": bool}`:
`key` names the fact (for patterns: the item, shared by all its paraphrases), `seen` says whether that key
occurs in the training split (train records are always seen).

An eval record may also carry `"paraphrases": [str, ...]`, other wordings of its prompt that ask the same fact
(exact_match, or a jsonl line's "paraphrases" field). `build_splits` turns them into the "paraphrase" split
(`paraphrase_split`); the token datasets keep only the common columns, so the extra key never changes their shape.

It may also carry `"neighbors": [str, ...]`, untaught questions about the same entity ("When was X founded?" when
"Who founded X?" is the fact): exact_match's `NEIGHBORS`, the attributes an ID of entity / user_prefs was not given,
or a jsonl line's "neighbors". `build_splits` turns those of the SEEN eval records into the "neighbor" split
(`neighbor_split`); their reference answer is the base model's own (engram/evaluation/neighbors.py).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from engram.config import ConfigError, schema_of
from engram.config.renamed import first_old, rule

Record = dict[str, Any]
RECORD_KEYS = ("prompt", "answer", "category", "key", "seen")
PARAPHRASES = "paraphrases"  # the optional keys of an eval record (see the module doc)
NEIGHBORS = "neighbors"


def record(prompt: str, answer: str, category: str, key: str, seen: bool) -> Record:
    return {"prompt": prompt, "answer": answer, "category": category, "key": key, "seen": bool(seen)}


def with_questions(r: Record, field: str, questions: Iterable[str]) -> Record:
    """A copy of `r` carrying `questions` under `field` (PARAPHRASES or NEIGHBORS); none given -> a copy without
    the key (so "has paraphrases" is `"paraphrases" in r`, and an exported record without them reads back equal)."""
    out = {k: v for k, v in r.items() if k != field}
    questions = list(questions)
    if questions:
        out[field] = questions
    return out


def with_paraphrases(r: Record, paraphrases: Iterable[str]) -> Record:
    """A copy of `r` carrying its other wordings (see `with_questions`)."""
    return with_questions(r, PARAPHRASES, paraphrases)


def with_neighbors(r: Record, neighbors: Iterable[str]) -> Record:
    """A copy of `r` carrying untaught questions about its entity (see `with_questions`)."""
    return with_questions(r, NEIGHBORS, neighbors)


def paraphrase_split(evals: Iterable[Record]) -> list[Record]:
    """One record per other wording of each eval record, with its answer, category, key and seen flag: eval order,
    then wording order. A metric scores these against the eval records they reword (paraphrase generalisation)."""
    return [record(p, r["answer"], r["category"], r["key"], r["seen"]) for r in evals for p in r.get(PARAPHRASES, ())]


def neighbor_split(evals: Iterable[Record], train: Iterable[Record] = ()) -> list[Record]:
    """One record per neighbour question of each SEEN eval record (a neighbour of an untaught fact tests nothing),
    with its category and key and answer "" (the reference is the base model's own answer): eval order, then
    question order. A question already kept (two facts of one ID share their neighbours) is kept once; one that is
    a prompt of `train` or `evals` or a paraphrase is dropped: it asks a fact of the data, not an untaught question
    (exact_match's reverse unit conversion may be another drawn fact)."""
    evals = list(evals)
    facts = {r["prompt"] for r in [*train, *evals]} | {p for r in evals for p in r.get(PARAPHRASES, ())}
    out: list[Record] = []
    for r in (r for r in evals if r.get("seen")):
        for q in r.get(NEIGHBORS, ()):
            if q not in facts:
                facts.add(q)  # once only
                out.append(record(q, "", r["category"], r["key"], True))
    return out


def as_data_cfg(cfg: Any) -> DictConfig:
    """A data config (dict, DictConfig, DataConfig, or a full config with a `data` node) typed on DataConfig."""
    if isinstance(cfg, DictConfig) and "family" not in cfg and "data" in cfg:
        cfg = cfg.data
    elif isinstance(cfg, dict) and "family" not in cfg and "data" in cfg:
        cfg = cfg["data"]
    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    if isinstance(cfg, dict) and (old := first_old(cfg, "data.")) is not None:  # data.num_facts: a kind's key now
        raise ConfigError(old[0], old[1], rule(*old))
    # the schema is composed at the first call, not at import: composing imports the families, which import this
    return OmegaConf.merge(OmegaConf.structured(schema_of("data")), cfg or {})


def rng(seed: int, *parts: str) -> random.Random:
    """An independent, reproducible stream per (seed, purpose): str seeds hash with sha512, not PYTHONHASHSEED."""
    return random.Random(":".join([str(seed), *parts]))


def eval_counts(num_eval: int, seen_fraction: float) -> tuple[int, int]:
    """(seen, unseen) eval item counts; they always add up to num_eval."""
    seen = round(num_eval * seen_fraction)
    return seen, num_eval - seen


def spread(total: int, capacity: dict[str, float]) -> dict[str, int]:
    """Split `total` as evenly as possible over the names, none above its capacity (water filling).

    Names keep their order; leftovers of the integer division go to the first ones. If the capacities add up to
    less than `total`, every name gets its full capacity.
    """
    out = {name: 0 for name in capacity}
    open_names = [n for n in capacity if capacity[n] > 0]
    left = total
    while left > 0 and open_names:
        share, extra = divmod(left, len(open_names))
        full = [n for i, n in enumerate(open_names) if capacity[n] - out[n] <= share + (i < extra)]
        if full:  # fill the small ones first, then share what is left among the others
            for n in full:
                left -= int(capacity[n] - out[n])
                out[n] = int(capacity[n])
            open_names = [n for n in open_names if n not in full]
            continue
        for i, n in enumerate(open_names):
            out[n] += share + (i < extra)
        left = 0
    return out


def mark_seen(records: Iterable[Record], train_keys: set[str]) -> list[Record]:
    return [{**r, "seen": r["key"] in train_keys} for r in records]
