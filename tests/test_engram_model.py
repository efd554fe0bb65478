"""EngramModel as a peft-style wrapper: nothing on the wrapped model is replaced, stable parameter names, and
save_pretrained / from_pretrained (one call: base + LoRA + memory from a run dir) reproduce the model exactly."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from _training_utils import tiny_cfg
from omegaconf import OmegaConf

from engram import EngramModel, add_engram, engram_state_dict, remove_engram
from engram.models import load_model
from engram.models.engram_model import load_run
from engram.models.inject import engram_memories

ROOT = Path(__file__).resolve().parent.parent
SMALL = dict(table_size=300, heads=4, dim=32, max_ngram=3, layers=[0, 1], seed=0, gate_bias=2.0, init_std=0.5)


def ids_batch(seed: int = 0, shape: tuple[int, int] = (3, 12)) -> torch.Tensor:
    return torch.randint(4, 2048, shape, generator=torch.Generator().manual_seed(seed))


def lora(model: torch.nn.Module) -> torch.nn.Module:
    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():  # LoRA B starts at zero: make the adapter matter
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.1, generator=torch.Generator().manual_seed(1))
    return peft_model


def instance_attributes(model: torch.nn.Module) -> dict[str, dict[str, int]]:
    """Every module's own attributes (name -> identity of the value): what replacing an attribute would change."""
    return {name: {k: id(v) for k, v in m.__dict__.items()} for name, m in model.named_modules()}


@pytest.mark.parametrize("with_peft", [False, True])
def test_no_attribute_of_the_wrapped_model_is_replaced(with_peft: bool) -> None:
    lm, tok = load_model("tiny")
    inner = lora(lm) if with_peft else lm
    before = instance_attributes(inner)
    wrapped = add_engram(inner, SMALL, tok)
    assert isinstance(wrapped, EngramModel) and wrapped.get_base_model() is inner
    assert instance_attributes(inner) == before  # hooks live in the existing hook dicts; no attribute is new
    wrapped.generate(input_ids=ids_batch(shape=(2, 4)), max_new_tokens=2, do_sample=False, pad_token_id=0)
    for m in (*inner.modules(), *wrapped.modules()):
        assert "_engram" not in m.__dict__ and "engram_prompt_lengths" not in m.__dict__
    assert "generate" not in lm.__dict__ and "generate" not in inner.__dict__
    assert not engram_memories(inner)  # the memories belong to the wrapper, not to the decoder layers
    assert remove_engram(wrapped) is inner
    assert instance_attributes(inner) == before
    assert not lm._forward_pre_hooks and not any(layer._forward_pre_hooks for layer in lm.model.layers)


def test_engram_source_replaces_no_instance_attribute() -> None:
    """No `obj.__dict__[...] = ...`, no `something.generate = ...`, no setattr in the package (a scan of the code)."""
    patterns = [re.compile(r"__dict__\s*\[[^\]]*\]\s*=[^=]"), re.compile(r"\.generate\s*=[^=]"),
                re.compile(r"\bsetattr\(")]
    found = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
             for path in sorted((ROOT / "engram").rglob("*.py"))
             for n, line in enumerate(path.read_text().splitlines(), 1)
             if any(p.search(line) for p in patterns)]
    assert not found, found


def test_memory_parameter_names_do_not_depend_on_peft_or_lightning() -> None:
    from engram.training.module import EngramLitModule

    plain = add_engram(load_model("tiny")[0], SMALL)
    peft = add_engram(lora(load_model("tiny")[0]), SMALL)
    names = [n for n, _ in plain.named_parameters() if n.startswith("memories.")]
    assert names and names == [n for n, _ in peft.named_parameters() if n.startswith("memories.")]
    assert "memories.1.table.weight" in names
    assert engram_state_dict(plain).keys() == engram_state_dict(peft).keys()
    assert all(k.startswith(("layers.0.", "layers.1.")) for k in engram_state_dict(peft))  # engram.safetensors keys
    module = EngramLitModule(peft, "combined", {"lr": 1e-3}, SMALL)
    assert {f"model.{n}" for n in names} <= set(module.state_dict())


def test_save_pretrained_writes_memory_and_adapter_and_from_pretrained_restores_them(tmp_path: Path) -> None:
    base, tok = load_model("tiny")
    ids = ids_batch()
    with torch.no_grad():
        plain = base(ids).logits
    wrapped = add_engram(lora(base), SMALL, tok).eval()
    with torch.no_grad():
        want = wrapped(ids).logits
    written = wrapped.save_pretrained(tmp_path / "out")
    assert written == {"engram": tmp_path / "out" / "engram.safetensors", "lora": tmp_path / "out" / "lora_adapter"}
    assert (tmp_path / "out" / "lora_adapter" / "adapter_model.safetensors").is_file()

    fresh, tok2 = load_model("tiny")
    loaded = EngramModel.from_pretrained(tmp_path / "out", fresh, tok2)  # a dir with no .hydra: the base is given
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, want)
        alone = EngramModel.from_pretrained(tmp_path / "out" / "engram.safetensors", load_model("tiny")[0], tok2)
        got = alone(ids).logits  # a file: the memory alone, no adapter
    assert not torch.equal(got, want) and not torch.equal(got, plain)
    with pytest.raises(FileNotFoundError, match="no .hydra/config.yaml"):
        EngramModel.from_pretrained(tmp_path / "out")  # nothing says which base model to load


def test_from_pretrained_on_a_trained_run_dir_reproduces_the_trained_logits(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engram.training.pipeline import train

    monkeypatch.setenv("ENGRAM_CACHE", str(tmp_path_factory.getbasetemp() / "engram-cache"))
    run_dir = tmp_path / "run"
    cfg = tiny_cfg(run_dir, "variant=combined")
    _, objects = train(cfg)
    (run_dir / ".hydra").mkdir()
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")  # what Hydra writes for a train.py run
    trained = objects["model"].eval()
    ids = ids_batch(seed=3)
    mask = torch.ones_like(ids)
    mask[0, :4] = 0  # left padding on one row
    lengths = torch.tensor([8, 6, 12])

    loaded = EngramModel.from_pretrained(run_dir)  # base model from the run's config, LoRA adapter, memory
    again, tok = load_run(run_dir)
    assert any("lora_" in n for n, _ in loaded.named_parameters()) and engram_memories(loaded)
    assert tok.pad_token_id is not None
    with torch.no_grad():
        want = trained(ids, attention_mask=mask, prompt_lengths=lengths).logits
        assert torch.equal(loaded(ids, attention_mask=mask, prompt_lengths=lengths).logits, want)
        assert torch.equal(again(ids, attention_mask=mask, prompt_lengths=lengths).logits, want)
        fresh = add_engram(load_model("tiny")[0], cfg.engram, tok)(ids, attention_mask=mask).logits
    assert not torch.equal(fresh, want)  # really the trained weights, not a fresh memory
    generated = dict(max_new_tokens=4, do_sample=False, pad_token_id=tok.pad_token_id)
    assert torch.equal(loaded.generate(input_ids=ids, attention_mask=mask, **generated),
                       trained.generate(input_ids=ids, attention_mask=mask, **generated))
