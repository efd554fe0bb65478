"""The trained compressor on the tiny model: carriers and placements, the autoencoding loss falling, the KV carrier
equal to the embedding path when the memory tokens are the same vectors, a prompt without an engram bit-identical to
the base model, the held-out towns, and `python -m engram.compress train` end to end."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from engram.compress.__main__ import main
from engram.compress.compressor import Carrier, Compressor, CompressorSettings, carrier_logits, kv_of_vectors
from engram.compress.compressor_training import (
    TrainSettings,
    autoencode_example,
    cloze_examples,
    compressor_scores,
    examples_loss,
    train_compressor,
)
from engram.compress.documents import biographies
from engram.compress.inject import ENGRAM_TOKEN
from engram.compress.prompts import chat_prompt, encode
from engram.compress.session import Session, open_session
from engram.compress.towns import towns

DOCS = biographies(3, seed=7)
PROMPT = [5, 17, 42, 9, 3]


@pytest.fixture()
def session() -> Iterator[Session]:
    yield open_session({"name": "tiny"})


def attach(session: Session, **kw: object) -> Compressor:
    return Compressor(session.model, CompressorSettings(**{"k": 3, **kw}))  # type: ignore[arg-type]


@pytest.mark.parametrize(("carrier", "placement"), [("embedding", "prefix"), ("embedding", "replace"),
                                                    ("embedding", "add"), ("kv", "prefix")])
def test_every_carrier_and_placement_answers_from_its_document(session: Session, carrier: str,
                                                                placement: str) -> None:
    compressor = attach(session, carrier=carrier, placement=placement)
    c = compressor.encode([[4, 5, 6, 7], [8, 9]], session.pad_id)
    if carrier == "kv":
        assert c.vectors is None and len(c.kv) == 2 and c.kv[0][0].shape[:3] == (2, c.kv[0][0].shape[1], 3)
    else:
        assert c.kv is None and c.vectors.shape == (2, 3, 64)
    examples = [autoencode_example(session, compressor, d.text) for d in DOCS[:2]]
    holders = [ex.target.ids.count(session.token_id) for ex in examples]
    assert holders == [3 if carrier == "embedding" and placement != "add" else 0] * 2
    scores = compressor_scores(session, compressor, DOCS)
    assert len(scores) == sum(len(d.questions) for d in DOCS)
    ids = [examples[0].target.ids]
    if placement == "add":  # a fresh `add` compressor leaves the decoder's input as it is: the base model's logits
        assert torch.equal(compressor.decode(c.rows([0]), ids, session.injector(0), session.pad_id),
                           compressor.decode(None, ids, session.injector(0), session.pad_id))
        train_compressor(session, compressor, DOCS[:2], [], TrainSettings(("autoencode",), 2, 0, 2, 1e-2))
        c = compressor.encode([[4, 5, 6, 7], [8, 9]], session.pad_id)
    # the document matters: another document's carrier gives other logits for the same prompt
    first, second = (compressor.decode(c.rows([i]), ids, session.injector(0), session.pad_id) for i in (0, 1))
    assert not torch.allclose(first, second)


@pytest.mark.parametrize("carrier", ["embedding", "kv"])
def test_a_carrier_goes_through_the_stores_vectors_unchanged(session: Session, carrier: str) -> None:
    """What the engram store holds of a carrier (one vector per memory token) gives the same carrier back."""
    c = attach(session, carrier=carrier).encode([[4, 5, 6, 7], [8, 9]], session.pad_id)
    flat = c.flat()
    assert flat.shape[:2] == (2, 3)
    back = c.like(flat.clone())
    if carrier == "kv":
        assert flat.shape[2] == sum(t.shape[1] * t.shape[3] for pair in c.kv for t in pair)
        assert all(torch.equal(a, b) for pa, pb in zip(c.kv, back.kv, strict=True) for a, b in zip(pa, pb, strict=True))
        swapped = c.like(flat.flip(0))  # rows stay documents: the second document's carrier first
        assert all(torch.equal(a[0], b[1]) for pa, pb in zip(swapped.kv, c.kv, strict=True)
                   for a, b in zip(pa, pb, strict=True))
    else:
        assert torch.equal(back.vectors, c.vectors)


def test_settings_refuse_a_placement_the_carrier_does_not_take() -> None:
    with pytest.raises(ValueError, match="placement=replace does not go with carrier=kv"):
        CompressorSettings(k=2, carrier="kv", placement="replace")
    with pytest.raises(ValueError, match="carrier=pixels is not a carrier"):
        CompressorSettings(k=2, carrier="pixels")


@pytest.mark.parametrize(("carrier", "drop"), [("embedding", 0.015), ("kv", 0.1)])
def test_autoencoding_loss_falls_in_a_few_steps(session: Session, carrier: str, drop: float) -> None:
    """On the tiny random model the frozen decoder can hardly be steered (a drop of 0.03 / 0.18 nats in 20 steps
    here), so the margins are small but well above float noise."""
    compressor = attach(session, k=4, carrier=carrier)
    batch = [autoencode_example(session, compressor, d.text) for d in DOCS[:2]]
    with torch.no_grad():
        before = float(examples_loss(session, compressor, batch))
    losses = train_compressor(session, compressor, DOCS[:2], [], TrainSettings(("autoencode",), 20, 0, 2, 1e-2))
    with torch.no_grad():
        after = float(examples_loss(session, compressor, batch))
    assert len(losses["autoencode"]) == 20 and losses["qa"] == []
    assert after < before - drop, (before, after)


def test_training_keeps_the_embedding_carrier_at_the_scale_of_token_embeddings(session: Session) -> None:
    """The carrier's vectors are the last layer's states brought to the embedding scale by a learned scale per
    channel; a full d x d map trained at the LoRA's rate grew them to several times a token's size in a few steps."""
    compressor = attach(session, k=4, carrier="embedding")
    docs = [encode(session.tokenizer, d.text).ids for d in DOCS[:2]]
    with torch.no_grad():
        start = float(compressor.encode(docs, session.pad_id).vectors.norm(dim=-1).mean())
    train_compressor(session, compressor, DOCS[:2], [], TrainSettings(("autoencode",), 3, 0, 2, 2e-3))
    with torch.no_grad():
        after = float(compressor.encode(docs, session.pad_id).vectors.norm(dim=-1).mean())
    assert 0.67 < after / start < 1.5, (start, after)


def test_cloze_asks_for_a_span_of_the_text_by_the_words_before_it(session: Session) -> None:
    compressor = attach(session, carrier="kv")
    text = DOCS[0].text
    made = cloze_examples(session, compressor, text, random.Random(3))
    assert made == cloze_examples(session, compressor, text, random.Random(3)) and len(made) == 6
    tok = session.tokenizer
    for ex in made:
        asked = tok.decode(ex.target.ids[:ex.target.answer_start])
        span = tok.decode(ex.target.ids[ex.target.answer_start:]).strip()
        context = asked.rsplit('" in the text?', 1)[0].rsplit('Which words follow "', 1)[1]
        assert asked.endswith(context) and f"{context} {span}" in text and 1 <= len(span.split()) <= 3
        assert ex.doc == list(tok(text, add_special_tokens=False)["input_ids"])
    assert cloze_examples(session, compressor, "two words", random.Random(0)) == []


def test_qa_steps_go_round_their_sources(session: Session) -> None:
    compressor = attach(session, carrier="kv")
    losses = train_compressor(session, compressor, DOCS[:2], ["a passage of plain prose to ask about here"],
                              TrainSettings((), 0, 5, 2, 1e-2, qa_sources=("bios", "cloze")))
    assert len(losses["qa"]) == 3 and len(losses["cloze"]) == 2


def test_kv_carrier_equals_the_embedding_prefix_when_the_memory_tokens_are_the_same(session: Session) -> None:
    torch.manual_seed(0)
    vectors = torch.randn(2, 3, 64) * 0.05
    text = chat_prompt(session.tokenizer, "Where did she study?", "She studied at")
    plain = encode(session.tokenizer, text).ids
    with_holders = encode(session.tokenizer, ENGRAM_TOKEN * 3 + text).ids
    assert with_holders[3:] == plain
    with torch.no_grad():
        by_embedding = carrier_logits(session.model, Carrier(vectors=vectors), [with_holders] * 2, "prefix",
                                      session.injector(0), session.pad_id)[:, 3:]
        by_kv = carrier_logits(session.model, kv_of_vectors(session.model, vectors), [plain] * 2, "prefix",
                               session.injector(0), session.pad_id)
    assert by_kv.shape == by_embedding.shape
    torch.testing.assert_close(by_kv, by_embedding, atol=1e-4, rtol=1e-4)


def test_a_prompt_without_an_engram_is_bit_identical_to_the_base(session: Session) -> None:
    with torch.no_grad():
        base = session.model(input_ids=torch.tensor([PROMPT])).logits
    compressor = attach(session, carrier="kv")
    train_compressor(session, compressor, DOCS[:2], [], TrainSettings(("autoencode",), 3, 2, 2, 1e-2))
    lora = [n for n, p in compressor.named_parameters() if "lora_B" in n and bool(p.abs().sum() > 0)]
    assert lora  # the encoder's LoRA moved
    with torch.no_grad():
        assert torch.equal(compressor.decode(None, [PROMPT], session.injector(0), session.pad_id), base)
        restored = compressor.close()
        assert torch.equal(restored(input_ids=torch.tensor([PROMPT])).logits, base)


def test_towns_are_deterministic_answerable_and_not_biographies() -> None:
    a, b = towns(5, seed=2), towns(5, seed=2)
    assert a == b and a != towns(5, seed=3) and towns(3, seed=2) == a[:3]
    for doc in a:
        assert len(doc.questions) == 6 and doc.doc_id.startswith("town-")
        for q in doc.questions:
            assert q.answer in doc.text and doc.title in q.question
    assert not {q.attribute for d in a for q in d.questions} & {q.attribute for q in DOCS[0].questions}


def test_train_command_writes_the_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    code = main(["train", "model=tiny", "logger=csv", f"out={out}", "compress.num_docs=2",
                 "compress.trained.ks=[1,2]", "compress.trained.carriers=[embedding,kv]",
                 "compress.trained.placements=[replace,prefix]", "compress.trained.pretrain_steps=1",
                 "compress.trained.qa_steps=1", "compress.trained.train_docs=4", "compress.trained.passages=2",
                 "compress.trained.heldout_docs=2"])
    assert code == 0
    rows = json.loads((out / "compressor.json").read_text())
    trained = [r for r in rows if r["condition"] == "compressor"]
    # kv takes prefix only: 2 k x (embedding x 2 placements + kv x 1) x 2 document sets
    assert len(trained) == 2 * 3 * 2
    assert {(r["k"], r["carrier"], r["placement"]) for r in trained} == {
        (k, c, p) for k in (1, 2) for c, p in (("embedding", "replace"), ("embedding", "prefix"), ("kv", "prefix"))}
    for r in rows:
        assert {"k", "carrier", "placement", "compression_ratio", "exact_match", "share_of_full"} <= set(r)
    assert {r["condition"] for r in rows} == {"full", "none", "compressor", "retrieval"}
    assert all(r["qa_sources"] == ["bios"] and r["seed"] == 0 and r["qa_steps"] == 1 for r in trained)  # the recipe
    retrieved = [r for r in rows if r["condition"] == "retrieval"]  # every setting, the kv carrier's too
    assert {(r["k"], r["carrier"], r["placement"]) for r in retrieved} == {
        (r["k"], r["carrier"], r["placement"]) for r in trained}
    assert all(0.0 <= r["retrieval_hit"] <= 1.0 and r["docs"] == "bios" for r in retrieved)
    assert {r["docs"] for r in rows} == {"bios", "towns"}
    for r in trained:
        assert r["compression_ratio"] == pytest.approx(
            next(x for x in rows if x["condition"] == "full" and x["docs"] == r["docs"])["doc_tokens"] / r["k"])
    assert set(trained[0]["per_attribute"]) == {q.attribute for q in (biographies(1)[0].questions if
                                                                     trained[0]["docs"] == "bios" else
                                                                     towns(1)[0].questions)}
    losses = json.loads((out / "compressor_losses.json").read_text())
    assert set(losses) == {f"k{k}/{c}/{p}" for k, c, p in {(r["k"], r["carrier"], r["placement"]) for r in trained}}


@pytest.mark.parametrize(("override", "message"), [
    ("compress.trained.carriers=[pixels]", "compress.trained.carriers=pixels is not a carrier"),
    ("compress.trained.placements=[sideways]", "compress.trained.placements=sideways is not a placement"),
    ("compress.trained.pretrain=[dream]", "compress.trained.pretrain=dream is not a pretraining objective"),
    ("compress.trained.qa_sources=[trivia]", "compress.trained.qa_sources=trivia is not a source of questions"),
    ("compress.trained.qa_sources=[]", "compress.trained.qa_sources=[] is empty but compress.trained.qa_steps"),
    ("compress.trained.ks=[0]", "compress.trained.ks=0 must hold integers >= 1"),
    ("compress.trained.qa_steps=-1", "compress.trained.qa_steps=-1 must be an integer >= 0"),
    ("docs=stdlib", "docs=stdlib is not bios"),
])
def test_bad_train_settings_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], override: str,
                                         message: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "model=tiny", f"out={tmp_path / 'x'}", override])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_kv_with_replace_only_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["train", "model=tiny", "compress.trained.carriers=[kv]", "compress.trained.placements=[replace]"])
    assert "kv takes prefix only" in capsys.readouterr().err


@pytest.mark.parametrize(("carrier", "placement"), [("embedding", "replace"), ("embedding", "add"), ("kv", "prefix")])
def test_training_loss_reads_only_the_answer_positions_logits(session: Session, carrier: str,
                                                              placement: str) -> None:
    """The training loss asks the LM head for the positions from the earliest answer on; the same loss as over every
    position's logits, for questions whose answers start at different positions."""
    from engram.compress.compressor_training import qa_examples
    from engram.compress.head_training import answer_loss

    compressor = attach(session, carrier=carrier, placement=placement)
    examples = qa_examples(session, compressor, DOCS)
    starts, ids = [ex.target.answer_start for ex in examples], [ex.target.ids for ex in examples]
    assert len(set(starts)) > 1 and min(starts) > 1
    with torch.no_grad():
        carrier_rows = compressor.encode([ex.doc for ex in examples], session.pad_id)
        full = compressor.decode(carrier_rows, ids, session.injector(0), session.pad_id)
        expected = answer_loss(full, starts, ids)
        trimmed = examples_loss(session, compressor, examples)
        part = compressor.decode(carrier_rows, ids, session.injector(0), session.pad_id, min(starts) - 1)
    assert part.shape[1] == full.shape[1] - (min(starts) - 1)
    torch.testing.assert_close(part, full[:, min(starts) - 1:])
    torch.testing.assert_close(trimmed, expected)
