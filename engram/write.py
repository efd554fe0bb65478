"""`python -m engram.write facts.jsonl engram=<run dir | engram.safetensors> out=<new file> [key=value ...]`

Adds the facts of a messages-format JSONL file to a trained memory, incrementally: the memory is loaded, the new
facts are written into the rows their keys address (engram/training/writing.py: only those rows move), and the
result goes to `out`, written under a temporary name and renamed into place. The input memory is never modified.

Keys: `model=<name>` (the base model when `engram=` is a bare file outside a run dir; default: the run dir's),
`steps=60`, `lr=0.3`, `margin=3.0`, `batch_size=64`, `prompt_format=chat|plain` (default: the run's),
`old=<facts.jsonl>` (facts to check for forgetting; default: the run dir's training facts, if it has a config),
`retention=true|false` (decode the general prompts with and without the memory; ~1 min on SmolLM2).
Prints recall of the new facts, recall of the old facts before and after, retention, and the times.
Bad input (missing file, bad JSONL line, a memory that does not match the model) gives one line and exit 2 before
any weights change.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from engram.config import ConfigError
from engram.config.rules import first_line
from engram.data.families.jsonl import JsonlFormatError, read_jsonl
from engram.inputs import check_engram_file
from engram.models.headers import engram_file

USAGE = "usage: python -m engram.write facts.jsonl engram=<run dir | engram.safetensors> out=<new.safetensors>"
DEFAULTS: dict[str, str] = {"model": "", "steps": "60", "lr": "0.3", "margin": "3.0", "batch_size": "64",
                            "prompt_format": "", "old": "", "retention": "true"}


def parse(argv: list[str]) -> tuple[Path, dict[str, str]]:
    """(facts file, keys); ConfigError (one line) on anything malformed. Imports no torch."""
    option = next((a for a in argv if a.startswith("-") and len(a) > 1), None)
    if option is not None:  # engram.write takes no options (--help is answered in main)
        raise ConfigError("option", option, f"is not an option of engram.write; {USAGE}")
    positional = [a for a in argv if "=" not in a]
    keys = dict(DEFAULTS)
    for arg in (a for a in argv if "=" in a):
        key, value = arg.split("=", 1)
        if key not in {*DEFAULTS, "engram", "out"}:
            raise ConfigError(key, value, f"is not a key of engram.write ({', '.join(['engram', 'out', *DEFAULTS])})")
        keys[key] = value
    if len(positional) != 1:
        raise ConfigError("facts", " ".join(positional) or "(none)", "must be exactly one JSONL file; " + USAGE)
    for key in ("engram", "out"):
        if not keys.get(key):
            raise ConfigError(key, "(missing)", "is required; " + USAGE)
    facts = Path(positional[0])
    if not facts.is_file():
        raise ConfigError("facts", positional[0], "does not exist or is not a file")
    source = engram_file(keys["engram"])
    check_engram_file("engram", keys["engram"], source)
    out = Path(keys["out"])
    if out.suffix != ".safetensors":
        raise ConfigError("out", keys["out"], "must be a .safetensors file path")
    if out.resolve() == source.resolve():
        raise ConfigError("out", keys["out"], "is the input memory; the input is never modified, pick a new path")
    if not out.parent.is_dir():
        raise ConfigError("out", keys["out"], "is in a directory that does not exist")
    for key, kind in (("steps", int), ("batch_size", int), ("lr", float), ("margin", float)):
        try:
            value = kind(keys[key])
        except ValueError:
            raise ConfigError(key, keys[key], f"must be a{'n integer' if kind is int else ' number'}") from None
        if value <= 0 and key != "margin":
            raise ConfigError(key, keys[key], "must be > 0")
    if keys["retention"] not in ("true", "false"):
        raise ConfigError("retention", keys["retention"], "must be true or false")
    if keys["old"] and not Path(keys["old"]).is_file():
        raise ConfigError("old", keys["old"], "does not exist or is not a file")
    return facts, keys


def run(facts_path: Path, keys: dict[str, str]) -> dict[str, Any]:
    from engram.training.incremental import write_incrementally  # torch and the model: only after the checks

    return write_incrementally(read_jsonl(facts_path), keys)


def main(argv: list[str] | None = None) -> int:
    t0 = time.perf_counter()
    args = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in args):
        print(__doc__)
        return 0
    try:
        facts_path, keys = parse(args)
        read_jsonl(facts_path)  # a bad line fails here, before any weights load
        if keys["old"]:
            read_jsonl(keys["old"])
        summary = run(facts_path, keys)
    except (ConfigError, JsonlFormatError) as e:
        print(first_line(e), file=sys.stderr)
        return 2
    except (ValueError, RuntimeError, OSError) as e:  # a memory that does not match its model, a full disk, ...
        print(f"engram.write: {first_line(e)}", file=sys.stderr)
        return 2
    summary["seconds_total"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
