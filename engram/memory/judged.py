"""The taught questions scored by a judge: a model that reads two questions and says whether they ask the same thing.

`engram.question.judge=model` (engram/memory/hashes/question.py). The lexical score of `QuestionIndex` decides from
the words two questions share; here it only finds the candidates (the taught questions naming every entity the new
question names and not asking another kind of answer, as there: a yes/no question is no rewording of a "which"
question; with no such candidate, the taught questions it names by a shorter name, `QuestionIndex.aliased`), and
the judge scores each pair. The judge sees both questions with their names replaced
by "X" ("Who founded X?" / "X was established by whom?"), so it rules on what is asked, not on which entity: every
candidate names the same ones. A judge is any callable `judge([(taught, question), ...]) -> [probability per pair]`,
asked once for all the candidates of a batch of prompts; the project's own is the base model with a trained adapter
(engram/models/question_judge.py).
Torch-free: the judge brings its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from engram.memory.questions import Question, QuestionIndex

Judge = Callable[[Sequence[tuple[str, str]]], list[float]]  # [(taught, question)] -> P(same) per pair
NAME = "X"  # what every name becomes in the text the judge reads
MAX_SCORED = 65536  # judged pairs remembered
_WORD = re.compile(r"\w+")


def question_text(prompt: str, templates: Sequence[str]) -> str:
    """The question inside a formatted prompt: the prompt less the longest prefix and suffix it shares with one of
    the prompt formats' texts around an empty question (`templates`); the prompt itself when none fits."""
    best = prompt.strip()
    for template in templates:
        head = 0
        while head < min(len(prompt), len(template)) and prompt[head] == template[head]:
            head += 1
        tail = 0
        while tail < min(len(prompt), len(template)) - head and prompt[-1 - tail] == template[-1 - tail]:
            tail += 1
        if head + tail == len(template):  # the whole format is around the question
            inner = prompt[head: len(prompt) - tail].strip()
            best = inner if len(inner) < len(best) else best
    return best


def masked_text(text: str, question: Question) -> str:
    """`text` with each run of words naming something (`question`'s entities, numbers) replaced by one "X"."""
    names = question.entities | question.maybe_entities
    firsts = {name.split()[0] for name in names}
    out, last, in_name = [], 0, False
    for m in _WORD.finditer(text):
        low = m.group().lower()
        is_name = low in names or low in firsts or any(c.isdigit() for c in low)
        out.append("" if is_name and in_name else text[last:m.start()])
        out.append((NAME if not in_name else "") if is_name else m.group())
        in_name, last = is_name, m.end()
    return "".join(out) + text[last:]


class JudgedIndex(QuestionIndex):
    """A `QuestionIndex` whose score of a candidate is the judge's probability that the two ask the same thing."""

    def __init__(self, threshold: float, judge: Judge, aliases: bool = True) -> None:
        """`aliases`: a query with no candidate may still ask a taught question that names its entity at more length
        ("Ostrevia" / "the Republic of Ostrevia": `QuestionIndex.aliased`); the judge rules on those too."""
        super().__init__(threshold)
        self.judge, self.aliases = judge, aliases
        self.texts: dict[int, str] = {}  # key -> the taught question as the judge reads it
        # (taught, question) as the judge reads them -> its probability: the evaluation and the firing curve ask
        # about the same prompts, and a pair scores the same whenever it is asked
        self.scored: dict[tuple[str, str], float] = {}

    def add(self, question: Question, key: int, text: str = "") -> None:
        if key not in self.keys and question.entities:
            self.texts[key] = masked_text(text, question)
        super().add(question, key)

    def best_many(self, queries: Sequence[Question], texts: Sequence[str]) -> list[tuple[float, int | None]]:
        """Per query, the judge's highest probability over its candidates and that candidate's key ((0, None) with no
        candidate; ties as in `best_of`). One call of the judge for every candidate pair of every query not judged
        before."""
        per_query = [self.candidates(q) or (self.aliased(q) if self.aliases else []) for q in queries]
        pairs = [(self.texts[key], masked_text(text, q)) for q, text, found in zip(queries, texts, per_query,
                                                                                  strict=True) for _, key in found]
        new = list(dict.fromkeys(pair for pair in pairs if pair not in self.scored))
        if len(self.scored) + len(new) > MAX_SCORED:
            self.scored.clear()
            new = list(dict.fromkeys(pairs))
        self.scored.update(zip(new, self.judge(new) if new else [], strict=True))
        scores = iter([self.scored[pair] for pair in pairs])
        return [self.best_of(((next(scores), taught, key) for taught, key in found), float("-inf"))
                for found in per_query]

    def best(self, query: Question, text: str = "") -> tuple[float, int | None]:
        return self.best_many([query], [text])[0]
