"""`python -m engram.compress <build|ask|eval|sweep|train|info|delete> [question] [key=value ...]` (or
`engram-compress ...`; the overrides are Hydra's, of engram/conf/compress.yaml)

    python -m engram.compress build docs=bios store=outputs/compress/store      # extract + store engrams
    python -m engram.compress ask "Where did Talnav Raerler study?" store=outputs/compress/store
    python -m engram.compress eval compress.layer=15 compress.k=4 compress.pooling=mean
    python -m engram.compress sweep experiment=compress_sweep
    python -m engram.compress train experiment=compress_trained                  # train compressors, score them
    python -m engram.compress info store=outputs/compress/store                 # its documents and sizes
    python -m engram.compress delete bio_03 bio_07 store=outputs/compress/store # remove documents' engrams
    python -m engram.compress delete store=outputs/compress/store -- "doc=1"    # after --, ids may hold "=" or spaces

Prints one JSON object. Bad input (unknown command or key, a value out of range, a store of another model or layer)
gives one line on stderr and exit 2, before any weights load where it can be known then; nothing is written.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from engram.cli import check_group_choices, exit_config_error
from engram.compress.config import COMMANDS, validated
from engram.config import ConfigError
from engram.extras import require

USAGE = "usage: python -m engram.compress {" + "|".join(COMMANDS) + "} [question] [key=value ...]"
COMMAND_HELP = {  # `python -m engram.compress <command> --help`
    "build": "usage: python -m engram.compress build [docs=bios|stdlib|FILE.jsonl] [store=DIR] [key=value ...]\n"
             "Extract k engram vectors per document and store them (LanceDB) for `ask`.",
    "ask": "usage: python -m engram.compress ask QUESTION [store=DIR] [key=value ...]\n"
           "Retrieve the closest stored document's engrams and answer QUESTION with them in place of the text.",
    "eval": "usage: python -m engram.compress eval [compress.layer=N compress.k=K compress.pooling=P ...]\n"
            "Full context vs k engrams vs nothing vs retrieval, one setting; writes compress.json/.md in out=.",
    "sweep": "usage: python -m engram.compress sweep [experiment=compress_sweep] [key=value ...]\n"
             "Every layer x k x pooling of compress.sweep.*; writes one row per setting.",
    "train": "usage: python -m engram.compress train [experiment=compress_trained] [compress.trained.ks=[4,16] ...]\n"
             "Train a compressor (LoRA encoder + k memory tokens; the decoder frozen) per k x carrier x placement\n"
             "of compress.trained.*, score it on biographies and held-out towns; writes compressor.json in out=.",
    "info": "usage: python -m engram.compress info [store=DIR]\n"
            "The store's setting, document ids and sizes (vectors, bytes, compression ratio).",
    "delete": "usage: python -m engram.compress delete DOC_ID [DOC_ID ...] [store=DIR] [-- DOC_ID ...]\n"
              "Remove these documents' engrams (all or none: an unknown id is one line and nothing goes);\n"
              "after --, an id may hold \"=\" or spaces.",
}
HELP_FLAGS = ("-h", "--help")


def flag(arg: str) -> bool:
    """`-x` / `--xx`: an option, not a word of a question (a negative number like -5 stays a word)."""
    return arg.startswith("-") and len(arg) > 1 and not arg[1].isdigit() and arg != "--"


def parse(argv: list[str]) -> tuple[str, list[str], list[str]]:
    """(command, words, overrides); ConfigError on a malformed command line (an unknown flag included: it would
    otherwise become a word of the question). After `--` every argument is a word, so a document id may hold
    "=" or a space: `delete store=DIR -- "doc=1" "a b"`."""
    if not argv or argv[0] not in COMMANDS:
        raise ConfigError("command", argv[0] if argv else "(none)", f"is not a command; {USAGE}")
    command, rest = argv[0], argv[1:]
    literal: list[str] = []
    if "--" in rest:
        rest, literal = rest[:rest.index("--")], rest[rest.index("--") + 1:]
    bad = next((a for a in rest if flag(a)), None)
    if bad is not None:
        raise ConfigError("option", bad, f"is not an option of engram.compress {command} (it takes key=value "
                          "overrides of engram/conf/compress.yaml; see --help)")
    words = [a for a in rest if "=" not in a] + literal
    overrides = [a for a in rest if "=" in a]
    if command == "ask" and not " ".join(words).strip():
        raise ConfigError("question", "(none)", "is required: python -m engram.compress ask \"question\" store=<dir>")
    if command == "delete" and not words:
        raise ConfigError("doc_id", "(none)", "is required: python -m engram.compress delete DOC_ID store=<dir>")
    if command not in ("ask", "delete") and words:
        raise ConfigError("argument", " ".join(words), f"is not a key=value override; {USAGE}")
    return command, words, overrides


def run(argv: list[str]) -> dict[str, Any]:
    command, words, overrides = parse(argv)
    check_group_choices(overrides)
    cfg = validated(overrides, command)
    require("lancedb")  # every command opens a store; without the [compress] extra: one line, exit 2
    from engram.compress import run as commands  # lazy: torch and the model only after the config is known good

    if command == "build":
        return commands.build(cfg)
    if command == "ask":
        return commands.ask(cfg, " ".join(words).strip())
    if command == "train":
        from engram.compress import trained

        return trained.train(cfg, commands.run_dir(cfg))
    if command in ("info", "delete"):
        return commands.edit_store(cfg, words if command == "delete" else [])
    return commands.evaluate(cfg, sweep=command == "sweep")


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if any(a in HELP_FLAGS for a in args):
        print(COMMAND_HELP[args[0]] if args[0] in COMMAND_HELP else __doc__)
        return 0
    try:
        result = run(args)
    except ConfigError as e:
        exit_config_error(e)
        return 2
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
