"""Formatting, collators and EngramDataModule on the tiny model's tokenizer."""

from __future__ import annotations

import pytest
import torch

from engram.data.collate import GenerationCollator, TrainCollator
from engram.data.datamodule import EngramDataModule
from engram.data.families.long_recall import build_word_tokenizer
from engram.data.formatting import encode_answers, format_prompt, join_example
from engram.models.loading import load_tiny_tokenizer


@pytest.fixture(scope="module")
def tok():
    return load_tiny_tokenizer()


def dm_for(tok, **kw):
    cfg = {"family": "exact_match", "num_train": 120, "num_eval": 30, "batch_size": 8, "eval_batch_size": 7, **kw}
    dm = EngramDataModule(cfg, tok)
    dm.setup("fit")
    return dm


def test_format_prompt_chat_and_plain(tok):
    chat = format_prompt(tok, "What is the capital of France?", "chat")
    assert chat.endswith("<|im_start|>assistant\n") and "What is the capital of France?" in chat
    assert format_prompt(tok, "What is 2+2?", "plain") == "Q: What is 2+2?\nA:"
    with pytest.raises(ValueError, match="prompt_format"):
        format_prompt(tok, "x", "markdown")


@pytest.mark.parametrize("prompt_format, lead", [("chat", ""), ("plain", " ")])
def test_labels_cover_exactly_the_answer_and_eos(tok, prompt_format, lead):
    dm = dm_for(tok, prompt_format=prompt_format)
    records = dm.train_records
    seen = 0
    for batch in dm.train_dataloader():
        for i in range(batch["input_ids"].shape[0]):
            labels, ids, plen = batch["labels"][i], batch["input_ids"][i], int(batch["prompt_lengths"][i])
            kept = labels[labels != -100]
            answers = {lead + r["answer"] + tok.eos_token for r in records}
            assert tok.decode(kept) in answers
            assert (labels[:plen] == -100).all() and labels[plen] != -100
            n = int(batch["attention_mask"][i].sum())
            assert torch.equal(labels[plen:n], ids[plen:n])  # answer labels are the answer's own ids
            assert (labels[n:] == -100).all()
            seen += 1
    assert seen == len(records)


def test_labels_match_the_record_in_order(tok):
    dm = dm_for(tok)
    val = next(iter(dm.val_dataloader()))
    for i, r in enumerate(dm.eval_records[: val["input_ids"].shape[0]]):
        labels = val["labels"][i]
        assert tok.decode(labels[labels != -100]) == r["answer"] + tok.eos_token
        prompt_ids = val["input_ids"][i][: int(val["prompt_lengths"][i])].tolist()
        # the chat frame written out here, tokenized by the tokenizer itself (not the datamodule's encode_prompts)
        framed = tok(f"<|im_start|>user\n{r['prompt']}<|im_end|>\n<|im_start|>assistant\n", add_special_tokens=False)
        assert prompt_ids == framed["input_ids"]
        assert prompt_ids[0] == 1 and prompt_ids[-6:] == [1, 68, 326, 436, 1034, 202]  # <|im_start|>assistant\n


def test_dynamic_padding_to_the_longest_in_batch(tok):
    dm = dm_for(tok, max_length=256)
    widths = set()
    for batch in dm.train_dataloader():
        lengths = batch["attention_mask"].sum(1)
        assert batch["input_ids"].shape[1] == int(lengths.max()) < 256
        assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape
        pad_rows = batch["attention_mask"] == 0
        assert (batch["input_ids"][pad_rows] == tok.pad_token_id).all()
        assert (batch["attention_mask"][:, 0] == 1).all()  # right padding
        widths.add(batch["input_ids"].shape[1])
    assert len(widths) > 1  # width follows each batch, not a fixed length


def test_val_loader_covers_eval_records(tok):
    dm = dm_for(tok)
    assert sum(b["input_ids"].shape[0] for b in dm.val_dataloader()) == len(dm.eval_records) == 30
    assert sum(b["input_ids"].shape[0] for b in dm.test_dataloader()) == 30


def train_order(dm, epoch=0):
    """Record indices in the order one pass of the train loader serves them (rows matched by their tokens)."""
    index = {tuple(ids): i for i, ids in enumerate(dm.datasets["train"]["input_ids"])}
    assert len(index) == len(dm.train_records)  # every training row is distinct, so rows identify records
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(epoch)  # what Lightning does at every epoch start
    order = []
    for batch in loader:
        for ids, n in zip(batch["input_ids"], batch["attention_mask"].sum(1), strict=True):
            order.append(index[tuple(ids[: int(n)].tolist())])
    assert sorted(order) == list(range(len(dm.train_records)))  # a permutation: every record once
    return order


