"""`python -m engram.data export data=exact_match data.num_train=5000 out=facts.jsonl`

Composes engram/conf/train.yaml with the same overrides train.py takes (Hydra's compose API), validates it, builds the
splits and writes them as messages-format JSONL: the train split to `out`, the eval split next to it
(`facts.valid.jsonl`), eval lines with their "paraphrases" and "neighbors" (exact_match, entity, user_prefs).
`data=jsonl data.path=facts.jsonl data.valid_path=facts.valid.jsonl` reads back the same records and the same
"paraphrase" and "neighbor" splits. Bad configs exit with code 2 and one line naming the key.
"""

from __future__ import annotations

import sys
from pathlib import Path

from hydra import compose as hydra_compose
from hydra import initialize_config_dir

from engram.conf import CONF_DIR
from engram.config import ConfigError, register_configs, validate
from engram.config.rules import first_line
from engram.data import build_splits
from engram.data.families.jsonl import JsonlFormatError, write_jsonl

USAGE = "usage: python -m engram.data export [group=option ...] [key=value ...] out=PATH.jsonl"


def valid_path_for(out: Path) -> Path:
    stem = out.name[: -len(".jsonl")] if out.name.endswith(".jsonl") else out.name
    return out.with_name(f"{stem}.valid.jsonl")


def compose(overrides: list[str]):  # -> DictConfig
    register_configs()  # the group YAMLs extend the schemas (engram/config/schema.py)
    with initialize_config_dir(version_base=None, config_dir=str(CONF_DIR), job_name="export"):
        return hydra_compose(config_name="train", overrides=overrides)


def composed(overrides: list[str]):  # -> DictConfig
    """compose(), with whatever Hydra refuses (a key without `+` that does not exist, an unknown group option, bad
    syntax) as ConfigError (engram.cli's finer checks sit above data in engram.LAYERS)."""
    try:
        return compose(overrides)
    except Exception as e:  # noqa: BLE001 - Hydra's errors are multi-line; one line here
        raise ConfigError("overrides", " ".join(overrides), f"do not compose: {first_line(e)}") from None


def export(overrides: list[str], out: str | Path) -> tuple[Path, Path, int, int]:
    """Write train to `out` and eval to `<stem>.valid.jsonl`; returns (train path, valid path, n_train, n_eval)."""
    cfg = validate(composed(overrides), root_extra=())  # root_extra: an unknown root key is refused too
    splits = build_splits(cfg.data)
    out = Path(out)
    valid = valid_path_for(out)
    return out, valid, write_jsonl(splits["train"], out), write_jsonl(splits["eval"], valid)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in args):
        print(__doc__)
        return 0
    if not args or args[0] != "export":
        print(f"config error: command={args[0] if args else '(none)'} is not a command; {USAGE}", file=sys.stderr)
        return 2
    option = next((a for a in args[1:] if a.startswith("-") and len(a) > 1), None)
    if option is not None:
        print(f"config error: option={option} is not an option of engram.data export; {USAGE}", file=sys.stderr)
        return 2
    outs = [a.split("=", 1)[1] for a in args[1:] if a.startswith("out=")]
    overrides = [a for a in args[1:] if not a.startswith("out=")]
    if len(outs) != 1 or not outs[0]:
        print(f"config error: out is required once ({USAGE})", file=sys.stderr)
        return 2
    try:
        train, valid, n_train, n_eval = export(overrides, outs[0])
    except (ConfigError, JsonlFormatError) as e:
        print(e, file=sys.stderr)
        return 2
    print(f"wrote {n_train} train records to {train} and {n_eval} eval records to {valid}")
    print(f"read back with: data=jsonl data.path={train} data.valid_path={valid}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
