"""`python -m engram.compress train`: fit the trained compressor for every k x carrier x placement of
`compress.trained.*` and score it, next to full context, no context and retrieval.

Scored on two document sets: the evaluated biographies (`compress.num_docs`, the kind training saw, never these
people) and held-out fictional towns (engram/compress/towns.py: a kind training never saw). Writes to the run dir:
- `compressor.json`: a list of rows, one per (document set, condition[, k, carrier, placement]), each with `docs`,
  `condition` (full | none | compressor | retrieval), `k`, `carrier`, `placement`, `compression_ratio` (document
  tokens / k), `exact_match`, `share_of_full` (exact match / the full-context exact match of the same documents),
  `token_accuracy`, `n`, and for compressor rows `train_s`, `per_attribute` and the recipe (`pretrain`,
  `pretrain_steps`, `qa_steps`, `qa_sources`, `lr`, `rank`, `seed`);
- `compressor_losses.json`: the loss of every training step per setting and objective.
Retrieval (every carrier): every evaluated biography's engram and those of distractor biographies go into a LanceDB
store (a kv engram as one vector per memory token: its keys and values at every layer); a question's key (its mean
token embedding) finds one, whose engram answers it.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from engram.atomic import atomic_write_text
from engram.compress.compressor import Compressor, CompressorSettings
from engram.compress.compressor_training import (
    TrainSettings,
    compressor_scores,
    example_scores,
    qa_examples,
    train_compressor,
)
from engram.compress.conditions import full_context, no_context
from engram.compress.config import trained_grid
from engram.compress.documents import Document, biographies
from engram.compress.extract import token_ids
from engram.compress.session import Session, open_session
from engram.compress.store import Engram, EngramStore
from engram.compress.towns import towns
from engram.data.families.text import python_docs

ROWS_FILE = "compressor.json"
LOSSES_FILE = "compressor_losses.json"
PASSAGE_WORDS = 60
DISTRACTORS = 48  # training biographies beside the evaluated ones in the retrieval store


def training_bios(cfg: DictConfig, evaluated: Sequence[Document]) -> list[Document]:
    """`compress.trained.train_docs` biographies of another seed; none shares a name with an evaluated one."""
    names = {d.title for d in evaluated}
    return [d for d in biographies(int(cfg.compress.trained.train_docs), int(cfg.seed) + 1000)
            if d.title not in names]


def prose_passages(n: int, seed: int) -> list[str]:
    """`n` passages of PASSAGE_WORDS words from Python's documentation topics (shipped with every Python)."""
    out = []
    for _, _, text in sorted(python_docs()):
        words = text.split()
        out += [" ".join(words[i:i + PASSAGE_WORDS]) for i in range(0, len(words) - PASSAGE_WORDS, PASSAGE_WORDS)]
    random.Random(f"passages:{seed}").shuffle(out)
    return out[:n]


def doc_tokens(session: Session, docs: Sequence[Document]) -> float:
    return sum(len(token_ids(session.tokenizer, d.text)) for d in docs) / len(docs)


def row(docs: str, condition: str, scores: Sequence[tuple[bool, float]], tokens: float, full: float | None,
        k: int | None = None, carrier: str | None = None, placement: str | None = None,
        **extra: Any) -> dict[str, Any]:
    exact = sum(ok for ok, _ in scores) / max(1, len(scores))
    ratio = tokens / k if k else (1.0 if condition == "full" else None)
    return {"docs": docs, "condition": condition, "k": k, "carrier": carrier, "placement": placement,
            "doc_tokens": tokens, "compression_ratio": ratio, "exact_match": exact,
            "share_of_full": exact / full if full else None,
            "token_accuracy": sum(t for _, t in scores) / max(1, len(scores)), "n": len(scores), **extra}


def per_attribute(docs: Sequence[Document], scores: Sequence[tuple[bool, float]]) -> dict[str, float]:
    """Exact match per question attribute (scores in the order of the documents' questions)."""
    by: dict[str, list[bool]] = {}
    for q, (ok, _) in zip((q for d in docs for q in d.questions), scores, strict=True):
        by.setdefault(q.attribute, []).append(ok)
    return {a: sum(v) / len(v) for a, v in sorted(by.items())}


def reference_rows(session: Session, label: str, docs: Sequence[Document], tokens: float,
                   batch: int) -> list[dict[str, Any]]:
    """Full context and no context, from the base model (no compressor attached)."""
    full = full_context(session, docs, tokens, batch)
    none = no_context(session, docs, tokens, batch)
    as_scores = [[(ok, 0.0) for ok in r["correct"]] for r in (full, none)]
    rows = [row(label, "full", as_scores[0], tokens, full["exact_match"]),
            row(label, "none", as_scores[1], tokens, full["exact_match"])]
    rows[0]["token_accuracy"], rows[1]["token_accuracy"] = full["token_accuracy"], none["token_accuracy"]
    return rows


