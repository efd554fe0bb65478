"""hash=question: a taught fact asked in other words reads the rows its taught wording wrote; a question about the
same entity that asks something else, a question about another entity and a general prompt read none."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from test_recall import chat_ids, engram_cfg, tiny

from engram import EngramModel
from engram.config import ConfigError, validate_engram
from engram.data.families.exact_match import build_exact_match
from engram.evaluation.editing import fact_scores
from engram.evaluation.generate_eval import greedy_ids
from engram.memory.hashes.question import QuestionReader
from engram.memory.questions import QuestionIndex, read_question
from engram.training.writing import write_facts

COMMON = {"what", "which", "convert", "user", "new", "tell", "the", "atomic", "how"}


def common(word: str) -> bool:
    return word in COMMON


def question(text: str) -> object:
    return read_question(text, common)


def index(*taught: str, threshold: float = 0.4) -> QuestionIndex:
    out = QuestionIndex(threshold)
    for key, text in enumerate(taught):
        out.add(question(text), key)
    return out


def test_a_question_is_its_entities_relation_words_and_wh_kind() -> None:
    q = question("[Q4817302] In which year was Velora Thandrik born?")
    assert q.entities == {"q4817302", "velora", "thandrik"} and q.relation == {"year", "born"} and q.wh == "time"
    assert question("Who founded Orbex?").wh == "person" and question("When was Orbex founded?").wh == "time"
    assert question("How many moons does Mars have?").wh == "quantity"
    # a capitalised common word opens a sentence ("Convert", "User") but names something inside one ("New")
    assert question("Convert 5 km to m.").entities == {"5 km"}  # a number and its unit are one name
    assert question("Atomic number 59 belongs to which element?").entities == {"59"}
    # a number ending a hyphenated name takes no unit: "HX-40" is the same name before any word
    assert question("How far can the Halder HX-40 fly?").entities == {"halder", "hx", "40"}
    assert question("Is the element with atomic number 59 a metal?").wh == "yes/no"
    # a word the vocabulary spells in pieces is a name in lower case too, and a name is the same in any case
    made_up = read_question("What is the boiling point of zarnite?", common, is_made_up=lambda w: w == "zarnite")
    assert made_up.entities == {"zarnite"} == read_question("Zarnite boils at what temperature?", common).entities
    assert question("SYN_82207 has what value?").wh is None and question("[Q1] Is Velora tall?").wh == "yes/no"
    assert question("What is the capital of Papua New Guinea?").entities == {"papua", "new", "guinea"}
    assert question("[user_7] User prefers theme:").entities == {"user_7"}
    assert question("What is the capital of Réunion?").entities == {"réunion"}  # one word, not "R" + "union"
    # the stem joins inflections: founder / founded, prefers / prefer
    assert question("Who is the founder of Orbex?").relation == question("Who founded Orbex?").relation


def test_a_rewording_matches_and_everything_else_abstains() -> None:
    idx = index("What is the capital of France?", "Who founded Orbex?", "[user_7] User prefers theme:",
                "[user_7] User prefers units:", "[user_8] User prefers units:")
    assert idx.match(question("Which city is the capital of France?")) == 0
    assert idx.match(question("France has which city as its capital?")) == 0
    assert idx.match(question("Who is the founder of Orbex?")) == 1
    assert idx.match(question("[user_7] Which theme does this user prefer?")) == 2
    assert idx.match(question("[user_8] The units this user chose is")) == 4
    idx.add(question("Convert 70 mm to cm."), 5)
    idx.add(question("Which element has atomic number 59?"), 6)
    assert idx.match(question("How many cm are in 70 mm?")) == 5
    for neighbour in ("What is the official language of France?",  # same entity, another relation
                      "Convert 70 cm to mm.",  # the same words the other way round
                      "Is the element with atomic number 59 a metal?",  # yes or no, not the element
                      "When was Orbex founded?",  # same words, another kind of answer
                      "[user_8] User prefers theme:",  # "theme" was taught for user_7 only
                      "What is the capital of Germany?",  # another entity
                      "Why is the sky blue?"):
        assert idx.match(question(neighbour)) is None, neighbour
    # "theme" tells user_7's two taught questions apart, so a prompt without it is not a rewording of either
    assert idx.match(question("[user_7] What does this user prefer?")) is None


def test_quantities_names_opening_a_sentence_and_the_most_specific_entity() -> None:
    """"how many" / "the number of" ask the same kind of answer and are no relation words; a capitalised common word
    opening a sentence may be the name a taught question asked about; of equal matches, the one naming more of the
    query's entities wins; a taught relation with two rarest words needs one of them."""
    assert question("What is the number of moons of Pellos?").relation == {"moon"}
    assert question("How many moons does Pellos have?").relation == {"moon"}
    idx = index("How many moons does Pellos have?", "What is the capital of Guinea?",
                "What is the capital of Papua New Guinea?", "Which planet does the moon Tavi orbit?",
                "What is the atomic number of Calcium?")
    assert idx.match(question("What is the number of moons of Pellos?")) == 0
    assert idx.match(question("Papua New Guinea has which city as its capital?")) == 2  # not Guinea's (key 1)
    assert idx.match(question("Guinea has which city as its capital?")) == 1
    assert idx.match(question("Tavi is a moon of which planet?")) == 3  # "planet" without "orbit"
    calcium = read_question("Calcium has what atomic number?", lambda w: w in COMMON | {"calcium", "has"})
    assert "calcium" not in calcium.entities and idx.match(calcium) == 4
    assert idx.match(question("What is the melting point of Calcium?")) is None
    assert idx.match(question("Convert 70 mm to cm.")) is None  # "Convert" names nothing taught
    assert "29 mib" in question("Convert 29 MiB to KiB.").entities  # a capitalised unit is short
    assert question("Convert 29 Velora to KiB.").entities == {"29", "velora", "kib"}
    idx.add(question("Convert 29 MiB to KiB."), 5)
    assert idx.match(question("Convert 29 KiB to MiB.")) is None  # the other way round


