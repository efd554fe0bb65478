"""What a model or memory file says about itself, read from its header with the standard library only.

Config validation needs a model's depth and width, an engram file's metadata and whether a checkpoint is one,
before any weights load and without importing torch or transformers (together ~3 s): a bad value must fail fast.
Every reader raises `HeaderError` (one line) on a file that is not what it should be.
"""

from __future__ import annotations

import json
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

from engram.config.rules import first_line

# GGUF metadata value types (gguf spec): fixed-size scalars by struct code, 8 = string, 9 = array.
_GGUF_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_GGUF_STRING, _GGUF_ARRAY = 8, 9
MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024  # the format's own limit
GATE_FILE = "lora_gate.safetensors"  # a gated_lora run's gate (engram/models/gated_lora.py writes it)

# engram.safetensors (engram/models/engram_file.py reads and writes it; its constants live here, torch-free, so that
# input checks can recognise a memory file before any weights load)
ENGRAM_FILE_FORMAT = "engram-lab/2"
# engram-lab/1: gate=mlp kept gate_bias inside its trained last bias (now a fixed offset, as in gate=context)
ENGRAM_OLD_FORMATS = ("engram-lab/1",)
ENGRAM_FILE_NAME = "engram.safetensors"


def engram_file(path: str | Path) -> Path:
    """`path` itself, or `path/engram.safetensors` when `path` is a directory."""
    p = Path(path)
    return p / ENGRAM_FILE_NAME if p.is_dir() else p


class HeaderError(ValueError):
    """A file's header is missing, truncated or of another format; the message is one line."""


def config_json_shape(config: dict[str, Any]) -> tuple[int, int] | None:
    """(decoder layers, hidden size) from a HF config.json dict (or its text_config), None if it does not say."""
    for node in (config, config.get("text_config") or {}):
        depth = next((node[k] for k in ("num_hidden_layers", "n_layer", "num_layers") if k in node), None)
        width = next((node[k] for k in ("hidden_size", "n_embd", "d_model") if k in node), None)
        if isinstance(depth, int) and isinstance(width, int):
            return depth, width
    return None


def read_config_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise HeaderError(f"{path} is not a readable config.json ({first_line(e)})") from None
    if not isinstance(data, dict):
        raise HeaderError(f"{path} is not a config.json (not a JSON object)")
    return data


# ---------------------------------------------------------------- GGUF


def gguf_metadata(path: Path, wanted: tuple[str, ...]) -> dict[str, Any]:
    """The metadata values whose key ends with one of `wanted` (e.g. ".block_count"); tensors are never read.

    A streaming parse of the key/value section: the tokenizer's ~50k-string arrays are skipped, not decoded
    (gguf's GGUFReader builds numpy views of every field, ~5 s for SmolLM2).
    """
    found: dict[str, Any] = {}
    try:
        with path.open("rb") as f:
            if f.read(4) != b"GGUF":
                raise HeaderError(f"{path} is not a GGUF file (bad magic)")
            (version,) = struct.unpack("<I", _read(f, 4))
            endian = "<" if version < 0x10000 else ">"  # a big-endian file shows a byte-swapped version
            count_fmt = "I" if _swap(version, endian) == 1 else "Q"
            _tensors, n_kv = struct.unpack(endian + count_fmt * 2, _read(f, struct.calcsize(count_fmt) * 2))
            for _ in range(n_kv):
                key = _gguf_string(f, endian, count_fmt)
                (vtype,) = struct.unpack(endian + "I", _read(f, 4))
                if any(key.endswith(w) for w in wanted):
                    found[key] = _gguf_value(f, vtype, endian, count_fmt)
                    if len(found) == len(wanted):
                        break
                else:
                    _gguf_skip(f, vtype, endian, count_fmt)
    except OSError as e:
        raise HeaderError(f"{path} cannot be read ({first_line(e)})") from None
    except (struct.error, UnicodeDecodeError, MemoryError, OverflowError) as e:
        raise HeaderError(f"{path} has a corrupt GGUF header ({first_line(e)})") from None
    return found


def gguf_shape(path: Path) -> tuple[int, int]:
    """(block_count, embedding_length) of a GGUF model."""
    meta = gguf_metadata(path, (".block_count", ".embedding_length"))
    depth = next((v for k, v in meta.items() if k.endswith(".block_count")), None)
    width = next((v for k, v in meta.items() if k.endswith(".embedding_length")), None)
    if not isinstance(depth, int) or not isinstance(width, int):
        raise HeaderError(f"{path} has no block_count / embedding_length fields")
    return depth, width


def _swap(version: int, endian: str) -> int:
    return version if endian == "<" else struct.unpack(">I", struct.pack("<I", version))[0]


