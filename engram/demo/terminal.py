"""The terminal view (rich): the base model's and the memory model's answers side by side, every prompt and answer
token tinted by how much memory entered there (one memory layer at a time), and the interactive session. A text
run's examples are held-out openings and what is typed is continued as raw text (DemoRun.prompt_format)."""

from __future__ import annotations

from collections.abc import Iterable

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.style import Style
from rich.table import Table
from rich.text import Text

from engram.demo.gates import Comparison
from engram.demo.heat import VISIBLE, heat_hex, text_on, visible
from engram.demo.session import DemoRun

HELP = ("type a question, a number for a trained fact, ':layer <n|final>' to show another memory layer, "
        "':facts' to list the facts again, ':q' to quit")
TEXT_HELP = ("type text for both models to continue, a number for a held-out opening, ':layer <n|final>' to show "
             "another memory layer, ':facts' to list the openings again, ':q' to quit")
N_EXAMPLES = 8


def tinted(tokens: Iterable[tuple[str, float]]) -> Text:
    """The tokens as one Text, each on the background of its gate value (untinted when no memory entered)."""
    out = Text()
    for piece, value in tokens:
        style = Style(bgcolor=heat_hex(value), color=text_on(value)) if value >= VISIBLE else Style()
        out.append(visible(piece), style)
    return out


def legend() -> Text:
    out = Text("memory entering per token: ")
    for v in (0.0, 0.25, 0.5, 0.75, 1.0):
        out.append(f" {v:.2f} ", Style(bgcolor=heat_hex(v), color=text_on(v)))
    return out


def comparison_view(c: Comparison, layer: int, layer_label: str) -> RenderableType:
    """One prompt: the tinted prompt, then the two answers side by side (the base one untinted: memories off)."""
    table = Table(expand=True, show_lines=False)
    table.add_column("base model (memories off)", ratio=1)
    table.add_column(f"with memory (tint: {layer_label})", ratio=1)
    table.add_row(Text(visible(c.base_answer) or "(empty)"), tinted(c.trace.answer(layer)) if c.trace.answer(layer)
                  else Text("(empty)"))
    title = f"[bold]{c.label}[/]" if c.label else None
    same = "same answer" if c.base_answer == c.memory_answer else "the memory changed the answer"
    body = Group(Text.assemble(("prompt: ", "bold"), tinted(c.trace.prompt(layer))), table, Text(same, style="dim"))
    return Panel(body, title=title, title_align="left")


def intro(run: DemoRun) -> RenderableType:
    """The run's config summary, the legend and the examples offered: trained facts, or held-out openings (with how
    the document really goes on, dim)."""
    summary = Table.grid(padding=(0, 2))
    for key, value in run.summary.items():
        summary.add_row(Text(key, style="bold"), Text(value))
    facts = Table(title=f"{run.example_label}s (type the number)", show_header=False, box=None)
    for i, fact in enumerate(run.examples[:N_EXAMPLES], 1):
        prompt, answer = str(fact["prompt"]), str(fact["answer"])
        if run.language_model:  # multi-line text: one line each, newlines shown as the page shows them
            prompt, answer = visible(prompt), visible(answer[:60]) + "\u2026" * (len(answer) > 60)
        facts.add_row(str(i), prompt, Text(answer, style="dim"))
    layers = ", ".join(run.layer_names().values())
    return Group(Panel(summary, title=f"Engram demo: {run.source}", title_align="left"), legend(),
                 Text(f"memory layers: {layers}"), facts)


def show_prompts(run: DemoRun, console: Console, prompts: Iterable[tuple[str, str]], layer: int) -> None:
    """Non-interactive (recordings, tests): every prompt answered and shown."""
    console.print(intro(run))
    for prompt, label in prompts:
        console.print(comparison_view(run.ask(prompt, label), layer, run.layer_names()[layer]))


def interactive(run: DemoRun, console: Console, layer: int) -> None:
    """Read prompts until ':q' or end of input; a number asks trained fact n."""
    console.print(intro(run))
    console.print(Text(TEXT_HELP if run.language_model else HELP, style="dim"))
    while True:
        try:
            line = console.input("[bold]prompt> [/]").strip()
        except (EOFError, KeyboardInterrupt):
            return
        if line in (":q", ":quit", "exit"):
            return
        if not line:
            continue
        if line == ":facts":
            console.print(intro(run))
        elif line.startswith(":layer"):
            layer = _pick_layer(run, line.split(maxsplit=1)[-1], layer, console)
        elif line.isdigit() and 1 <= int(line) <= min(len(run.examples), N_EXAMPLES):
            fact = run.examples[int(line) - 1]
            console.print(comparison_view(run.ask(str(fact["prompt"]), run.example_label), layer,
                                          run.layer_names()[layer]))
        else:
            console.print(comparison_view(run.ask(line), layer, run.layer_names()[layer]))


def _pick_layer(run: DemoRun, choice: str, current: int, console: Console) -> int:
    found = run.find_layer(choice)
    if found is None:
        console.print(f"no memory at {choice!r}; memory layers: {', '.join(run.layer_names().values())}", style="red")
        return current
    return found