def test_asking_for_an_abbreviations_long_form_is_a_kind_of_answer() -> None:
    """"stand for", "short for", "abbreviation of", "full form", "mean": the words an abbreviation's long form is
    asked with are its kind of answer, as "how many" is; a question asking nothing else needs a rewording to ask it."""
    idx = index("What does JWT stand for?", "What does the acronym QLM stand for?", "What is the capital of France?")
    for rewording in ("What is JWT short for?", "JWT is an abbreviation of what?", "What is the full form of JWT?",
                      "What does JWT mean?", "Expand JWT."):
        assert idx.match(question(rewording)) == 0, rewording
    assert idx.match(question("QLM is an abbreviation for what?")) == 1
    for neighbour in ("How do you pronounce JWT?", "In which field is JWT used?", "When was JWT introduced?",
                      "Is JWT a standard?", "What does France stand for?"):
        assert idx.match(question(neighbour)) is None, neighbour
    assert "stand" in question("Where does the statue of Zeus stand?").relation  # only "stand for" is the kind


def test_what_kind_of_thing_a_name_is_town_nouns_and_requests_say_nothing_of_the_relation() -> None:
    """"the sculptor X" describes X (a rewording drops it, a neighbour keeps it); "in which town" asks a place as
    "where" does; "Name the ..." opening a sentence is a request, while "display name" is what is asked."""
    assert question("Where was the sculptor Orlen Vasko born?").relation == {"born"}
    assert question("Who wrote the novel The Glass Orchard?").relation == {"wrote"}
    assert question("What is the national animal of Kestoria?").relation == {"natio", "anima"}  # "of": no name next
    assert question("In which town is the Lantern Festival held?").wh == "place"
    assert question("In which month is the Lantern Festival held?").wh == "time"
    assert question("Name the capital of Kestoria.").relation == {"capit"}
    assert question("What is the display name of user_7?").relation == {"displ", "name"}
    idx = index("Where was the sculptor Orlen Vasko born?", "In which month is the Lantern Festival held?",
                "Who wrote the novel The Glass Orchard?")
    assert idx.match(question("Where was Orlen Vasko born?")) == 0
    assert idx.match(question("When is the Lantern Festival held?")) == 1
    for neighbour in ("Where did the sculptor Orlen Vasko die?", "In which town is the Lantern Festival held?",
                      "Who published the novel The Glass Orchard?"):
        assert idx.match(question(neighbour)) is None, neighbour


def test_the_threshold_trades_rewordings_for_abstention() -> None:
    taught = ("[Q1] Velora Thandrik was born in the year", "[Q2] Tamon Quellberg was born in the city of")
    rewording = question("[Q1] The year of birth of Velora Thandrik is")  # keeps "year" (distinctive), not "born"
    assert index(*taught, threshold=0.4).match(rewording) == 0
    assert index(*taught, threshold=0.9).match(rewording) is None
    assert index(*taught).match(question("[Q1] Velora Thandrik was born in the city of")) is None
    # a single taught relation has no word more telling than another: the weighted share alone decides
    assert index(taught[0]).match(rewording) == 0
    assert index(taught[0], threshold=0.6).match(rewording) is None
    # an acronym is a name wherever it stands
    assert question("HTTP status 308 has what reason phrase?").entities == {"http", "308"}


