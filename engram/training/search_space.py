"""Hydra sweep overrides as an Optuna search space (hparams_search=optuna, hydra_plugins/engram_optuna_sweeper).

`hydra.sweeper.params` and the command line use Hydra's override grammar; each key becomes one Optuna
distribution, or a fixed value passed to every trial as it is:

    choice(a, b, c) / a,b,c        CategoricalDistribution([a, b, c])
    interval(lo, hi)               FloatDistribution(lo, hi)              (Hydra parses interval ends as floats)
    tag(log, interval(lo, hi))     FloatDistribution(lo, hi, log=True)
    range(start, stop, step)       IntDistribution / FloatDistribution over start .. the last value below stop,
                                   stepped, like the basic sweeper's range (hydra-optuna-sweeper included stop)
    shuffle(range(...))            CategoricalDistribution of the range's values
    key=value, ~key, +key=value    fixed: every trial gets the override as written
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, RangeSweep, Transformer
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

_CATEGORICAL_TYPES = (str, int, float, bool, type(None))


def distribution(override: Override) -> BaseDistribution | None:
    """The override's Optuna distribution; None when it does not sweep."""
    if not override.is_sweep_override():
        return None
    value = override.value()
    if override.is_interval_sweep():
        return FloatDistribution(float(value.start), float(value.end), log="log" in value.tags)
    # Transformer.encode: the values as the override grammar writes them (a list choice becomes its string)
    values = list(override.sweep_iterator(transformer=Transformer.encode))
    wrong = [v for v in values if not isinstance(v, _CATEGORICAL_TYPES)]
    if wrong:
        raise ValueError(f"{override.input_line}: Optuna choices are str, int, float, bool or null, not {wrong[0]!r}")
    if override.is_range_sweep() and not value.shuffle:
        return _range_distribution(value, values)
    return CategoricalDistribution(values)


def _range_distribution(value: RangeSweep, values: list[Any]) -> BaseDistribution:
    if not values:
        raise ValueError(f"range({value.start}, {value.stop}, {value.step}) is empty")
    low, high, step = min(values), max(values), abs(value.step)
    if all(isinstance(v, int) for v in values):
        return IntDistribution(int(low), int(high), step=int(step))
    return FloatDistribution(float(low), float(high), step=float(step))


def search_space(overrides: Sequence[str]) -> tuple[dict[str, BaseDistribution], dict[str, str]]:
    """(distributions, fixed overrides as written) by key. A later override of a key replaces an earlier one, so
    the command line (given after hydra.sweeper.params) wins, whether it sweeps or fixes the key."""
    space: dict[str, BaseDistribution] = {}
    fixed: dict[str, str] = {}
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = override.get_key_element()
        space.pop(key, None)
        fixed.pop(key, None)
        dist = distribution(override)
        if dist is None:
            fixed[key] = str(override.input_line)
        else:
            space[key] = dist
    return space, fixed


def trial_overrides(params: dict[str, Any], fixed: dict[str, str]) -> list[str]:
    """The job's command-line overrides: the trial's sampled values, then the fixed ones."""
    return [f"{key}={value}" for key, value in params.items()] + list(fixed.values())