def _read(f: BinaryIO, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise struct.error("file ends inside the header")
    return data


def _gguf_len(f: BinaryIO, endian: str, count_fmt: str) -> int:
    return struct.unpack(endian + count_fmt, _read(f, struct.calcsize(count_fmt)))[0]


def _gguf_string(f: BinaryIO, endian: str, count_fmt: str) -> str:
    return _read(f, _gguf_len(f, endian, count_fmt)).decode("utf-8")


def _gguf_value(f: BinaryIO, vtype: int, endian: str, count_fmt: str) -> Any:
    if vtype in _GGUF_SCALARS:
        code = _GGUF_SCALARS[vtype]
        return struct.unpack(endian + code, _read(f, struct.calcsize(code)))[0]
    if vtype == _GGUF_STRING:
        return _gguf_string(f, endian, count_fmt)
    _gguf_skip(f, vtype, endian, count_fmt)  # arrays are never what a shape check needs
    return None


def _gguf_skip(f: BinaryIO, vtype: int, endian: str, count_fmt: str) -> None:
    if vtype in _GGUF_SCALARS:
        f.seek(struct.calcsize(_GGUF_SCALARS[vtype]), 1)
    elif vtype == _GGUF_STRING:
        f.seek(_gguf_len(f, endian, count_fmt), 1)
    elif vtype == _GGUF_ARRAY:
        (item_type,) = struct.unpack(endian + "I", _read(f, 4))
        n = _gguf_len(f, endian, count_fmt)
        if item_type in _GGUF_SCALARS:
            f.seek(n * struct.calcsize(_GGUF_SCALARS[item_type]), 1)
        else:
            for _ in range(n):
                _gguf_skip(f, item_type, endian, count_fmt)
    else:
        raise struct.error(f"unknown value type {vtype}")


# ---------------------------------------------------------------- safetensors


def safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file, checked against the file size (a truncated file fails here)."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise HeaderError(f"{path} is not a safetensors file (only {len(head)} bytes)")
            (n,) = struct.unpack("<Q", head)
            if n > min(MAX_SAFETENSORS_HEADER, size - 8):
                raise HeaderError(f"{path} is not a safetensors file (header length {n} does not fit the file)")
            header = json.loads(f.read(n).decode("utf-8"))
    except OSError as e:
        raise HeaderError(f"{path} cannot be read ({first_line(e)})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise HeaderError(f"{path} is not a safetensors file (header is not JSON: {first_line(e)})") from None
    if not isinstance(header, dict):
        raise HeaderError(f"{path} is not a safetensors file (header is not a JSON object)")
    data_size = size - 8 - n
    for name, info in header.items():
        if name == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
            raise HeaderError(f"{path} is not a safetensors file (tensor {name} has no data_offsets)")
        if not 0 <= offsets[0] <= offsets[1] <= data_size:
            raise HeaderError(f"{path} is truncated or corrupt (tensor {name} ends at byte {offsets[1]} of "
                              f"{data_size})")
    return header


# ---------------------------------------------------------------- Lightning checkpoints


class _Opaque(dict):
    """Stands for every class a pickle names: nothing is imported, nothing of the file's code runs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def __setstate__(self, state: Any) -> None:
        pass

    def append(self, item: Any) -> None:
        pass

    def extend(self, items: Any) -> None:
        pass


class _PeekUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        return _Opaque

    def persistent_load(self, pid: Any) -> None:  # tensor storages live outside data.pkl; not needed here
        return None


def lightning_checkpoint_keys(path: Path) -> set[str]:
    """Top-level keys of a Lightning checkpoint (a torch.save zip), read from its pickle without running it."""
    try:
        with zipfile.ZipFile(path) as z:
            pkl = next((n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl"), None)
            if pkl is None:
                raise HeaderError(f"{path} is not a Lightning checkpoint (a zip without data.pkl)")
            with z.open(pkl) as f:
                top = _PeekUnpickler(f).load()
    except HeaderError:
        raise
    except zipfile.BadZipFile:
        raise HeaderError(f"{path} is not a Lightning checkpoint (not a torch.save zip, or truncated)") from None
    except OSError as e:
        raise HeaderError(f"{path} cannot be read ({first_line(e)})") from None
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a corrupt file, said in one line
        raise HeaderError(f"{path} is not a Lightning checkpoint (corrupt pickle: {first_line(e)})") from None
    if not isinstance(top, dict) or "state_dict" not in top or "pytorch-lightning_version" not in top:
        raise HeaderError(f"{path} is not a Lightning checkpoint (no state_dict / pytorch-lightning_version; "
                          "a plain torch.save file?)")
    return {str(k) for k in top}
