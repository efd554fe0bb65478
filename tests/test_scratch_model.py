"""model=scratch (engram/models/scratch.py): the sliding window is really applied, a scratch model trains every
weight next to its memory, and its config rules give one line. The long_recall knobs it is studied with
(data.long_recall.fixed_facts, eval_distractions) are tested in tests/test_data_patterns_recall.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from _training_utils import CONF_DIR, tiny_cfg
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from engram.config import ConfigError, validate
from engram.models.loading import load_model
from engram.training.pipeline import train

DATA = {"family": "long_recall", "long_recall": {"vocab_size": 100, "num_facts": 4}, "seed": 0}
SHAPE = {"name": "scratch", "hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64}
WINDOW = 8
SEQ = 40

# a tiny long_recall run on model=scratch (a few seconds)
SCRATCH = ["model=scratch", "data=long_recall", "model.hidden_size=32", "model.num_layers=2",
           "model.intermediate_size=64", f"model.attention_window={WINDOW}", "data.long_recall.vocab_size=100",
           "data.long_recall.num_facts=4", "data.long_recall.distraction_min=10", "data.long_recall.distraction_max=20",
           "data.long_recall.eval_distractions=[5,30]",
           "data.num_eval=4", "eval_max_new_tokens=2"]


def scratch(window: int | None, attention: str = "sdpa") -> torch.nn.Module:
    model, _ = load_model({**SHAPE, "attention_window": window}, data=DATA)
    model.config._attn_implementation = attention
    return model


def last_logits(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids).logits[0, -1]


def changed_at(ids: torch.Tensor, back: int) -> torch.Tensor:
    """`ids` with the token `back` positions before the last one replaced."""
    out = ids.clone()
    out[0, -1 - back] = 3 if int(ids[0, -1 - back]) != 3 else 4
    return out


def ids_of_length(n: int) -> torch.Tensor:
    return torch.randint(10, 100, (1, n), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_tokens_beyond_the_window_do_not_reach_the_last_position(attention: str) -> None:
    model, ids = scratch(WINDOW, attention), ids_of_length(SEQ)
    base = last_logits(model, ids)
    # each layer looks WINDOW - 1 tokens back, so through both layers the last position can see 2 * (WINDOW - 1)
    reach = SHAPE["num_layers"] * (WINDOW - 1)
    assert torch.equal(last_logits(model, changed_at(ids, reach + 1)), base)
    assert torch.equal(last_logits(model, changed_at(ids, SEQ - 1)), base)
    assert not torch.allclose(last_logits(model, changed_at(ids, WINDOW - 1)), base)  # inside the window
    # full attention (attention_window=null, the same weights) sees the far token
    full = scratch(None, attention)
    full.load_state_dict(model.state_dict())
    assert not torch.allclose(last_logits(full, changed_at(ids, SEQ - 1)), last_logits(full, ids))


def test_each_layer_attends_to_exactly_the_window() -> None:
    model, ids = scratch(WINDOW, "eager"), ids_of_length(SEQ)
    with torch.no_grad():
        attentions = model(input_ids=ids, output_attentions=True).attentions
    for weights in attentions:  # (batch, heads, query, key)
        last = weights[0, :, -1]
        assert torch.all(last[:, : SEQ - WINDOW] == 0)  # keys at WINDOW or more positions back: exactly no weight
        assert torch.all(last[:, SEQ - WINDOW :] > 0)  # itself and the WINDOW - 1 before it
    assert torch.allclose(last_logits(model, ids), last_logits(scratch(WINDOW, "sdpa"), ids), atol=1e-5)


def test_scratch_model_and_memory_train_together(tmp_path: Path) -> None:
    cfg = tiny_cfg(tmp_path, *SCRATCH, "variant=engram")
    fresh, _ = load_model(cfg.model, data=cfg.data)
    _, objects = train(cfg)
    model = objects["model"]
    assert all(p.requires_grad for p in model.parameters())  # the base trains beside the memory
    trained = model.lm.state_dict()
    assert not torch.equal(trained["model.embed_tokens.weight"], fresh.state_dict()["model.embed_tokens.weight"])
    assert model.lm.config.sliding_window == WINDOW
    assert (tmp_path / "engram.safetensors").is_file() and (tmp_path / "model" / "config.json").is_file()
    metrics = json.loads((tmp_path / "eval.json").read_text())["metrics"]
    assert {"eval/exact_match/distraction_5", "eval/exact_match/distraction_30"} <= set(metrics)


def test_scratch_baseline_trains_every_weight_without_finetune_flag(tmp_path: Path) -> None:
    cfg = tiny_cfg(tmp_path, *SCRATCH, "variant=baseline")
    assert cfg.variant.finetune == "none"
    _, objects = train(cfg)
    assert objects["trainer"].global_step == 2 and all(p.requires_grad for p in objects["model"].parameters())


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["model.attention_window=0"], "model.attention_window"),
        (["model=tiny", "model.attention_window=8"], "model.attention_window"),
        (["model.experts=-1"], "model.experts"),
        (["model=tiny", "model.experts=4"], "model.experts"),
        (["model.experts=4", "model.experts_per_token=5"], "model.experts_per_token"),
        (["data.long_recall.warmup_examples=10"], "data.long_recall.warmup_examples"),  # shuffled: no curriculum
        (["data.long_recall.warmup_examples=100000", "data.shuffle=false"], "data.long_recall.warmup_examples"),
        (["data.long_recall.warmup_copy_words=8"], "data.long_recall.warmup_copy_words"),  # no warm-up to shape
        (["data.long_recall.warmup_copy_words=-1"], "data.long_recall.warmup_copy_words"),
        (["data.long_recall.warmup_copy_words=100000", "data.long_recall.warmup_examples=10", "data.shuffle=false"],
         "data.long_recall.warmup_copy_words"),
        (["model.experts=4", "model.memory_share=1.5", "variant=engram"], "model.memory_share"),
        (["model.memory_share=0.5", "variant=engram"], "model.memory_share"),  # no experts to move
        (["model.experts=22", "model.memory_share=0.01", "variant=engram"], "model.memory_share"),  # rounds to 0
        (["model.experts=4", "model.memory_share=0.5", "variant=baseline"], "model.memory_share"),  # no memory
        (["model.experts=4", "model.memory_share=0", "variant=engram"], "model.memory_share"),  # the MoE alone
        (["model=tiny", "data=exact_match", "model.memory_share=0.5"], "model.memory_share"),
        (["variant=lora"], "variant.name"),
        (["data=exact_match"], "data.family"),
        (["data.long_recall.eval_distractions=[0]"], "data.long_recall.eval_distractions"),
        (["data.long_recall.eval_distractions=[50,50]"], "data.long_recall.eval_distractions"),
    ],
)
def test_bad_scratch_config_is_one_line(overrides: list[str], key: str) -> None:
    base = ["model=scratch", "data=long_recall", "engram=deepseek"]
    given = {o.split("=", 1)[0] for o in overrides}
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[*(o for o in base if o.split("=", 1)[0] not in given), *overrides])
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    assert str(err.value).startswith(f"config error: {key}=") and "\n" not in str(err.value)


def test_a_scratch_run_dir_reloads_with_its_trained_weights(tmp_path: Path) -> None:
    """EngramModel.from_pretrained (evaluate.py run_dir=, demo.py, report.py's gallery) rebuilds the run's trained
    model from model/, not a fresh random one, on the data's vocabulary."""
    from engram.models.engram_model import EngramModel, run_model_config

    cfg = tiny_cfg(tmp_path, *SCRATCH, "variant=engram")
    _, objects = train(cfg)
    trained = objects["model"].eval()
    (tmp_path / ".hydra").mkdir()
    OmegaConf.save(cfg, tmp_path / ".hydra" / "config.yaml")
    assert run_model_config(tmp_path).path == str(tmp_path / "model")
    reloaded = EngramModel.from_pretrained(tmp_path)
    ids = objects["tokenizer"]("K000 . K001", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.allclose(reloaded(input_ids=ids).logits, trained(input_ids=ids).logits, atol=1e-5)
    # evaluate.py run_dir=<it> data=...: the run's own trained model scored again (on its data's vocabulary), not a
    # model the evaluation config would build
    from engram.evaluation.evaluate import reevaluate_run

    again = reevaluate_run(tmp_path, tmp_path / "again", cfg.data)
    before = json.loads((tmp_path / "eval.json").read_text())["metrics"]
    assert again.result["metrics"]["eval/exact_match"] == before["eval/exact_match"]
