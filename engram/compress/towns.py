"""Held-out documents of another kind than the biographies: fictional towns (an invented name, founding year,
river, mayor, main export, festival month, twin town), written in other sentence patterns and asked other
questions. A compressor trained on biographies meets them only at evaluation: the source training never saw.
Deterministic by seed, like `biographies`; every answer stands in the text.
"""

from __future__ import annotations

import random

from engram.compress.documents import MONTHS, Document, Question, invented_word, unique_name

EXPORTS = ("wool", "copper", "salt", "timber", "cheese", "glass", "paper", "honey", "clocks", "rope")


def town(rng: random.Random, index: int, used: set[str]) -> Document:
    """One fictional town: a short gazetteer entry and one question per attribute."""
    name = unique_name(rng, used, lambda: invented_word(rng, 2))
    attrs = {
        "founded": str(rng.randint(1100, 1900)),
        "river": f"the {unique_name(rng, used, lambda: invented_word(rng, 2))} River",
        "mayor": unique_name(rng, used, lambda: f"{invented_word(rng, 1)} {invented_word(rng, 2)}"),
        "export": rng.choice(EXPORTS),
        "festival": rng.choice(MONTHS),
        "twin": unique_name(rng, used, lambda: invented_word(rng, 3)),
    }
    text = (f"{name} is a town on {attrs['river']}, founded in {attrs['founded']}. Its mayor is {attrs['mayor']}. "
            f"The town is known for its {attrs['export']}, and every {attrs['festival']} it holds a festival. "
            f"{name} is twinned with {attrs['twin']}.")
    questions = (
        Question(f"In which year was {name} founded?", f"{name} was founded in", attrs["founded"], "founded"),
        Question(f"On which river does {name} lie?", f"{name} lies on", attrs["river"], "river"),
        Question(f"Who is the mayor of {name}?", f"The mayor of {name} is", attrs["mayor"], "mayor"),
        Question(f"What is {name} known for?", f"{name} is known for its", attrs["export"], "export"),
        Question(f"In which month is the festival of {name}?", f"The festival of {name} is held every",
                 attrs["festival"], "festival"),
        Question(f"Which town is {name} twinned with?", f"{name} is twinned with", attrs["twin"], "twin"),
    )
    return Document(f"town-{index:04d}", name, text, questions)


def towns(n: int, seed: int = 0) -> list[Document]:
    """`n` fictional towns; the same (n, seed) gives the same towns, and the first m of n are those of m."""
    rng = random.Random(f"towns:{seed}")
    used: set[str] = set()
    return [town(rng, i, used) for i in range(n)]
