"""Token ids -> table rows. Three deterministic, vectorised hashes (no Python loop over tokens).

- `PocHasher` (hash=poc): the seed module's unigram hash. Head h: `slot = (id * p_h) % table_size` with p_h from
  (17, 31, 53, 79, 107, 131, 157, 181); all heads index one shared table and their rows are averaged.
- `NgramHasher` (hash=deepseek): DeepSeek's Engram n-gram hash, bit-identical to the official demo
  (`engram_demo_v1.py`): optional vocabulary compression, per-layer odd multipliers from
  `numpy.random.default_rng(seed + 10007 * layer)`, `mix_n = XOR_{k<n} (x_{t-k} * m_k)` (int64, wrapping; positions
  before the start read the pad id) for n = 2..max_ngram, and `mix_n % P` for one distinct prime P per head.
- `SpanHasher` (hash=span): one key per sequence from the whole prompt span, looked up at every answer position.

Every hasher exposes `hash(ids, layer)` (slots per head), `head_sizes(layer)` and `keys(ids, layer)` (the value
before the per-head modulo: equal keys = the same n-gram / prompt; used for the collision rate).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from tokenizers import Regex, normalizers

POC_PRIMES = (17, 31, 53, 79, 107, 131, 157, 181)
LAYER_PRIME = 10007  # per-layer seed offset of the official demo
SPAN_MODULUS = 2_147_483_647  # 2**31 - 1 (prime): span keys live in [0, 2**31 - 1)
SPAN_POSITIONS = 4096  # per-position multipliers; longer prompts reuse them cyclically


# ---------------------------------------------------------------- small helpers


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    if n % 2 == 0 or n % 3 == 0:
        return n in (2, 3)
    f = 5
    while f * f <= n:
        if n % f == 0 or n % (f + 2) == 0:
            return False
        f += 6
    return True


def next_prime(above: int, used: set[int]) -> int:
    """Smallest prime > `above` that is not in `used`."""
    candidate = above + 1
    while not (is_prime(candidate) and candidate not in used):
        candidate += 1
    return candidate


def assign_primes(layers: Sequence[int], sizes: Sequence[int], heads: int) -> dict[int, list[list[int]]]:
    """Distinct prime table sizes in layer -> order -> head order (the demo's rule).

    The first head of an order takes the smallest unused prime >= its table size, every next head the smallest
    unused prime above the previous head's.
    """
    used: set[int] = set()
    out: dict[int, list[list[int]]] = {}
    for layer in layers:
        per_order = []
        for size in sizes:
            primes, last = [], int(size) - 1
            for _ in range(heads):
                last = next_prime(last, used)
                used.add(last)
                primes.append(last)
            per_order.append(primes)
        out[int(layer)] = per_order
    return out


def text_normaliser() -> Any:
    """The demo's token-text normaliser: NFKC -> NFD -> strip accents -> lowercase -> collapse whitespace -> strip
    (a token that is only whitespace stays one space)."""
    keep = "\ue000"  # sentinel that survives Strip
    return normalizers.Sequence([
        normalizers.NFKC(),
        normalizers.NFD(),
        normalizers.StripAccents(),
        normalizers.Lowercase(),
        normalizers.Replace(Regex(r"[ \t\r\n]+"), " "),
        normalizers.Replace(Regex(r"^ $"), keep),
        normalizers.Strip(),
        normalizers.Replace(keep, " "),
    ])


def build_token_map(tokenizer: Any, vocab_size: int | None = None) -> torch.Tensor:
    """Vocabulary compression: id -> compressed id; ids whose decoded text normalises equally share one id.

    As the demo: each id is decoded alone (special tokens kept); text with a replacement char (a partial UTF-8
    byte) is keyed by its raw token string; an empty normal form falls back to the decoded text. Compressed ids
    are numbered in order of first appearance. Ids in `[len(tokenizer), vocab_size)` (embedding rows without a
    token) get fresh ids of their own.
    """
    n = len(tokenizer)
    normaliser = text_normaliser()
    texts = tokenizer.batch_decode([[i] for i in range(n)], skip_special_tokens=False)
    new_id: dict[str, int] = {}
    table = np.empty(max(n, vocab_size or 0), dtype=np.int64)
    for tid, text in enumerate(texts):
        if "\ufffd" in text:
            key = str(tokenizer.convert_ids_to_tokens(tid))
        else:
            key = normaliser.normalize_str(text) or text
        table[tid] = new_id.setdefault(key, len(new_id))
    extra = len(table) - n
    table[n:] = len(new_id) + np.arange(extra)
    return torch.from_numpy(table)


class _DeviceCache:
    """Per-device copies of small constant tensors (hashing runs wherever the ids are)."""

    def __init__(self, **tensors: torch.Tensor) -> None:
        self._cpu = tensors
        self._by_device: dict[torch.device, dict[str, torch.Tensor]] = {}

    def on(self, device: torch.device) -> dict[str, torch.Tensor]:
        if device not in self._by_device:
            self._by_device[device] = {k: v.to(device) for k, v in self._cpu.items()}
        return self._by_device[device]


# ---------------------------------------------------------------- hash=poc


class PocHasher:
    """Seed hash: unigram, `heads` primes into one shared table of `table_size` rows."""

    shared_table = True

    def __init__(self, table_size: int, heads: int) -> None:
        if heads > len(POC_PRIMES):
            raise ValueError(f"engram.heads={heads} is more than the {len(POC_PRIMES)} primes of hash=poc")
        self.table_size, self.heads = int(table_size), int(heads)
        self._consts = _DeviceCache(primes=torch.tensor(POC_PRIMES[:heads], dtype=torch.long))

    def head_sizes(self, layer: int) -> list[int]:
        return [self.table_size] * self.heads

    def keys(self, input_ids: torch.Tensor, layer: int) -> torch.Tensor:
        return input_ids.long().unsqueeze(-1)

    def hash(self, input_ids: torch.Tensor, layer: int) -> torch.Tensor:
        primes = self._consts.on(input_ids.device)["primes"]
        return (input_ids.long().unsqueeze(-1) * primes) % self.table_size


# ---------------------------------------------------------------- hash=deepseek


class NgramHasher:
    """DeepSeek Engram n-gram hash (multiplicative-XOR over the last n ids, one prime modulus per head)."""

    shared_table = False

    def __init__(
        self,
        vocab_size: int,
        table_size: int | Sequence[int],
        max_ngram: int,
        heads: int,
        layers: Sequence[int],
        pad_id: int,
        seed: int,
        token_map: torch.Tensor | np.ndarray | None = None,
    ) -> None:
        self.max_ngram, self.heads, self.layers = int(max_ngram), int(heads), [int(x) for x in layers]
        sizes = [int(table_size)] * (max_ngram - 1) if isinstance(table_size, int) else [int(s) for s in table_size]
        if len(sizes) != max_ngram - 1:
            raise ValueError(f"engram.table_size needs one size per n-gram order ({max_ngram - 1}), got {sizes}")
        self.token_map = None if token_map is None else torch.as_tensor(token_map, dtype=torch.long)
        # The multiplier bound and the pad id live in the compressed vocabulary, as in the demo.
        self.vocab_size = int(self.token_map.max()) + 1 if self.token_map is not None else int(vocab_size)
        self.pad_id = int(self.token_map[pad_id]) if self.token_map is not None else int(pad_id)
        half = max(1, (np.iinfo(np.int64).max // self.vocab_size) // 2)
        self.multipliers = {
            layer: torch.from_numpy(
                np.random.default_rng(int(seed) + LAYER_PRIME * layer).integers(0, half, size=max_ngram, dtype=np.int64)
                * 2 + 1
            )
            for layer in self.layers
        }
        self.primes = assign_primes(self.layers, sizes, self.heads)
        consts: dict[str, torch.Tensor] = {}
        for layer in self.layers:
            consts[f"m{layer}"] = self.multipliers[layer]
            consts[f"p{layer}"] = torch.tensor(self.head_sizes(layer), dtype=torch.long)
        if self.token_map is not None:
            consts["map"] = self.token_map
        self._consts = _DeviceCache(**consts)

    def head_sizes(self, layer: int) -> list[int]:
        return [p for order in self.primes[int(layer)] for p in order]

    def compress(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = input_ids.long()
        if self.token_map is None:
            return x
        table = self._consts.on(x.device)["map"]
        return torch.where(x >= 0, table[x.clamp_min(0)], x)  # the demo leaves negative ids alone

    def _mixes(self, input_ids: torch.Tensor, layer: int) -> list[torch.Tensor]:
        """`mix_n` for n = 2..max_ngram, each LongTensor[B, T] (int64 products wrap, as numpy's)."""
        x = self.compress(input_ids)
        m = self._consts.on(x.device)[f"m{int(layer)}"]
        padded = torch.nn.functional.pad(x, (self.max_ngram - 1, 0), value=self.pad_id)
        T = x.shape[-1]
        mix = x * m[0]
        mixes = []
        for k in range(1, self.max_ngram):  # loop over n-gram orders, never over tokens
            shifted = padded[..., self.max_ngram - 1 - k : self.max_ngram - 1 - k + T]
            mix = mix ^ (shifted * m[k])
            mixes.append(mix)
        return mixes

    def keys(self, input_ids: torch.Tensor, layer: int) -> torch.Tensor:
        """`mix_n` for n = 2..max_ngram: LongTensor[B, T, max_ngram - 1]."""
        return torch.stack(self._mixes(input_ids, layer), dim=-1)

    def hash(self, input_ids: torch.Tensor, layer: int) -> torch.Tensor:
        """Slots per head, orders outer and heads inner: LongTensor[B, T, (max_ngram - 1) * heads]."""
        mixes = self._mixes(input_ids, layer)
        # One scalar modulus per head into a head-major buffer: ~2x faster than a broadcast remainder + stack.
        out = torch.empty((len(mixes) * self.heads, *mixes[0].shape), dtype=torch.long, device=mixes[0].device)
        for o, (mix, primes) in enumerate(zip(mixes, self.primes[int(layer)], strict=True)):
            for j, p in enumerate(primes):
                torch.remainder(mix, p, out=out[o * self.heads + j])  # floor modulo (non-negative), as numpy's %
        return out.movedim(0, -1)


# ---------------------------------------------------------------- hash=span


class SpanHasher:
    """Entity-keyed hash: one key per sequence from every non-pad prompt token, used at every answer position.

    key = sum_k ((x_k + 1) * a_k mod M) mod M over the prompt tokens in order (k counts non-pad tokens only, so
    left- and right-padded copies of a prompt get the same key), M = 2**31 - 1, a_k drawn per layer from
    `numpy.random.default_rng(seed + 10007 * layer)`. Head h looks up `key % P_h` (distinct primes as deepseek).
    """

    shared_table = False

    def __init__(
        self,
        table_size: int | Sequence[int],
        heads: int,
        layers: Sequence[int],
        seed: int,
        token_map: torch.Tensor | np.ndarray | None = None,
    ) -> None:
        size = int(table_size if isinstance(table_size, int) else table_size[0])
        self.heads, self.layers = int(heads), [int(x) for x in layers]
        self.token_map = None if token_map is None else torch.as_tensor(token_map, dtype=torch.long)
        self.primes = assign_primes(self.layers, [size], self.heads)
        consts: dict[str, torch.Tensor] = {}
        for layer in self.layers:
            rng = np.random.default_rng(int(seed) + LAYER_PRIME * layer)
            consts[f"a{layer}"] = torch.from_numpy(rng.integers(1, SPAN_MODULUS, size=SPAN_POSITIONS, dtype=np.int64))
            consts[f"p{layer}"] = torch.tensor(self.head_sizes(layer), dtype=torch.long)
        if self.token_map is not None:
            consts["map"] = self.token_map
        self._consts = _DeviceCache(**consts)

    def head_sizes(self, layer: int) -> list[int]:
        return list(self.primes[int(layer)][0])

    def span_keys(self, input_ids: torch.Tensor, in_prompt: torch.Tensor, layer: int) -> torch.Tensor:
        """One key per row from the tokens where `in_prompt` (bool [B, T]) holds: LongTensor[B]."""
        c = self._consts.on(input_ids.device)
        x = input_ids.long()
        if self.token_map is not None:
            x = c["map"][x.clamp_min(0)]
        rank = (in_prompt.long().cumsum(-1) - 1).clamp_min(0) % SPAN_POSITIONS
        # each term < 2**31, so the sum over up to 2**32 tokens cannot overflow int64
        terms = ((x + 1) * c[f"a{int(layer)}"][rank]) % SPAN_MODULUS
        return (terms * in_prompt).sum(-1) % SPAN_MODULUS

    def slots(self, span_key: torch.Tensor, layer: int) -> torch.Tensor:
        """Per-head slots of keys: [...] -> [..., heads]."""
        return span_key.unsqueeze(-1) % self._consts.on(span_key.device)[f"p{int(layer)}"]

    def keys(self, input_ids: torch.Tensor, layer: int, prompt_lengths: torch.Tensor | None = None) -> torch.Tensor:
        """The span key broadcast over all positions: LongTensor[B, T, 1] (prompt = [0, prompt_lengths))."""
        T = input_ids.shape[-1]
        if prompt_lengths is None:
            prompt_lengths = torch.full(input_ids.shape[:1], T)
        lengths = prompt_lengths
        in_prompt = torch.arange(T, device=input_ids.device) < lengths.to(input_ids.device).unsqueeze(-1)
        return self.span_keys(input_ids, in_prompt, layer)[:, None, None].expand(-1, T, 1)

    def hash(self, input_ids: torch.Tensor, layer: int, prompt_lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Slots of the span key at every position: LongTensor[B, T, heads] (which positions use them is up to
        the memory: positions >= prompt_length - 1)."""
        return self.slots(self.keys(input_ids, layer, prompt_lengths)[..., 0], layer)
