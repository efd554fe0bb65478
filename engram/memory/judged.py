"""The taught questions scored by a judge: a model that reads two questions and says whether they ask the same thing.

`engram.question.judge=model` (engram/memory/hashes/question.py). The lexical score of `QuestionIndex` decides from
the words two questions share; here it only finds the candidates (the taught questions naming every entity the new
question names and not asking another kind of answer, as there: a yes/no question is no rewording of a "which"
question), and the judge scores each pair. The judge sees both questions with their names replaced
by "X" ("Who founded X?" / "X was established by whom?"), so it rules on what is asked, not on which entity: every
candidate names the same ones. A judge is any callable `judge(question, taught) -> [probability per taught
question]`; the project's own is the base model with a trained adapter (engram/models/question_judge.py).
Torch-free: the judge brings its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from engram.memory.questions import Question, QuestionIndex, same_kind

Judge = Callable[[str, Sequence[str]], list[float]]
NAME = "X"  # what every name becomes in the text the judge reads
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

    def __init__(self, threshold: float, judge: Judge) -> None:
        super().__init__(threshold)
        self.judge = judge
        self.texts: dict[int, str] = {}  # key -> the taught question as the judge reads it

    def add(self, question: Question, key: int, text: str = "") -> None:
        if key not in self.keys and question.entities:
            self.texts[key] = masked_text(text, question)
        super().add(question, key)

    def best(self, query: Question, text: str = "") -> tuple[float, int | None]:
        """The judge's highest probability over the candidates and its key (None when there is no candidate); of
        equal probabilities the candidate naming more entities wins, then the first taught."""
        names = query.entities | query.maybe_entities
        candidates = [self.taught[i] for i in sorted({i for e in names for i in self.naming.get(e, ())})]
        candidates = [(q, key) for q, key in candidates if q.entities <= names and same_kind(query, q)]
        if not candidates:
            return 0.0, None
        scores = self.judge(masked_text(text, query), [self.texts[key] for _, key in candidates])
        best, best_key, named = -1.0, None, 0
        for (taught, key), s in zip(candidates, scores, strict=True):
            if s > best or (s == best and len(taught.entities) > named):
                best, best_key, named = s, key, len(taught.entities)
        return best, best_key
