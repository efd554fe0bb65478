"""One lookup answers every question about a variant (engram/variants/common.py): what it wraps, which wrapper saves
its weights, and one rule for a name no module declares (an error for a config, 'wraps nothing' for a run dir)."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from engram import registry
from engram.config.rules import ConfigError
from engram.inputs import check_run_dir
from engram.variants.common import Undeclared, VariantSpec, variant_spec

# every built-in variant: (wrappers innermost first, outer wrapper)
DECLARED = {
    "baseline": ((), None),
    "lora": (("lora",), "lora"),
    "gated_lora": (("lora", "gate"), "gate"),
    "engram": (("engram",), "engram"),
    "engram_hybrid": (("engram",), "engram"),
    "combined": (("lora", "engram"), "engram"),
}


def test_every_registered_variant_is_answered() -> None:
    assert set(registry.names("variant")) == set(DECLARED)
    for name, (wrappers, outer) in DECLARED.items():
        spec = variant_spec(name)
        assert spec.wrappers() == wrappers and spec.outer() == outer, name
        assert spec.lora == ("lora" in wrappers) and spec.engram == ("engram" in wrappers), name
        assert spec.gated == ("gate" in wrappers), name
        assert variant_spec(name, recorded=True) is spec  # a declared name answers the same either way


def test_a_fresh_config_naming_an_unknown_variant_is_an_error() -> None:
    with pytest.raises(KeyError, match="variant.name=nosuch is not one of baseline"):
        variant_spec("nosuch")
    from engram.config import validate

    cfg = OmegaConf.create({"model": {"name": "tiny"}, "variant": {"name": "nosuch"}})
    with pytest.raises(ConfigError, match="variant.name=nosuch is not one of"):
        validate(cfg)


@pytest.mark.parametrize("name", ["four_way_lora", "?", None])
def test_a_recorded_unknown_variant_wraps_nothing(name: str | None) -> None:
    spec = variant_spec(name, recorded=True)
    assert spec is Undeclared and spec.wrappers() == () and spec.outer() is None
    assert not (spec.engram or spec.lora or spec.gated or spec.full_finetune)


def test_an_old_run_dir_with_an_undeclared_variant_stays_readable(tmp_path) -> None:
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "config.yaml").write_text("variant:\n  name: retired_variant\n")
    check_run_dir("run_dir", str(tmp_path))  # no weight file is asked for: the variant declares none


def test_a_plugin_variant_is_answered_by_the_same_lookup() -> None:
    class Toy(VariantSpec):
        lora = True
        engram = True

    registry.register("variant", "toy_variant", Toy)
    try:
        assert variant_spec("toy_variant").outer() == "engram"
    finally:
        registry.unregister("variant", "toy_variant")
    assert variant_spec("toy_variant", recorded=True) is Undeclared


def test_a_gate_without_an_adapter_is_refused() -> None:
    class GateOnly(VariantSpec):
        gated = True

    class GatedMemory(VariantSpec):
        lora = gated = engram = True

    for spec in (GateOnly, GatedMemory):
        with pytest.raises(ValueError, match="a gate needs a LoRA adapter and no memory"):
            spec.wrappers()
