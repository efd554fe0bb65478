"""Where the memory's gate opens on real text: the per-token gate aggregated by token class and by how often the
token's bigram occurred in the training text.

The paper (arXiv 2601.07372) reports the gate opening on multi-token named entities and fixed phrases. The classes
here are read off each token's own text and its neighbour's, the same for any tokenizer:
  inside_word    continues a word or identifier the previous token started (no space between them)
  name_start     starts a capitalised word (a name, a class, a sentence start)
  word_start     starts any other word or identifier
  function_word  a closed-class word: English function words and Python's keywords
  number, punctuation, whitespace
Frequency buckets: the (previous token, token) bigram's count in the training blocks: 0, 1-9, 10-99, 100+.
Metrics per memory layer: `gate_class/layer{L}/{class}` and `gate_freq/layer{L}/{bucket}` (mean gate), with the
share of tokens in each (`gate_class/share/{class}`), so a mean over few tokens reads as such.
"""

from __future__ import annotations

import keyword
import string
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import torch

from engram.memory.trace import MemoryTrace

FUNCTION_WORDS = frozenset(
    "a an the of to in on at by for from with as and or but not no nor if then else is are was were be been being "
    "it its this that these those there here he she they we you i me my our your their his her them us do does did "
    "has have had will would can could should may might must shall so than too very also just which who whom whose "
    "what when where why how all any each some such only own same into about over under again further once".split()
) | frozenset(keyword.kwlist) | frozenset(w.lower() for w in keyword.kwlist)
CLASSES = ("inside_word", "name_start", "word_start", "function_word", "number", "punctuation", "whitespace")
BUCKETS = ((1, "0"), (10, "1-9"), (100, "10-99"), (None, "100+"))  # (count below, name); None = unbounded
EXAMPLES, EXAMPLE_TOKENS = 4, 40  # what the heat map shows: the first tokens of the first test blocks
WORD_CHARS = set(string.ascii_letters + string.digits + "_")


def token_texts(tokenizer: Any, ids: list[int]) -> list[str]:
    """Each token's own surface text (a leading space kept), e.g. ['def', ' get', '_item', '(']."""
    return [tokenizer.convert_tokens_to_string([t]) for t in tokenizer.convert_ids_to_tokens(ids)]


def classify(texts: list[str]) -> list[str]:
    """The class of each token given the previous one (see the module doc)."""
    out = []
    for i, text in enumerate(texts):
        word = text.strip()
        glued = i > 0 and text[:1] in WORD_CHARS and texts[i - 1][-1:] in WORD_CHARS
        if not word:
            out.append("whitespace")
        elif all(c in string.punctuation for c in word):
            out.append("punctuation")
        elif glued:
            out.append("inside_word")
        elif word.isdigit():
            out.append("number")
        elif word.lower() in FUNCTION_WORDS or word in FUNCTION_WORDS:
            out.append("function_word")
        elif word[0].isupper():
            out.append("name_start")
        else:
            out.append("word_start")
    return out


def bigram_codes(ids: torch.Tensor, vocab: int) -> torch.Tensor:
    """[B, T-1] one int64 code per (previous, current) token pair of each row."""
    return ids[:, :-1].long() * vocab + ids[:, 1:].long()


class BigramCounts:
    """How often each bigram occurs in a set of blocks (sorted unique codes and their counts)."""

    def __init__(self, blocks: torch.Tensor, vocab: int) -> None:
        self.vocab = int(vocab)
        self.codes, self.counts = torch.unique(bigram_codes(blocks, self.vocab).flatten(), return_counts=True)

    def of(self, ids: torch.Tensor) -> torch.Tensor:
        """[B, T] counts of each position's bigram (-1 at the first position, which has no previous token)."""
        codes = bigram_codes(ids, self.vocab)
        if self.codes.numel() == 0:
            counts = torch.zeros_like(codes)
        else:
            at = torch.searchsorted(self.codes, codes).clamp_max(len(self.codes) - 1)
            counts = torch.where(self.codes[at] == codes, self.counts[at], 0)
        return torch.cat([torch.full_like(counts[:, :1], -1), counts], dim=1)


def bucket_of(count: int) -> str:
    for upper, name in BUCKETS:
        if upper is None or count < upper:
            return name
    return BUCKETS[-1][1]


class GateByClass:
    """Accumulates each memory's per-token gate (`MemoryTrace.entering()` of a traced forward) by class and bucket."""

    def __init__(self, tokenizer: Any, counts: BigramCounts | None) -> None:
        self.tokenizer, self.counts = tokenizer, counts
        self.sums: dict[str, float] = defaultdict(float)
        self.n: dict[str, int] = defaultdict(int)
        self.tokens = 0
        self.examples: list[tuple[list[str], list[float]]] = []  # (token texts, gate) of the first rows, lowest layer

    def __call__(self, batch: dict[str, torch.Tensor], traces: Mapping[int, MemoryTrace]) -> None:
        """`traces`: the memories' traces of the forward on `batch` (`EngramModel.tracing()`)."""
        ids = batch["input_ids"].cpu()
        classes = [classify(token_texts(self.tokenizer, row.tolist())) for row in ids]
        freq = self.counts.of(ids) if self.counts is not None else None
        self.tokens += ids.numel()
        for c in (c for row in classes for c in row):
            self.n[f"share/{c}"] += 1
        for layer, trace in sorted(traces.items()):
            gate = trace.entering().cpu()
            if gate.shape != ids.shape:
                raise ValueError(f"engram: the memory trace covers {tuple(gate.shape)} positions but the batch has "
                                 f"{tuple(ids.shape)}; pass the traces of the forward on this batch")
            if layer == min(traces) and len(self.examples) < EXAMPLES:
                self.examples += [(token_texts(self.tokenizer, ids[b, :EXAMPLE_TOKENS].tolist()),
                                   gate[b, :EXAMPLE_TOKENS].tolist()) for b in range(min(len(ids), EXAMPLES))]
            for b, row in enumerate(classes):
                for t, c in enumerate(row):
                    self._add(f"layer{layer}/{c}", float(gate[b, t]))
                    if freq is not None and freq[b, t] >= 0:
                        self._add(f"freq/layer{layer}/{bucket_of(int(freq[b, t]))}", float(gate[b, t]))

    def _add(self, key: str, value: float) -> None:
        self.sums[key] += value
        self.n[key] += 1

    def metrics(self) -> dict[str, float]:
        out = {}
        for key, n in self.n.items():
            if key.startswith("share/"):
                out[f"gate_class/{key}"] = n / max(1, self.tokens)
            elif key.startswith("freq/"):
                out[f"gate_freq/{key[5:]}"] = self.sums[key] / n
            else:
                out[f"gate_class/{key}"] = self.sums[key] / n
        return dict(sorted(out.items()))