def capital_facts(n: int) -> dict[str, list[dict]]:
    cfg = OmegaConf.create(dict(family="exact_match", num_train=n, num_eval=n, categories=["capitals"], seed=0,
                                prompt_format="chat", eval_seen_fraction=1.0))
    return build_exact_match(cfg)


def written_model(n: int = 24) -> tuple[EngramModel, object, dict[str, list[dict]]]:
    model, tok = tiny()
    splits = capital_facts(n)
    wrapped = EngramModel(model, engram_cfg(hash="question"), tok)
    assert write_facts(wrapped, tok, splits["train"], progress=False).recall == 1.0
    return wrapped.eval(), tok, splits


def test_rewordings_of_written_facts_read_their_rows_on_the_tiny_model(tmp_path: Path) -> None:
    wrapped, tok, splits = written_model()
    rewordings = [{"prompt": p, "answer": e["answer"]} for e in splits["eval"] for p in e["paraphrases"]]
    assert fact_scores(wrapped, tok, splits["eval"], "chat", 256).exact_share == 1.0
    assert fact_scores(wrapped, tok, rewordings, "chat", 256).exact_share >= 0.9
    # the taught questions are saved with the memory: a fresh model loading the file answers the rewordings too
    wrapped.save_engram(tmp_path)
    fresh, _ = tiny()
    loaded = EngramModel(fresh, engram_cfg(hash="question"), tok).load_engram(tmp_path).eval()
    assert fact_scores(loaded, tok, rewordings, "chat", 256).exact_share >= 0.9
    # with the plain answer hash the same rewordings read nothing
    plain, _ = tiny()
    exact = EngramModel(plain, engram_cfg(hash="answer"), tok)
    write_facts(exact, tok, splits["train"], progress=False)
    assert fact_scores(exact.eval(), tok, rewordings, "chat", 256).exact_share < 0.5


def test_neighbours_other_entities_and_general_prompts_see_the_base_model() -> None:
    wrapped, tok, splits = written_model()
    countries = [e["key"].split(":", 1)[1] for e in splits["eval"]]
    prompts = ([f"What is the official language of {c}?" for c in countries[:6]]
               + ["What is the capital of Atlantis?", "Why is the sky blue?", "Name a prime above 90."])
    with_memory, base = logits_with_and_without_memory(wrapped, tok, prompts)
    assert torch.equal(with_memory, base)


