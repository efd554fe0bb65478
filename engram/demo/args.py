"""demo.py's command line, checked before any weights load (no torch here): which run, which prompts, where the
HTML page goes. Each problem is one ConfigError (demo.py prints it as one line and exits 2)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engram.cli_args import OneLineParser
from engram.config.rules import ConfigError
from engram.inputs import check_engram_file, check_run_dir
from engram.models.headers import engram_file

DEFAULT_RUNS = Path("outputs") / "default"  # where `make run` (python train.py) writes its run dirs
KEYS = ("run_dir", "engram_path")
NO_MEMORY = "has no saved memory (engram.safetensors); the demo needs a run of variant=engram or combined"


@dataclass
class DemoArgs:
    source: Path  # a run dir, or an engram.safetensors inside one
    prompts: list[str] | None  # --prompts: run these, no questions asked
    html: Path | None
    layer: str | None  # a memory layer ("3", "final"); None: the last one
    max_new_tokens: int | None


def parser(prog: str = "demo.py") -> OneLineParser:
    p = OneLineParser(
        prog=prog, description="Base model vs memory, side by side, each token tinted by its gate.",
        epilog="default run: the newest run dir under outputs/default/ (what `make run` writes)")
    p.add_argument("settings", nargs="*", metavar="run_dir=DIR | engram_path=FILE",
                   help="the run to show (default: the newest finished default run)")
    p.add_argument("--prompts", metavar="FILE", help="one prompt per line (# comments); shown without asking")
    p.add_argument("--html", metavar="OUT", help="write the comparison as one self-contained HTML page")
    p.add_argument("--layer", help="the memory layer whose gate tints the tokens (default: the last one)")
    p.add_argument("--max-new-tokens", type=int, help="answer length (default: the run's eval_max_new_tokens)")
    return p


def parse(argv: list[str], prog: str = "demo.py") -> DemoArgs:
    """The checked command line (ConfigError on a bad value; argparse's own errors exit 2 as well); `prog`: the
    command as typed (demo.py or engram-demo), in usage and errors."""
    args = parser(prog).parse_args(argv)
    given = {}
    for item in args.settings:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError("demo", item, f"is not one of {', '.join(k + '=...' for k in KEYS)}")
        if key not in KEYS:  # the key named, like train.py's unknown keys
            raise ConfigError(key, value, f"is not a key of {prog} (one of {', '.join(k + '=...' for k in KEYS)})")
        given[key] = value
    if len(given) > 1:
        raise ConfigError("demo", " ".join(args.settings), "gives both run_dir and engram_path; give one")
    if args.max_new_tokens is not None and args.max_new_tokens < 1:
        raise ConfigError("--max-new-tokens", args.max_new_tokens, "must be a positive integer")
    html = Path(args.html) if args.html else None
    if html is not None and html.is_dir():
        raise ConfigError("--html", args.html, "is a directory; give a file name (e.g. demo.html)")
    prompts = read_prompts(args.prompts) if args.prompts else None
    return DemoArgs(resolve_source(given), prompts, html, args.layer, args.max_new_tokens)


def resolve_source(given: dict[str, str]) -> Path:
    """The run the demo shows: run_dir=, engram_path= (inside a run dir, whose config names the base model), or
    the newest default run."""
    if "engram_path" in given:
        value = given["engram_path"]
        path = Path(value).expanduser()
        check_engram_file("engram_path", value, engram_file(path),
                          "has no engram.safetensors" if path.is_dir() else "does not exist")
        run_dir = path if path.is_dir() else path.parent
        if not (run_dir / ".hydra" / "config.yaml").is_file():
            raise ConfigError("engram_path", value, "is not inside a run dir (no .hydra/config.yaml naming its base "
                              "model)")
        return path
    if "run_dir" in given:
        value = given["run_dir"]
        check_run_dir("run_dir", value)
        check_engram_file("run_dir", value, engram_file(Path(value).expanduser()), NO_MEMORY)
        return Path(value).expanduser()
    return default_run()


def default_run(root: Path = DEFAULT_RUNS) -> Path:
    """The newest run dir under outputs/default/ that has a saved memory (its names are dates: newest sorts last)."""
    runs = sorted(d for d in root.glob("*") if (d / ".hydra" / "config.yaml").is_file() and engram_file(d).is_file())
    if not runs:
        raise ConfigError("run_dir", "(none given)", f"and {root}/ holds no finished run with a memory; run `make run` "
                          "first or give run_dir=...")
    return runs[-1]


def read_prompts(value: str) -> list[str]:
    """The prompts file: one prompt per line, blank lines and # comments skipped."""
    path = Path(value).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = "is not UTF-8 text" if isinstance(e, UnicodeDecodeError) else f"cannot be read ({e.strerror})"
        raise ConfigError("--prompts", value, reason) from None
    prompts = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not prompts:
        raise ConfigError("--prompts", value, "holds no prompt (one per line)")
    return prompts
