"""patterns (paraphrase groups, consistency) and long_recall (lengths, target, facts, word tokenizer)."""

from __future__ import annotations

from collections import Counter

import pytest

from engram.config import ConfigError
from engram.data import build_splits
from engram.data.families import long_recall as lr
from engram.data.families import patterns as pt

# ---------------------------------------------------------------- patterns


def pattern_splits(**kw):
    return build_splits({"family": "patterns", **kw})


def test_patterns_file_has_four_categories_with_paraphrases():
    items = pt.load_items()
    assert set(pt.categories()) == {"code_idioms", "facts", "formats", "error_fixes"}
    assert len(items) >= 40
    assert len({i["key"] for i in items}) == len(items)
    assert all(len(set(i["prompts"])) == len(i["prompts"]) >= 3 for i in items)


def test_patterns_split_counts_determinism_and_groups():
    s = pattern_splits(num_train=200, num_eval=50, eval_seen_fraction=1.0, seed=1)
    assert s == pattern_splits(num_train=200, num_eval=50, eval_seen_fraction=1.0, seed=1)
    assert len(s["train"]) == 200 and len(s["eval"]) == 50
    assert {r["category"] for r in s["train"]} == set(pt.categories())
    items = {i["key"]: i for i in pt.load_items()}
    # the last paraphrase of every item is held out of training
    assert not any(r["prompt"] == items[r["key"]]["prompts"][-1] for r in s["train"])
    # eval groups: several paraphrases share a key, all with the item's answer
    per_key = Counter(r["key"] for r in s["eval"])
    assert max(per_key.values()) >= 3
    assert all(r["answer"] == items[r["key"]]["answer"] for r in s["eval"])
    assert any(r["prompt"] == items[r["key"]]["prompts"][-1] for r in s["eval"])


def test_patterns_seen_unseen():
    s = pattern_splits(num_train=60, num_eval=40, eval_seen_fraction=0.5)
    train_keys = {r["key"] for r in s["train"]}
    assert Counter(r["seen"] for r in s["eval"]) == {True: 20, False: 20}
    assert all((r["key"] in train_keys) == r["seen"] for r in s["eval"])


def test_patterns_unknown_category():
    with pytest.raises(ConfigError, match=r"data\.categories"):
        pattern_splits(categories=["poems"])
    s = pattern_splits(num_train=30, num_eval=10, categories=["formats"])
    assert {r["category"] for r in s["train"] + s["eval"]} == {"formats"}


def test_consistency_counts_groups_with_one_answer():
    recs = [{"key": "a"}, {"key": "a"}, {"key": "b"}, {"key": "b"}, {"key": "c"}]
    assert pt.consistency(recs, ["x", " x", "y", "z", "w"]) == 0.5  # a agrees, b does not, c is alone


# ---------------------------------------------------------------- long_recall


LONG_RECALL = {"vocab_size", "num_facts", "distraction_min", "distraction_max", "fixed_facts", "eval_distractions",
               "warmup_examples", "warmup_max", "warmup_copy_words"}


def recall_cfg(**kw):
    """A data=long_recall config; its own keys (data.long_recall.*) may be given flat here."""
    base = {"family": "long_recall", "num_train": 200, "num_eval": 40, "eval_seen_fraction": 1.0,
            "prompt_format": "plain"}
    own = {"vocab_size": 300, "num_facts": 16, "distraction_min": 300, "distraction_max": 500}
    own |= {k: v for k, v in kw.items() if k in LONG_RECALL}
    return {**base, **{k: v for k, v in kw.items() if k not in LONG_RECALL}, "long_recall": own}


def test_long_recall_lengths_in_range_and_target_is_first_word():
    s = build_splits(recall_cfg())
    facts = lr.make_facts(300, 16, seed=0)
    assert len(s["train"]) == 200 and len(s["eval"]) == 40
    lengths = []
    for r in s["train"] + s["eval"]:
        trigger, fact, distraction, final = lr.parse_example(r["prompt"])
        assert trigger == final and r["key"] == f"long_recall:{trigger}"
        assert fact == facts[trigger] and len(fact) == 3
        assert r["answer"] == fact[0]
        assert 300 <= len(distraction) <= 500
        assert not any(w.startswith("K") for w in distraction)  # no trigger leaks into the distraction
        lengths.append(len(distraction))
    assert min(lengths) < 340 and max(lengths) > 460  # the whole range is used, not one length
    assert Counter(r["key"] for r in s["train"]).most_common()[-1][1] >= 200 // 16  # every fact equally often


