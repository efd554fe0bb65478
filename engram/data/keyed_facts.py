"""Facts keyed by an ID in the prompt, several per ID: the shared generator of `data=entity` and `data=user_prefs`.

Each ID (`[Q4817302]`, `[user_90211]`) gets `data.facts_per_id` facts, one per attribute drawn from the family's
attributes (`data.categories` narrows them), with values drawn from small word lists: fictional, so the base model
can know none of them (it can only guess among a list's words). Everything about an ID comes from its own random
stream (data.seed, family, ID), so an ID's facts are the same at any scale.

Split: **unseen facts belong to IDs that never appear in training** (no fact of theirs is trained), so an
ID-addressed memory is asked about an address it never wrote. Train facts are the facts of the first
ceil(num_train / facts_per_id) IDs, in ID order (the last ID may have fewer); the unseen eval facts are those of the
next IDs; the seen eval facts are drawn from the training facts. Eval records carry the attribute's other wordings
as "paraphrases" (the same ID, the same fact), from which `build_splits` makes the "paraphrase" split, and as
"neighbors" the first wording of every attribute (of `data.categories`) NOT drawn for their ID: untaught questions
about a taught ID, which must keep the base model's answer ("neighbor" split). When `data.facts_per_id` uses every
attribute an ID has none, and the family has no "neighbor" split.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from engram.config.rules import ConfigError, check
from engram.data.records import (
    RECORD_KEYS,
    Record,
    as_data_cfg,
    eval_counts,
    record,
    rng,
    with_neighbors,
    with_paraphrases,
)

ID_SPACE = 10**7  # IDs are drawn from this range; the generated families are capped at 1M records


@dataclass(frozen=True)
class Attribute:
    """One kind of fact about an ID: its wordings (the first is the prompt; fields {id} and {name}) and its
    values (drawn uniformly)."""

    wordings: tuple[str, ...]
    values: Sequence[str] | Callable[[random.Random], str]

    def draw(self, r: random.Random) -> str:
        return self.values(r) if callable(self.values) else r.choice(list(self.values))


@dataclass(frozen=True)
class KeyedFamily:
    """A family of ID-keyed facts: how an ID is written, an optional name per ID, and the attributes."""

    name: str  # the data family (data=<name>), also in every record key
    id_format: str  # e.g. "Q{n}"
    attributes: dict[str, Attribute]
    draw_name: Callable[[random.Random], str] | None = None  # e.g. a person's name shown after the ID

    def categories(self, wanted: Any) -> list[str]:
        """The attributes `data.categories` chooses (None: all), in the family's order; ConfigError otherwise."""
        if not wanted:
            return list(self.attributes)
        cats = [wanted] if isinstance(wanted, str) else list(wanted)
        for c in cats:
            check(c in self.attributes, "data.categories", cats, f"has {c!r}, not one of {', '.join(self.attributes)}")
        return [c for c in self.attributes if c in cats]

    def check(self, d: Any) -> None:
        """The family's config rules (torch-free): known categories, facts_per_id within them."""
        cats = self.categories(d.categories)
        check(isinstance(d.facts_per_id, int) and 1 <= d.facts_per_id <= len(cats), "data.facts_per_id",
              d.facts_per_id, f"must be an integer in [1, {len(cats)}] for data={self.name} (one fact per attribute "
              f"of {', '.join(cats)})")

    def id_facts(self, seed: int, n: int, cats: list[str], per_id: int) -> list[Record]:
        """The facts of ID number `n` (records marked seen, each with its paraphrases and its ID's neighbour
        questions), from its own stream."""
        ident = self.id_format.format(n=n)
        r = rng(seed, self.name, ident)
        fields = {"id": ident, "name": self.draw_name(r) if self.draw_name else ""}
        chosen = sorted(r.sample(range(len(cats)), per_id))
        # no draw of the stream: the ID's facts are the same with or without neighbours
        neighbors = [self.attributes[c].wordings[0].format_map(fields) for i, c in enumerate(cats) if i not in chosen]
        out = []
        for c in (cats[i] for i in chosen):
            attribute = self.attributes[c]
            answer = attribute.draw(r)
            prompt, *others = (w.format_map(fields) for w in attribute.wordings)
            fact = with_paraphrases(record(prompt, answer, c, f"{self.name}:{ident}:{c}", True), others)
            out.append(with_neighbors(fact, neighbors))
        return out

    def build(self, data_cfg: Any) -> dict[str, list[Record]]:
        """Deterministic train/eval records (see the module doc for the split)."""
        cfg = as_data_cfg(data_cfg)
        self.check(cfg)
        cats, per_id = self.categories(cfg.categories), int(cfg.facts_per_id)
        seed, num_train = int(cfg.seed), int(cfg.num_train)
        n_seen, n_unseen = eval_counts(int(cfg.num_eval), float(cfg.eval_seen_fraction))
        train_ids, unseen_ids = math.ceil(num_train / per_id), math.ceil(n_unseen / per_id)
        if train_ids + unseen_ids > ID_SPACE:
            raise ConfigError("data.num_train", num_train, f"needs more than {ID_SPACE:,} IDs")
        ids = rng(seed, self.name, "ids").sample(range(1, ID_SPACE), train_ids + unseen_ids)
        facts = [f for n in ids[:train_ids] for f in self.id_facts(seed, n, cats, per_id)][:num_train]
        unseen = [f for n in ids[train_ids:] for f in self.id_facts(seed, n, cats, per_id)][:n_unseen]
        train = [{k: v for k, v in r.items() if k in RECORD_KEYS} for r in facts]  # the common shape
        evals = rng(seed, self.name, "eval_seen").sample(facts, min(n_seen, len(facts)))
        evals += [{**r, "seen": False} for r in unseen]
        rng(seed, self.name, "train_order").shuffle(train)
        rng(seed, self.name, "eval_order").shuffle(evals)
        return {"train": train, "eval": evals}


def syllable_name(firsts: Sequence[str], seconds: Sequence[str]) -> Callable[[random.Random], str]:
    """A drawer of made-up words: one piece from each list, joined (e.g. "Vel" + "holm")."""
    return lambda r: r.choice(list(firsts)) + r.choice(list(seconds))
