"""Training the compressor (engram/compress/compressor.py): pretraining, then question answering; the decoder frozen.

Objectives, each a loss on the answer tokens of the frozen decoder reading the document's carrier:
- `autoencode`: "Repeat the text." -> the document itself (ICAE's and 500xCompressor's pretraining);
- `continuation`: the first half of a passage compressed, "Continue the text." -> its second half;
- `qa`: the document's questions -> their answers (the fine-tuning stage);
- `cloze`: a span of the compressed text asked for by the words before it ("Which words follow "X was born in" in
  the text?" -> the next one to three words): questions any text yields, no template and no kind of document.
`pretrain_steps` steps go round the pretraining objectives (one objective per step; none listed: no pretraining),
then `qa_steps` steps go round the QA sources (`bios`: the training biographies' questions; `cloze`). Pretraining and
cloze read the training biographies and prose passages of Python's documentation (`engram.data.families.text`,
shipped with every Python). Only the LoRA, the memory tokens and the embedding carrier's per-channel scale learn (Adam).
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from rich.progress import track

from engram.compress.compressor import Carrier, Compressor
from engram.compress.config import PRETRAIN_OBJECTIVES
from engram.compress.documents import Document
from engram.compress.extract import token_ids
from engram.compress.head_training import answer_loss
from engram.compress.prompts import Encoded, chat_prompt, encode
from engram.compress.scoring import answer_hits
from engram.compress.session import Session

AUTOENCODE_ASK = "Repeat the text word for word."
CONTINUE_ASK = "Continue the text."
PROGRESS_EVERY = 50  # steps between the progress lines
CLOZE_CONTEXT_WORDS = 6  # words before the span that ask for it
CLOZE_PER_TEXT = 6  # spans asked of each compressed text per step (a biography has six questions)


@dataclass(frozen=True)
class TrainSettings:
    pretrain: tuple[str, ...] = PRETRAIN_OBJECTIVES
    pretrain_steps: int = 100
    qa_steps: int = 300
    docs_per_step: int = 4  # documents encoded per step (QA: all their questions)
    lr: float = 1e-3
    seed: int = 0
    qa_sources: tuple[str, ...] = ("bios",)  # the QA steps go round these (QA_SOURCES)


@dataclass(frozen=True)
class Example:
    doc: list[int]  # the encoder's input: token ids of the text to compress
    target: Encoded  # the decoder's prompt + answer


def prompt(session: Session, compressor: Compressor, question: str, stem: str, answer: str) -> Encoded:
    """The decoder's chat prompt (with the setting's placeholders) followed by the answer."""
    s = compressor.settings
    text = chat_prompt(session.tokenizer, question, stem, placement=s.placement, k=s.placeholders)
    return encode(session.tokenizer, text, answer)


def qa_examples(session: Session, compressor: Compressor, docs: Sequence[Document]) -> list[Example]:
    return [Example(token_ids(session.tokenizer, d.text), prompt(session, compressor, q.question, q.stem, q.answer))
            for d in docs for q in d.questions]


def autoencode_example(session: Session, compressor: Compressor, text: str) -> Example:
    return Example(token_ids(session.tokenizer, text), prompt(session, compressor, AUTOENCODE_ASK, "", text))


def continuation_example(session: Session, compressor: Compressor, text: str) -> Example:
    words = text.split()
    half = max(1, len(words) // 2)
    return Example(token_ids(session.tokenizer, " ".join(words[:half])),
                   prompt(session, compressor, CONTINUE_ASK, "", " ".join(words[half:])))


def cloze_examples(session: Session, compressor: Compressor, text: str, rng: random.Random,
                   n: int = CLOZE_PER_TEXT) -> list[Example]:
    """Up to `n` spans of `text` (one to three words, none at its start), each asked for by the words before it."""
    words, doc = text.split(), token_ids(session.tokenizer, text)
    starts = rng.sample(range(2, len(words)), min(n, max(0, len(words) - 2)))
    out = []
    for i in sorted(starts):
        context = " ".join(words[max(0, i - CLOZE_CONTEXT_WORDS):i])
        span = " ".join(words[i:i + rng.randint(1, 3)])
        out.append(Example(doc, prompt(session, compressor, f'Which words follow "{context}" in the text?', context,
                                       span)))
    return out


def examples_loss(session: Session, compressor: Compressor, examples: Sequence[Example]) -> torch.Tensor:
    """Mean answer-token cross-entropy; each distinct document is encoded once."""
    docs: dict[tuple[int, ...], int] = {}
    for ex in examples:
        docs.setdefault(tuple(ex.doc), len(docs))
    carrier = compressor.encode([list(d) for d in docs], session.pad_id)
    rows = carrier.rows([docs[tuple(ex.doc)] for ex in examples])
    starts, ids = [ex.target.answer_start for ex in examples], [ex.target.ids for ex in examples]
    first = min(starts) - 1  # the first position that predicts an answer token
    logits = compressor.decode(rows, ids, session.injector(0), session.pad_id, first)
    return answer_loss(logits, starts, ids, first)


def train_compressor(session: Session, compressor: Compressor, train_docs: Sequence[Document],
                     passages: Sequence[str], settings: TrainSettings) -> dict[str, list[float]]:
    """Pretrain, then QA-tune; returns the loss of every step per objective."""
    rng = random.Random(settings.seed)
    optimizer = torch.optim.Adam(compressor.trainable(), lr=settings.lr)
    texts = [d.text for d in train_docs] + list(passages)
    qa = ["qa" if source == "bios" else source for source in settings.qa_sources]
    losses: dict[str, list[float]] = {name: [] for name in (*settings.pretrain, *qa)}
    schedule = [settings.pretrain[i % len(settings.pretrain)] for i in range(settings.pretrain_steps)
                if settings.pretrain] + [qa[i % len(qa)] for i in range(settings.qa_steps) if qa]
    compressor.train()
    began = time.perf_counter()
    label = f"training the compressor (k={compressor.settings.k}, {compressor.settings.carrier})"
    for objective in track(schedule, description=label, transient=True):
        if objective == "qa":
            chosen = rng.sample(list(train_docs), min(settings.docs_per_step, len(train_docs)))
            batch = qa_examples(session, compressor, chosen)
        elif objective == "cloze":
            batch = [ex for t in rng.sample(texts, min(settings.docs_per_step, len(texts)))
                     for ex in cloze_examples(session, compressor, t, rng)]
        else:
            make = autoencode_example if objective == "autoencode" else continuation_example
            batch = [make(session, compressor, t) for t in rng.sample(texts, min(settings.docs_per_step,
                                                                                 len(texts)))]
        loss = examples_loss(session, compressor, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses[objective].append(float(loss.detach()))
        done = sum(len(v) for v in losses.values())
        if done % PROGRESS_EVERY == 0 or done == len(schedule):  # for logs, where the progress bar is not drawn
            recent = losses[objective][-PROGRESS_EVERY:]
            print(f"step {done}/{len(schedule)}: {objective} loss {sum(recent) / len(recent):.3f} "
                  f"({time.perf_counter() - began:.0f} s)", flush=True)
    compressor.eval()
    return losses


@torch.no_grad()
def example_scores(session: Session, compressor: Compressor, examples: Sequence[Example],
                   carrier: Carrier) -> list[tuple[bool, float]]:
    """Per example (row i of the carrier answers example i): (greedy decoding reproduces the answer, share of
    answer tokens that are the argmax given the reference prefix)."""
    predicted = compressor.decode(carrier, [ex.target.ids for ex in examples], session.injector(0),
                                  session.pad_id).argmax(dim=-1)
    return [answer_hits(predicted[row], ex.target) for row, ex in enumerate(examples)]


@torch.no_grad()
def compressor_scores(session: Session, compressor: Compressor, docs: Sequence[Document],
                      docs_per_batch: int = 4) -> list[tuple[bool, float]]:
    """`example_scores` of every question of `docs` (in order), each reading its own document's carrier."""
    out: list[tuple[bool, float]] = []
    for start in range(0, len(docs), docs_per_batch):
        chunk = list(docs[start:start + docs_per_batch])
        carrier = compressor.encode([token_ids(session.tokenizer, d.text) for d in chunk], session.pad_id)
        rows = carrier.rows([i for i, d in enumerate(chunk) for _ in d.questions])
        out += example_scores(session, compressor, qa_examples(session, compressor, chunk), rows)
    return out