def test_long_recall_knobs_and_determinism():
    s = build_splits(recall_cfg(distraction_min=10, distraction_max=12, vocab_size=50, num_facts=4))
    assert s == build_splits(recall_cfg(distraction_min=10, distraction_max=12, vocab_size=50, num_facts=4))
    words = set(lr.vocabulary(50, seed=0))
    assert len(words) == 50
    for r in s["train"]:
        _, fact, distraction, _ = lr.parse_example(r["prompt"])
        assert 10 <= len(distraction) <= 12 and set(fact + distraction) <= words
    assert {r["key"] for r in s["train"]} == {f"long_recall:K{i:03d}" for i in range(4)}
    with pytest.raises(ConfigError, match=r"data\.long_recall\.num_facts"):
        build_splits(recall_cfg(vocab_size=10, num_facts=20))


def test_long_recall_unseen_facts_never_trained():
    s = build_splits(recall_cfg(eval_seen_fraction=0.75))
    train_keys = {r["key"] for r in s["train"]}
    seen = [r for r in s["eval"] if r["seen"]]
    unseen = [r for r in s["eval"] if not r["seen"]]
    assert len(seen) == 30 and len(unseen) == 10
    assert all(r["key"] in train_keys for r in seen)
    assert unseen and not any(r["key"] in train_keys for r in unseen)


def test_word_tokenizer_gives_one_token_per_word():
    cfg = recall_cfg(num_train=5, num_eval=0)
    tok = lr.build_word_tokenizer(cfg)
    r = build_splits(cfg)["train"][0]
    ids = tok(r["prompt"], add_special_tokens=False)["input_ids"]
    assert len(ids) == len(r["prompt"].split())
    assert tok.unk_token_id not in ids
    assert tok.decode(tok(" " + r["answer"], add_special_tokens=False)["input_ids"]) == r["answer"]


def test_long_recall_eval_at_each_distraction_length():
    s = build_splits(recall_cfg(num_eval=6, eval_distractions=[5, 50, 120]))
    assert len(s["eval"]) == 18
    for length in (5, 50, 120):
        rows = [r for r in s["eval"] if r["category"] == lr.distraction_category(length)]
        assert len(rows) == 6
        assert all(len(lr.parse_example(r["prompt"])[2]) == length for r in rows)
    assert all(300 <= len(lr.parse_example(r["prompt"])[2]) <= 500 for r in s["train"])  # training keeps its range


def test_long_recall_fresh_facts_live_only_in_the_context():
    s = build_splits(recall_cfg(fixed_facts=False, num_train=100))
    firsts: dict[str, set[str]] = {}
    for r in s["train"] + s["eval"]:
        trigger, fact, _, final = lr.parse_example(r["prompt"])
        assert trigger == final and r["answer"] == fact[0] and len(set(fact)) == 3
        firsts.setdefault(trigger, set()).add(fact[0])
    assert all(len(answers) > 1 for answers in firsts.values())  # one trigger, many answers: no fixed mapping
    assert not any(r["seen"] for r in s["eval"])  # a fresh fact was never trained on


def test_long_recall_warmup_examples_come_first_and_short():
    """data.long_recall.warmup_examples: a curriculum of short distractions first, then the studied range."""
    s = build_splits(recall_cfg(warmup_examples=60, warmup_max=20, shuffle=False))
    assert len(s["train"]) == 200  # the warm-up is part of data.num_train
    lengths = [len(lr.parse_example(r["prompt"])[2]) for r in s["train"]]
    assert all(1 <= n <= 20 for n in lengths[:60]) and all(300 <= n <= 500 for n in lengths[60:])
    assert len({r["key"] for r in s["train"][:60]}) == 16  # every fact in the warm-up too
    assert s["eval"] == build_splits(recall_cfg())["eval"]  # evaluation does not change


def test_long_recall_copy_warmup_answers_the_whole_fresh_fact():
    """data.long_recall.warmup_copy_words: each warm-up fact is that many fresh words and the answer is all of them;
    the studied examples after the warm-up and the evaluation stay as they were."""
    curriculum = {"warmup_examples": 60, "warmup_max": 20, "shuffle": False}
    s = build_splits(recall_cfg(warmup_copy_words=12, **curriculum))
    facts = set()
    for r in s["train"][:60]:
        trigger, fact, distraction, final = lr.parse_example(r["prompt"])
        assert trigger == final and len(fact) == 12 and 1 <= len(distraction) <= 20
        assert r["answer"] == " ".join(fact) and not r["seen"]  # a fresh fact: nothing to memorise
        facts.add(r["answer"])
    assert len(facts) == 60
    plain = build_splits(recall_cfg(**curriculum))
    assert s["train"][60:] == plain["train"][60:] and s["eval"] == plain["eval"]


def test_an_unshuffled_sampler_keeps_the_records_order_in_every_epoch():
    from engram.data.sampling import EpochShuffleSampler

    sampler = EpochShuffleSampler(10, seed=3, shuffle=False)
    for epoch in (0, 1, 5):
        sampler.set_epoch(epoch)
        assert list(sampler) == list(range(10))
    shuffled = EpochShuffleSampler(10, seed=3)
    assert list(shuffled) != list(range(10)) and sorted(shuffled) == list(range(10))
