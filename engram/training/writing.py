"""Write facts into the memory: a short optimisation of only the table rows the facts' keys address.

`write_facts(model, tokenizer, facts)` takes (prompt, answer) records and, batch by batch:
  1. encodes them exactly as training does (prompt ids, answer ids + eos; engram/data/formatting.py) and runs one
     forward with the memories in training mode, so addresses that keep a per-row record (fingerprint, written)
     claim the rows these keys look up;
  2. takes Adam steps on the table rows alone (gates, projections and the base model stay as they are) until every
     answer token of the batch is the model's top choice by `margin` logits, or `steps` run out. A position that
     reaches the margin leaves the loss, and only rows that got a gradient move (sparse Adam with the zero rows of
     the gradient dropped), so finished facts are not dragged along by the optimiser's momentum.
When every memory sits at layer "final" (the final norm's input), the base model runs once per batch and each step
only evaluates norm + LM head at the answer positions (the fast path: ~seconds per hundred facts on a CPU);
otherwise every step is a full forward (correct for any layer, slower).

A fact counts as written when every answer token, eos included, is the argmax under teacher forcing: then greedy
generation reproduces the answer exactly.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from engram.data.collate import teacher_forced_batch
from engram.data.formatting import encode_answers, encode_prompts, pad_id
from engram.models.engram_model import EngramModel
from engram.models.layer_runner import final_states
from engram.training.prefix_cache import PrefixCache

log = logging.getLogger(__name__)
LogitsAt = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (answer mask, active positions) -> [N, V] or [N, H]


@dataclass
class WriteSummary:
    facts: int
    written: int  # facts whose every answer token is the argmax afterwards (teacher-forced)
    steps: int  # optimiser steps over all batches
    seconds: float

    @property
    def recall(self) -> float:
        return self.written / self.facts if self.facts else 0.0


def write_facts(
    model: EngramModel,
    tokenizer: Any,
    facts: Sequence[dict[str, Any]],
    *,
    prompt_format: str = "chat",
    steps: int = 60,
    lr: float = 0.3,
    margin: float = 3.0,
    batch_size: int = 64,
    max_length: int = 256,
    progress: bool = True,
    prefix: PrefixCache | None = None,
    shortlist: int = 0,
) -> WriteSummary:
    """Write `facts` (dicts with "prompt" and "answer") into `model`'s memory tables; returns what was written.
    `prefix`: the training run's frozen-prefix cache (the base's states come from it, and stay in it for training).
    `shortlist` > 0: steps score only the target and that many rivals (see `_shortlist_steps`; memory at "final")."""
    return _run(model, tokenizer, facts, prompt_format, steps, lr, margin, batch_size, max_length,
                progress, "writing facts", prefix, shortlist)


def recall_of(model: EngramModel, tokenizer: Any, facts: Sequence[dict[str, Any]], *, prompt_format: str = "chat",
              batch_size: int = 64, max_length: int = 256, progress: bool = True) -> float:
    """Share of `facts` whose every answer token is the model's argmax under teacher forcing (what greedy
    generation reproduces exactly). Changes nothing: no row is claimed or moved."""
    return _run(model, tokenizer, facts, prompt_format, 0, 0.0, 0.0, batch_size, max_length, progress,
                "checking facts", None, 0).recall


def _run(model: EngramModel, tokenizer: Any, facts: Sequence[dict[str, Any]], prompt_format: str, steps: int,
         lr: float, margin: float, batch_size: int, max_length: int, progress: bool, desc: str,
         prefix: PrefixCache | None, shortlist: int) -> WriteSummary:
    if not isinstance(model, EngramModel):
        raise TypeError("engram: writing facts needs an EngramModel (the memories to write into)")
    t0 = time.perf_counter()
    batches = [facts[i : i + batch_size] for i in range(0, len(facts), batch_size)]
    written = total_steps = 0
    was_training = model.training
    model.eval()
    try:
        for batch in tqdm(batches, desc=desc, unit="batch", disable=not progress):
            encoded = _encode(tokenizer, batch, prompt_format, max_length)
            n_steps, ok = _write_batch(model, encoded, steps, lr, margin, prefix, shortlist)
            total_steps += n_steps
            written += ok
    finally:
        model.train(was_training)
    summary = WriteSummary(len(facts), written, total_steps, time.perf_counter() - t0)
    log.info("%s: %d/%d facts recalled, %.1f s (%d steps)", desc, written, len(facts), summary.seconds, total_steps)
    return summary


def _encode(tokenizer: Any, batch: Sequence[dict[str, Any]], prompt_format: str, max_length: int) -> dict:
    prompts = encode_prompts(tokenizer, [str(f["prompt"]) for f in batch], prompt_format)
    answers = encode_answers(tokenizer, [str(f["answer"]) for f in batch], prompt_format)
    return teacher_forced_batch(prompts, answers, max_length, pad_id(tokenizer))


def _write_batch(model: EngramModel, batch: dict, steps: int, lr: float, margin: float,
                 prefix: PrefixCache | None, shortlist: int) -> tuple[int, int]:
    """Optimise the rows of one batch; returns (steps taken, facts written)."""
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in batch.items()}
    labels = batch["labels"][:, 1:]  # position t predicts token t + 1
    answer = labels != -100  # [B, S - 1]
    targets = labels[answer]
    tables = [m.table.weight for m in model.memories.values()]
    sparse = all(m.table.sparse for m in model.memories.values())
    claim = steps > 0  # only a write claims rows; a check leaves every record as it is
    states_at = _fast_states(model, batch, claim, prefix) if _all_final(model) else None
    head = model.lm.lm_head
    logits_at = _full_logits(model, batch, claim) if states_at is None else \
        (lambda answer, active: head(states_at(answer, active)))
    optimiser = _row_optimiser(tables, lr, sparse) if claim else None
    if optimiser is not None and shortlist > 0 and states_at is not None:
        taken = _shortlist_steps(states_at, head, answer, targets, optimiser, tables, steps, margin, shortlist)
    elif optimiser is not None:
        taken = _full_steps(logits_at, answer, targets, optimiser, tables, steps, margin)
    else:
        taken = 0
    with torch.no_grad():
        correct = _margin(logits_at(answer, torch.ones_like(targets, dtype=torch.bool)), targets) > 0
    per_fact = torch.ones(answer.shape[0], dtype=torch.bool, device=device)
    rows = answer.nonzero()[:, 0]
    per_fact.scatter_reduce_(0, rows, correct, reduce="amin")
    return taken, int(per_fact.sum())


def _full_steps(logits_at: LogitsAt, answer: torch.Tensor, targets: torch.Tensor, optimiser: torch.optim.Optimizer,
                tables: list[nn.Parameter], steps: int, margin: float) -> int:
    """Adam steps on the cross-entropy over the whole vocabulary at the positions still below the margin."""
    active = torch.ones_like(targets, dtype=torch.bool)
    taken = 0
    for _ in range(steps):
        logits = logits_at(answer, active)
        below = _margin(logits, targets[active]) <= margin
        if not below.any():
            break
        loss = F.cross_entropy(logits[below], targets[active][below], reduction="sum") / targets.numel()
        _step(optimiser, loss, tables)
        taken += 1
        active[active.clone()] = below  # finished positions leave the loss
    return taken


def _shortlist_steps(states_at: LogitsAt, head: nn.Linear, answer: torch.Tensor, targets: torch.Tensor,
                     optimiser: torch.optim.Optimizer, tables: list[nn.Parameter], steps: int, margin: float,
                     shortlist: int) -> int:
    """engram.prepopulate.shortlist=K: the same goal (every answer token leads the whole vocabulary by `margin`),
    reached with the LM head evaluated on the target and its K strongest rivals only. Each round scores the full
    vocabulary once (no gradient), picks the rivals of every position still below the margin, and takes Adam steps
    on the cross-entropy over those K + 1 logits until they lead by `margin` + 1; rounds repeat until the full check
    passes or `steps` run out. A step costs K + 1 head rows instead of the vocabulary's (49 152 in SmolLM2)."""
    every = torch.ones_like(targets, dtype=torch.bool)
    taken = 0
    while taken < steps:
        with torch.no_grad():
            full = head(states_at(answer, every))
            active = _margin(full, targets) <= margin
            if not active.any():
                break
            rivals = full[active].scatter(1, targets[active, None], float("-inf")).topk(shortlist, 1).indices
            candidates = torch.cat([targets[active, None], rivals], 1)  # the target is column 0
        weight = head.weight[candidates]  # [N, K + 1, H]
        bias = head.bias[candidates] if head.bias is not None else None
        zeros = torch.zeros(len(candidates), dtype=torch.long, device=candidates.device)
        while taken < steps:
            logits = torch.einsum("nh,nkh->nk", states_at(answer, active), weight)
            logits = logits + bias if bias is not None else logits
            below = _margin(logits, zeros) <= margin + 1.0
            if not below.any():
                break
            _step(optimiser, F.cross_entropy(logits[below], zeros[below], reduction="sum") / targets.numel(), tables)
            taken += 1
    return taken


