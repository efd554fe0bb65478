"""The HTML view: the same comparison as one static, self-contained page (inline CSS, no script, no network):
the run's config summary, a legend, and per prompt both answers side by side and a token-level heat map of how
much memory entered, one row per memory layer.

Every token is a `<span class="tok">` with `data-layer` and `data-gate` (the value, 3 decimals) next to its
tint, so a test (or a reader's devtools) can check what the colour says. A text run's prompts are openings of
held-out documents, continued (not answered) by both models.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

from engram.atomic import atomic_write
from engram.demo.gates import Comparison
from engram.demo.heat import VISIBLE, heat_hex, text_on, visible

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #1a1a1a;
       background: #ffffff; max-width: 1200px; }
h1 { font-size: 22px; margin-bottom: 4px; }
h2 { font-size: 16px; margin: 0 0 8px 0; white-space: pre-wrap; }
.note { color: #555; font-size: 13px; }
table.summary td { padding: 1px 12px 1px 0; font-size: 13px; }
table.summary td:first-child { font-weight: 600; }
.legend { display: flex; align-items: center; gap: 8px; font-size: 13px; margin: 12px 0 20px 0; }
.legend .bar { width: 240px; height: 16px; border: 1px solid #999; background: linear-gradient(to right, %s); }
section.cmp { border: 1px solid #ddd; border-radius: 6px; padding: 12px 16px; margin-bottom: 18px; }
.label { font-size: 12px; color: #fff; background: #555; border-radius: 3px; padding: 1px 6px; margin-right: 6px; }
.answers { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; margin: 8px 0 12px 0; }
.answer { border: 1px solid #e3e3e3; border-radius: 4px; padding: 8px; }
.answer h3 { font-size: 12px; text-transform: uppercase; color: #666; margin: 0 0 4px 0; }
.answer p { margin: 0; font-size: 15px; white-space: pre-wrap; }
.heat { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 13px; line-height: 1.9; }
.heat .row { display: flex; flex-wrap: wrap; align-items: baseline; margin-bottom: 4px; }
.heat .layer { width: 70px; flex: none; font-weight: 600; color: #444; }
.tok { white-space: pre; padding: 1px 0; }
.tok.ans { box-shadow: inset 0 -2px 0 #333; }
.sep { color: #999; padding: 0 6px; }
"""


def token_span(piece: str, value: float, layer: int, answer: bool) -> str:
    style = f"background:{heat_hex(value)};color:{text_on(value)}" if value >= VISIBLE else "background:#ffffff"
    classes = "tok ans" if answer else "tok"
    return (f'<span class="{classes}" data-layer="{layer}" data-gate="{value:.3f}" title="{value:.3f}" '
            f'style="{style}">{html.escape(visible(piece))}</span>')


def heat_rows(c: Comparison, layer_names: dict[int, str]) -> str:
    rows = []
    for layer, name in layer_names.items():
        start = c.trace.answer_start
        spans = [token_span(p, v, layer, i >= start)
                 for i, (p, v) in enumerate(zip(c.trace.tokens, c.trace.gates[layer], strict=True))]
        spans.insert(start, '<span class="sep">&#9654;</span>')  # where the answer begins
        rows.append(f'<div class="row"><span class="layer">{html.escape(name)}</span>{"".join(spans)}</div>')
    return "\n".join(rows)


def comparison_section(c: Comparison, layer_names: dict[int, str]) -> str:
    label = f'<span class="label">{html.escape(c.label)}</span>' if c.label else ""
    changed = "same answer" if c.base_answer == c.memory_answer else "the memory changed the answer"
    base, memory = (html.escape(visible(a)) or "(empty)" for a in (c.base_answer, c.memory_answer))
    return f"""<section class="cmp">
<h2>{label}{html.escape(c.prompt)}</h2>
<div class="answers">
<div class="answer base"><h3>base model (memories off)</h3><p>{base}</p></div>
<div class="answer memory"><h3>with memory</h3><p>{memory}</p></div>
</div>
<div class="note">{changed}. Memory entering per token (prompt &#9654; memory's answer, underlined):</div>
<div class="heat">
{heat_rows(c, layer_names)}
</div>
</section>"""


ANSWERED = "Each prompt answered greedily"
CONTINUED = "Each text continued greedily (raw text, no chat template)"


def render_page(comparisons: Sequence[Comparison], layer_names: dict[int, str], summary: dict[str, str],
                title: str = "Engram demo", language_model: bool = False) -> str:
    """The whole page as one string (`language_model`: a text run's, whose prompts are continued as raw text)."""
    stops = ", ".join(heat_hex(v / 4) for v in range(5))
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in summary.items())
    sections = "\n".join(comparison_section(c, layer_names) for c in comparisons)
    how = CONTINUED if language_model else ANSWERED
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{STYLE % stops}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p class="note">{how} by the base model (the same weights with the memories switched off)
and with the memory. A token's tint is how much memory entered at that position (gate &times; share of heads
whose rows the address let through); memory at a position shapes the <em>next</em> token.</p>
<table class="summary">{rows}</table>
<div class="legend"><span>memory entering:</span><span>0</span><span class="bar"></span><span>1</span></div>
{sections}
</body></html>
"""


def write_page(path: Path, comparisons: Sequence[Comparison], layer_names: dict[int, str],
               summary: dict[str, str], title: str = "Engram demo", language_model: bool = False) -> Path:
    text = render_page(comparisons, layer_names, summary, title, language_model)
    atomic_write(Path(path), lambda tmp: tmp.write_text(text, encoding="utf-8"))  # the page says utf-8
    return Path(path)
