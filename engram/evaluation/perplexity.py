"""Language-model metrics on packed text blocks: loss, perplexity, bits per byte, tokens per second.

Every position but the first of a block predicts the next token; the loss is the mean negative log-likelihood
(nats) over those predictions, perplexity is exp(loss), and bits per byte is the summed NLL in bits divided by the
UTF-8 bytes the predicted tokens spell (comparable across tokenizers). Sums are accumulated in float64.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from engram.models.engram_model import EngramModel


@dataclass(frozen=True)
class LMScore:
    nll: float  # summed negative log-likelihood, nats
    tokens: int  # predicted tokens
    num_bytes: int  # UTF-8 bytes of the predicted tokens
    seconds: float

    @property
    def loss(self) -> float:
        return self.nll / max(1, self.tokens)

    @property
    def ppl(self) -> float:
        return math.exp(min(self.loss, 700.0))

    @property
    def bpb(self) -> float:
        return self.nll / math.log(2) / max(1, self.num_bytes)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / max(self.seconds, 1e-9)

    def metrics(self, prefix: str = "lm/", suffix: str = "") -> dict[str, float]:
        return {f"{prefix}loss{suffix}": self.loss, f"{prefix}ppl{suffix}": self.ppl, f"{prefix}bpb{suffix}": self.bpb}


def block_nll(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Summed next-token NLL of a batch of blocks (float64 scalar)."""
    ids = batch["input_ids"]
    kwargs: dict[str, Any] = {"input_ids": ids, "attention_mask": batch["attention_mask"]}
    if isinstance(model, EngramModel):
        kwargs["prompt_lengths"] = batch["prompt_lengths"]
    logits = model(**kwargs).logits[:, :-1]
    nll = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="sum")
    return nll.double()


@torch.no_grad()
def score_blocks(model: Any, batches: Iterable[dict[str, torch.Tensor]], desc: str = "perplexity",
                 after_batch: Callable[[dict[str, torch.Tensor]], None] | None = None) -> LMScore:
    """The LM score of `model` over every block of `batches` (eval mode for the pass, restored after).
    `after_batch(batch)` runs after each forward (e.g. to read the memories' gate records)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    nll, tokens, num_bytes = 0.0, 0, 0
    start = time.perf_counter()
    try:
        for batch in tqdm(batches, desc=desc, leave=False, disable=None):
            batch = {k: v.to(device) for k, v in batch.items()}
            nll += float(block_nll(model, batch))
            if after_batch is not None:
                after_batch(batch)
            tokens += int(batch["input_ids"][:, 1:].numel())
            num_bytes += int(batch["num_bytes"].sum())
    finally:
        model.train(was_training)
    return LMScore(nll, tokens, num_bytes, time.perf_counter() - start)
