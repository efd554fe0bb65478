"""Training the compression head: the frozen model answers questions about a document from the head's k vectors
(injected at the extraction layer); the loss is cross-entropy on the answer tokens only, and only the head learns.

Trained on biographies disjoint from the evaluated ones, so the evaluation measures a head that compresses unseen
documents. A plain loop (Adam, a few dozen steps): one step is a forward and a backward through the frozen model's
layers from the injection layer up.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from rich.progress import track

from engram.compress.conditions import item, qa_pairs
from engram.compress.documents import Document
from engram.compress.head import CompressionHead
from engram.compress.scoring import forward_logits
from engram.compress.session import Session


@dataclass(frozen=True)
class HeadSettings:
    steps: int = 40
    batch_size: int = 4
    lr: float = 3e-3
    rank: int = 64
    seed: int = 0


def answer_loss(logits: torch.Tensor, answer_starts: Sequence[int], ids: Sequence[Sequence[int]],
                first: int = 0) -> torch.Tensor:
    """Mean cross-entropy over the answer tokens of a right-padded batch whose logits start at position `first`."""
    losses = []
    for row, (start, seq) in enumerate(zip(answer_starts, ids, strict=True)):
        target = torch.tensor(list(seq[start:]))
        losses.append(F.cross_entropy(logits[row, start - 1 - first:len(seq) - 1 - first], target, reduction="sum"))
    return torch.stack(losses).sum() / max(1, sum(len(s) - a for a, s in zip(answer_starts, ids, strict=True)))


def train_head(session: Session, docs: Sequence[Document], states: Sequence[torch.Tensor], layer: int, k: int,
               settings: HeadSettings, placement: str = "replace") -> tuple[CompressionHead, list[float]]:
    """A head for k vectors trained on `docs` (`states[i]`: [T, d] of docs[i] at `layer`, where the vectors are
    injected too). Returns the head (eval mode) and the loss of every step."""
    torch.manual_seed(settings.seed)
    head = CompressionHead(session.dim, k, settings.rank)
    optimizer = torch.optim.Adam(head.parameters(), lr=settings.lr)
    pairs = qa_pairs(docs)
    rng = random.Random(settings.seed)
    injector = session.injector(layer)
    losses = []
    head.train()
    for _ in track(range(settings.steps), description=f"training the head (k={k}, layer {layer})", transient=True):
        batch = rng.sample(pairs, min(settings.batch_size, len(pairs)))
        items = [item(session, q, vectors=head(states[i]), placement=placement) for i, q in batch]
        logits = forward_logits(session.model, items, injector, session.pad_id)
        loss = answer_loss(logits, [it.encoded.answer_start for it in items], [it.encoded.ids for it in items])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return head.eval(), losses
