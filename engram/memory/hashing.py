"""Shared hashing helpers: primes, vocabulary compression, per-device constants (and `Lookup`, re-exported).

The hashes themselves are one module each in `engram.memory.hashes` (see engram/registry.py); what a hash
class offers and returns (`Lookup`) is the `Hash` protocol in engram/protocols.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from tokenizers import Regex, normalizers

from engram.protocols import Lookup as Lookup  # its home is the protocols; plugins import it here too

LAYER_PRIME = 10007  # per-layer seed offset of the official demo


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


class DeviceCache:
    """Per-device copies of small constant tensors (hashing runs wherever the ids are)."""

    def __init__(self, **tensors: torch.Tensor) -> None:
        self._cpu = tensors
        self._by_device: dict[torch.device, dict[str, torch.Tensor]] = {}

    def on(self, device: torch.device) -> dict[str, torch.Tensor]:
        if device not in self._by_device:
            self._by_device[device] = {k: v.to(device) for k, v in self._cpu.items()}
        return self._by_device[device]
