"""add_engram / training / save-load / remove / peft on the tiny model (add_engram returns an EngramModel)."""

import pytest
import torch

from engram import add_engram, engram_parameters, load_engram, remove_engram, save_engram
from engram.config import ConfigError
from engram.models import load_model
from engram.models.inject import (
    EngramLoadError,
    engram_memories,
    engram_param_groups,
    engram_state_dict,
    read_engram_config,
)


def small(**kw):
    base = dict(table_size=300, heads=4, dim=32, max_ngram=3, layers=[1], seed=0, hash="deepseek", gate="context")
    return {**base, **kw}


def ids_batch(seed=0, shape=(3, 14)):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(4, 2048, shape, generator=g)


def is_engram(name):
    return name.startswith("memories.")  # the wrapper's ModuleDict, whatever the wrapped model is


@pytest.mark.parametrize("sparse", [True, False])
def test_inject_training_changes_only_engram_params_and_looked_up_rows(sparse):
    model, tok = load_model("tiny")
    model = add_engram(model, small(sparse=sparse, gate_bias=0.0), tokenizer=tok)
    model.requires_grad_(False)  # the engram variant freezes the base; add_engram itself freezes nothing
    for p in engram_parameters(model):
        p.requires_grad_(True)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    groups = engram_param_groups(model)
    table = engram_memories(model)[1].table
    assert groups["tables"] == [table.weight] and len(groups["dense"]) > 0
    assert len(engram_parameters(model)) == 1 + len(groups["dense"])
    table_opt = (torch.optim.SparseAdam if sparse else torch.optim.Adam)(groups["tables"], lr=1e-2)
    dense_opt = torch.optim.AdamW(groups["dense"], lr=1e-2)
    ids = ids_batch()
    for _ in range(3):
        loss = model(ids, labels=ids).loss
        loss.backward()
        assert table.weight.grad.is_sparse == sparse
        if sparse:  # the step only sees the looked-up rows
            memory = engram_memories(model)[1]
            rows = set(table.weight.grad.coalesce().indices().flatten().tolist())
            assert rows == set((memory.hasher.hash(ids, 1) + memory.offsets).flatten().tolist())
        table_opt.step()
        dense_opt.step()
        table_opt.zero_grad()
        dense_opt.zero_grad()
    after = dict(model.named_parameters())
    for name, p in after.items():
        if not is_engram(name):
            assert torch.equal(p, before[name]), f"base weight {name} changed"
    assert any(not torch.equal(p, before[n]) for n, p in after.items() if is_engram(n) and "table" not in n)
    memory = engram_memories(model)[1]
    looked_up = set((memory.hasher.hash(ids, 1) + memory.offsets).flatten().tolist())
    changed = (table.weight != before["memories.1.table.weight"]).any(1).nonzero().flatten().tolist()
    # rows never looked up stay bit-identical (the last position has no label, so a few looked-up rows get no grad)
    assert len(changed) > 0.5 * len(looked_up) and set(changed) <= looked_up


def _perturb(model):
    with torch.no_grad():
        for p in engram_parameters(model):
            p.add_(torch.randn_like(p) * 0.5)


def test_inject_save_load_roundtrip_is_bit_identical(tmp_path):
    model, tok = load_model("tiny")
    cfg = small(layers=[0, 1], gate_bias=2.0)
    model = add_engram(model, cfg, tokenizer=tok)
    _perturb(model)
    ids = ids_batch()
    with torch.no_grad():
        want = model(ids).logits
    path = save_engram(model, tmp_path / "run")
    assert path.name == "engram.safetensors"
    assert read_engram_config(path).table_size == 300
    fresh, tok2 = load_model("tiny")
    fresh = add_engram(fresh, cfg, tokenizer=tok2)
    with torch.no_grad():
        assert not torch.equal(fresh(ids).logits, want)
        load_engram(fresh, tmp_path / "run")
        assert torch.equal(fresh(ids).logits, want)
    saved = engram_state_dict(fresh)
    assert all(k.startswith(("layers.0.", "layers.1.")) for k in saved)  # engram tensors only


@pytest.mark.parametrize("change,key", [({"table_size": 301}, "engram.table_size"), ({"layers": [1]}, "layers"),
                                        ({"hash": "span"}, "engram.hash"), ({"gate_bias": 1.0}, "engram.gate_bias")])
def test_inject_load_refuses_mismatched_config_naming_the_key(tmp_path, change, key):
    model, tok = load_model("tiny")
    model = add_engram(model, small(layers=[0, 1]), tokenizer=tok)
    save_engram(model, tmp_path / "e.safetensors")
    other, tok = load_model("tiny")
    other = add_engram(other, {**small(layers=[0, 1]), **change}, tokenizer=tok)
    with pytest.raises(EngramLoadError, match=key):
        load_engram(other, tmp_path / "e.safetensors")


