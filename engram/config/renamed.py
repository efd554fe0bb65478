"""Keys under an older spelling. A kind's own keys moved into its section (engram.hybrid_topk -> engram.hybrid.topk,
data.num_facts -> data.long_recall.num_facts, ...): a command line or a YAML that still uses an old one is refused
in one line naming the new spelling (Hydra alone would only say the key is not in the config), and a saved config
written before the move (a run dir's .hydra/config.yaml, an engram.safetensors header) is translated when read, so
old runs and memories still load.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

# old key -> its new spelling, in an order that moves a key before anything is put below its old place
RENAMED: dict[str, str] = {
    "engram.hybrid_topk": "engram.hybrid.topk",
    "engram.hybrid_key_dim": "engram.hybrid.key_dim",
    "engram.hybrid_gain_init": "engram.hybrid.gain_init",
    "engram.question_threshold": "engram.question.threshold",
    "engram.question_capacity": "engram.question.capacity",
    "engram.key_shuffle": "engram.deepseek.key_shuffle",
    "engram.conv_kernel": "engram.context.conv_kernel",
    "engram.offload": "engram.offload.to",  # a string then, a section now: renamed only when it holds a string
    "engram.offload_dir": "engram.offload.dir",
    "engram.offload_reuse": "engram.offload.reuse",
    "data.vocab_size": "data.long_recall.vocab_size",
    "data.num_facts": "data.long_recall.num_facts",
    "data.distraction_min": "data.long_recall.distraction_min",
    "data.distraction_max": "data.long_recall.distraction_max",
    "data.fixed_facts": "data.long_recall.fixed_facts",
    "data.eval_distractions": "data.long_recall.eval_distractions",
}


def is_old(key: str, value: Any) -> bool:
    """`key=value` is an old spelling (engram.offload only with a plain value: `engram.offload.to=...` is new)."""
    return key in RENAMED and not (key == "engram.offload" and isinstance(value, Mapping | dict))


def rule(key: str, value: Any) -> str:
    """The rule of the one-line error for an old spelling: the new one, with the value given."""
    shown = "null" if value is None else str(value).lower() if isinstance(value, bool) else value
    return f"was renamed: use {RENAMED[key]}={shown}"


def first_old(values: Mapping[str, Any], prefix: str = "") -> tuple[str, Any] | None:
    """(old key, value) of the first old spelling in a config's plain values, at any depth; None when there is none."""
    for key, value in values.items():
        full = f"{prefix}{key}"
        if is_old(full, value):
            return full, value
        if isinstance(value, Mapping):
            found = first_old(value, f"{full}.")
            if found is not None:
                return found
    return None


def upgrade(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A saved config's plain values with every old key moved to its new place (a copy; a new key already there
    wins). `prefix`: where `values` sits in a full config ("engram" for an engram.safetensors header's config)."""
    out = copy.deepcopy(dict(values))
    start = f"{prefix}." if prefix else ""
    for old, new in RENAMED.items():
        if not old.startswith(start) or not new.startswith(start):
            continue
        *parents, name = old[len(start):].split(".")
        holder = _node(out, parents)
        if holder is None or name not in holder or not is_old(old, holder[name]):
            continue
        value = holder.pop(name)
        *new_parents, new_name = new[len(start):].split(".")
        target = out
        for part in new_parents:
            target = target.setdefault(part, {})
        target.setdefault(new_name, value)
    return out


def _node(values: dict[str, Any], path: list[str]) -> dict[str, Any] | None:
    for part in path:
        values = values.get(part)
        if not isinstance(values, dict):
            return None
    return values


def load_saved(path: str | Path) -> DictConfig:
    """A saved config file (a run dir's .hydra/config.yaml) as a DictConfig, old keys moved to their new place."""
    return OmegaConf.create(upgrade(OmegaConf.to_container(OmegaConf.load(path), resolve=False)))
