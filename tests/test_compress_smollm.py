"""Semantic-compression engrams on the real SmolLM2-135M (slow): the full-context upper bound answers the biography
questions, the lower bound does not, and identity pooling at layer 0 reproduces the full-context logits."""

from __future__ import annotations

import pytest
import torch

from engram.compress.conditions import full_context, no_context
from engram.compress.documents import biographies
from engram.compress.extract import compress, layer_states, token_ids
from engram.compress.prompts import Encoded
from engram.compress.scoring import Item, forward_logits
from engram.compress.session import Session, open_session

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def session() -> Session:
    return open_session({"name": "smollm"})


def test_full_context_answers_and_no_context_does_not(session: Session) -> None:
    docs = biographies(2, seed=0)
    with torch.no_grad():
        full = full_context(session, docs, 66.0, batch_size=12)
        none = no_context(session, docs, 66.0, batch_size=12)
    assert full["exact_match"] >= 0.75 and none["exact_match"] <= 0.2


def test_identity_pooling_at_layer_0_reproduces_full_context(session: Session) -> None:
    tok, doc = session.tokenizer, biographies(1, seed=0)[0]
    ids = token_ids(tok, doc.text)
    before = token_ids(tok, "<|im_start|>user\n")
    after = token_ids(tok, f"\n\n{doc.questions[2].question}<|im_end|>\n<|im_start|>assistant\n")
    vectors = compress(layer_states(session.model, ids, [0])[0], len(ids), "identity")
    with torch.no_grad():
        full = forward_logits(session.model, [Item(Encoded(before + ids + after, 0))], None, 0)
        holders = before + [session.token_id] * len(ids) + after
        injected = forward_logits(session.model, [Item(Encoded(holders, 0), vectors)], session.injector(0), 0)
    assert torch.allclose(full[0, :, : injected.shape[-1]], injected[0], atol=1e-4)
