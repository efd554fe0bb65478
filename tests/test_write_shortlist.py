"""engram.prepopulate.shortlist (issue 19): writing facts with the LM head scored on the target and its strongest
rivals reaches the same goal as the full-vocabulary write (every answer token leads by the margin), from the
frozen-prefix cache too."""

from __future__ import annotations

import torch
from omegaconf import OmegaConf

from engram import EngramModel
from engram.config import EngramConfig
from engram.data.families.exact_match import build_exact_match
from engram.models import load_model
from engram.training.prefix_cache import PrefixCache
from engram.training.writing import recall_of, write_facts

RECALL = dict(hash="answer", address="fingerprint", gate="direct", layers=["final"], dim=64, heads=4,
              table_size=5000, init="zeros")


def facts(n: int) -> list[dict]:
    cfg = OmegaConf.create(dict(family="exact_match", num_train=n, num_eval=20, categories=None, seed=3,
                                prompt_format="chat", eval_seen_fraction=0.5))
    return build_exact_match(cfg)["train"]


def test_a_shortlist_write_recalls_the_facts_and_is_checked_on_the_whole_vocabulary() -> None:
    model, tok = load_model("tiny")
    model.requires_grad_(False).eval()
    wrapped = EngramModel(model, OmegaConf.merge(OmegaConf.structured(EngramConfig), RECALL), tok)
    taught = facts(48)
    cache = PrefixCache(wrapped)
    summary = write_facts(wrapped, tok, taught, shortlist=8, prefix=cache, progress=False)
    assert summary.recall >= 0.9 and summary.steps > 0, summary
    assert cache.misses == len(taught)  # the base ran once per fact; the states stay for training
    assert recall_of(wrapped, tok, taught, progress=False) == summary.recall  # the full-vocabulary check agrees
    with torch.no_grad(), wrapped.memories_off():
        assert recall_of(wrapped, tok, taught, progress=False) == 0.0  # the facts live in the table
