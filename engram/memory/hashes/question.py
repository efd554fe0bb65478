"""hash=question: the answer hash (engram/memory/hashes/answer.py) keyed by the taught question a prompt asks, so the
same fact asked in other words reads the rows its taught wording wrote.

Every prompt trained on (a sequence with answer tokens, in training mode) is remembered with its span key in
`TaughtQuestions`, a buffer saved with the memory. At lookup, a prompt whose own span key was taught uses it (the
exact path, unchanged); any other prompt is read as a question (engram/memory/questions.py: entities, relation
words, wh kind) and, when it scores at least `engram.question_threshold` against a taught question, takes that
question's key. Otherwise it keeps its own key, which wrote no row: the memory abstains and the base model answers.
The key depends only on the prompt's ids, so cached and uncached generation read the same rows.
"""

from engram.lazy import implementation

__getattr__ = implementation(__name__, "Hash", "QuestionReader")  # the torch side: _question.py
