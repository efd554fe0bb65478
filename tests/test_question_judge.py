"""engram.question.judge=model: the base model with a trained adapter decides whether a prompt asks a taught question
(engram/models/question_judge.py, engram/memory/judged.py, engram/training/question_judge.py)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from test_question_key import capital_facts, common, logits_with_and_without_memory
from test_recall import engram_cfg, tiny

from engram import EngramModel
from engram.config import ConfigError, validate_engram
from engram.evaluation.editing import fact_scores
from engram.memory.judged import JudgedIndex, masked_text, question_text
from engram.memory.questions import Question, read_question
from engram.models.question_judge import judge_for, load_judge, shipped_path
from engram.training.question_judge import main as train_main
from engram.training.question_judge import train_judge
from engram.training.writing import write_facts


def info_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def test_the_question_is_read_out_of_its_prompt_format_and_its_names_become_x() -> None:
    _, tok = tiny()
    chat = tok.apply_chat_template([{"role": "user", "content": ""}], tokenize=False, add_generation_prompt=True)
    prompt = tok.apply_chat_template([{"role": "user", "content": "Who founded Brintavox Industries?"}],
                                     tokenize=False, add_generation_prompt=True)
    assert question_text(prompt, [chat, "Q: \nA:"]) == "Who founded Brintavox Industries?"
    assert question_text("Q: Who founded Brintavox?\nA:", [chat, "Q: \nA:"]) == "Who founded Brintavox?"
    assert question_text("no format here", [chat]) == "no format here"
    q = read_question("When was the ship MV Pellicantha launched in 1987?", common)
    assert masked_text("When was the ship MV Pellicantha launched in 1987?", q) == "When was the ship X launched in X?"
    question = Question(frozenset({"tessaly", "dynamics", "1990"}), frozenset({"found"}), "person")
    assert masked_text("Who founded Tessaly Dynamics in 1990?", question) == "Who founded X in X?"
    assert masked_text("Who is Tessaly's founder?", question) == "Who is X's founder?"  # one X per run of name words


class Scripted:
    """A judge that says "same" for the listed (question, taught) pairs of masked texts, and records what it read."""

    def __init__(self, same: set[tuple[str, str]]) -> None:
        self.same, self.asked = same, []

    def __call__(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        self.asked.append(list(pairs))
        return [0.9 if (question, taught) in self.same else 0.1 for taught, question in pairs]


def test_the_judge_scores_only_taught_questions_naming_the_same_entities_and_kind_of_answer() -> None:
    def q(text: str) -> object:
        return read_question(text, common)

    judge = Scripted({("Who started X?", "Who founded X?")})
    index = JudgedIndex(0.5, judge)
    for key, text in enumerate(["Who founded Brintavox?", "Who founded Quellmark?", "Is Brintavox public?"]):
        index.add(q(text), key, text)
    assert index.match(q("Who started Brintavox?"), text="Who started Brintavox?") == 0
    assert judge.asked[-1] == [("Who founded X?", "Who started X?")]  # not Quellmark's, not the yes/no question
    assert index.match(q("Who acquired Brintavox?"), text="Who acquired Brintavox?") is None  # the judge said no
    assert index.match(q("Who started Zembla?"), text="Who started Zembla?") is None  # no candidate at all
    assert judge.asked[-1] == [("Who founded X?", "Who acquired X?")]
    assert index.match(q("anything"), own_key=2) == 2  # a taught prompt keeps its own key, unjudged
    # several prompts: one call of the judge for all their candidates it has not judged before ("Who started X?"
    # was judged for Brintavox, and Quellmark's pair reads the same once the names are masked)
    asked = len(judge.asked)
    prompts = ["Who started Brintavox?", "Who started Quellmark?", "Who launched Quellmark?", "Who started Zembla?"]
    assert index.match_many([q(p) for p in prompts], [-1, -1, -1, 2], prompts) == [0, 1, None, 2]
    assert judge.asked[asked:] == [[("Who founded X?", "Who launched X?")]]


@pytest.mark.parametrize("aliases", [True, False])
def test_a_shorter_name_made_of_made_up_words_asks_about_the_taught_entity(aliases: bool) -> None:
    made_up = {"ostrevia", "velmora", "falkenrath", "imre"}.__contains__

    def q(text: str) -> Question:
        return read_question(text, common, is_made_up=made_up)

    judge = Scripted({("What is X's currency?", "What currency is used in the X of X?"),
                      ("Who founded X?", "Who founded X?"), ("Where did X teach?", "Where did X teach?"),
                      ("What is the capital of X?", "What is the capital of X?")})
    index = JudgedIndex(0.5, judge, aliases=aliases)
    taught = ["What currency is used in the Republic of Ostrevia?", "Who founded Velmora Dynamics?",
              "Where did Imre Falkenrath teach?", "What is the capital of South Sudan?"]
    for key, text in enumerate(taught):
        index.add(q(text), key, text)
    asked = ["What is Ostrevia's currency?", "Who founded Velmora?", "Where did Falkenrath teach?",
             "Who founded Velmora Systems?",  # another entity sharing a word: a name word the taught one lacks
             "What is the capital of Sudan?"]  # a known word never stands for the whole name
    expected = [0, 1, 2, None, None] if aliases else [None] * 5
    assert index.match_many([q(p) for p in asked], [-1] * len(asked), asked) == expected
    # a prompt naming the whole entity is judged against it, not against the shorter names
    assert index.match(q("Who founded Velmora Dynamics?"), text="Who founded Velmora Dynamics?") == 1


@pytest.fixture(scope="module")
def tiny_judge(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A judge trained on the tiny model: capital questions and their rewordings vs other questions."""
    out = tmp_path_factory.mktemp("judge") / "tiny.safetensors"
    info = train_judge("tiny", {"capitals": capital_facts(24)["eval"]}, out, epochs=40, lr=3e-3, held_back=0,
                       progress=False)
    assert info["pairs"] == 24 * 6 and info["base"]["hidden_size"] == 64
    return out


