"""Every registered kind satisfies its protocols (engram/protocols.py): its factory can be called as the memory or
the data pipeline calls it, what it builds has the members and answers in the documented shapes, and each optional
member it declares has the documented form. A hash, gate or address is built from the config on the one path
(engram/config/sections.py's `build`), and its constructor's defaults equal the schema's. And the checks can fail."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from engram import protocols, registry
from engram.config import EngramConfig, build
from engram.config.sections import default_drift
from engram.protocols import Lookup, problems

CFG = EngramConfig(table_size=31, heads=2, dim=8, max_ngram=3, layers=[0])
HIDDEN, MEM_DIM, ROWS, HEADS, VOCAB = 16, 8, 124, 4, 64
KINDS = [(kind, name) for kind in protocols.PROTOCOLS for name in registry.names(kind)]


# what the memory gives each kind's constructor beside the config (engram/memory/memory.py, engram_model.py)
GIVEN = {"hash": {"layers": [0], "vocab_size": VOCAB, "pad_id": 0, "token_map": None},
         "gate": {"hidden_size": HIDDEN, "mem_dim": MEM_DIM}, "address": {"rows": ROWS, "heads": HEADS}}


def built(kind: str, name: str):
    return build(kind, name, CFG, **GIVEN[kind])


def declared_options(name: str) -> SimpleNamespace:
    """The optional attributes a data family declares (engram/registry.py reads them the same way)."""
    names = protocols.members(protocols.FamilyOptions)
    return SimpleNamespace(**{a: v for a in names if (v := registry.attribute("family", name, a)) is not None})


def test_every_kind_of_the_registry_has_protocols():
    assert set(protocols.PROTOCOLS) == set(registry.KINDS) - {"variant", "model", "logger"}  # not yet protocols
    assert {kind for kind, _ in KINDS} == set(protocols.PROTOCOLS)


@pytest.mark.parametrize(("kind", "name"), KINDS)
def test_every_registered_kind_satisfies_its_protocols(kind: str, name: str):
    factory_protocol, built_protocol, options = protocols.PROTOCOLS[kind]
    assert problems(registry.get(kind, name), factory_protocol) == []
    if built_protocol is None:  # a data family: its options sit beside `build`
        assert problems(declared_options(name), options, optional=True) == []
        return
    obj = built(kind, name)
    assert isinstance(obj, built_protocol)  # runtime_checkable: the members are there
    assert problems(obj, built_protocol) == []  # ... and take what their callers pass
    assert problems(obj, options, optional=True) == []
    if kind != "hash":
        assert isinstance(obj, nn.Module)  # its weights / buffers are saved with the memory


@pytest.mark.parametrize("name", registry.names("hash"))
def test_a_hash_lookup_answers_in_the_documented_shapes(name: str):
    hasher = built("hash", name)
    ids = torch.randint(1, VOCAB, (2, 9))
    found = hasher.lookup(ids, torch.ones_like(ids), torch.tensor([5, 9]), 4, 0)
    assert isinstance(found, Lookup) and found.keep.shape == (2, 4) and found.keep.dtype == torch.bool
    heads = len(hasher.head_sizes(0))
    assert found.slots.shape == found.keys.shape == (2, 4, heads)
    assert bool((found.slots < torch.tensor(hasher.head_sizes(0))).all())


@pytest.mark.parametrize("name", registry.names("gate"))
def test_a_gate_answers_in_the_documented_shapes(name: str):
    gate = built("gate", name)
    keep = torch.tensor([[True, True, False]])
    out, values = gate(torch.randn(1, 3, HIDDEN), torch.randn(1, 3, MEM_DIM), keep)
    assert out.shape == (1, 3, HIDDEN) and bool((out[0, 2] == 0).all())
    assert values.shape == (1, 3) and values[keep].shape == (2,)  # the gate at every position; 2 kept
    assert not any(torch.is_tensor(v) for v in vars(gate).values())  # no record of the forward kept on the gate


@pytest.mark.parametrize("name", registry.names("address"))
def test_an_address_answers_in_the_documented_shapes(name: str):
    rows = torch.randint(0, ROWS, (2, 3, HEADS))
    passed = built("address", name)(rows, rows * 7, torch.ones(2, 3, dtype=torch.bool))
    assert passed.shape == (2, 3, HEADS)


@pytest.mark.parametrize(("kind", "name"), [(k, n) for k in GIVEN for n in registry.names(k)])
def test_a_constructor_default_is_the_schemas(kind: str, name: str):
    """A default written in a constructor too (MLPGate's gate_bias was -5.0 against the schema's 0.0) is a second
    home that drifts: only an object built by hand would get it."""
    assert default_drift(kind, name, EngramConfig) == []


class DriftingGate(torch.nn.Module):
    def __init__(self, hidden_size: int, mem_dim: int, gate_bias: float = -5.0, max_ngram: int = 3) -> None:
        super().__init__()


def test_the_default_check_and_the_one_path_fail_clearly():
    registry.register("gate", "drifting", DriftingGate)
    try:
        assert default_drift("gate", "drifting", EngramConfig) == ["gate_bias=-5.0, schema 0.0"]
    finally:
        registry.unregister("gate", "drifting")
    registry.register("gate", "asks", lambda hidden_size, mem_dim, width: None)
    try:
        with pytest.raises(TypeError, match="gate=asks takes width, which is neither given"):
            build("gate", "asks", CFG, hidden_size=HIDDEN, mem_dim=MEM_DIM)
    finally:
        registry.unregister("gate", "asks")


def test_the_one_path_takes_a_kinds_section_then_the_groups_key():
    cfg = EngramConfig(table_size=31, heads=2, dim=8, layers=[0], gate_bias=-2.0, address="hybrid", seed=5)
    cfg.context.conv_kernel, cfg.hybrid.topk = 3, 2
    gate = build("gate", "context", cfg, **GIVEN["gate"])
    assert gate.gate_bias == -2.0 and gate.conv.kernel_size == (3,) and gate.conv.dilation == (cfg.max_ngram,)
    address = build("address", "hybrid", cfg, **GIVEN["address"])
    assert address.content == {"topk": 2, "key_dim": 64, "gain_init": 1.0, "seed": 5}


class Lacking:
    shared_table = False

    def head_sizes(self) -> list[int]:  # the layer is missing
        return [7]


def test_the_check_names_what_a_kind_lacks_or_cannot_take():
    assert problems(Lacking(), protocols.Hash) == [
        "head_sizes cannot be called as head_sizes(self, layer: 'int') -> 'list[int]'", "has no lookup"]
    assert not isinstance(Lacking(), protocols.Hash)
    assert problems(lambda: {}, protocols.Family) != []  # a build that takes no data config
    assert problems(lambda d, extra: {}, protocols.Family) != []  # ... or wants more than the pipeline passes
    assert problems(lambda d, extra=None: {}, protocols.Family) == []
    assert problems(SimpleNamespace(generated="yes"), protocols.FamilyOptions, optional=True) == [
        "generated = 'yes' is not a bool"]
    assert problems(SimpleNamespace(), protocols.FamilyOptions, optional=True) == []
    assert "has no check" in problems(SimpleNamespace(), protocols.FamilyOptions)
