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

JUDGES = ("words", "model", "auto")


@dataclass
class Params:
    """`engram.question.*` (hash=question): when a prompt reads a taught question's rows, and how many it holds."""

    threshold: float = 0.45  # min score for a prompt to read a taught question's rows
    capacity: int = 4096  # how many taught questions a memory can hold
    # relation words match when their WordNet senses overlap ("author" / "wrote"; engram/memory/wordnet.py), not only
    # when their stems are equal
    synonyms: bool = True
    # who decides that a prompt asks a taught question: "words" (the shared entities and relation words scored
    # against `threshold`), "model" (the base model with a trained adapter reads both questions and gives a
    # probability, against `judge_threshold`: engram/models/question_judge.py) or "auto" (model when an adapter is
    # shipped for the base model or judge_path names one, else words; the run header says which)
    judge: str = "words"
    judge_path: str | None = None  # judge=model: the adapter (None: the one shipped for the base model)
    judge_threshold: float | None = None  # judge=model: min probability (None: the one calibrated with the adapter)
    # judge=model: a prompt may name a taught entity by a shorter name ("Ostrevia" for "the Republic of Ostrevia",
    # when the shared words include one the vocabulary does not know); false: it must name every taught entity word
    aliases: bool = True


def check(e: Any) -> None:
    q = e.question
    rule(finite(q.threshold) and 0 < q.threshold <= 1, "engram.question.threshold", q.threshold,
         "must be a number in (0, 1] (share of a taught question's words a prompt needs)")
    rule(is_int(q.capacity) and q.capacity >= 1, "engram.question.capacity", q.capacity,
         "must be an integer >= 1 (taught questions the memory can hold)")
    rule(isinstance(q.synonyms, bool), "engram.question.synonyms", q.synonyms, "must be true or false")
    rule(isinstance(q.aliases, bool), "engram.question.aliases", q.aliases, "must be true or false")
    rule(q.judge in JUDGES, "engram.question.judge", q.judge, f"must be one of {', '.join(JUDGES)}")
    rule(q.judge_path is None or (isinstance(q.judge_path, str) and q.judge_path.strip() != ""),
         "engram.question.judge_path", q.judge_path, "must be null (the shipped adapter) or a path")
    rule(q.judge_threshold is None or (finite(q.judge_threshold) and 0 < q.judge_threshold < 1),
         "engram.question.judge_threshold", q.judge_threshold,
         "must be null (the calibrated one) or a probability in (0, 1)")


__getattr__ = implementation(__name__, "Hash", "QuestionReader")  # the torch side: _question.py
