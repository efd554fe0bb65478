"""evaluate.py's modes (engram.config.rules.evaluate_mode): each alone is its mode; any two are one config line naming
both keys, so no mode is silently dropped (the subprocess checks of exit 2 are in tests/test_bad_inputs.py)."""

from __future__ import annotations

from itertools import combinations

import pytest
from omegaconf import OmegaConf

from engram.config import ConfigError, validate_evaluate_keys

# one setting per mode key: (key, value as typed, the mode it asks for)
MODE_KEYS = [("train_variants", True, "train_variants"), ("run_dirs", ["a"], "runs"), ("multirun_dir", "m", "runs"),
             ("run_dir", "r", "run_dir"), ("engram_path", "e", "engram_path")]


def mode_of(**keys: object) -> str:
    from engram.config.rules import evaluate_mode

    return evaluate_mode(validate_evaluate_keys(OmegaConf.create(keys)))


@pytest.mark.parametrize(("key", "value", "mode"), MODE_KEYS)
def test_each_mode_alone(key: str, value: object, mode: str) -> None:
    assert mode_of(**{key: value}) == mode


@pytest.mark.parametrize(("a", "b"), list(combinations(MODE_KEYS, 2)))
def test_two_modes_are_one_line_naming_both(a: tuple, b: tuple) -> None:
    if a[2] == b[2]:  # run_dirs and multirun_dir list finished runs together: one comparison
        assert mode_of(**{a[0]: a[1], b[0]: b[1]}) == "runs"
        return
    with pytest.raises(ConfigError) as e:
        mode_of(**{a[0]: a[1], b[0]: b[1]})
    message = str(e.value)
    assert len(message.splitlines()) == 1 and f"{a[0]}=" in message and f" and {b[0]}=" in message, message


def test_nothing_and_reevaluate_without_runs() -> None:
    with pytest.raises(ConfigError, match="nothing to evaluate; give one of train_variants=true"):
        mode_of()
    with pytest.raises(ConfigError, match="reevaluate=true .* not with engram_path"):
        mode_of(engram_path="e", reevaluate=True)
    assert mode_of(multirun_dir="m", reevaluate=True) == "runs" and mode_of(run_dir="r", reevaluate=True) == "run_dir"


def test_the_old_key_is_not_a_key() -> None:
    from engram.config import EVALUATE_KEYS
    from engram.config.rules import RENAMED_EVALUATE_KEYS

    assert "four_way" not in EVALUATE_KEYS and RENAMED_EVALUATE_KEYS["four_way"][0] in EVALUATE_KEYS