def retrieval_scores(session: Session, compressor: Compressor, docs: Sequence[Document],
                     distractors: Sequence[Document], store_dir: Path) -> tuple[list[tuple[bool, float]], float]:
    """(scores, top-1 hit rate) of every question answered from the engram its key finds in a LanceDB store (the
    kv carrier's engram: one vector per memory token, its keys and values at every layer)."""
    store = EngramStore(store_dir)
    s = compressor.settings
    every = [*docs, *distractors]
    with torch.no_grad():
        engrams, like = [], None
        for start in range(0, len(every), 8):
            chunk = every[start:start + 8]
            ids = [token_ids(session.tokenizer, d.text) for d in chunk]
            like = compressor.encode(ids, session.pad_id)
            engrams += [Engram(d.doc_id, d.title, v, session.key(d.text, 0), len(i))
                        for d, v, i in zip(chunk, like.flat(), ids, strict=True)]
    assert like is not None
    width = engrams[0].vectors.shape[-1] if s.carrier == "kv" else 0
    store.add(engrams, session.spec(0, f"compressor-{s.carrier}-{s.placement}", 0, width))
    found = [store.search(session.key(q.question, 0), limit=1)[0][0] for d in docs for q in d.questions]
    truth = [d.doc_id for d in docs for _ in d.questions]
    examples = qa_examples(session, compressor, docs)
    out: list[tuple[bool, float]] = []
    for start in range(0, len(examples), 16):
        carrier = like.like(torch.stack([f.vectors for f in found[start:start + 16]]))
        out += example_scores(session, compressor, examples[start:start + 16], carrier)
    return out, sum(f.doc_id == t for f, t in zip(found, truth, strict=True)) / max(1, len(truth))


def train(cfg: DictConfig, out: Path) -> dict[str, Any]:
    """Every compressor of the grid, trained and scored; the rows written to `out`."""
    start = time.perf_counter()
    t = cfg.compress.trained
    session = open_session(cfg.model)
    bios_all = biographies(int(cfg.compress.num_docs), int(cfg.seed))
    sets = {"bios": bios_all, "towns": towns(int(t.heldout_docs), int(cfg.seed))}
    train_docs = training_bios(cfg, bios_all)
    passages = prose_passages(int(t.passages), int(cfg.seed))
    rows: list[dict[str, Any]] = []
    full: dict[str, float] = {}
    tokens: dict[str, float] = {}
    for label, docs in sets.items():
        tokens[label] = doc_tokens(session, docs)
        rows += reference_rows(session, label, docs, tokens[label], int(cfg.compress.batch_size))
        full[label] = rows[-2]["exact_match"]
    losses: dict[str, Any] = {}
    settings = TrainSettings(tuple(str(o) for o in t.pretrain), int(t.pretrain_steps), int(t.qa_steps),
                             int(t.docs_per_step), float(t.lr), int(cfg.seed), tuple(str(q) for q in t.qa_sources))
    recipe = {"pretrain": list(settings.pretrain), "pretrain_steps": settings.pretrain_steps,
              "qa_steps": settings.qa_steps, "qa_sources": list(settings.qa_sources), "lr": settings.lr,
              "rank": int(t.rank), "seed": settings.seed}
    for k, carrier, placement in trained_grid(t):
        name = f"k{k}/{carrier}/{placement}"
        compressor = Compressor(session.model, CompressorSettings(k, carrier, placement, int(t.rank), int(cfg.seed)))
        began = time.perf_counter()
        losses[name] = train_compressor(session, compressor, train_docs, passages, settings)
        seconds = round(time.perf_counter() - began, 1)
        for label, docs in sets.items():
            scores = compressor_scores(session, compressor, docs)
            rows.append(row(label, "compressor", scores, tokens[label], full[label], k, carrier, placement,
                            train_s=seconds, per_attribute=per_attribute(docs, scores), **recipe))
            print(_line(rows[-1]), flush=True)
        scores, hit = retrieval_scores(session, compressor, sets["bios"], train_docs[:DISTRACTORS],
                                       out / f"store_{name.replace('/', '_')}")
        rows.append(row("bios", "retrieval", scores, tokens["bios"], full["bios"], k, carrier, placement,
                        retrieval_hit=hit, **recipe))
        session.model = compressor.close()
        atomic_write_text(out / ROWS_FILE, json.dumps(rows, indent=1))  # after every setting: a long run keeps them
        atomic_write_text(out / LOSSES_FILE, json.dumps(losses))
    return {"run_dir": str(out), "results": str(out / ROWS_FILE), "runtime_s": round(time.perf_counter() - start, 1),
            "rows": [{key: r[key] for key in ("docs", "condition", "k", "carrier", "placement", "exact_match",
                                              "share_of_full")} for r in rows]}


def _line(r: dict[str, Any]) -> str:
    return (f"{r['docs']:<6} k={r['k']:<3} {r['carrier']:<9} {r['placement']:<8} exact match "
            f"{100 * r['exact_match']:5.1f}% ({100 * (r['share_of_full'] or 0):5.1f}% of full), trained "
            f"{r['train_s']:.0f} s")
