"""The four commands of `python -m engram.compress`, each `command(cfg) -> dict` (what the CLI prints as JSON).

- build: extract engrams of `docs` with the configured layer / k / pooling into the store `store`.
- ask:   retrieve the engram nearest to the question and answer with it (greedy, KV cache).
- eval:  full context vs k engrams vs nothing vs retrieval for the configured setting, on the biographies.
- sweep: eval over compress.sweep.layers x ks x poolings (the experiment record experiments/compress_sweep.yaml).
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from engram.compress.conditions import full_context, no_context, retrieval_hits, with_engrams, with_retrieval
from engram.compress.documents import Document, biographies, read_documents, stdlib_documents
from engram.compress.head import CompressionHead
from engram.compress.head_training import HeadSettings, train_head
from engram.compress.prompts import chat_prompt, encode
from engram.compress.results import log_rows, write_results
from engram.compress.scoring import generate
from engram.compress.session import Session, open_session
from engram.compress.store import EngramStore
from engram.config import ConfigError


def split_bios(cfg: DictConfig) -> tuple[list[Document], list[Document]]:
    """(evaluated biographies, the head's training biographies): disjoint, both deterministic by seed."""
    c = cfg.compress
    bios = biographies(c.num_docs + c.num_train_docs, int(cfg.seed))
    return bios[: c.num_docs], bios[c.num_docs:]


def documents(cfg: DictConfig) -> list[Document]:
    docs = str(cfg.docs)
    if docs == "bios":
        return split_bios(cfg)[0]
    if docs == "stdlib":
        return stdlib_documents()
    try:
        return read_documents(Path(docs))
    except ValueError as e:
        raise ConfigError("docs", docs, str(e)) from None


def layers_of(cfg: DictConfig) -> tuple[int, int, int]:
    """(extraction layer, injection layer, retrieval key layer)."""
    c = cfg.compress
    layer = int(c.layer)
    return layer, int(c.inject_layer if c.inject_layer is not None else layer), int(
        c.key_layer if c.key_layer is not None else layer)


def fit_head(session: Session, cfg: DictConfig, layer: int, k: int) -> tuple[CompressionHead, list[float]]:
    c = cfg.compress
    _, train_docs = split_bios(cfg)
    states = [s[layer] for s in session.doc_states(train_docs, [layer], "head training set")]
    settings = HeadSettings(c.head.steps, c.head.batch_size, float(c.head.lr), c.head.rank, int(cfg.seed))
    return train_head(session, train_docs, states, layer, k, settings, str(c.placement))


def _check_k(docs: list[Document], states: list[dict[int, torch.Tensor]], layer: int, k: int) -> None:
    shortest = min(range(len(docs)), key=lambda i: states[i][layer].shape[0])
    length = int(states[shortest][layer].shape[0])
    if k > length:
        raise ConfigError("compress.k", k, f"is more than the {length} tokens of document {docs[shortest].doc_id}")


def fill_store(session: Session, store: EngramStore, docs: list[Document], states: list[dict[int, torch.Tensor]],
               cfg: DictConfig, head: CompressionHead | None) -> None:
    layer, _, key_layer = layers_of(cfg)
    c = cfg.compress
    _check_k(docs, states, layer, int(c.k))
    engrams = [session.engram(d, s, layer, key_layer, int(c.k), str(c.pooling), head) for d, s in zip(docs, states,
                                                                                                     strict=True)]
    store.add(engrams, session.spec(layer, str(c.pooling), key_layer))


def build(cfg: DictConfig) -> dict[str, Any]:
    start = time.perf_counter()
    layer, _, key_layer = layers_of(cfg)
    session = open_session(cfg.model)
    store = EngramStore(str(cfg.store))
    spec = session.spec(layer, str(cfg.compress.pooling), key_layer)
    store.check(spec)  # before any work: one line when the vectors cannot go in
    docs = documents(cfg)
    head = fit_head(session, cfg, layer, int(cfg.compress.k))[0] if cfg.compress.pooling == "head" else None
    fill_store(session, store, docs, session.doc_states(docs, [layer, key_layer]), cfg, head)
    return {"store": str(cfg.store), "documents": len(docs), "stored": len(store), "spec": spec.describe(),
            "seconds": round(time.perf_counter() - start, 1)}


def edit_store(cfg: DictConfig, delete: list[str]) -> dict[str, Any]:
    """`info` (delete empty) or `delete`: the store's setting, documents and sizes, after removing `delete`."""
    store = EngramStore(str(cfg.store))
    removed = store.delete(delete) if delete else 0
    spec = store.spec
    return {"store": str(cfg.store), "spec": spec.describe() if spec else None, "deleted": removed,
            **store.sizes(), "doc_ids": store.doc_ids()}


def ask(cfg: DictConfig, question: str) -> dict[str, Any]:
    store = EngramStore(str(cfg.store))
    spec = store.spec
    if spec is None:
        raise ConfigError("store", cfg.store, "holds no engrams; build it first")
    session = open_session(cfg.model)
    store.check(session.spec(spec.layer, spec.pooling, spec.key_layer))  # the same model: one line when it is not
    inject_layer = int(cfg.compress.inject_layer) if cfg.compress.inject_layer is not None else spec.layer
    found, distance = store.search(session.key(question, spec.key_layer), limit=1)[0]
    prompt = chat_prompt(session.tokenizer, question, "", placement=str(cfg.compress.placement), k=found.k)
    ids = encode(session.tokenizer, prompt).ids
    new = generate(session.model, ids, session.injector(inject_layer), found.vectors, int(cfg.compress.max_new_tokens),
                   suppress=[session.token_id])
    answer = session.tokenizer.decode(new, skip_special_tokens=True).strip()
    return {"question": question, "engram": found.doc_id, "title": found.title, "distance": round(distance, 4),
            "k": found.k, "answer": answer}


def run_dir(cfg: DictConfig) -> Path:
    """`out`, or a new directory of its own under outputs/<experiment_name>/ named by the time: two runs started
    in the same second get `<time>` and `<time>_1`, never one directory between them."""
    if cfg.out:
        out = Path(str(cfg.out))
        out.mkdir(parents=True, exist_ok=True)
        return out
    stamp = Path("outputs") / str(cfg.experiment_name) / f"{datetime.now():%Y-%m-%d_%H-%M-%S}"
    stamp.parent.mkdir(parents=True, exist_ok=True)
    for n in range(1000):
        out = stamp if n == 0 else stamp.with_name(f"{stamp.name}_{n}")
        try:
            out.mkdir()
            return out
        except FileExistsError:
            continue
    raise FileExistsError(f"{stamp}: a thousand runs started in this second; pass out=<dir>")


def evaluate(cfg: DictConfig, sweep: bool = False) -> dict[str, Any]:
    """The rows of eval (one setting) or sweep (the grid), written to the run dir and logged."""
    start = time.perf_counter()
    out = run_dir(cfg)
    c = cfg.compress
    layer, inject_layer, key_layer = layers_of(cfg)
    session = open_session(cfg.model)
    docs, train_docs = split_bios(cfg) if str(cfg.docs) == "bios" else (documents(cfg), [])
    grid = _grid(cfg) if sweep else [(layer, int(c.k), str(c.pooling))]
    layers = {g[0] for g in grid} | {layer, key_layer}
    states = session.doc_states(docs, layers)
    doc_tokens = sum(s[layer].shape[0] for s in states) / len(states)
    rows = [full_context(session, docs, doc_tokens, c.batch_size), no_context(session, docs, doc_tokens, c.batch_size)]
    heads: dict[tuple[int, int], CompressionHead] = {}
    losses: dict[str, list[float]] = {}
    for g_layer, k, pooling in grid:
        _check_k(docs, states, g_layer, k)
        head = None
        if pooling == "head":
            head, losses[f"L{g_layer}/k{k}"] = fit_head(session, cfg, g_layer, k)
            heads[(g_layer, k)] = head
        vectors = [session.engram(d, s, g_layer, g_layer, k, pooling, head).vectors for d, s in zip(docs, states,
                                                                                                  strict=True)]
        target = inject_layer if not sweep else g_layer
        rows.append(with_engrams(session, docs, vectors, doc_tokens, {"layer": g_layer, "k": k, "pooling": pooling},
                                 target, str(c.placement), c.batch_size))
        print(_progress_line(rows[-1]), flush=True)
    rows.append(_retrieval_row(session, cfg, out, docs, train_docs, heads.get((layer, int(c.k))), doc_tokens))
    key_hits = retrieval_hits(session, docs, train_docs, [int(x) for x in c.sweep.key_layers]) if sweep else {}
    info = {"command": "sweep" if sweep else "eval", "retrieval_hit_by_key_layer": key_hits,
            "model": session.model_id, "documents": len(docs),
            "questions": rows[0]["n"], "doc_tokens": doc_tokens, "runtime_s": time.perf_counter() - start,
            "head_losses": losses, "store_size": rows[-1].get("store_size")}
    path = write_results(out, rows, info)
    log_rows(cfg, out, info["command"], rows)
    return {"run_dir": str(out), "results": str(path), "runtime_s": round(info["runtime_s"], 1),
            "rows": [{k: r[k] for k in ("condition", "layer", "k", "pooling", "exact_match")} for r in rows]}


def _grid(cfg: DictConfig) -> list[tuple[int, int, str]]:
    s = cfg.compress.sweep
    return [(int(lay), int(k), str(p)) for lay in s.layers for p in s.poolings for k in s.ks
            if p != "head" or lay in s.head_layers]


def _retrieval_row(session: Session, cfg: DictConfig, out: Path, docs: list[Document], distractors: list[Document],
                   head: CompressionHead | None, doc_tokens: float) -> dict[str, Any]:
    """The configured setting, with every question's engram found in a fresh store of the evaluated documents plus
    the head's training biographies (distractors)."""
    c = cfg.compress
    layer, inject_layer, key_layer = layers_of(cfg)
    if c.pooling == "head" and head is None:
        head = fit_head(session, cfg, layer, int(c.k))[0]
    store = EngramStore(out / "store")
    all_docs = docs + distractors
    fill_store(session, store, all_docs, session.doc_states(all_docs, [layer, key_layer], "store"), cfg, head)
    return with_retrieval(session, docs, store, key_layer, doc_tokens,
                          {"layer": layer, "k": int(c.k), "pooling": str(c.pooling)}, inject_layer,
                          str(c.placement), c.batch_size)


def _progress_line(row: dict[str, Any]) -> str:
    return (f"layer {row['layer']:>2} k={row['k']:<2} {row['pooling']:<9} exact match {100 * row['exact_match']:5.1f}%"
            f"  token accuracy {100 * row['token_accuracy']:5.1f}%  ({row['seconds']:.0f} s)")
