"""Documents the compression experiments run on, all available offline.

- `biographies(n, seed)`: fictional people (invented names, cities, employers, universities) that the base model cannot
  know, each with question/answer pairs about six attributes. Deterministic by seed. Every question carries a cloze
  `stem` ("Alva Morrendt was born in") that starts the assistant's answer, so a small instruct model answers with
  the attribute itself and exact match is meaningful.
- `stdlib_documents(names)`: the docstrings of Python standard-library modules (pydoc), for qualitative use.
- `read_documents(path)`: a JSONL file of `{"id", "title", "text"}` (optional `"qa"`: list of question records).
"""

from __future__ import annotations

import json
import pydoc
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path

ONSETS = ("b", "br", "c", "d", "dr", "f", "g", "gr", "h", "k", "l", "m", "n", "p", "qu", "r", "s", "t", "th", "v",
          "w", "z")
VOWELS = ("a", "e", "i", "o", "u", "ae", "ei", "ou")
CODAS = ("", "l", "n", "r", "s", "th", "nd", "rk", "st", "v")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
COMPANY_SUFFIXES = ("Systems", "Labs", "Works", "Holdings", "Dynamics", "Foundry")
PROFESSIONS = ("cartographer", "glassblower", "actuary", "botanist", "locksmith", "archivist", "sommelier",
               "hydrologist", "luthier", "translator")
HOBBIES = ("falconry", "origami", "fencing", "beekeeping", "rowing", "calligraphy", "birdwatching", "pottery",
           "chess", "kayaking")
STDLIB_MODULES = ("json", "csv", "heapq", "difflib", "statistics", "argparse", "collections", "itertools", "sqlite3",
                  "random", "re", "unittest")  # modules whose docstring says what the module is for (>= 600 chars)


@dataclass(frozen=True)
class Question:
    question: str
    stem: str  # the start of the answer sentence, given to the model as the beginning of its reply
    answer: str
    attribute: str


@dataclass(frozen=True)
class Document:
    doc_id: str
    title: str
    text: str
    questions: tuple[Question, ...] = field(default=())


def invented_word(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice(ONSETS) + rng.choice(VOWELS) + rng.choice(CODAS) for _ in range(syllables)).capitalize()


def unique_name(rng: random.Random, used: set[str], make: Callable[[], str]) -> str:
    while True:
        name = make()
        if name not in used:
            used.add(name)
            return name


def biography(rng: random.Random, index: int, used: set[str]) -> Document:
    """One fictional person: the text and one question per attribute."""
    name = unique_name(rng, used, lambda: f"{invented_word(rng, 2)} {invented_word(rng, 2)}")
    attrs = {
        "birth_date": f"{rng.randint(1, 28)} {rng.choice(MONTHS)} {rng.randint(1940, 2000)}",
        "birth_city": unique_name(rng, used, lambda: invented_word(rng, 2)),
        "university": f"the University of {unique_name(rng, used, lambda: invented_word(rng, 2))}",
        "profession": rng.choice(PROFESSIONS),
        "employer": f"{unique_name(rng, used, lambda: invented_word(rng, 2))} {rng.choice(COMPANY_SUFFIXES)}",
        "hobby": rng.choice(HOBBIES),
    }
    article = "an" if attrs["profession"][0] in "aeiou" else "a"
    text = (f"{name} was born on {attrs['birth_date']} in {attrs['birth_city']}. {name} studied at "
            f"{attrs['university']} and works as {article} {attrs['profession']} for {attrs['employer']}. "
            f"In their free time, {name} enjoys {attrs['hobby']}.")
    questions = (
        Question(f"When was {name} born?", f"{name} was born on", attrs["birth_date"], "birth_date"),
        Question(f"In which city was {name} born?", f"{name} was born in the city of", attrs["birth_city"],
                 "birth_city"),
        Question(f"Where did {name} study?", f"{name} studied at", attrs["university"], "university"),
        Question(f"What is {name}'s profession?", f"{name} works as {article}", attrs["profession"], "profession"),
        Question(f"Which company does {name} work for?", f"{name} works for", attrs["employer"], "employer"),
        Question(f"What is {name}'s hobby?", f"In their free time, {name} enjoys", attrs["hobby"], "hobby"),
    )
    return Document(f"bio-{index:04d}", name, text, questions)


def biographies(n: int, seed: int = 0) -> list[Document]:
    """`n` fictional biographies; the same (n, seed) gives the same people, and the first m of n are those of m."""
    rng = random.Random(seed)
    used: set[str] = set()
    return [biography(rng, i, used) for i in range(n)]


def stdlib_documents(names: tuple[str, ...] = STDLIB_MODULES, max_chars: int = 1200) -> list[Document]:
    """The first `max_chars` characters of the docstrings of standard-library modules (no questions)."""
    docs = []
    for name in names:
        text = " ".join((pydoc.getdoc(import_module(name)) or "").split())[:max_chars]
        if text:
            docs.append(Document(f"stdlib-{name}", name, text))
    return docs


def read_documents(path: Path) -> list[Document]:
    """Documents from a JSONL file; ValueError naming the file and line on a malformed line."""
    docs = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            questions = tuple(Question(q["question"], q.get("stem", ""), q["answer"], q.get("attribute", "qa"))
                              for q in row.get("qa", []))
            docs.append(Document(str(row["id"]), str(row.get("title", row["id"])), str(row["text"]), questions))
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(f"{path}:{number}: not a document record ({type(e).__name__}: {e})") from None
    return docs