def _step(optimiser: torch.optim.Optimizer, loss: torch.Tensor, tables: list[nn.Parameter]) -> None:
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    _drop_untouched_rows(tables)
    optimiser.step()


def _fast_states(model: EngramModel, batch: dict, claim: bool, prefix: PrefixCache | None) -> LogitsAt:
    """Memory at "final": the base's last hidden state is computed once; a step is memory + norm (+ the head,
    applied by the caller): the normed states at the answer positions."""
    lm = model.lm
    memory = next(iter(model.memories.values()))
    h = _base_final_states(model, batch, prefix)
    mask = batch["attention_mask"].bool()
    ids = torch.where(mask, batch["input_ids"], torch.full_like(batch["input_ids"], model.context.pad_id))
    if claim:
        memory.train()  # addresses with a per-row record claim this batch's rows in this first call
        try:
            memory(h, ids, mask, batch["prompt_lengths"])
        finally:
            memory.eval()

    def states_at(answer: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        # the knock-out holds here too: inside model.memories_off() these are the base model's states
        x = h + memory(h, ids, mask, batch["prompt_lengths"])[0] if model.context.memories_on else h
        x = x[:, :-1][answer][active]
        with model.memories_off():  # the norm carries the memory's own hook; x already holds the memory
            return lm.model.norm(x)

    return states_at


def _base_final_states(model: EngramModel, batch: dict, prefix: PrefixCache | None) -> torch.Tensor:
    """The final norm's input without the memory: from the prefix cache (+ the layers above it) when given, else
    from one forward."""
    ids, mask, lengths = batch["input_ids"], batch["attention_mask"], batch["prompt_lengths"]
    with torch.no_grad(), model.memories_off():
        if prefix is not None:
            return final_states(model, prefix.hidden(ids, mask), ids, mask, lengths, prefix.depth)
        captured: list[torch.Tensor] = []
        handle = model.lm.model.norm.register_forward_pre_hook(lambda _m, args: captured.append(args[0].detach()))
        try:
            model(input_ids=ids, attention_mask=mask, prompt_lengths=lengths, logits_to_keep=1)
        finally:
            handle.remove()
    return captured[-1]


def _full_logits(model: EngramModel, batch: dict, claim: bool) -> LogitsAt:
    """Any layer: every step is a full teacher-forced forward (the first in training mode, to claim rows)."""
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "prompt_lengths")}
    if claim:
        for memory in model.memories.values():
            memory.train()
        try:
            with torch.no_grad():
                model(**inputs)
        finally:
            for memory in model.memories.values():
                memory.eval()

    def logits_at(answer: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        return model(**inputs).logits[:, :-1][answer][active]

    return logits_at


def _all_final(model: EngramModel) -> bool:
    depth = len(model.lm.model.layers)
    return len(model.layers) == 1 and model.layers[0] == depth


def _margin(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Target logit minus the best other logit, per position."""
    target = logits.gather(1, targets[:, None])[:, 0]
    other = logits.scatter(1, targets[:, None], float("-inf")).amax(1)
    return target - other


def _row_optimiser(tables: list[nn.Parameter], lr: float, sparse: bool) -> torch.optim.Optimizer:
    """A fresh optimiser per batch (no momentum carried into other facts' rows)."""
    for t in tables:
        t.requires_grad_(True)
    return torch.optim.SparseAdam(tables, lr=lr) if sparse else torch.optim.Adam(tables, lr=lr)


def _drop_untouched_rows(tables: list[nn.Parameter]) -> None:
    """Sparse gradients list every row looked up, also those of masked positions with an all-zero gradient; Adam
    would move those by their momentum. Keep only rows with a non-zero gradient."""
    for t in tables:
        if t.grad is None or not t.grad.is_sparse:
            continue
        g = t.grad.coalesce()
        nonzero = g.values().abs().sum(-1) > 0
        t.grad = torch.sparse_coo_tensor(g.indices()[:, nonzero], g.values()[nonzero], g.shape,
                                         check_invariants=False).coalesce()
