"""Token-id history for the memories, so cached generation sees the same ids as a full forward.

With `use_cache=True` each decoding step feeds only the new token, but an n-gram hash needs the previous
`max_ngram - 1` ids, hash=span needs the whole prompt, and the context gate's short conv needs earlier values.
`EngramContext` (one per injected model, no global state) keeps, per sequence of the batch:
  - `ids`, `mask`: every position so far ([B, S]; pad positions hold the pad id);
  - `prompt_lengths`: where the prompt ends, in the same coordinates;
  - `caches`: per-layer state of the memories (the short conv's past values).
A forward with no past (past length 0) starts a new history; a forward continuing a KV cache appends to it.
`wrap_generate` resets the history at every `generate()` call and fixes the prompt to the ids passed in (so the
uncached loop, which re-feeds the whole sequence, still knows where the prompt ended).
"""

from __future__ import annotations

import functools
from typing import Any

import torch


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

    def wrap_generate(self, model: Any) -> None:
        """Make `model.generate` reset the history and know the prompt length on every call."""
        original = model.generate

        @functools.wraps(original)
        def generate(*args: Any, **kwargs: Any) -> Any:
            ids = kwargs.get("input_ids", kwargs.get("inputs", args[0] if args else None))
            lengths = kwargs.pop("engram_prompt_lengths", None)
            if ids is None:
                raise ValueError("engram: generate() needs input_ids (the memories hash token ids)")
            self.reset()
            self.generate_prompt_len, self.generate_prompt_lengths = int(ids.shape[1]), lengths
            try:
                return original(*args, **kwargs)
            finally:
                self.generate_prompt_len = self.generate_prompt_lengths = None
                self.reset()

        generate.__engram_original__ = model.__dict__.get("generate")  # type: ignore[attr-defined]
        model.generate = generate

    @staticmethod
    def unwrap_generate(model: Any) -> None:
        wrapped = model.__dict__.get("generate")
        if wrapped is None or not hasattr(wrapped, "__engram_original__"):
            return
        if wrapped.__engram_original__ is None:
            del model.generate  # our instance attribute goes; the class's generate shows through again
        else:
            model.generate = wrapped.__engram_original__  # someone else's wrapper was there before ours


def _per_row(lengths: torch.Tensor, batch: int) -> torch.Tensor:
    """Prompt lengths for `batch` rows (generate may repeat each prompt for num_return_sequences)."""
    lengths = torch.as_tensor(lengths).long().reshape(-1)
    if lengths.numel() != batch and lengths.numel() > 0 and batch % lengths.numel() == 0:
        lengths = lengths.repeat_interleave(batch // lengths.numel())
    return lengths
