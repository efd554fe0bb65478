"""hash=question: the answer hash (engram/memory/hashes/answer.py) keyed by the taught question a prompt asks, so the
same fact asked in other words reads the rows its taught wording wrote.

Every prompt trained on (a sequence with answer tokens, in training mode) is remembered with its span key in
`TaughtQuestions`, a buffer saved with the memory. At lookup, a prompt whose own span key was taught uses it (the
exact path, unchanged); any other prompt is read as a question (engram/memory/questions.py: entities, relation
words, wh kind) and, when it scores at least `engram.question.threshold` against a taught question, takes that
question's key. Otherwise it keeps its own key, which wrote no row: the memory abstains and the base model answers.
The key depends only on the prompt's ids, so cached and uncached generation read the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engram.config.rules import check as rule
from engram.config.rules import finite, is_int
from engram.lazy import implementation


@dataclass
class Params:
    """`engram.question.*` (hash=question): when a prompt reads a taught question's rows, and how many it holds."""

    threshold: float = 0.45  # min score for a prompt to read a taught question's rows
    capacity: int = 4096  # how many taught questions a memory can hold
    # relation words match when their WordNet senses overlap ("author" / "wrote"; engram/memory/wordnet.py), not only
    # when their stems are equal
    synonyms: bool = True


def check(e: Any) -> None:
    q = e.question
    rule(finite(q.threshold) and 0 < q.threshold <= 1, "engram.question.threshold", q.threshold,
         "must be a number in (0, 1] (share of a taught question's words a prompt needs)")
    rule(is_int(q.capacity) and q.capacity >= 1, "engram.question.capacity", q.capacity,
         "must be an integer >= 1 (taught questions the memory can hold)")
    rule(isinstance(q.synonyms, bool), "engram.question.synonyms", q.synonyms, "must be true or false")


__getattr__ = implementation(__name__, "Hash", "QuestionReader")  # the torch side: _question.py