def logits_with_and_without_memory(wrapped: EngramModel, tok: object,
                                   prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """The chat prompts' logits with the memories on, and with them off (the base model)."""
    batch = chat_ids(tok, prompts)
    with torch.no_grad():
        with_memory = wrapped(**batch).logits
        with wrapped.memories_off():
            return with_memory, wrapped(**batch).logits


def test_a_rewording_decodes_the_same_with_and_without_the_kv_cache() -> None:
    wrapped, tok, splits = written_model(8)
    batch = chat_ids(tok, [p for e in splits["eval"][:4] for p in e["paraphrases"][:1]])
    with torch.no_grad():
        cached = greedy_ids(wrapped, tok, batch["input_ids"], batch["attention_mask"], 8, use_cache=True)
        uncached = greedy_ids(wrapped, tok, batch["input_ids"], batch["attention_mask"], 8, use_cache=False)
    assert torch.equal(cached, uncached)


@pytest.mark.parametrize(("key", "value"), [("threshold", 0.0), ("threshold", 1.5), ("capacity", 0)])
def test_bad_question_keys_are_one_line_errors(key: str, value: float) -> None:
    with pytest.raises(ConfigError, match=f"engram.question.{key}"):
        validate_engram(engram_cfg(hash="question", question={key: value}))


def test_the_question_hash_needs_the_tokenizer() -> None:
    model, _ = tiny()
    with pytest.raises(ValueError, match="needs the tokenizer"):
        EngramModel(model, engram_cfg(hash="question"))


def test_a_full_store_says_which_key_to_raise() -> None:
    model, tok = tiny()
    wrapped = EngramModel(model, engram_cfg(hash="question", question={"capacity": 2}), tok)
    with pytest.raises(RuntimeError, match="engram.question.capacity"):
        write_facts(wrapped, tok, capital_facts(3)["train"], progress=False)


def test_the_firing_curve_separates_rewordings_from_general_prompts(tmp_path: Path) -> None:
    from engram.evaluation.firing import at_threshold, firing_curve, firing_metrics

    wrapped, tok, splits = written_model()
    splits = {**splits, "paraphrase": [{**{"prompt": p}, "key": e["key"], "answer": e["answer"], "seen": True}
                                       for e in splits["eval"] for p in e["paraphrases"]],
              "neighbor": [{"prompt": f"What is the official language of {e['key'].split(':', 1)[1]}?"}
                           for e in splits["eval"]]}
    curve = firing_curve(wrapped, tok, splits, "chat")
    assert curve is not None and curve["counts"]["rewordings"] == 2 * len(splits["eval"])
    at = at_threshold(curve, 0.4)
    assert at["firing/rewordings"] >= 0.9 and at["firing/neighbors"] == 0.0 and at["firing/general"] == 0.0
    assert curve["rewordings"] == sorted(curve["rewordings"], reverse=True)  # a higher bar never fires more
    # the metrics are read at the threshold the memory itself uses (engram.question.threshold, 0.45 here)
    cfg = OmegaConf.create({"data": {"prompt_format": "chat", "seed": 0}})
    assert firing_metrics(wrapped, tok, splits, cfg, tmp_path, "tiny") == at_threshold(curve, 0.45)
    assert json.loads((tmp_path / "firing.json").read_text())["threshold_key"] == "engram.question.threshold"
    assert (tmp_path / "firing.png").stat().st_size > 0
    plain, _ = tiny()  # a memory keyed by the exact prompt has no firing curve
    assert firing_curve(EngramModel(plain, engram_cfg(hash="answer"), tok), tok, splits, "chat") is None


def test_facts_written_later_into_a_saved_memory_answer_their_rewordings_too(tmp_path: Path) -> None:
    import subprocess
    import sys

    from _training_utils import tiny_cfg

    from engram.data.families.jsonl import write_jsonl
    from engram.data.records import record
    from engram.models.engram_model import load_run
    from engram.training.pipeline import train

    run = tmp_path / "run"
    cfg = tiny_cfg(run, "engram=question", "engram.dim=64", "engram.table_size=5000", "trainer.max_epochs=0",
                   "data.num_train=16", "data.num_eval=4")
    train(cfg)
    (run / ".hydra").mkdir(exist_ok=True)
    OmegaConf.save(cfg, run / ".hydra" / "config.yaml")
    facts = [record(f"What is the secret code of Vault{i}?", f"K{i:03d}", "vaults", f"v{i}", False) for i in range(6)]
    write_jsonl(facts, tmp_path / "new.jsonl")
    out = tmp_path / "more.safetensors"
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-m", "engram.write", str(tmp_path / "new.jsonl"), f"engram={run}",
                           f"out={out}", "retention=false"], cwd=root, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    model, tok = load_run(run)
    model.load_engram(out).eval()
    rewordings = [{"prompt": f"Which secret code does Vault{i} have?", "answer": f"K{i:03d}"} for i in range(6)]
    assert fact_scores(model, tok, rewordings, "chat", 256).exact_share >= 0.8
    neighbours = chat_ids(tok, [f"Where is Vault{i}?" for i in range(6)])
    with torch.no_grad():
        with_memory = model(**neighbours).logits
        with model.memories_off():
            assert torch.equal(with_memory, model(**neighbours).logits)


def test_the_index_grows_with_each_written_batch_as_a_fresh_read_would_build_it() -> None:
    model, tok = tiny()
    wrapped = EngramModel(model, engram_cfg(hash="question"), tok)
    hasher, layer = wrapped.memory(wrapped.layers[0]).hasher, wrapped.layers[0]
    facts = capital_facts(24)["train"]
    sizes = []
    for start in range(0, 24, 8):  # three writes: the cached index takes in only the new questions each time
        write_facts(wrapped, tok, facts[start:start + 8], progress=False)
        sizes.append(len(hasher.index(layer).taught))
    grown = [(q, k) for q, k in hasher.index(layer).taught]
    hasher._index.clear()  # read everything again from the saved store
    assert sizes == [8, 16, 24] and [(q, k) for q, k in hasher.index(layer).taught] == grown


class PiecesTokenizer:
    """Spells a word of more than four letters in two pieces, a shorter one as one common token."""

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [10, 11] if len(text.strip()) > 4 else [10]


def test_a_word_wordnet_does_not_know_spelt_in_pieces_is_a_name() -> None:
    with_senses = QuestionReader(PiecesTokenizer(), [], synonyms=True)
    assert with_senses._made_up("velmine") and not with_senses._made_up("boiling")
    assert not with_senses._made_up("cat")  # one piece: a common word, known to WordNet or not
    assert not QuestionReader(PiecesTokenizer(), [], synonyms=False)._made_up("velmine")  # two pieces are not enough
