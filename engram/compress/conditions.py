"""The evaluation conditions, each one row of results: the full document in context (upper bound), nothing (lower
bound), k engram vectors of the document, and the engram retrieved from the store for each question.

Row fields: `condition`, `layer`, `k`, `pooling`, `exact_match` (share of questions), `n` (questions),
`tokens_per_answer` (prompt tokens the model processes per question, placeholders included; extraction runs once per
document and is not counted), `doc_tokens` (mean document length), `compression_ratio` (doc_tokens / k), `seconds`,
`token_accuracy` (share of answer tokens that are the argmax given the reference prefix: partial credit),
`per_attribute` ({attribute: exact match}) and, for retrieval, `retrieval_hit` (share of questions whose top-1
engram is the right document).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from engram.compress.documents import Document, Question
from engram.compress.extract import layer_states, token_ids
from engram.compress.prompts import chat_prompt, encode
from engram.compress.scoring import Item, answer_scores
from engram.compress.session import Session
from engram.compress.store import EngramStore


def qa_pairs(docs: Sequence[Document]) -> list[tuple[int, Question]]:
    return [(i, q) for i, d in enumerate(docs) for q in d.questions]


def item(session: Session, question: Question, context: str = "", vectors: torch.Tensor | None = None,
         placement: str = "replace") -> Item:
    k = 0 if vectors is None else int(vectors.shape[0])
    prompt = chat_prompt(session.tokenizer, question.question, question.stem, context, placement, k)
    return Item(encode(session.tokenizer, prompt, question.answer), vectors)


def score_row(session: Session, name: str, pairs: Sequence[tuple[int, Question]], items: Sequence[Item],
              inject_layer: int | None, batch_size: int, doc_tokens: float, extra: dict[str, Any]) -> dict[str, Any]:
    start = time.perf_counter()
    injector = session.injector(inject_layer) if inject_layer is not None else None
    scores = answer_scores(session.model, items, injector, session.pad_id, batch_size)
    correct = [ok for ok, _ in scores]
    per_attribute: dict[str, list[bool]] = {}
    for (_, q), ok in zip(pairs, correct, strict=True):
        per_attribute.setdefault(q.attribute, []).append(ok)
    k = extra.get("k") or 0
    return {
        "condition": name, "layer": None, "k": None, "pooling": None, **extra,
        "exact_match": sum(correct) / max(1, len(correct)), "n": len(correct),
        "token_accuracy": sum(t for _, t in scores) / max(1, len(scores)),
        "tokens_per_answer": sum(it.encoded.answer_start for it in items) / max(1, len(items)),
        "doc_tokens": doc_tokens, "compression_ratio": doc_tokens / k if k else (1.0 if name == "full" else None),
        "seconds": round(time.perf_counter() - start, 2),
        "per_attribute": {a: sum(v) / len(v) for a, v in sorted(per_attribute.items())},
        "correct": correct,
    }


def full_context(session: Session, docs: Sequence[Document], doc_tokens: float, batch_size: int) -> dict[str, Any]:
    pairs = qa_pairs(docs)
    items = [item(session, q, context=docs[i].text) for i, q in pairs]
    return score_row(session, "full", pairs, items, None, batch_size, doc_tokens, {})


def no_context(session: Session, docs: Sequence[Document], doc_tokens: float, batch_size: int) -> dict[str, Any]:
    pairs = qa_pairs(docs)
    items = [item(session, q) for _, q in pairs]
    return score_row(session, "none", pairs, items, None, batch_size, doc_tokens, {})


def with_engrams(session: Session, docs: Sequence[Document], vectors: Sequence[torch.Tensor], doc_tokens: float,
                 setting: dict[str, Any], inject_layer: int, placement: str, batch_size: int) -> dict[str, Any]:
    """Each question asked with its own document's engram vectors (`vectors[i]` for docs[i])."""
    pairs = qa_pairs(docs)
    items = [item(session, q, vectors=vectors[i], placement=placement) for i, q in pairs]
    return score_row(session, "engram", pairs, items, inject_layer, batch_size, doc_tokens,
                     {**setting, "placement": placement, "inject_layer": inject_layer})


def with_retrieval(session: Session, docs: Sequence[Document], store: EngramStore, key_layer: int,
                   doc_tokens: float, setting: dict[str, Any], inject_layer: int, placement: str,
                   batch_size: int) -> dict[str, Any]:
    """Each question's key (mean state of the question at `key_layer`) retrieves the nearest engram of the store."""
    pairs = qa_pairs(docs)
    hits, items = [], []
    for i, q in pairs:
        found, _ = store.search(session.key(q.question, key_layer), limit=1)[0]
        hits.append(found.doc_id == docs[i].doc_id)
        items.append(item(session, q, vectors=found.vectors, placement=placement))
    row = score_row(session, "retrieval", pairs, items, inject_layer, batch_size, doc_tokens,
                    {**setting, "placement": placement, "inject_layer": inject_layer, "store_size": len(store)})
    row["retrieval_hit"] = sum(hits) / max(1, len(hits))
    return row


def retrieval_hits(session: Session, docs: Sequence[Document], distractors: Sequence[Document],
                   layers: Sequence[int]) -> dict[int, float]:
    """Per key layer: the share of questions about `docs` whose nearest key (cosine, mean state at that layer) among
    docs + distractors is their own document. Exact search in memory: what the store's cosine search returns."""
    all_docs = [*docs, *distractors]
    doc_states = session.doc_states(all_docs, layers, "retrieval keys")
    pairs = qa_pairs(docs)
    question_states = [layer_states(session.model, token_ids(session.tokenizer, q.question), layers)
                       for _, q in pairs]
    truth = torch.tensor([i for i, _ in pairs])
    hits = {}
    for layer in layers:
        keys = F.normalize(torch.stack([s[layer].mean(dim=0) for s in doc_states]), dim=-1)
        queries = F.normalize(torch.stack([s[layer].mean(dim=0) for s in question_states]), dim=-1)
        hits[int(layer)] = float(((queries @ keys.T).argmax(dim=1) == truth).float().mean())
    return hits