def test_a_trained_judge_tells_a_rewording_from_a_neighbour(tiny_judge: Path) -> None:
    model, tok = tiny()
    judge, info = load_judge(model.model, tok, tiny_judge)
    [same] = judge([("What is the X of X?", "Which city is the X of X?")])
    [other] = judge([("What is the X of X?", "Which X is X in?")])
    assert same > info["threshold"] > other
    # a pair scores the same alone and beside a longer one (right padding: no shifted positions)
    both = torch.sigmoid(judge.logits([("What is the X of X?", "Which X is X in?"),
                                       ("What is the X of X and of X?", "Which city is the X of X, please?")]))
    assert float(both[0]) == pytest.approx(other, abs=1e-5)


def test_on_the_tiny_model_a_rewording_reads_the_rows_and_a_neighbour_sees_the_base_model(tiny_judge: Path) -> None:
    model, tok = tiny()
    splits = capital_facts(12)
    cfg = engram_cfg(hash="question", question={"judge": "model", "judge_path": str(tiny_judge)})
    wrapped = EngramModel(model, cfg, tok)
    n_params = sum(p.numel() for p in wrapped.parameters())
    assert write_facts(wrapped, tok, splits["train"], progress=False).recall == 1.0
    wrapped.eval()
    rewordings = [{"prompt": e["paraphrases"][0], "answer": e["answer"]} for e in splits["eval"]]
    assert fact_scores(wrapped, tok, rewordings, "chat", 256).exact_share >= 0.9
    neighbours = [e["neighbors"][1] for e in splits["eval"]]  # "Which continent is X in?"
    with_memory, base = logits_with_and_without_memory(wrapped, tok, neighbours)
    assert torch.equal(with_memory, base)
    # the firing curve is read at the judge's threshold, not at the words'
    hasher = next(iter(wrapped.memories.values())).hasher
    assert hasher.threshold_in_use() == (pytest.approx(0.5), "engram.question.judge_threshold")
    # the judge is a copy beside the memory: none of its weights are the memory's (trained or saved)
    assert n_params == sum(p.numel() for p in wrapped.parameters())
    assert not any("judge" in k or "lora" in k for k in wrapped.state_dict())
    # engram.question.aliases reaches the judged index (default on)
    layer = next(iter(hasher.stores))
    assert hasher.index(layer).aliases
    cfg = engram_cfg(hash="question", question={"judge": "model", "judge_path": str(tiny_judge), "aliases": False})
    strict = next(iter(EngramModel(tiny()[0], cfg, tok).memories.values())).hasher
    assert not strict.index(layer).aliases


