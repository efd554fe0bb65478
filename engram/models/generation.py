"""Token-id history for the memories, so cached generation sees the same ids as a full forward.

With `use_cache=True` each decoding step feeds only the new token, but an n-gram hash needs the previous
`max_ngram - 1` ids, hash=span needs the whole prompt, and the context gate's short conv needs earlier values.
`EngramContext` (one per injected model, no global state) keeps, per sequence of the batch:
  - `ids`, `mask`: every position so far ([B, S]; pad positions hold the pad id);
  - `prompt_lengths`: where the prompt ends, in the same coordinates;
  - `caches`: per-layer state of the memories (the short conv's past values);
  - `traces`: the memories' traces, kept only inside `EngramModel.tracing()` (engram/memory/trace.py).
A forward with no past (past length 0) starts a new history; a forward continuing a KV cache appends to it.
The context belongs to an `EngramModel` (engram/models/engram_model.py): its forward pre-hook on the causal LM calls
`begin_forward` for every inner forward (HF's generate loop calls the inner model, not the wrapper), its `forward`
hands over the prompt lengths with `call()`, and its `generate` runs inside `generation()`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from engram.memory.trace import TraceRecorder


class EngramContext:
    def __init__(self, pad_id: int) -> None:
        self.pad_id = int(pad_id)
        self.ids: torch.Tensor | None = None
        self.mask: torch.Tensor | None = None
        self.prompt_lengths: torch.Tensor | None = None
        self.caches: dict[int, dict] = {}
        self.new = 0  # positions fed by the current forward
        self.generate_prompt_len: int | None = None  # set while generate() runs
        self.generate_prompt_lengths: torch.Tensor | None = None
        self.call_prompt_lengths: torch.Tensor | None = None  # set while EngramModel.forward runs
        self.memories_on = True  # False inside EngramModel.memories_off(): the knock-out
        self.traces = TraceRecorder()

    def reset(self) -> None:
        self.ids = self.mask = self.prompt_lengths = None
        self.caches = {}

    def begin_forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        past_length: int,
        prompt_lengths: torch.Tensor | None,
    ) -> None:
        """Record the ids of one model forward (called by the pre-hook on the model before any layer runs)."""
        self.traces.new_forward()
        new = self.new = input_ids.shape[1]
        mask = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
        mask = mask[:, -new:]
        ids = torch.where(mask, input_ids, torch.full_like(input_ids, self.pad_id))
        if past_length == 0:
            self.reset()
            self.ids, self.mask = ids, mask
        elif self.ids is not None and self.ids.shape == (ids.shape[0], past_length):
            self.ids, self.mask = torch.cat([self.ids, ids], 1), torch.cat([self.mask, mask], 1)
        else:
            have = None if self.ids is None else tuple(self.ids.shape)
            raise RuntimeError(
                f"engram: a cached forward continues {past_length} past tokens but the id history holds {have}; "
                "the memories need every id, so start from a forward with no past (as model.generate does), "
                "and do not reorder the cache (beam search is not supported with use_cache=True)"
            )
        if prompt_lengths is not None:
            self.prompt_lengths = _per_row(prompt_lengths, ids.shape[0]).to(ids.device)
        elif self.generate_prompt_lengths is not None:
            self.prompt_lengths = _per_row(self.generate_prompt_lengths, ids.shape[0]).to(ids.device)
        elif self.generate_prompt_len is not None:
            self.prompt_lengths = torch.full((ids.shape[0],), self.generate_prompt_len, device=ids.device)
        elif past_length == 0:
            # a plain forward: every non-pad token is prompt (prompt ends after the last real token)
            pos = torch.arange(1, new + 1, device=ids.device)
            self.prompt_lengths = (pos * self.mask).amax(1)
        # else: continuing a cache outside generate(): keep the prompt of the first forward

    def cache(self, layer: int) -> dict:
        return self.caches.setdefault(int(layer), {})

    @contextmanager
    def call(self, prompt_lengths: torch.Tensor | None) -> Iterator[None]:
        """Prompt lengths for the inner forward(s) of one `EngramModel.forward` call."""
        self.call_prompt_lengths = prompt_lengths
        try:
            yield
        finally:
            self.call_prompt_lengths = None

    @contextmanager
    def generation(self, prompt_len: int, prompt_lengths: torch.Tensor | None) -> Iterator[None]:
        """One `generate()` call: a fresh history, and the prompt fixed to the ids passed in (so the uncached loop,
        which re-feeds the whole sequence, still knows where the prompt ended). Cleared again afterwards."""
        self.reset()
        self.generate_prompt_len, self.generate_prompt_lengths = int(prompt_len), prompt_lengths
        try:
            yield
        finally:
            self.generate_prompt_len = self.generate_prompt_lengths = None
            self.reset()


    @contextmanager
    def knocked_out(self) -> Iterator[None]:
        """The memories add nothing while this is open (the model computes exactly as the base model)."""
        before, self.memories_on = self.memories_on, False
        try:
            yield
        finally:
            self.memories_on = before


def _per_row(lengths: torch.Tensor, batch: int) -> torch.Tensor:
    """Prompt lengths for `batch` rows (generate may repeat each prompt for num_return_sequences)."""
    lengths = torch.as_tensor(lengths).long().reshape(-1)
    if lengths.numel() != batch and lengths.numel() > 0 and batch % lengths.numel() == 0:
        lengths = lengths.repeat_interleave(batch // lengths.numel())
    return lengths
