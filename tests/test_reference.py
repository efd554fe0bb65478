"""engram/reference.py (the paper's memory in one file) computes what the modular path computes for engram=deepseek.

Both run in float64: the reference's conv (F.conv1d) and the modular gate's (shifted multiply-adds) sum in
different orders, so float32 results may differ in the last bits; in float64 any real divergence still shows.
"""

import copy
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from engram import add_engram
from engram.memory.hashing import build_token_map
from engram.models import load_model
from engram.models.engram_file import as_engram_config
from engram.reference import EngramLM, head_primes

pytestmark = pytest.mark.numerics  # compares two code paths' floats: see .ci/run

CONF = Path(__file__).resolve().parent.parent / "engram" / "conf"


def deepseek(*overrides: str):
    """The engram section of `engram=deepseek` (the paper's memory), with `overrides`."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["engram=deepseek", "model=tiny", *overrides])
    return as_engram_config(cfg.engram)


def pair(cfg, perturb=True):
    """(modular EngramModel, reference EngramLM) on two copies of the tiny model, the reference holding the modular
    memories' weights; `perturb`: every memory weight moved first (a non-zero conv, an open-or-shut gate)."""
    base, tok = load_model("tiny")
    twin = copy.deepcopy(base)
    modular = add_engram(base, cfg, tokenizer=tok)
    if perturb:
        g = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for p in modular.memories.parameters():
                p.add_(torch.randn(p.shape, generator=g) * 0.5)
    token_map = build_token_map(tok, vocab_size=twin.config.vocab_size)
    reference = EngramLM(twin, cfg, token_map, pad_id=modular.context.pad_id)
    reference.memories.load_state_dict(modular.memories.state_dict())  # strict: the same keys
    return modular.double().eval(), reference.double().eval()


def batch(seed=0, shape=(3, 17)):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, 2048, shape, generator=g)
    mask = torch.ones_like(ids)
    mask[1, :5] = 0  # left padding
    mask[2, -3:] = 0  # right padding
    return ids, mask


@pytest.mark.parametrize("overrides", [(), ("engram.layers=[0,1]", "engram.table_size=[301,97]")])
@pytest.mark.parametrize("perturb", [False, True])
def test_reference_gives_the_modular_outputs(overrides, perturb):
    cfg = deepseek(*overrides)
    modular, reference = pair(cfg, perturb)
    ids, mask = batch()
    with torch.no_grad():
        want = modular(ids, attention_mask=mask).logits
        got = reference(ids, attention_mask=mask).logits
        with modular.memories_off():
            off = modular(ids, attention_mask=mask).logits
    assert (want - off).abs().max() > 1e-3  # the memory matters, so equal outputs say something
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_reference_slots_are_the_modular_slots():
    cfg = deepseek("engram.layers=[0,1]")
    modular, reference = pair(cfg, perturb=False)
    ids, _ = batch()
    for layer in (0, 1):
        memory = modular.memory(layer)
        want = memory.hasher.hash(ids, layer) + memory.offsets
        assert torch.equal(reference.memories[str(layer)].hash(ids), want)
        assert head_primes(cfg)[layer] == memory.hasher.head_sizes(layer)


@pytest.mark.parametrize("weight", ["table.weight", "gate.conv.weight", "gate.key_norm.weight", "gate.value_proj.bias"])
def test_reference_diverges_when_a_weight_differs(weight):
    """The comparison can fail: one changed weight of the reference gives other logits."""
    modular, reference = pair(deepseek())
    ids, mask = batch()
    with torch.no_grad():
        reference.memories["1"].get_parameter(weight).add_(0.1)
        want = modular(ids, attention_mask=mask).logits
        got = reference(ids, attention_mask=mask).logits
    assert not torch.allclose(got, want, rtol=1e-6, atol=1e-6)


def test_reference_diverges_when_the_hash_differs():
    modular, reference = pair(deepseek())
    reference.memories["1"].hash.multipliers[1] += 2  # still odd: another hash of the same form
    ids, mask = batch()
    with torch.no_grad():
        assert not torch.allclose(reference(ids, attention_mask=mask).logits,
                                  modular(ids, attention_mask=mask).logits, rtol=1e-6, atol=1e-6)