def test_train_order_is_a_shuffle_fixed_by_seed_and_epoch(tok):
    dm = dm_for(tok, seed=0)
    order = train_order(dm)
    assert order != list(range(len(order)))  # shuffled, not record order
    assert train_order(dm_for(tok, seed=0)) == order  # same seed and epoch: same order, whatever ran before
    assert train_order(dm) == order  # rebuilding the loader (as Lightning does on resume) does not re-shuffle
    assert train_order(dm_for(tok, seed=1)) != order
    assert train_order(dm, epoch=1) != order  # each epoch has its own order...
    assert train_order(dm, epoch=1) == train_order(dm_for(tok, seed=0), epoch=1)  # ...fixed by (seed, epoch)


def test_train_loader_resumes_mid_epoch_at_the_next_batch(tok):
    dm = dm_for(tok, seed=3)
    full = [b["input_ids"] for b in dm.train_dataloader()]
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(0)
    it = iter(loader)
    next(it), next(it)
    state = loader.state_dict()  # what Lightning puts in a checkpoint after two batches
    assert state == {"epoch": 0, "served": 2}

    resumed = dm_for(tok, seed=3).train_dataloader()
    resumed.load_state_dict(state)
    rest = [b["input_ids"] for b in resumed]
    assert len(rest) == len(full) - 2 and all(torch.equal(a, b) for a, b in zip(rest, full[2:], strict=True))
    assert len(list(resumed)) == len(full)  # the skip applies to the resumed pass only
    ended = dm_for(tok, seed=3).train_dataloader()
    ended.load_state_dict({"epoch": 0, "served": len(full)})  # saved after the epoch's last batch
    assert len(list(ended)) == len(full)


def test_generation_batches_are_left_padded_with_records(tok):
    dm = dm_for(tok, prompt_format="chat")
    batches = list(dm.generation_batches(batch_size=4))
    assert [r for b in batches for r in b["records"]] == dm.eval_records
    for b in batches:
        ids, mask = b["input_ids"], b["attention_mask"]
        assert ids.shape[0] == len(b["records"]) <= 4
        assert (mask[:, -1] == 1).all()  # every prompt ends at the last column
        assert ids.shape[1] == int(mask.sum(1).max())
        for i, r in enumerate(b["records"]):
            text = tok.decode(ids[i][mask[i].bool()])
            assert text == format_prompt(tok, r["prompt"], "chat")
    default = list(dm.generation_batches())
    assert len(default[0]["records"]) == 7  # data.eval_batch_size


def test_over_long_examples_keep_the_answer_and_the_prompt_end(tok):
    ids, labels, plen = join_example(list(range(10)), [100, 101, 2], max_length=8)
    assert ids == [5, 6, 7, 8, 9, 100, 101, 2] and plen == 5 and labels[:5] == [-100] * 5
    dm = dm_for(tok, max_length=12, prompt_format="plain")
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids"].shape[1] <= 12
    labels = batch["labels"][0]
    assert tok.decode(labels[labels != -100]).endswith(tok.eos_token)


def test_collators_directly():
    batch = TrainCollator(0)([{"input_ids": [5, 6, 7], "labels": [-100, 6, 7], "prompt_length": 1},
                              {"input_ids": [8], "labels": [8], "prompt_length": 0}])
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]
    assert batch["prompt_lengths"].tolist() == [1, 0]
    gen = GenerationCollator(0)([([5, 6], {"key": "a"}), ([7], {"key": "b"})])
    assert gen["input_ids"].tolist() == [[5, 6], [0, 7]] and gen["attention_mask"].tolist() == [[1, 1], [0, 1]]
    assert [r["key"] for r in gen["records"]] == ["a", "b"]


def test_answers_end_with_eos(tok):
    for ids in encode_answers(tok, ["Paris", "0xBBF730"], "plain"):
        assert ids[-1] == tok.eos_token_id


def test_long_recall_through_the_datamodule_with_word_tokens():
    cfg = {"family": "long_recall", "num_train": 16, "num_eval": 4, "prompt_format": "plain", "max_length": 1024,
           "batch_size": 4,
           "long_recall": {"vocab_size": 100, "num_facts": 4, "distraction_min": 300, "distraction_max": 320}}
    tok = build_word_tokenizer(cfg)
    dm = EngramDataModule(cfg, tok)
    batch = next(iter(dm.train_dataloader()))
    lengths = batch["attention_mask"].sum(1)
    # Q: + trigger + 3 words + . + 300..320 words + . + trigger + A: + answer + eos: 11 tokens besides the words
    assert ((lengths >= 300 + 11) & (lengths <= 320 + 11)).all()
    for i in range(4):
        labels = batch["labels"][i]
        kept = labels[labels != -100].tolist()
        assert len(kept) == 2 and kept[-1] == tok.eos_token_id


@pytest.mark.slow
def test_smollm_tokenizer_labels_are_answer_only():
    from transformers import AutoTokenizer

    from engram.models.loading import resolve_smollm_dir

    tok = AutoTokenizer.from_pretrained(resolve_smollm_dir())
    dm = dm_for(tok, num_train=40, num_eval=8)
    batch = next(iter(dm.val_dataloader()))
    for i, r in enumerate(dm.eval_records[: len(batch["labels"])]):
        labels = batch["labels"][i]
        assert tok.decode(labels[labels != -100]) == r["answer"] + tok.eos_token
