"""`engram-demo` (and `python demo.py`): base model vs Engram memory, side by side, every token tinted by how much
memory entered there.

    engram-demo                                         # interactive, on the newest outputs/default/<date>
    engram-demo run_dir=outputs/default/<date>          # or engram_path=<run dir>/engram.safetensors
    engram-demo --prompts prompts.txt                   # no questions asked (recordings)
    engram-demo --html demo.html                        # one self-contained HTML page (trained facts + general
                                                        # prompts, or --prompts)

A language-model run (data=text) has no facts: its examples are openings of held-out test documents, and every
prompt is continued as raw text (no chat template) by the base model and by the memory model.
"""

from __future__ import annotations

import sys
from pathlib import Path

from engram.cli import exit_config_error
from engram.config.rules import ConfigError
from engram.demo.args import parse


def main(argv: list[str], prog: str = "demo.py") -> None:
    try:
        args = parse(argv, prog)  # before any weights load
    except ConfigError as e:
        exit_config_error(e)
    # lazy: torch + transformers cost seconds; bad input has exited before them
    from rich.console import Console

    from engram.demo.page import write_page
    from engram.demo.session import example_prompts, load_demo
    from engram.demo.terminal import interactive, show_prompts
    from engram.models.inject import EngramLoadError

    try:
        run = load_demo(args.source, args.max_new_tokens)
    except EngramLoadError as e:
        exit_config_error(str(e))
    layer = run.layers[-1] if args.layer is None else run.find_layer(args.layer)
    if layer is None:
        names = ", ".join(run.layer_names().values())
        exit_config_error(ConfigError("--layer", args.layer, f"has no memory; memory layers: {names}"))
    prompts = [(p, "") for p in args.prompts] if args.prompts else None
    console = Console()
    if args.html:
        shown = [run.ask(p, label) for p, label in (prompts or example_prompts(run))]
        write_page(args.html, shown, run.layer_names(), run.summary, f"Engram demo: {args.source.name}",
                   run.language_model)
        console.print(f"wrote {args.html} ({len(shown)} prompts)")
    elif prompts:
        show_prompts(run, console, prompts, layer)
    else:
        interactive(run, console, layer)


def cli() -> None:
    """The console script; usage and errors name the command as typed (demo.py or engram-demo)."""
    main(sys.argv[1:], Path(sys.argv[0]).name)