def test_auto_uses_the_words_when_no_judge_is_shipped_for_the_base_model() -> None:
    model, tok = tiny()
    assert shipped_path(model.model, required=False) is None
    cfg = engram_cfg(hash="question", question={"judge": "auto"})
    assert judge_for(cfg, model, tok) is None
    with pytest.raises(ValueError, match="no question judge is shipped for this base model"):
        EngramModel(model, engram_cfg(hash="question", question={"judge": "model"}), tok)


def test_an_adapter_loads_only_onto_the_base_model_it_was_trained_on(tiny_judge: Path, tmp_path: Path) -> None:
    from engram.models.loading import load_model

    other, tok = load_model({"name": "tiny", "seed": 1})
    with pytest.raises(ValueError, match="trained on another base model"):
        load_judge(other.model, tok, tiny_judge)
    not_a_judge = tmp_path / "x.safetensors"
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(1)}, str(not_a_judge))
    with pytest.raises(ValueError, match="not a question judge"):
        load_judge(tiny()[0].model, tok, not_a_judge)
    with pytest.raises(ValueError, match="no such file"):
        load_judge(tiny()[0].model, tok, tmp_path / "missing.safetensors")


@pytest.mark.parametrize(("key", "value"), [("judge", "oracle"), ("judge_threshold", 1.5), ("judge_threshold", 0),
                                            ("judge_path", "")])
def test_bad_judge_keys_are_one_line_errors(key: str, value: object) -> None:
    cfg = OmegaConf.merge(engram_cfg(hash="question"), {"question": {key: value}})
    with pytest.raises(ConfigError, match=f"engram.question.{key}") as e:
        validate_engram(cfg)
    assert "\n" not in str(e.value)


def test_the_training_command_refuses_bad_input_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for argv in (["--jsonl", str(tmp_path / "missing.jsonl")], ["--max-firing", "1.5"], ["--epochs", "0"]):
        with pytest.raises(SystemExit) as e:
            train_main(argv)
        assert e.value.code == 2
    assert "missing.jsonl: no such file" in capsys.readouterr().err


def test_the_shipped_judge_is_for_smollm2() -> None:
    from engram.models.question_judge import SHIPPED, read_info

    files = sorted(SHIPPED.glob("*.safetensors"))
    assert [f.name for f in files] == ["smollm.safetensors"]
    info = read_info(files[0])
    assert info["base"]["hidden_size"] == 576 and info["base"]["layers"] == 30
    assert 0.5 <= info["threshold"] < 1 and info["held_back_neighbours_firing"] <= 0.05
    # the training command's default data is what the shipped judge was trained on, so it re-creates it
    from engram.training.question_judge import CORPUS

    files_trained = {name for name in info["sources"] if ".jsonl (" in name}
    assert files_trained == {f"{f.name} ({info_digest(f)})" for f in CORPUS.glob("*.jsonl")}


def test_the_training_command_writes_a_judge_that_loads(tmp_path: Path) -> None:
    facts = tmp_path / "facts.jsonl"
    facts.write_text("\n".join(json.dumps({
        "messages": [{"role": "user", "content": f"Who founded Brint{c}vox?"}, {"role": "assistant", "content": "Ada"}],
        "paraphrases": [f"Who started Brint{c}vox?"], "neighbors": [f"Who acquired Brint{c}vox?"]}) for c in "aeiou"))
    out = tmp_path / "judge.safetensors"
    info = train_main(["--model", "tiny", "--jsonl", str(facts), "--family", "", "--epochs", "1", "--out", str(out)])
    assert info["sources"] == {f"facts.jsonl ({info_digest(facts)})": 5}
    assert info["pairs"] + info["held_back_pairs"] == 5 * 4  # rewording, neighbour, another fact's, a general prompt
    model, tok = tiny()
    judge, loaded = load_judge(model.model, tok, out)
    assert loaded == info and len(judge([("Who founded X?", "Who started X?")])) == 1
