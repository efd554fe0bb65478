"""Recall without forgetting (issue 13): exact no-op at init, fingerprint / written addressing, answer-offset keys,
writing facts (init=prepopulate), the knock-out, and the whole recipe through train.py on the tiny model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _training_utils import tiny_cfg
from omegaconf import OmegaConf

from engram import EngramModel
from engram.config import ConfigError, EngramConfig, validate_layers
from engram.data.families.exact_match import build_exact_match
from engram.memory.address.fingerprint import FREE
from engram.memory.address.fingerprint import Address as Fingerprint
from engram.memory.address.written import Address as Written
from engram.models import load_model
from engram.training.writing import write_facts

RECALL = dict(hash="answer", address="fingerprint", gate="direct", layers=["final"], dim=64, heads=4,
              table_size=5000, init="zeros")


def tiny() -> tuple[torch.nn.Module, object]:
    model, tok = load_model("tiny")
    return model.requires_grad_(False).eval(), tok


def engram_cfg(**over: object) -> object:
    return OmegaConf.merge(OmegaConf.structured(EngramConfig), {**RECALL, **over})


def facts(n: int, seed: int = 0) -> list[dict]:
    cfg = OmegaConf.create(dict(family="exact_match", num_train=n, num_eval=20, categories=None, seed=seed,
                                prompt_format="chat", eval_seen_fraction=0.5))
    return build_exact_match(cfg)["train"]


def chat_ids(tok: object, prompts: list[str]) -> dict[str, torch.Tensor]:
    texts = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
             for p in prompts]
    return tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)


GENERAL = ["Why is the sky blue?", "Write a haiku about rain.", "What is 17 times 3?", "Name a prime above 90."]


@pytest.mark.parametrize("hash_kind", ["answer", "span", "deepseek", "poc"])
@pytest.mark.parametrize("gate", ["direct", "mlp", "context"])
def test_a_fresh_zero_memory_leaves_every_logit_bit_identical(hash_kind: str, gate: str) -> None:
    model, tok = tiny()
    batch = chat_ids(tok, GENERAL)
    with torch.no_grad():
        base = model(**batch).logits
        layers = ["final"] if hash_kind == "answer" else [0, 1]
        wrapped = EngramModel(model, engram_cfg(hash=hash_kind, gate=gate, layers=layers, address="hashed"), tok)
        assert torch.equal(wrapped(**batch).logits, base)
        wrapped.remove()


def test_fingerprint_claims_first_writer_and_passes_only_its_key() -> None:
    address = Fingerprint(rows=10)
    rows = torch.tensor([[[3], [3], [5]]])  # two keys want row 3 in one batch: the smaller wins
    keys = torch.tensor([[[70], [40], [90]]])
    address.train()
    passed = address(rows, keys, torch.tensor([[True, True, True]]))
    assert address.owner[3] == 40 and address.owner[5] == 90 and address.written() == 2
    assert passed[0, :, 0].tolist() == [False, True, True]
    address.eval()  # evaluation claims nothing: an unseen key on a free row gets nothing
    assert not address(torch.tensor([[[7]]]), torch.tensor([[[11]]]), torch.tensor([[True]])).any()
    assert address.owner[7] == FREE
    address.train()  # a later writer never takes an owned row
    assert not address(torch.tensor([[[3]]]), torch.tensor([[[70]]]), torch.tensor([[True]])).any()
    assert address.owner[3] == 40


def test_written_passes_any_key_on_a_trained_row_and_nothing_elsewhere() -> None:
    address = Written(rows=10)
    address.train()
    address(torch.tensor([[[2]]]), torch.tensor([[[5]]]), torch.tensor([[True]]))
    address.eval()
    got = address(torch.tensor([[[2], [4]]]), torch.tensor([[[9], [9]]]), torch.tensor([[True, True]]))
    assert got[0, :, 0].tolist() == [True, False]
    address(torch.tensor([[[4]]]), torch.tensor([[[9]]]), torch.tensor([[False]]))
    assert address.written() == 1


def test_answer_keys_differ_per_offset_and_ignore_padding() -> None:
    model, tok = tiny()
    wrapped = EngramModel(model, engram_cfg(), tok)
    memory = wrapped.memory(wrapped.layers[0])
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    lengths = torch.tensor([3])
    found = memory.lookup(ids, torch.ones_like(ids, dtype=torch.bool), lengths, 6)
    kept = found.keys[0, found.keep[0], 0]
    assert found.keep[0].tolist() == [False, False, True, True, True, True]
    assert kept.unique().numel() == 4  # one key per answer offset
    padded = torch.tensor([[0, 0, 5, 6, 7, 8, 9, 10]])
    mask = padded != 0
    again = memory.lookup(padded, mask, lengths + 2, 8)
    assert torch.equal(again.keys[0, again.keep[0], 0], kept)


def test_written_facts_are_recalled_by_greedy_generation_and_general_prompts_are_untouched() -> None:
    model, tok = tiny()
    general = chat_ids(tok, GENERAL)
    with torch.no_grad():
        base_logits = model(**general).logits
    wrapped = EngramModel(model, engram_cfg(), tok)
    taught = facts(60, seed=3)
    summary = write_facts(wrapped, tok, taught, steps=60, progress=False)
    assert summary.recall >= 0.9, summary
    with torch.no_grad():
        assert torch.equal(wrapped(**general).logits, base_logits)  # no key of theirs was written
        with wrapped.memories_off():  # the knock-out: the facts live in the table alone
            assert torch.equal(wrapped(**chat_ids(tok, [f["prompt"] for f in taught[:8]])).logits,
                               model(**chat_ids(tok, [f["prompt"] for f in taught[:8]])).logits)
    prompts = chat_ids(tok, [f["prompt"] for f in taught[:16]])
    tok.padding_side = "left"
    prompts = chat_ids(tok, [f["prompt"] for f in taught[:16]])
    out = wrapped.generate(**prompts, max_new_tokens=12, do_sample=False, pad_token_id=tok.pad_token_id)
    texts = tok.batch_decode(out[:, prompts["input_ids"].shape[1]:], skip_special_tokens=True)
    recalled = sum(t.strip() == f["answer"] for t, f in zip(texts, taught[:16], strict=True))
    assert recalled >= 14, list(zip(texts, [f["answer"] for f in taught[:16]], strict=True))


def test_writing_more_facts_keeps_the_earlier_ones() -> None:
    model, tok = tiny()
    wrapped = EngramModel(model, engram_cfg(), tok)
    first, second = facts(80, seed=5)[:40], facts(80, seed=5)[40:]
    assert write_facts(wrapped, tok, first, progress=False).recall >= 0.9
    write_facts(wrapped, tok, second, progress=False)
    assert write_facts(wrapped, tok, first, steps=1, progress=False).recall >= 0.9  # steps=1: only a check


def test_final_layer_resolves_and_bad_layers_fail_with_one_line() -> None:
    assert validate_layers(["final"], 30) == [30]
    assert validate_layers([2, "final"], 4) == [2, 4]
    with pytest.raises(ConfigError, match="outside"):
        validate_layers([5], 4)
    with pytest.raises(ConfigError, match="outside"):
        validate_layers([4], 4)  # the index past the last layer is spelled "final"
    with pytest.raises(ConfigError, match="twice"):
        validate_layers([1, 1], 4)


def test_prepopulate_recipe_through_train_recalls_taught_facts_and_keeps_retention(tmp_path: Path) -> None:
    from engram.training.pipeline import train

    cfg = tiny_cfg(tmp_path, "engram=recall", "engram.dim=64", "engram.table_size=5000", "trainer.max_epochs=0",
                   "trainer.max_steps=-1", "data.num_train=40", "data.num_eval=16", "eval_max_new_tokens=12")
    metrics, _ = train(cfg)
    assert metrics["prepopulate/recall"] >= 0.9
    assert metrics["eval/exact_match_seen"] >= 0.85
    assert metrics["eval/retention"] == 1.0
    assert metrics["knockout/exact_match_seen"] <= 0.1
    assert metrics["selectivity/facts"] > 0.9 and metrics["selectivity/general"] < 0.05


def test_replay_prompts_are_deterministic_distinct_and_never_retention_prompts() -> None:
    from engram.data.replay import replay_prompts
    from engram.evaluation.retention import load_general_prompts

    prompts = replay_prompts(300, seed=4)
    assert prompts == replay_prompts(300, seed=4) and prompts != replay_prompts(300, seed=5)
    assert len(set(prompts)) == 300
    retention = {m["content"] for p in load_general_prompts() for m in p["messages"]}
    assert not retention & set(prompts)
    taught = {f["prompt"] for f in facts(2000)}
    assert not taught & set(prompts)


def test_replay_kl_is_zero_for_a_fresh_memory_and_pulls_a_changed_one_back() -> None:
    from engram.training.replay import ReplaySource, gate_penalty, off_answer_positions, replay_kl

    model, tok = tiny()
    wrapped = EngramModel(model, engram_cfg(hash="deepseek", address="hashed", gate="mlp", layers=[1],
                                            init="normal", init_std=0.0), tok)
    source = ReplaySource(tok, count=32, per_step=4, seed=0, prompt_format="chat")
    batch = source.batch(step=3, device=torch.device("cpu"))
    assert torch.equal(batch["input_ids"], source.batch(step=3, device=torch.device("cpu"))["input_ids"])
    wrapped.train()
    assert float(replay_kl(wrapped, batch).detach()) == 0.0  # zero rows: the memory adds nothing
    memory = wrapped.memory(1)
    with torch.no_grad():
        memory.table.weight.normal_(std=1.0, generator=torch.Generator().manual_seed(0))
    with wrapped.tracing(live=True) as traces:
        kl = replay_kl(wrapped, batch)
    assert float(kl) > 0
    kl.backward()  # the KL reaches the rows: training can shrink what the memory adds on general prompts
    assert memory.table.weight.grad is not None and memory.table.weight.grad.coalesce().values().abs().sum() > 0
    penalty = gate_penalty(traces, batch["attention_mask"].bool())
    assert penalty is not None and 0 < float(penalty) < 1 and penalty.requires_grad
    fact_batch = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"],
                  "prompt_lengths": torch.full((4,), 3)}
    assert off_answer_positions(fact_batch)[:, :2].all() and not off_answer_positions(fact_batch)[:, 2:].any()


def test_checkpoints_keep_the_fingerprint_owners(tmp_path: Path) -> None:
    from engram.training.module import EngramLitModule

    model, tok = tiny()
    wrapped = EngramModel(model, engram_cfg(), tok)
    write_facts(wrapped, tok, facts(10), progress=False)
    wrapped.memory(wrapped.layers[0]).table.weight.requires_grad_(True)
    module = EngramLitModule(wrapped, "engram", {"lr": 1e-3}, engram_cfg())
    checkpoint = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(checkpoint)
    owners = [k for k in checkpoint["state_dict"] if k.endswith("address.owner")]
    assert owners and int((checkpoint["state_dict"][owners[0]] != FREE).sum()) > 0
