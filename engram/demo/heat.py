"""How a token looks in every view of the demo (terminal, HTML page, report PNGs): one colour scale, memory
entering 0 -> 1 as a background tint from none to hot orange, so a token that opened the memory reads the same
everywhere; and its text on one line."""

from __future__ import annotations

COLD = (255, 255, 255)  # 0: no memory entered (the page's background)
HOT = (230, 85, 13)  # 1: the whole row entered
VISIBLE = 0.02  # below this a token is shown untinted (rounding noise of a closed gate)


def heat_rgb(value: float, cold: tuple[int, int, int] = COLD) -> tuple[int, int, int]:
    """The tint of `value` (clipped to [0, 1]), a straight blend from `cold` to HOT."""
    v = min(1.0, max(0.0, float(value)))
    return tuple(round(c + (h - c) * v) for c, h in zip(cold, HOT, strict=True))  # type: ignore[return-value]


def heat_hex(value: float, cold: tuple[int, int, int] = COLD) -> str:
    return "#{:02x}{:02x}{:02x}".format(*heat_rgb(value, cold))


def text_on(value: float) -> str:
    """Readable text colour on the tint of `value`."""
    return "#ffffff" if value >= 0.6 else "#000000"


def visible(text: str) -> str:
    """A token's text on one line: newlines and tabs shown as symbols (chat templates are full of them)."""
    return text.replace("\n", "\u23ce").replace("\t", "\u21e5")
