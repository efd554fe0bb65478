"""Replay prompts for retention-aware training: general questions generated from templates and package data.

They are never the retention prompts (engram/evaluation/general_prompts.yaml) — a test checks that no replay
prompt is one of them — and never exact-match facts: the templates ask other things about the same kinds of
entities (countries, elements, HTTP statuses, numbers), so an n-gram memory learns to stay quiet on text that looks
like its facts but is not one of them. Training scores them against the frozen base model's own next-token
distribution (engram/training/replay.py), so they need no answers.
"""

from __future__ import annotations

import http
import random

from engram.data.families.exact_match import capital_facts, element_facts

COUNTRY_TEMPLATES = (
    "Tell me one interesting fact about {x}.",
    "What languages are spoken in {x}?",
    "Describe the climate of {x} in one sentence.",
    "Name a famous dish from {x}.",
    "Which continent is {x} on?",
    "Write a short travel tip for visiting {x}.",
)
ELEMENT_TEMPLATES = (
    "Is {x} a metal? Answer briefly.",
    "What is {x} commonly used for?",
    "Describe the appearance of {x} at room temperature.",
    "Who discovered {x}?",
)
STATUS_TEMPLATES = (
    "When would a web server answer with '{x}'?",
    "Explain the HTTP status '{x}' to a beginner.",
)
NUMBER_TEMPLATES = (
    "What is {a} plus {b}?",
    "What is {a} times {b}?",
    "Is {a} an even number?",
    "Write {a} in Roman numerals.",
)


def replay_prompts(count: int, seed: int) -> list[str]:
    """`count` distinct general prompts drawn with `seed` (the same seed gives the same prompts)."""
    countries = sorted({f.key.split(":", 1)[1] for f in capital_facts()})
    elements = sorted({f.answer for f in element_facts() if not f.answer.isdigit()})
    statuses = sorted(s.phrase for s in http.HTTPStatus)
    pools = [(COUNTRY_TEMPLATES, countries), (ELEMENT_TEMPLATES, elements), (STATUS_TEMPLATES, statuses)]
    rng = random.Random(f"replay:{seed}")
    out: dict[str, None] = {}
    while len(out) < count:
        kind = rng.randrange(len(pools) + 1)
        if kind == len(pools):
            a, b = rng.randrange(2, 200), rng.randrange(2, 50)
            out.setdefault(rng.choice(NUMBER_TEMPLATES).format(a=a, b=b))
        else:
            templates, items = pools[kind]
            out.setdefault(rng.choice(templates).format(x=rng.choice(items)))
    return list(out)
