"""Long-term recall on a synthetic word vocabulary, for small from-scratch models.

A fixed set of `num_facts` facts maps a trigger token (`K000`, `K001`, ...) to three words. Each example shows one
fact, then `distraction_min..distraction_max` random words, then the trigger again; the target is the fact's first
word. A windowed model cannot see the fact from the trigger; a memory can learn trigger -> word across examples. The
family's own keys are `data.long_recall.*` (`Params`).

Records have the common shape: prompt `"K007 bako tumi lera . <distraction> . K007"`, answer `"bako"`, category
`long_recall`, key `long_recall:K007`. With `eval_seen_fraction < 1` some facts occur only in eval (unseen): only
in-context recall can answer those. "Tokens" here are words; `build_word_tokenizer` gives one token per word.

`data.long_recall.fixed_facts=false` draws a fresh trigger -> words for every example (the control: only the context
holds the fact, so a memory of trigger n-grams cannot know it). `data.long_recall.eval_distractions=[50, 100, ...]`
builds `num_eval` eval examples at each exact distraction length, category `distraction_<n>`: recall as a function
of distance. `data.long_recall.warmup_copy_words=N` makes the warm-up a copy task: each warm-up fact is N fresh words
and its answer is all N, so attention gets N targets to fetch from the context per example instead of one.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from tokenizers import Tokenizer, decoders, models, pre_tokenizers

from engram.config.rules import ConfigError, is_int
from engram.config.rules import check as rule
from engram.data.records import Record, as_data_cfg, eval_counts, record, rng

CATEGORY = "long_recall"
CONSONANTS = "bdfgklmnprstvz"
VOWELS = "aeiou"
SEPARATOR = "."
FACT_WORDS = 3
MAX_DISTRACTION = 100_000  # words; the examples are built in RAM


@dataclass
class Params:
    """`data.long_recall.*` (data=long_recall): the synthetic vocabulary, the facts and the distance between a fact
    and its trigger."""

    vocab_size: int = 512  # words in the synthetic vocabulary
    num_facts: int = 32  # facts (trigger -> three words)
    distraction_min: int = 300  # fewest random words between a fact and its trigger
    distraction_max: int = 500  # most random words between a fact and its trigger
    fixed_facts: bool = True  # False: every example draws its own trigger -> words (in-context facts only)
    # a curriculum: this many of the data.num_train training examples have a short distraction (1 to warmup_max
    # words) and come first, so attention learns to fetch the fact where it is near (needs data.shuffle=false)
    warmup_examples: int = 0
    warmup_max: int = 20  # most distraction words of a warm-up example
    # 0: the warm-up examples are the task's own; N: each warm-up fact is N fresh words and the answer is all N of
    # them (a copy task: N targets read from the context per example instead of one, so attention learns to fetch)
    warmup_copy_words: int = 0
    # eval: num_eval examples at each of these exact distraction lengths (category distraction_<n>); None = the
    # training range
    eval_distractions: list[int] | None = None


def vocabulary(vocab_size: int, seed: int) -> list[str]:
    """`vocab_size` distinct pronounceable lowercase words (two or three CV syllables), fixed by `seed`."""
    syllables = [c + v for c in CONSONANTS for v in VOWELS]
    n_syl = 2 if vocab_size <= len(syllables) ** 2 // 2 else 3
    space = len(syllables) ** n_syl
    if vocab_size > space:
        raise ConfigError("data.long_recall.vocab_size", vocab_size, f"must be <= {space}")
    words = []
    for index in rng(seed, "long_recall", "vocab").sample(range(space), vocab_size):
        parts = []
        for _ in range(n_syl):
            index, s = divmod(index, len(syllables))
            parts.append(syllables[s])
        words.append("".join(parts))
    return words


def triggers(num_facts: int) -> list[str]:
    return [f"K{i:03d}" for i in range(num_facts)]


def make_facts(vocab_size: int, num_facts: int, seed: int) -> dict[str, list[str]]:
    """trigger -> its three words. First words are distinct, so the target names one fact."""
    if num_facts < 1 or vocab_size < max(num_facts, FACT_WORDS):
        raise ConfigError("data.long_recall.num_facts", num_facts,
                          f"must be >= 1 and <= data.long_recall.vocab_size ({vocab_size})")
    words = vocabulary(vocab_size, seed)
    r = rng(seed, "long_recall", "facts")
    firsts = r.sample(words, num_facts)
    facts = {}
    for trig, first in zip(triggers(num_facts), firsts, strict=True):
        rest = r.sample([w for w in words if w != first], FACT_WORDS - 1)
        facts[trig] = [first, *rest]
    return facts


def make_example(trigger: str, fact: list[str], words: list[str], low: int, high: int, r: Any) -> str:
    distraction = r.choices(words, k=r.randint(low, high))
    return " ".join([trigger, *fact, SEPARATOR, *distraction, SEPARATOR, trigger])


def parse_example(prompt: str) -> tuple[str, list[str], list[str], str]:
    """(trigger, fact words, distraction words, final trigger) of a long_recall prompt — for checks and analysis."""
    tokens = prompt.split()
    first_sep = tokens.index(SEPARATOR)
    return tokens[0], tokens[1:first_sep], tokens[first_sep + 1 : -2], tokens[-1]


def fresh_fact(words: list[str], r: Any) -> list[str]:
    """A fact drawn for one example only (data.long_recall.fixed_facts=false): only the context can know it."""
    return r.sample(words, FACT_WORDS)


def distraction_category(length: int) -> str:
    """The eval category of examples with exactly `length` distraction words (data.long_recall.eval_distractions)."""
    return f"distraction_{length}"


def build_long_recall(data_cfg: Any) -> dict[str, list[Record]]:
    cfg = as_data_cfg(data_cfg)
    own, seed = cfg.long_recall, int(cfg.seed)
    low, high = int(own.distraction_min), int(own.distraction_max)
    fixed = bool(own.fixed_facts)
    words = vocabulary(int(own.vocab_size), seed)
    facts = make_facts(int(own.vocab_size), int(own.num_facts), seed)
    n_seen, n_unseen = eval_counts(int(cfg.num_eval), float(cfg.eval_seen_fraction))

    order = list(facts)
    rng(seed, "long_recall", "split").shuffle(order)
    # facts held out of training entirely, in proportion to the unseen share of eval (at least one when asked for)
    n_unseen_facts = 0 if n_unseen == 0 else max(1, round(len(order) * (1 - float(cfg.eval_seen_fraction))))
    if n_unseen_facts >= len(order) and int(cfg.num_train) > 0:
        raise ConfigError("data.eval_seen_fraction", cfg.eval_seen_fraction,
                          f"leaves no fact to train on with data.long_recall.num_facts={len(order)}")
    unseen_facts, seen_facts = order[:n_unseen_facts], order[n_unseen_facts:]

    def examples(pool: list[str], n: int, seen: bool, purpose: str, lengths: tuple[int, int] = (low, high),
                 category: str = CATEGORY, copy_words: int = 0) -> list[Record]:
        r = rng(seed, "long_recall", purpose)
        out = []
        for trig in itertools.islice(itertools.cycle(pool), n):  # every trigger equally often
            if copy_words:  # a copy task: the whole fresh fact is the answer
                fact = r.sample(words, copy_words)
                answer, taught = " ".join(fact), False
            else:  # a fresh fact is never seen in training, whatever split its trigger is in
                fact = facts[trig] if fixed else fresh_fact(words, r)
                answer, taught = fact[0], seen and fixed
            prompt = make_example(trig, fact, words, *lengths, r)
            out.append(record(prompt, answer, category, f"{CATEGORY}:{trig}", taught))
        r.shuffle(out)
        return out

    warmup = int(own.warmup_examples)  # short examples first, then the rest (data.shuffle=false keeps the order)
    copy_words = int(own.warmup_copy_words)
    train = (examples(seen_facts, warmup, True, "train_warmup", (1, int(own.warmup_max)), copy_words=copy_words)
             if warmup else []) + examples(seen_facts, int(cfg.num_train) - warmup, True, "train")
    eval_lengths = own.eval_distractions
    if eval_lengths:  # recall as a function of distance: the same facts at each exact length
        evals = [rec for d in eval_lengths for rec in
                 examples(seen_facts, n_seen, True, f"eval_seen_{d}", (int(d), int(d)), distraction_category(d))
                 + examples(unseen_facts, n_unseen, False, f"eval_unseen_{d}", (int(d), int(d)),
                            distraction_category(d))]
    else:
        evals = (examples(seen_facts, n_seen, True, "eval_seen")
                 + examples(unseen_facts, n_unseen, False, "eval_unseen"))
    return {"train": train, "eval": evals}


def build_word_tokenizer(data_cfg: Any) -> Any:
    """A word-level `PreTrainedTokenizerFast` over this task's words (one token per word), for from-scratch models.

    Special tokens match the tiny model's: `<pad>`, `<unk>`, eos `<|im_end|>`; prompts use data.prompt_format=plain.
    """
    # lazy: transformers costs ~2 s; validation builds long_recall's records, which need no tokenizer
    from transformers import PreTrainedTokenizerFast

    cfg = as_data_cfg(data_cfg)
    specials = ["<pad>", "<unk>", "<|im_end|>"]
    own = cfg.long_recall
    tokens = [*specials, "Q:", "A:", SEPARATOR, *triggers(int(own.num_facts)), *vocabulary(int(own.vocab_size),
                                                                                        int(cfg.seed))]
    tok = Tokenizer(models.WordLevel({t: i for i, t in enumerate(tokens)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", eos_token="<|im_end|>")


build, tokenizer = build_long_recall, build_word_tokenizer  # the family; its tokenizer is what model=scratch builds on


def check(d: Any) -> None:
    own = d.long_recall
    rule(own.num_facts >= 1, "data.long_recall.num_facts", own.num_facts, "must be >= 1")
    rule(own.vocab_size >= max(own.num_facts, 3), "data.long_recall.vocab_size", own.vocab_size,
         f"must be >= 3 and >= data.long_recall.num_facts ({own.num_facts})")
    rule(0 < own.distraction_min <= own.distraction_max, "data.long_recall.distraction_min", own.distraction_min,
         f"must be > 0 and <= data.long_recall.distraction_max ({own.distraction_max})")
    warmup = own.warmup_examples
    rule(is_int(warmup) and 0 <= warmup <= d.num_train, "data.long_recall.warmup_examples", warmup,
         f"must be an integer in [0, data.num_train={d.num_train}]")
    rule(is_int(own.warmup_max) and 1 <= own.warmup_max <= MAX_DISTRACTION, "data.long_recall.warmup_max",
         own.warmup_max, f"must be an integer in [1, {MAX_DISTRACTION}]")
    copy = own.warmup_copy_words
    rule(is_int(copy) and 0 <= copy <= own.vocab_size, "data.long_recall.warmup_copy_words", copy,
         f"must be an integer in [0, data.long_recall.vocab_size={own.vocab_size}]")
    rule(not copy or warmup, "data.long_recall.warmup_copy_words", copy,
         "shapes the warm-up examples; set data.long_recall.warmup_examples > 0 too")
    rule(not warmup or not d.shuffle, "data.long_recall.warmup_examples", warmup,
         "puts short examples first; set data.shuffle=false so training keeps that order")
    lengths = own.eval_distractions
    if lengths is not None:
        ok = len(lengths) > 0 and all(is_int(n) and 1 <= n <= MAX_DISTRACTION for n in lengths)
        rule(ok and len(set(lengths)) == len(lengths), "data.long_recall.eval_distractions", list(lengths),
             f"must be null or a list of distinct integers in [1, {MAX_DISTRACTION}]")
