"""Hashes: deepseek equals an independent numpy reference of the published demo; poc and span behave as specified."""

import re
import time
import unicodedata

import numpy as np
import pytest
import torch
from sympy import isprime

from engram.memory.hashes.deepseek import NgramHasher
from engram.memory.hashes.poc import PocHasher
from engram.memory.hashes.span import SpanHasher
from engram.memory.hashing import build_token_map


# ------------------------------------------------- independent reference (numpy, from the published demo)
def ref_primes(layers, sizes, heads):
    seen, out = set(), {}
    for layer in layers:
        per_order = []
        for size in sizes:
            start, heads_sizes = size - 1, []
            for _ in range(heads):
                c = start + 1
                while not isprime(c) or c in seen:
                    c += 1
                seen.add(c)
                heads_sizes.append(c)
                start = c
            per_order.append(heads_sizes)
        out[layer] = per_order
    return out


def ref_hash(ids, layer, *, vocab, sizes, max_ngram, heads, layers, pad, seed, token_map=None):
    x = np.asarray(ids, dtype=np.int64)
    if token_map is not None:
        x = token_map[x]
        pad = int(token_map[pad])
        vocab = int(token_map.max()) + 1
    half = max(1, int(np.iinfo(np.int64).max // vocab) // 2)
    mult = np.random.default_rng(seed + 10007 * layer).integers(0, half, size=(max_ngram,), dtype=np.int64) * 2 + 1
    primes = ref_primes(layers, sizes, heads)[layer]
    T = x.shape[1]
    shifted = [x] + [np.pad(x, ((0, 0), (k, 0)), constant_values=pad)[:, :T] for k in range(1, max_ngram)]
    cols = []
    with np.errstate(over="ignore"):
        for n in range(2, max_ngram + 1):
            mix = shifted[0] * mult[0]
            for k in range(1, n):
                mix = np.bitwise_xor(mix, shifted[k] * mult[k])
            cols += [mix % p for p in primes[n - 2]]
    return np.stack(cols, axis=2), [p for order in primes for p in order]


def ref_normalise(text):
    s = unicodedata.normalize("NFD", unicodedata.normalize("NFKC", text))
    s = "".join(c for c in s if unicodedata.category(c) != "Mn").lower()
    s = re.sub(r"[ \t\r\n]+", " ", s)
    return " " if s == " " else s.strip()


def ref_token_map(tok):
    ids, out = {}, []
    for tid in range(len(tok)):
        text = tok.decode([tid], skip_special_tokens=False)
        key = tok.convert_ids_to_tokens(tid) if "\ufffd" in text else (ref_normalise(text) or text)
        out.append(ids.setdefault(key, len(ids)))
    return np.array(out, dtype=np.int64)


# ---------------------------------------------------------------- tests
SETTINGS = [  # (layers, layer, seed, max_ngram, table_size, heads)
    ([1], 1, 0, 3, 5000, 4),
    ([1, 15], 15, 7, 2, 1000, 8),
    ([0, 3, 5], 5, 123, 4, [700, 900, 1100], 2),
    ([2], 2, 42, 5, 65537, 3),
]


@pytest.mark.parametrize("layers,layer,seed,max_ngram,table_size,heads", SETTINGS)
def test_hash_deepseek_matches_reference(layers, layer, seed, max_ngram, table_size, heads):
    vocab, pad = 49152, 2
    gen = np.random.default_rng(seed)
    ids = gen.integers(0, vocab, size=(3, 57))
    ids[1, :5] = pad  # left padding
    sizes = [table_size] * (max_ngram - 1) if isinstance(table_size, int) else table_size
    hasher = NgramHasher(vocab, table_size, max_ngram, heads, layers, pad, seed)
    want, want_sizes = ref_hash(
        ids, layer, vocab=vocab, sizes=sizes, max_ngram=max_ngram, heads=heads, layers=layers, pad=pad, seed=seed
    )
    got = hasher.hash(torch.from_numpy(ids), layer)
    assert got.dtype == torch.long and got.shape == (3, 57, (max_ngram - 1) * heads)
    assert hasher.head_sizes(layer) == want_sizes
    np.testing.assert_array_equal(got.numpy(), want)
    # primes are distinct across every layer, order and head
    every = [p for lay in layers for p in hasher.head_sizes(lay)]
    assert len(set(every)) == len(every)


def test_hash_deepseek_with_token_map_matches_reference():
    vocab, pad, seed = 3000, 7, 3
    token_map = np.random.default_rng(0).integers(0, 800, size=vocab)  # many-to-one, like compression
    ids = np.random.default_rng(1).integers(0, vocab, size=(2, 40))
    hasher = NgramHasher(vocab, 1000, 3, 4, [1, 2], pad, seed, token_map=torch.from_numpy(token_map))
    want, _ = ref_hash(ids, 2, vocab=vocab, sizes=[1000, 1000], max_ngram=3, heads=4, layers=[1, 2], pad=pad,
                       seed=seed, token_map=token_map)
    np.testing.assert_array_equal(hasher.hash(torch.from_numpy(ids), 2).numpy(), want)


def test_hash_token_map_tiny_tokenizer_matches_reference():
    from engram.models.loading import load_tiny_tokenizer

    tok = load_tiny_tokenizer()
    np.testing.assert_array_equal(build_token_map(tok).numpy(), ref_token_map(tok))


def test_hash_token_map_merges_normal_forms():
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    words = ["<pad>", "Café", "cafe", "CAFÉ", " ", "\n\n", "ﬁ", "fi", "x"]
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(WordLevel({w: i for i, w in enumerate(words)})))
    m = build_token_map(tok, vocab_size=len(words) + 2).tolist()
    assert m[1] == m[2] == m[3]  # accents and case stripped
    assert m[4] == m[5]  # whitespace runs collapse to one space
    assert m[6] == m[7]  # NFKC ligature
    assert len({m[0], m[1], m[4], m[6], m[8]}) == 5
    assert m[9:] == [max(m[:9]) + 1, max(m[:9]) + 2]  # rows past the tokenizer get their own ids
    assert m == ref_token_map(tok).tolist() + m[9:]


def test_hash_deepseek_is_fast_on_a_million_tokens():
    hasher = NgramHasher(49152, 5000, 3, 4, [1], 2, 0, token_map=torch.arange(49152))
    ids = torch.randint(0, 49152, (8, 125_000))
    # CPU time of one thread: the bar holds for a single core and does not flake when other jobs load the machine
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        best = min(_cpu_timed(lambda: hasher.hash(ids, 1)) for _ in range(3))
    finally:
        torch.set_num_threads(threads)
    assert best < 0.5, f"hashing 1M tokens took {best:.2f}s of CPU"


def _cpu_timed(fn):
    t0 = time.thread_time()
    fn()
    return time.thread_time() - t0


def test_hash_poc_is_the_seed_unigram_hash():
    ids = torch.tensor([[0, 1, 5, 2047]])
    got = PocHasher(5000, 3).hash(ids, layer=0)
    want = [[[(i * p) % 5000 for p in (17, 31, 53)] for i in (0, 1, 5, 2047)]]
    assert got.tolist() == want
    assert PocHasher(5000, 3).head_sizes(0) == [5000] * 3


def test_hash_span_one_key_per_prompt_independent_of_padding():
    hasher = SpanHasher(5000, 4, [1], seed=0)
    a = torch.tensor([[10, 11, 12, 13, 99, 98]])  # prompt = first 4 tokens
    left = torch.tensor([[3, 3, 10, 11, 12, 13]])  # same prompt, left padded
    in_a = torch.tensor([[True, True, True, True, False, False]])
    in_left = torch.tensor([[False, False, True, True, True, True]])
    ka, kl = hasher.span_keys(a, in_a, 1), hasher.span_keys(left, in_left, 1)
    assert ka.item() == kl.item()
    # a one-token difference (e.g. SYN_01762 vs SYN_01763) gives a different key and different slots
    b = torch.tensor([[10, 11, 12, 14, 99, 98]])
    assert hasher.span_keys(b, in_a, 1).item() != ka.item()
    slots = hasher.hash(a, 1, prompt_lengths=torch.tensor([4]))
    assert slots.shape == (1, 6, 4) and (slots == slots[:, :1]).all()  # the same slots at every position
    assert (slots[0, 0] < torch.tensor(hasher.head_sizes(1))).all()
