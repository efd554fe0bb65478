"""What a question asks, read from its words: the entities it names and the relation it asks about.

Used by hash=question (engram/memory/hashes/question.py) to decide that a prompt asks a taught question in other
words. A question is reduced to
  - `entities`: the words that name something (they contain a digit, or are capitalised and not a common word:
    "France", "Q4817302", "SYN_01762", "NASA"); a rewording keeps them, so every entity of the taught question must
    appear in the new one;
  - `relation`: the stems of its other content words ("capital", "atomic number", "born year"), function words left
    out; a rewording keeps most of them, a neighbour question about the same entity ("What is the official language
    of France?") does not;
  - `wh`: the kind of answer a wh-word asks for (who / when / where / why / how many), when it names one: "Who
    founded X?" and "When was X founded?" share entity and relation words and differ only there; "how many",
    "how much" and "the number of" all ask a quantity (and are no relation words), "in what year" a time, "in
    which town" a place; "yes/no" for a question opening with an auxiliary ("Is X a metal?"), which never reads the
    rows of a question that is not one.
A capitalised common word opening a sentence is a relation word ("Convert 5 km to m."), and may also be a name:
"Calcium has what atomic number?" asks about the Calcium a taught question names (`maybe_entities`). Words that say
what kind of thing a name is ("the sculptor Orlen Vasko") are neither: a rewording may drop them, a neighbour keeps
them. A compound noun WordNet knows as one word ("boiling point", "chief executive officer") is one relation word:
"melting point" is another relation, not half of the same one.
`QuestionIndex` scores a new question against the taught ones. Relation words are weighted by how many distinct
taught relations use them, and one of the rarest ones of a taught question must be there: "User prefers theme:" and
"User prefers units:" share "user prefers", so "theme" is what the taught question is about and a question without
it is a neighbour, not a rewording. Two relation words match when their stems are equal or, given a `senses` reader
(engram/memory/wordnet.py), when their word senses overlap: "Who is the author of X?" asks "Who wrote X?". Of taught
questions that match equally well, the one naming more entities wins: "Papua New Guinea", not "Guinea".
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from engram.memory.wordnet import meet

WORD = re.compile(r"\w+")  # unicode letters, digits and _: "Réunion", "SYN_01762"
SENTENCE_START = re.compile(r"(?:^|[.?!:\]\n>|]\s*)(\w+)")
SUFFIXES = ("ations", "ation", "ings", "ing", "ers", "er", "ed", "es", "s")
STEM_LENGTH = 5
# Function words and the filler of questions and chat templates: never part of a relation.
STOPWORDS = frozenset("""
a an the and or but if of to in on at by for with from as into about over under between than then so too very
is are was were be been being am do does did done have has had having will would shall should can could may might
must it its this that these those there here what which who whom whose when where why how me my mine we our you
your he him his she her they them their i one ones some any all each every no not nor only own same such just also
please tell give say write answer question briefly short word words named called known know as per many much
""".split())
IMPERATIVES = frozenset("name list state identify".split())  # "Name the ...": a request at a sentence's start
WH_KINDS = {"who": "person", "whom": "person", "whose": "person", "when": "time", "where": "place", "why": "reason"}
QUANTITY = ("how many", "how much", "the number of")
# "What does X stand for?", "What is X short for?", "X is an abbreviation of what?": the words an abbreviation's
# long form is asked with are the kind of answer, like "how many" (phrases of lowercase words, matched whole)
EXPANSION = ("stand for", "stands for", "stood for", "short for", "abbreviation", "abbreviated", "acronym",
             "initialism", "full form", "long form", "expand", "expands", "expanded", "expansion", "mean", "means",
             "meaning")
# "In what year", "in which town": a time or a place asked for without "when" or "where"
NOUN_KINDS = {**dict.fromkeys("year date day month century".split(), "time"),
              **dict.fromkeys("place city town village country region state province location".split(), "place")}
MAX_UNIT = 6  # "mm", "bytes", "hours": a unit is a short word ("59 belongs to" is not "59 belongs")
MAX_CAPITAL_UNIT = 3
ARTICLES = frozenset(("the", "a", "an"))
MAX_DESCRIPTOR = 2  # "the video game X"
MAX_PHRASE = 3  # "chief executive officer"
AUXILIARIES = frozenset("is are was were do does did can could will would has have had should".split())


@dataclass(frozen=True)
class Question:
    entities: frozenset[str]
    relation: frozenset[str]
    wh: str | None
    # capitalised common words opening a sentence: a name ("Calcium has what atomic number?") or not ("Convert ...");
    # they count as the taught question's entities, and stay relation words too
    maybe_entities: frozenset[str] = field(default_factory=frozenset, compare=False, hash=False)
    # relation stem -> the senses of its words (read with a `senses` reader; empty without one)
    senses: dict[str, frozenset[str]] = field(default_factory=dict, compare=False, hash=False)
    # the entity words the vocabulary does not know ("ostrevia", not "sudan"): only these let a shorter name stand
    # for the whole one (QuestionIndex.aliased)
    made_up: frozenset[str] = field(default_factory=frozenset, compare=False, hash=False)

    def means(self, stem_: str, other: Question) -> bool:
        """Whether `other` has the relation word `stem_` of this question, or one meaning the same."""
        own = self.senses.get(stem_, frozenset())
        return stem_ in other.relation or any(meet(own, s) for s in other.senses.values())


def stem(word: str) -> str:
    w = word.lower()
    for suffix in SUFFIXES:
        if w.endswith(suffix) and len(w) - len(suffix) >= 4:
            w = w[: -len(suffix)]
            break
    return w[:STEM_LENGTH]


def _with_unit(text: str, number: str, start: int, end: int, following: re.Match | None) -> str:
    """A number and the unit right after it are one name: "70 mm" (so "Convert 70 cm to mm." is not "Convert 70 mm
    to cm."); a number before a function word or punctuation stands alone, and so does one ending a hyphenated name
    ("the HX-40 fly", "Aurelis-3 probe")."""
    in_name = text[start - 1: start] == "-" and text[start - 2: start - 1].isalnum()
    if in_name or following is None or text[end:following.start()].strip() or following.group().lower() in STOPWORDS:
        return number
    unit = following.group()
    # a capitalised unit is short ("MiB", "GB", "Hz"); a longer capitalised word is a name ("42 Velora")
    is_unit = (unit[0].islower() or len(unit) <= MAX_CAPITAL_UNIT) and len(unit) <= MAX_UNIT and unit.isalpha()
    return f"{number} {unit.lower()}" if is_unit else number


def _phrase_positions(words: list[str], phrases: tuple[str, ...]) -> set[int]:
    """Positions of `words` (lowercase) inside any of the whole-word `phrases`."""
    out: set[int] = set()
    for phrase in phrases:
        parts = phrase.split()
        for i in range(len(words) - len(parts) + 1):
            if words[i:i + len(parts)] == parts:
                out.update(range(i, i + len(parts)))
    return out


def template_words(texts: list[str]) -> frozenset[str]:
    """The lowercase words of prompt-format text around a question (a chat template's system prompt and role
    names, "Q:" / "A:"): every prompt has them, so they say nothing about what is asked."""
    return frozenset(w.lower() for t in texts for w in WORD.findall(t))


def read_question(text: str, is_common: Callable[[str], bool], template: frozenset[str] = frozenset(),
                  is_made_up: Callable[[str], bool] = lambda word: False,
                  senses: Callable[[str], frozenset[str]] | None = None) -> Question:
    """The question's entities, relation stems and wh kind. `is_common(lowercase word)`: a frequent word of the
    language, so a capitalised "Convert" or "User" opening a sentence is not an entity (the tokenizer's vocabulary
    decides; engram/memory/hashes/question.py). `template`: words of the prompt format, skipped. `is_made_up(lowercase
    word)`: a word the vocabulary does not know (spelt in several pieces: "zarnite"), a name even in lower case.
    `senses(lowercase word)`: its word senses (engram/memory/wordnet.py), kept per relation stem; None: none."""
    entities, maybe, relation, meanings, made_up = set(), set(), set(), {}, set()
    starts = {m.start(1) for m in SENTENCE_START.finditer(text)}
    words = [m for m in WORD.finditer(text) if m.group().lower() not in template]
    lows = [m.group().lower() for m in words]
    expansion = _phrase_positions(lows, EXPANSION)
    kinds: list[str] = []  # per word: "entity", "relation" or "" (a function word, or the kind of answer)
    for i, m in enumerate(words):
        w, low = m.group(), lows[i]
        before, after = lows[i - 1] if i else "", lows[i + 1] if i + 1 < len(lows) else ""
        # the long form of an abbreviation, "the number of": the kind of answer (wh), not what it is about
        if i in expansion or (low == "number" and before == "the" and after == "of") or (
                low in IMPERATIVES and m.start() in starts):
            kinds.append("")
            continue
        # a capitalised common word names something inside a sentence ("Papua New Guinea"), not at its start ("What")
        named = w[0].isupper() and low not in STOPWORDS and (m.start() not in starts or not is_common(low))
        acronym = len(w) > 1 and w.isupper()  # "HTTP", "JWT": a name wherever it stands
        if any(c.isdigit() for c in w):
            entities.add(_with_unit(text, low, m.start(), m.end(), words[i + 1] if i + 1 < len(words) else None))
            kinds.append("entity")
        elif named or acronym or (low not in STOPWORDS and is_made_up(low)):
            entities.add(low)  # "Zarnite" opening a sentence is "zarnite" inside one
            kinds.append("entity")
            if is_made_up(low):
                made_up.add(low)
        else:
            kinds.append("relation" if low not in STOPWORDS else "")
    for i in _descriptors(lows, kinds):
        kinds[i] = ""
    for m, low, kind in zip(words, lows, kinds, strict=True):
        if kind != "relation":
            continue
        if m.group()[0].isupper():
            maybe.add(low)
        relation.add(root := stem(low))
        if senses is not None:
            meanings[root] = meanings.get(root, frozenset()) | senses(low)
    if senses is not None:
        for phrase, start, end in _phrases(lows, kinds, senses):
            parts = [low for low, kind in zip(lows[start:end], kinds[start:end], strict=True) if kind == "relation"]
            for part in map(stem, parts):
                relation.discard(part)
                meanings.pop(part, None)
            relation.add(phrase)
            meanings[phrase] = senses(phrase)
    opening = next((m.group().lower() for m in words if text[m.start() - 1: m.start()] != "["), "")  # not "[ID]"
    wh = _answer_kind(lows, bool(expansion), opening)
    return Question(frozenset(entities), frozenset(relation), wh, frozenset(maybe), meanings, frozenset(made_up))


def _phrases(lows: list[str], kinds: list[str], senses: Callable[[str], frozenset[str]]) -> list[tuple[str, int, int]]:
    """The word sequences WordNet knows as one noun ("boiling point", "chief executive officer"), as (WordNet's
    spelling, first position, end position), longest first: "melting point" is not "boiling point" with one word
    changed. Nouns only: a phrasal verb's words also stand free ("made out of stone" is not "make out")."""
    out, used = [], set()
    for n in range(MAX_PHRASE, 1, -1):
        for i in range(len(lows) - n + 1):
            span = range(i, i + n)
            if used & set(span) or kinds[i] != "relation" or kinds[i + n - 1] != "relation" or any(
                    kinds[j] not in ("relation", "") for j in span):
                continue
            phrase = "_".join(lows[i:i + n])
            if any(x.startswith("n") for x in senses(phrase)):
                out.append((phrase, i, i + n))
                used.update(span)
    return out


def _descriptors(lows: list[str], kinds: list[str]) -> list[int]:
    """Positions of the words that say what kind of thing a name is, between an article and the name: "the sculptor
    Orlen Vasko", "the video game Starfall Drift". A rewording may drop them and a neighbour question keeps them,
    so they say nothing about what is asked."""
    out: list[int] = []
    for i, kind in enumerate(kinds):
        if kind != "entity":
            continue
        j = i - 1 if i and lows[i - 1] in ARTICLES else i  # "the novel The Glass Orchard"
        end = j
        while j > 0 and end - j < MAX_DESCRIPTOR and kinds[j - 1] == "relation":
            j -= 1
        if j < end and j > 0 and lows[j - 1] in ARTICLES:
            out.extend(range(j, end))
    return out


def _answer_kind(lows: list[str], expansion: bool, opening: str) -> str | None:
    """The kind of answer the question's words ask for (`Question.wh`), or None when they name none."""
    if expansion:
        return "expansion"
    lowered = " ".join(lows)
    if any(q in lowered for q in QUANTITY):
        return "quantity"
    for before, word in zip(lows, lows[1:], strict=False):
        if before in ("what", "which") and word in NOUN_KINDS:
            return NOUN_KINDS[word]
    kind = next((WH_KINDS[w] for w in lows if w in WH_KINDS), None)
    # "Is the element ... a metal?" asks yes or no, not the element
    return "yes/no" if kind is None and opening in AUXILIARIES else kind


def _split_numbers(entities: frozenset[str]) -> tuple[frozenset[str], frozenset[str]]:
    """(the name words, the numbers without their units): "3 probe" and "3" are the same number."""
    numbers = frozenset(e.split()[0] for e in entities if any(c.isdigit() for c in e))
    return frozenset(e for e in entities if not any(c.isdigit() for c in e)), numbers


def same_kind(query: Question, taught: Question) -> bool:
    """Whether the two may ask for the same kind of answer: not when both name a kind and they differ, and a yes/no
    question only ever asks what a yes/no question asks."""
    return not (query.wh and taught.wh and query.wh != taught.wh) and (query.wh == "yes/no") == (taught.wh == "yes/no")


class QuestionIndex:
    """The taught questions (each with the key its memory rows were written under) and the best match of a new one."""

    def __init__(self, threshold: float) -> None:
        self.threshold = float(threshold)
        self.taught: list[tuple[Question, int]] = []
        self.keys: set[int] = set()
        self.relations: set[frozenset[str]] = set()  # the distinct relations taught
        self.df: Counter[str] = Counter()  # stem -> how many distinct relations use it
        self.naming: dict[str, list[int]] = {}  # entity -> positions in `taught` of the questions naming it

    def add(self, question: Question, key: int, text: str = "") -> None:
        """`text`: the question as written (the words are scored here; a judge reads the text: memory/judged.py)."""
        if key in self.keys or not question.entities:  # a question naming nothing cannot be told from another
            return
        self.keys.add(key)
        for entity in question.entities:
            self.naming.setdefault(entity, []).append(len(self.taught))
        self.taught.append((question, key))
        if question.relation not in self.relations:
            self.relations.add(question.relation)
            self.df.update(question.relation)

    def weight(self, stem_: str) -> float:
        return math.log((len(self.relations) + 1) / (self.df.get(stem_, 0) + 1)) + 1.0

    def distinctive(self, relation: frozenset[str]) -> frozenset[str]:
        """The stems of a taught relation used by fewer taught relations than its other stems ("theme" beside
        "user prefers"); none when they tie, so then the weighted share alone decides."""
        counts = {w: self.df.get(w, 0) for w in relation}
        if not counts or min(counts.values()) == max(counts.values()):
            return frozenset()
        rarest = min(counts.values())
        return frozenset(w for w, c in counts.items() if c == rarest)

    def score(self, query: Question, taught: Question) -> float:
        """0 unless the query names every entity of the taught question, asks for the same kind of answer and has
        its distinctive relation words (or ones meaning the same); else the smaller of the weighted share of the
        taught relation words the query has, and the weighted share of the query's known relation words (ones a
        taught question uses, or meaning one of the taught question's) that the taught question has."""
        if not self.admits(query, taught):
            return 0.0
        if taught.wh and not taught.relation and query.wh != taught.wh:
            return 0.0  # "What does JWT stand for?" asks nothing but its kind: a rewording must ask it too
        distinctive = self.distinctive(taught.relation)
        if distinctive and not any(taught.means(w, query) for w in distinctive):
            return 0.0
        kept = [w for w in taught.relation if taught.means(w, query)]
        recall = sum(map(self.weight, kept)) / sum(map(self.weight, taught.relation)) if taught.relation else 1.0
        answered = [w for w in query.relation if query.means(w, taught)]
        known = {*answered, *(w for w in query.relation if w in self.df)}
        precision = sum(map(self.weight, answered)) / sum(map(self.weight, known)) if known else 1.0
        return min(recall, precision)

    @staticmethod
    def admits(query: Question, taught: Question) -> bool:
        """Whether the query names every entity of the taught question and may ask for the same kind of answer."""
        return taught.entities <= query.entities | query.maybe_entities and same_kind(query, taught)

    def candidates(self, query: Question) -> list[tuple[Question, int]]:
        """The taught questions (with their keys) the query admits, in the order they were taught. Only questions
        naming one of the query's entities can be one, so only those are looked at."""
        return [(taught, key) for taught, key in self._naming_one_of(query) if self.admits(query, taught)]

    def _naming_one_of(self, query: Question) -> list[tuple[Question, int]]:
        """The taught questions (with their keys) naming one of the query's names, in the order they were taught."""
        names = query.entities | query.maybe_entities
        return [self.taught[i] for i in sorted({i for entity in names for i in self.naming.get(entity, ())})]

    @staticmethod
    def names_by_alias(query: Question, taught: Question) -> bool:
        """Whether the query names the taught question's entity by a shorter name ("Ostrevia" for "the Republic of
        Ostrevia", "Falkenrath" for "Imre Falkenrath") and may ask for the same kind of answer: every name word the
        query uses is one of the taught question's, they include one the vocabulary does not know (so "Sudan" never
        stands for "South Sudan", nor "Guinea" for "Papua New Guinea"), and the numbers are the same."""
        names = query.entities | query.maybe_entities
        words, numbers = _split_numbers(query.entities)
        taught_words, taught_numbers = _split_numbers(taught.entities)
        return (bool(taught.made_up & names) and words <= taught_words and numbers == taught_numbers
                and same_kind(query, taught))

    def aliased(self, query: Question) -> list[tuple[Question, int]]:
        """The taught questions (with their keys) whose entity the query names by a shorter name
        (`names_by_alias`), in the order they were taught."""
        return [(taught, key) for taught, key in self._naming_one_of(query) if self.names_by_alias(query, taught)]

    @staticmethod
    def best_of(scored: Iterable[tuple[float, Question, int]], floor: float) -> tuple[float, int | None]:
        """The highest score above `floor` and its key ((0, None) when none is): of equal scores the candidate
        naming more entities wins ("Papua New Guinea", not "Guinea"), then the first."""
        best, best_key, named = floor, None, 0
        for s, taught, key in scored:
            if s > best or (best_key is not None and s == best and len(taught.entities) > named):
                best, best_key, named = s, key, len(taught.entities)
        return (best, best_key) if best_key is not None else (0.0, None)

    def best(self, query: Question, text: str = "") -> tuple[float, int | None]:
        """The highest score over the taught questions and its key (None when none scores above 0)."""
        return self.best_of(((self.score(query, taught), taught, key) for taught, key in self.candidates(query)), 0.0)

    def best_many(self, queries: list[Question], texts: list[str]) -> list[tuple[float, int | None]]:
        """`best` of each query (a judged index asks its judge once for all of them)."""
        return [self.best(q, t) for q, t in zip(queries, texts, strict=True)]

    def match_many(self, queries: list[Question], own_keys: list[int], texts: list[str]) -> list[int | None]:
        """The key of the taught question each query asks (its own key when it is one), or None: abstain."""
        out: list[int | None] = [k if k in self.keys else None for k in own_keys]
        open_ = [i for i, k in enumerate(out) if k is None]
        for i, (score, key) in zip(open_, self.best_many([queries[i] for i in open_], [texts[i] for i in open_]),
                                   strict=True):
            out[i] = key if score >= self.threshold else None
        return out

    def match(self, query: Question, own_key: int | None = None, text: str = "") -> int | None:
        """The key of the taught question the query asks (its own key when it is one), or None: abstain."""
        return self.match_many([query], [-1 if own_key is None else own_key], [text])[0]