def test_inject_load_refuses_other_tokenizer_mapping_and_bad_shapes(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    model, tok = load_model("tiny")
    model = add_engram(model, small(), tokenizer=tok)
    path = save_engram(model, tmp_path / "e.safetensors")
    no_tok, _ = load_model("tiny")
    no_tok = add_engram(no_tok, small())  # no tokenizer -> no vocabulary compression
    with pytest.raises(EngramLoadError, match="token_map"):
        load_engram(no_tok, path)
    # same metadata, one tensor with the wrong shape
    tensors = load_file(str(path))
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    tensors["layers.1.gate.value_proj.weight"] = torch.zeros(3, 3)
    save_file(tensors, str(tmp_path / "bad.safetensors"), metadata=meta)
    with pytest.raises(EngramLoadError, match=r"layers\.1\.gate\.value_proj\.weight has shape \(3, 3\)"):
        load_engram(model, tmp_path / "bad.safetensors")
    # a pickle is refused, never unpickled
    torch.save({"x": torch.zeros(1)}, tmp_path / "pickle.safetensors")
    with pytest.raises(EngramLoadError, match="not a safetensors file"):
        load_engram(model, tmp_path / "pickle.safetensors")


def test_inject_unknown_config_key_and_layer_out_of_range_fail_clearly():
    model, tok = load_model("tiny")
    with pytest.raises(ConfigError, match="engram.tabel_size"):
        add_engram(model, {**small(), "tabel_size": 5}, tokenizer=tok)
    with pytest.raises(ConfigError, match="engram.layers"):
        add_engram(model, small(layers=[5]), tokenizer=tok)
    wrapped = add_engram(model, small(), tokenizer=tok)
    with pytest.raises(RuntimeError, match="already has Engram"):
        add_engram(wrapped, small(), tokenizer=tok)  # is an EngramModel
    with pytest.raises(RuntimeError, match="already has Engram"):
        add_engram(model, small(), tokenizer=tok)  # is wrapped by one (its hooks are on the model)
    holder = torch.nn.ModuleDict({"inner": wrapped})
    with pytest.raises(RuntimeError, match="already has Engram"):
        add_engram(holder, small(), tokenizer=tok)  # holds one


def test_inject_remove_engram_restores_the_base_model():
    model, tok = load_model("tiny")
    ids = ids_batch()
    with torch.no_grad():
        base = model(ids).logits
        wrapped = add_engram(model, small(gate_bias=8.0, init_std=1.0, layers="all"), tokenizer=tok)
        assert not torch.equal(wrapped(ids).logits, base)
        assert not torch.equal(model(ids).logits, base)  # the hooks are on the wrapped model (as peft's layers)
        assert remove_engram(wrapped) is model
        assert torch.equal(model(ids).logits, base)
    with pytest.raises(RuntimeError, match="was removed"):
        wrapped(ids)
    assert "generate" not in model.__dict__ and not engram_memories(model)
    assert not any(is_engram(n) for n, _ in model.named_parameters())
    assert not model._forward_pre_hooks and not any(layer._forward_pre_hooks for layer in model.model.layers)


def test_inject_span_prompt_lengths_kwarg_limits_memory_to_answer_positions():
    model, tok = load_model("tiny")
    ids = ids_batch(shape=(2, 10))
    with torch.no_grad():
        base = model(ids).logits
        model = add_engram(model, small(hash="span", gate="mlp", gate_bias=8.0, init_std=1.0, layers=[0]),
                           tokenizer=tok)
        got = model(input_ids=ids, prompt_lengths=torch.tensor([4, 7])).logits
        plain = model(ids).logits  # no lengths: the whole sequence is prompt
    differs = (got - base).abs().amax(-1) > 1e-4
    assert differs[0].tolist() == [False] * 3 + [True] * 7  # positions >= 4 - 1
    assert differs[1].tolist() == [False] * 6 + [True] * 4  # positions >= 7 - 1
    assert ((plain - base).abs().amax(-1) > 1e-4).tolist() == [[False] * 9 + [True]] * 2


def test_inject_works_on_a_peft_lora_model(tmp_path):
    from peft import LoraConfig, get_peft_model

    model, tok = load_model("tiny")
    ids = ids_batch()
    with torch.no_grad():
        base = model(ids).logits
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    wrapped = add_engram(peft_model, small(gate_bias=8.0, init_std=1.0), tokenizer=tok)
    names = [n for n, _ in wrapped.named_parameters()]
    assert any("lora_A" in n for n in names) and any(is_engram(n) for n in names)
    assert all(p.requires_grad for p in engram_parameters(wrapped))
    with torch.no_grad():
        out = wrapped(input_ids=ids, prompt_lengths=torch.tensor([3, 3, 3])).logits
    assert (out - base).abs().max() > 0.1  # LoRA B starts at zero, so the difference is the memory
    loss = wrapped(input_ids=ids, labels=ids).loss
    loss.backward()
    assert engram_memories(wrapped)[1].table.weight.grad is not None
    path = save_engram(wrapped, tmp_path / "e.safetensors")
    load_engram(wrapped, path)
    gen = wrapped.generate(input_ids=ids[:, :5], max_new_tokens=3, do_sample=False)
    assert gen.shape == (3, 8)
    assert remove_engram(wrapped) is peft_model
    assert not engram_memories(peft_model)


def test_inject_inner_decoder_call_without_recorded_ids_fails_clearly():
    model, tok = load_model("tiny")
    wrapped = add_engram(model, small(), tokenizer=tok)
    wrapped(ids_batch())
    with pytest.raises(RuntimeError, match="no token ids were recorded"):
        model.model(ids_batch(shape=(2, 5)))  # bypasses the causal LM's pre-hook: stale ids must not be used
    with pytest.raises(ValueError, match="inputs_embeds alone"):
        wrapped(inputs_embeds=torch.zeros(1, 3, 64))
