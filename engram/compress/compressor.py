"""The trained compressor, in the ICAE / 500xCompressor way: a LoRA on the encoding pass and k learned memory tokens.

    compressor = Compressor(session.model, CompressorSettings(k=16, carrier="embedding", placement="prefix"))
    carrier = compressor.encode([doc_ids, ...], pad)                        # the documents, compressed
    logits = compressor.decode(carrier, prompts, session.injector(0), pad)  # the frozen model answers from them

Encoding: the document's token embeddings followed by the k memory tokens run through the model with the LoRA on
(left-padded, so the memory tokens are the last k positions of every row). What reaches the decoder is the carrier:
- `embedding`: the last layer's states at the memory positions, mapped to the input-embedding scale, read at layer 0
  through a placement: `replace` ([ENGRAM] placeholders where the document would stand), `prefix` (placeholders
  before the whole chat), both put in by the layer-0 EngramInjector (engram/compress/inject.py), or `add` (the
  mean vector added to the embedding of every token: no extra positions);
- `kv`: every layer's keys and values at the memory positions, a k-token prefix of the decoder's KV cache (the
  500xCompressor carrier; a prefix by nature).
Decoding runs with the LoRA off, so the decoder is the base model: a prompt without a carrier gets the base's logits.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from peft import LoraConfig, get_peft_model
from torch import nn
from transformers import DynamicCache

from engram.compress.config import CARRIER_PLACEMENTS
from engram.compress.inject import EngramInjector
from engram.data.collate import mask as padding_mask
from engram.data.collate import pad

CARRIERS = tuple(CARRIER_PLACEMENTS)
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass(frozen=True)
class CompressorSettings:
    k: int  # memory tokens, so vectors (or KV positions) per document
    carrier: str = "embedding"  # embedding | kv
    placement: str = "prefix"  # embedding: replace | prefix | add; kv: prefix
    rank: int = 16  # LoRA rank of the encoding pass
    seed: int = 0

    def __post_init__(self) -> None:
        if self.carrier not in CARRIERS:
            raise ValueError(f"carrier={self.carrier} is not a carrier (one of: {', '.join(CARRIERS)})")
        if self.placement not in CARRIER_PLACEMENTS[self.carrier]:
            raise ValueError(f"placement={self.placement} does not go with carrier={self.carrier} (it takes: "
                             f"{', '.join(CARRIER_PLACEMENTS[self.carrier])})")

    @property
    def placeholders(self) -> int:
        """[ENGRAM] placeholders the decoder's prompt holds (the embedding carrier's replace and prefix only)."""
        return self.k if self.carrier == "embedding" and self.placement != "add" else 0


@dataclass(frozen=True)
class Carrier:
    """A batch of compressed documents: `vectors` [B, k, d] (embedding) or `kv`, per layer ([B, h, k, hd] keys,
    [B, h, k, hd] values)."""

    vectors: torch.Tensor | None = None
    kv: tuple[tuple[torch.Tensor, torch.Tensor], ...] | None = None

    def rows(self, index: Sequence[int]) -> Carrier:
        """The carrier of documents `index` (repeats allowed: one row per question)."""
        at = torch.as_tensor(list(index), dtype=torch.long)
        if self.kv is not None:
            return Carrier(kv=tuple((k[at], v[at]) for k, v in self.kv))
        assert self.vectors is not None
        return Carrier(vectors=self.vectors[at])

    def flat(self) -> torch.Tensor:
        """[B, k, width]: one vector per memory token, as the engram store holds them (kv: the token's keys and
        values of every layer, concatenated)."""
        if self.kv is None:
            assert self.vectors is not None
            return self.vectors
        return torch.cat([t.permute(0, 2, 1, 3).flatten(2) for pair in self.kv for t in pair], dim=-1)

    def like(self, flat: torch.Tensor) -> Carrier:
        """The carrier of `flat` ([B, k, width], as `flat` gives) with this carrier's kind and shapes."""
        if self.kv is None:
            return Carrier(vectors=flat)
        tensors = [t for pair in self.kv for t in pair]  # [B, heads, k, head_dim] each, as `flat` concatenates them
        parts = flat.split([t.shape[1] * t.shape[3] for t in tensors], dim=-1)
        shaped = [p.unflatten(-1, (t.shape[1], t.shape[3])).permute(0, 2, 1, 3)
                  for p, t in zip(parts, tensors, strict=True)]
        return Carrier(kv=tuple(zip(shaped[::2], shaped[1::2], strict=True)))

    @property
    def length(self) -> int:
        return int(self.kv[0][0].shape[2] if self.kv is not None else self.vectors.shape[1])  # type: ignore[union-attr]


