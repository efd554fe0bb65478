"""engram.safetensors: the memories' tensors alone, keyed `layers.{l}.{name}`, with the engram config as metadata.

The keys do not depend on how the model is wrapped (peft, Lightning, EngramModel), so a file loads into any of them.
Loading checks everything that changes hashes or shapes (config, layers, pad id, vocabulary map) and names the key
that differs; safetensors never unpickles, so a file from elsewhere cannot run code.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from safetensors import safe_open

from engram.atomic import atomic_write
from engram.config import ConfigError, EngramConfig, schema_of
from engram.config.renamed import first_old, rule, upgrade
from engram.config.rules import first_line
from engram.config.scale import STORAGE_KEYS
from engram.models.headers import ENGRAM_FILE_FORMAT, ENGRAM_FILE_NAME, ENGRAM_OLD_FORMATS, engram_file

FILE_FORMAT, OLD_FORMATS, FILE_NAME = ENGRAM_FILE_FORMAT, ENGRAM_OLD_FORMATS, ENGRAM_FILE_NAME
# Config keys that change hashes, shapes or the forward; the rest (init, lr, sparse) only matter for training.
STRUCTURAL_KEYS = ("hash", "table_size", "heads", "max_ngram", "dim", "gate", "address", "seed", "compress_vocab",
                   "context.conv_kernel", "hybrid.topk", "hybrid.key_dim", "question.capacity")


class EngramLoadError(ValueError):
    """An engram file does not fit the model it is loaded into; the message names the key."""


@dataclass(frozen=True)
class EngramSpec:
    """What, besides the tensors, decides whether a file fits a model."""

    cfg: EngramConfig
    layers: list[int]
    pad_id: int
    token_map: str  # digest of the vocabulary compression map ("none" without one)


def as_engram_config(cfg: Any) -> EngramConfig:
    """The typed engram config (with every kind's section, plugins' too) of an EngramConfig, DictConfig or dict. An
    unknown key, a wrong type or a key of an older spelling (engram.hybrid_topk, now engram.hybrid.topk) is an error
    naming the key (a file saved before the rename is translated when read: `saved_config`)."""
    schema = schema_of("engram")
    if isinstance(cfg, schema):
        return cfg
    if is_dataclass(cfg):
        plain = asdict(cfg)  # type: ignore[arg-type]
    else:
        plain = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    if (old := first_old(plain, "engram.")) is not None:
        raise ConfigError(old[0], old[1], rule(*old))
    known = {f.name for f in fields(schema)}
    for key, value in plain.items():
        if key not in known:
            raise ConfigError(f"engram.{key}", value, "is not an engram config key")
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), plain))  # type: ignore[return-value]
    except OmegaConfBaseException as e:
        raise ConfigError(f"engram.{e.full_key}", None, f"has the wrong type ({first_line(e)})") from None


def write_engram_file(path: str | Path, tensors: dict[str, torch.Tensor], spec: EngramSpec) -> Path:
    """Write `tensors` with `spec` as metadata. A path not ending in .safetensors is a directory that gets
    `engram.safetensors` inside. Returns the file written."""
    path = Path(path)
    if path.suffix != ".safetensors":
        path = path / FILE_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    plain = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    metadata = {
        "format": FILE_FORMAT,
        "engram_config": json.dumps(asdict(spec.cfg)),
        "layers": json.dumps(spec.layers),
        "pad_id": str(spec.pad_id),
        "token_map": spec.token_map,
    }
    # temp file + rename: a kill or a full disk mid-save leaves the previous file whole
    # safetensors.torch.save_file looked up at call time, so a failing disk can be simulated in tests
    return atomic_write(path, lambda tmp: safetensors.torch.save_file(plain, str(tmp), metadata=metadata))


def read_engram_config(path: str | Path) -> EngramConfig:
    """The engram config stored in a file written by `write_engram_file` (to rebuild the model before loading)."""
    cfg = saved_config(_read_metadata(engram_file(path)))
    # where the training run kept its tables (offloaded files, shards) is not part of the memory: it loads in RAM
    return replace(cfg, **{key: getattr(EngramConfig(), key) for key in STORAGE_KEYS})


def read_engram_file(path: str | Path, spec: EngramSpec, target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors of the file at `path`, after checking that they fit a model described by `spec` whose engram
    tensors are `target` (same keys and shapes). Raises EngramLoadError naming the first key that differs."""
    path = engram_file(path)
    meta = _read_metadata(path)
    saved = asdict(saved_config(meta))  # keys added since: their defaults
    here = asdict(spec.cfg)
    for key in (*STRUCTURAL_KEYS, "gate_bias"):  # gate_bias: a fixed offset in every gate
        if _norm(_get(saved, key)) != _norm(_get(here, key)):
            raise EngramLoadError(f"engram file {path}: engram.{key}={_get(saved, key)} in the file but "
                                  f"engram.{key}={_get(here, key)} in the model")
    for key, mine in (("layers", json.dumps(spec.layers)), ("pad_id", str(spec.pad_id)),
                      ("token_map", spec.token_map)):
        if meta.get(key) != mine:
            hint = " (add_engram needs the same tokenizer as when saving)" if key in ("pad_id", "token_map") else ""
            raise EngramLoadError(
                f"engram file {path}: {key}={meta.get(key)} in the file but {mine} in the model{hint}"
            )
    tensors = safetensors.torch.load_file(str(path))  # safetensors: plain tensors, never unpickles
    if meta["format"] in OLD_FORMATS and spec.cfg.gate == "mlp":
        # the old MLP gate's last bias started at gate_bias; now gate_bias is added on top, so take it out once
        for key in [k for k in tensors if k.endswith(".gate.mlp.2.bias")]:
            tensors[key] = tensors[key] - float(saved["gate_bias"])
    for key in sorted(set(target) | set(tensors)):
        if key not in tensors:
            raise EngramLoadError(f"engram file {path}: tensor {key} is missing")
        if key not in target:
            raise EngramLoadError(f"engram file {path}: unexpected tensor {key}")
        if tensors[key].shape != target[key].shape:
            raise EngramLoadError(f"engram file {path}: tensor {key} has shape {tuple(tensors[key].shape)}, "
                                  f"the model expects {tuple(target[key].shape)}")
    return tensors


def saved_config(meta: dict[str, str]) -> EngramConfig:
    """The engram config in a file's metadata, typed; keys renamed since it was written take their new place."""
    return as_engram_config(upgrade(json.loads(meta["engram_config"]), "engram"))


def _get(values: dict[str, Any], key: str) -> Any:
    """A dotted key (hybrid.topk) of nested plain values."""
    for part in key.split("."):
        values = values.get(part) if isinstance(values, dict) else None
    return values


def _norm(x: Any) -> Any:
    return list(x) if isinstance(x, tuple) else x


def _read_metadata(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise FileNotFoundError(f"engram file {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:  # reads the JSON header only; nothing is unpickled
            meta = f.metadata() or {}
    except Exception as e:
        raise EngramLoadError(f"engram file {path} is not a safetensors file ({e})") from None
    if meta.get("format") not in (FILE_FORMAT, *OLD_FORMATS) or "engram_config" not in meta:
        raise EngramLoadError(f"engram file {path}: not written by save_engram (format={meta.get('format')})")
    return meta
