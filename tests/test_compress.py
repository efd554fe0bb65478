"""Semantic-compression engrams on the tiny model: documents, extraction and pooling shapes, injection equivalence
with the full document, cached generation with injected engrams, and the LanceDB store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from engram.compress.documents import biographies, read_documents, stdlib_documents
from engram.compress.extract import compress, layer_states, token_ids
from engram.compress.head import CompressionHead
from engram.compress.inject import ENGRAM_TOKEN
from engram.compress.pooling import chunk_bounds, pool
from engram.compress.prompts import Encoded, chat_prompt, encode
from engram.compress.scoring import Item, forward_logits, generate
from engram.compress.session import Session, open_session
from engram.compress.store import Engram, EngramStore, StoreMismatchError, StoreSpec
from engram.config import ConfigError

DOC = biographies(1, seed=0)[0]


@pytest.fixture(scope="module")
def session() -> Session:
    return open_session({"name": "tiny"})


def test_biographies_are_deterministic_by_seed_and_answerable_from_the_text() -> None:
    a, b, c = biographies(6, seed=3), biographies(6, seed=3), biographies(6, seed=4)
    assert a == b and a != c
    assert biographies(3, seed=3) == a[:3]  # the first m of n are the m of m
    assert len({d.title for d in a}) == 6
    for doc in a:
        assert len(doc.questions) == 6 and len({q.attribute for q in doc.questions}) == 6
        for q in doc.questions:
            assert q.answer in doc.text and doc.title in q.question and q.stem


def test_stdlib_documents_and_jsonl(tmp_path: Path) -> None:
    docs = stdlib_documents(("json", "heapq"))
    assert [d.doc_id for d in docs] == ["stdlib-json", "stdlib-heapq"] and "JSON" in docs[0].text
    path = tmp_path / "docs.jsonl"
    path.write_text(json.dumps({"id": "x", "text": "Zed lives in Ost.", "qa": [{"question": "Where?", "answer":
                                                                               "Ost"}]}) + "\n{broken\n")
    with pytest.raises(ValueError, match=r"docs.jsonl:2"):
        read_documents(path)


@pytest.mark.parametrize("pooling", ["mean", "attention", "head"])
@pytest.mark.parametrize("k", [1, 4, 9])
def test_extraction_shapes(session: Session, pooling: str, k: int) -> None:
    ids = token_ids(session.tokenizer, DOC.text)
    states = layer_states(session.model, ids, [0, 1, 2])
    assert {layer: s.shape for layer, s in states.items()} == {layer: (len(ids), 64) for layer in (0, 1, 2)}
    head = CompressionHead(64, k) if pooling == "head" else None
    vectors = compress(states[1], k, pooling, head)
    assert vectors.shape == (k, 64) and torch.isfinite(vectors).all()


def test_pooling_rules() -> None:
    states = torch.randn(10, 8)
    assert chunk_bounds(10, 3) == [(0, 3), (3, 7), (7, 10)]
    assert torch.allclose(pool(states, 1, "mean")[0], states.mean(dim=0))
    assert torch.equal(pool(states, 10, "identity"), states)
    head = CompressionHead(8, 3)  # at initialisation exactly mean pooling over the chunks
    assert torch.allclose(head(states), pool(states, 3, "mean"), atol=1e-6)
    with pytest.raises(ValueError, match="k=11"):
        pool(states, 11, "mean")
    with pytest.raises(ValueError, match="identity"):
        pool(states, 4, "identity")


def test_injection_equivalence_identity_pooling_at_layer_0(session: Session) -> None:
    """k = document length, identity pooling of the layer-0 states (its token embeddings): the placeholder prompt
    gives the full-context logits."""
    tok = session.tokenizer
    doc = token_ids(tok, DOC.text)
    before = token_ids(tok, "<|im_start|>user\n")
    after = token_ids(tok, f"\n\n{DOC.questions[0].question}<|im_end|>\n<|im_start|>assistant\n")
    vectors = compress(layer_states(session.model, doc, [0])[0], len(doc), "identity")
    full = forward_logits(session.model, [Item(Encoded(before + doc + after, 0))], None, 0)
    holders = before + [session.token_id] * len(doc) + after
    injected = forward_logits(session.model, [Item(Encoded(holders, 0), vectors)],
                              session.injector(0), 0)
    assert torch.allclose(full, injected, atol=1e-5)
    plain = forward_logits(session.model, [Item(Encoded(holders, 0))], None, 0)
    assert not torch.allclose(full, plain, atol=1e-3)  # without the vectors the placeholders change the answer


@pytest.mark.parametrize(("layer", "placement"), [(0, "replace"), (1, "replace"), (1, "prefix")])
def test_cached_generation_with_engrams_matches_uncached(session: Session, layer: int, placement: str) -> None:
    tok = session.tokenizer
    states = layer_states(session.model, token_ids(tok, DOC.text), [layer])[layer]
    vectors = compress(states, 4, "mean")
    prompt = chat_prompt(tok, DOC.questions[1].question, DOC.questions[1].stem, placement=placement, k=4)
    ids = encode(tok, prompt).ids
    assert ids.count(session.token_id) == 4 and (ids[0] == session.token_id) == (placement == "prefix")
    run = {"injector": session.injector(layer), "vectors": vectors, "max_new_tokens": 12,
           "suppress": [session.token_id]}
    cached = generate(session.model, ids, use_cache=True, **run)
    assert cached == generate(session.model, ids, use_cache=False, **run)
    assert len(cached) == 12 and session.token_id not in cached
    injector = session.injector(layer)
    a = forward_logits(session.model, [Item(Encoded(ids, 0), vectors)], injector, 0)
    b = forward_logits(session.model, [Item(Encoded(ids, 0), vectors * 0 + 3.0)], injector, 0)
    assert not torch.allclose(a[0, -1], b[0, -1], atol=1e-4)  # the vectors reach the answer position


def test_injector_refuses_a_wrong_number_of_vectors(session: Session) -> None:
    ids = encode(session.tokenizer, chat_prompt(session.tokenizer, "Q?", "", k=3)).ids
    with pytest.raises(ValueError, match=f"3 {ENGRAM_TOKEN.replace('[', '.').replace(']', '.')} placeholders but 2"):
        forward_logits(session.model, [Item(Encoded(ids, 0), torch.zeros(2, 64))],
                       session.injector(0), 0)


def _engram(doc_id: str, k: int, seed: int, dim: int = 8) -> Engram:
    g = torch.Generator().manual_seed(seed)
    return Engram(doc_id, f"title {doc_id}", torch.randn(k, dim, generator=g), torch.randn(dim, generator=g), 30)


def test_store_round_trip_persists_and_refuses_other_settings(tmp_path: Path) -> None:
    spec = StoreSpec("tiny", 1, 8, "mean", 0)
    store = EngramStore(tmp_path / "db")
    assert store.spec is None and len(store) == 0
    engrams = [_engram(f"d{i}", k=2 + i % 3, seed=i) for i in range(6)]
    store.add(engrams, spec)
    store.add([_engram("d0", k=2, seed=0)], spec)  # the same document again replaces it
    reopened = EngramStore(tmp_path / "db")  # a restart: a new connection to the same directory
    assert reopened.spec == spec and len(reopened) == 6
    for e in engrams:
        found, distance = reopened.search(e.key, limit=1)[0]
        assert found.doc_id == e.doc_id and distance < 1e-5 and torch.equal(found.vectors, e.vectors)
    for other in (StoreSpec("smollm", 1, 8, "mean", 0), StoreSpec("tiny", 2, 8, "mean", 0)):
        with pytest.raises(StoreMismatchError) as err:
            reopened.add([_engram("x", 2, 99)], other)
        message = str(err.value)
        assert "\n" not in message and "holds engrams of model=tiny layer=1" in message
        assert isinstance(err.value, ConfigError)
    assert len(EngramStore(tmp_path / "db")) == 6  # nothing was added
    assert torch.equal(reopened.get("d4").vectors, engrams[4].vectors)
    with pytest.raises(ConfigError, match="^config error: doc_id=d9 is not in store="):
        reopened.get("d9")
    sizes = reopened.sizes()
    assert sizes["documents"] == 6 and sizes["vectors"] == sum(e.k for e in engrams)
    assert sizes["vector_bytes"] == 4 * 8 * sizes["vectors"] and sizes["disk_bytes"] > 0
    exported = reopened.export_safetensors(tmp_path / "engrams.safetensors")
    with safe_open(str(exported), "pt") as f:
        assert json.loads(f.metadata()["spec"])["layer"] == 1
        assert torch.equal(f.get_tensor("engram/d3"), engrams[3].vectors)


def test_store_holds_engram_vectors_wider_than_the_key(tmp_path: Path) -> None:
    """A kv engram's vectors (one memory token's keys and values at every layer) are wider than the retrieval key;
    the spec says how wide, and a vector of another width is refused with one line."""
    spec = StoreSpec("tiny", 0, 8, "compressor-kv-prefix", 0, width=24)
    store = EngramStore(tmp_path / "db")
    wide = Engram("d0", "t", torch.randn(3, 24), torch.randn(8), 30)
    store.add([wide], spec)
    reopened = EngramStore(tmp_path / "db")
    assert reopened.spec == spec and "width=24" in spec.describe()
    assert torch.equal(reopened.search(wide.key)[0][0].vectors, wide.vectors)
    assert reopened.sizes()["vector_bytes"] == 4 * 24 * 3
    with pytest.raises(StoreMismatchError, match="its vectors have width 8 and its key dim 8.*width=24 dim=8"):
        reopened.add([_engram("d1", 3, 1)], spec)
    assert StoreSpec("tiny", 1, 8, "mean", 0).vector_width == 8  # stores written before the width: dim wide