class Compressor(nn.Module):
    """The LoRA of the encoding pass (peft, injected into `model` in place) and the k memory tokens; `close()` takes
    the LoRA out again and gives the base model back."""

    def __init__(self, model: nn.Module, settings: CompressorSettings) -> None:
        super().__init__()
        torch.manual_seed(settings.seed)
        self.settings = settings
        config = LoraConfig(r=settings.rank, lora_alpha=2 * settings.rank, lora_dropout=0.0,
                            target_modules=LORA_TARGETS)
        self.peft = get_peft_model(model, config)
        table = model.get_input_embeddings().weight.detach()
        dim = table.shape[1]
        start = table.mean(dim=0) + table.std(dim=0) * torch.randn(settings.k, dim) * 0.1
        self.memory = nn.Parameter(start)
        # The last layer's states come out of the final norm at another scale than the token embeddings: a learned
        # scale per channel brings them there (the LoRA does the rest of the mapping, as in ICAE); a full d x d map
        # trained at the LoRA's learning rate grew the vectors far past a token's size within a few steps.
        # `add` puts the vector on every token's embedding: it starts at zero, so a fresh compressor leaves the
        # decoder's input as it is (a token-sized vector on every token made its first QA loss ~9 nats).
        scale = float(table.pow(2).mean().sqrt() / _final_norm_scale(model))
        self.embedding_scale = nn.Parameter(torch.full((dim,), 0.0 if settings.placement == "add" else scale))

    @property
    def base(self) -> nn.Module:
        return self.peft.get_base_model()

    def trainable(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def close(self) -> nn.Module:
        """The base model without the LoRA layers (nothing merged)."""
        return self.peft.unload()

    def encode(self, docs: Sequence[Sequence[int]], pad_id: int) -> Carrier:
        """Compress a batch of documents (token ids) into their carriers."""
        k = self.settings.k
        width = max(len(d) for d in docs)
        ids = torch.full((len(docs), width), pad_id, dtype=torch.long)
        mask = torch.zeros(len(docs), width + k, dtype=torch.long)
        for row, doc in enumerate(docs):  # left padding: the memory tokens end every row
            ids[row, width - len(doc):] = torch.tensor(list(doc))
            mask[row, width - len(doc):] = 1
        embeds = self.base.get_input_embeddings()(ids)
        inputs = torch.cat([embeds, self.memory.expand(len(docs), -1, -1).to(embeds.dtype)], dim=1)
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        kv = self.settings.carrier == "kv"
        out = self.peft(inputs_embeds=inputs, attention_mask=mask, position_ids=positions, use_cache=kv,
                        output_hidden_states=not kv)
        if kv:
            return Carrier(kv=tuple((layer.keys[:, :, -k:], layer.values[:, :, -k:]) for layer in out.cache.layers))
        return Carrier(vectors=out.hidden_states[-1][:, -k:] * self.embedding_scale)

    @contextmanager
    def lora_off(self) -> Iterator[None]:
        with self.peft.disable_adapter():
            yield

    def decode(self, carrier: Carrier | None, prompts: Sequence[Sequence[int]], injector: EngramInjector,
               pad_id: int, first: int = 0) -> torch.Tensor:
        """[B, L - first, V] logits of the frozen model over right-padded `prompts` (positions `first` on), each
        reading its row of the carrier (none: the base model's own logits); `injector`: the model's layer-0
        injector."""
        with self.lora_off():
            return carrier_logits(self.base, carrier, prompts, self.settings.placement, injector, pad_id, first)


def carrier_logits(model: nn.Module, carrier: Carrier | None, prompts: Sequence[Sequence[int]], placement: str,
                   injector: EngramInjector, pad_id: int, first: int = 0) -> torch.Tensor:
    """The model's logits over right-padded `prompts`, positions `first` on, with the carrier put where `placement`
    says (`replace` and `prefix`: by `injector`, which must inject at layer 0, at the prompts' [ENGRAM]
    placeholders). Training asks only for the positions that predict answer tokens: the LM head over SmolLM2's
    ~49k vocabulary is about a fifth of a forward."""
    ids, mask = pad(list(prompts), pad_id), padding_mask(list(prompts))
    keep = ids.shape[1] - first  # transformers' logits_to_keep: the last `keep` positions
    if carrier is None:
        return model(input_ids=ids, attention_mask=mask, use_cache=False, logits_to_keep=keep).logits
    if carrier.kv is not None:
        k = carrier.length
        cache = DynamicCache(ddp_cache_data=carrier.kv)
        positions = (k + torch.arange(ids.shape[1])).expand(ids.shape[0], -1)
        full_mask = torch.cat([torch.ones(ids.shape[0], k, dtype=mask.dtype), mask], dim=1)
        return model(input_ids=ids, attention_mask=full_mask, position_ids=positions, cache=cache,
                     use_cache=True, logits_to_keep=keep).logits
    vectors = carrier.vectors
    assert vectors is not None
    if placement == "add":
        embeds = model.get_input_embeddings()(ids)
        embeds = embeds + vectors.mean(dim=1, keepdim=True).to(embeds.dtype)
        return model(inputs_embeds=embeds, attention_mask=mask, use_cache=False, logits_to_keep=keep).logits
    if injector.layer != 0:
        raise ValueError(f"the embedding carrier is read at layer 0, not at the injector's layer {injector.layer}")
    with injector.vectors(list(vectors)):
        return model(input_ids=ids, attention_mask=mask, use_cache=False, logits_to_keep=keep).logits


def kv_of_vectors(model: nn.Module, vectors: torch.Tensor) -> Carrier:
    """The KV carrier the model itself makes of embedding vectors [B, k, d] read as a prefix (positions 0..k-1):
    what the `kv` carrier reduces to when the memory tokens are those vectors (the equivalence test)."""
    out = model(inputs_embeds=vectors, use_cache=True)
    return Carrier(kv=tuple((layer.keys, layer.values) for layer in out.cache.layers))


def _final_norm_scale(model: nn.Module) -> torch.Tensor:
    norm = getattr(model.get_decoder(), "norm", None)
    weight = getattr(norm, "weight", None)
    return weight.detach().pow(2).mean().sqrt() if weight is not None else torch.tensor(1.0)
