"""benchmarks/question_reading.py: the question key's reading of a fact set without the model, as hash=question
decides (rewordings read as their own fact, neighbours firing), on generated families and on a user's JSONL file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `benchmarks` is a top-level directory

from benchmarks import question_reading  # noqa: E402


def fact(prompt: str, answer: str, paraphrases: list[str], neighbors: list[str]) -> dict:
    """One line of the documented JSONL format."""
    return {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}],
            "paraphrases": paraphrases, "neighbors": neighbors}


FACTS = [
    fact("What does ZQXW stand for?", "Zonal Quartz Exchange", ["What is ZQXW short for?",
         "ZQXW is an abbreviation of what?"], ["How do you pronounce ZQXW?", "In which year was ZQXW founded?"]),
    fact("Who founded Brimforge?", "Ada Quell", ["Who is the founder of Brimforge?", "Brimforge was founded by whom?"],
         ["When was Brimforge founded?", "Where is Brimforge based?"]),
]


def test_a_fact_file_is_read_like_the_memory_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "facts.jsonl"
    path.write_text("".join(json.dumps(f) + "\n" for f in FACTS))
    results = question_reading.main(["--model", "tiny", "--families", "", "--jsonl", str(path), "--out",
                                     str(tmp_path), "--show"])
    got = results[str(path)]
    assert (got["rewordings"], got["rewordings_read"], got["missed"]) == (4, 4, [])
    assert (got["neighbors"], got["neighbors_fired"], got["fired"]) == (4, 0, [])
    saved = json.loads((tmp_path / "question_reading.json").read_text())
    assert saved["sets"] == json.loads(json.dumps(results)) and saved["settings"]["jsonl"] == [str(path)]


def test_a_threshold_above_every_score_reads_no_rewording_and_fires_nothing() -> None:
    loose = question_reading.main(["--model", "tiny", "--families", "exact_match", "--num-train", "30",
                                   "--num-eval", "10"])
    name = "exact_match 30/10 seed 0"
    assert loose[name]["rewordings"] == 10 and loose[name]["rewordings_read"] > 0  # two per seen fact, 5 seen
    strict = question_reading.main(["--model", "tiny", "--families", "exact_match", "--num-train", "30",
                                    "--num-eval", "10", "--threshold", "1.01"])
    assert strict[name]["rewordings_read"] == 0 and strict[name]["neighbors_fired"] == 0


@pytest.mark.parametrize("args", [["--families", "nope"], ["--families", "", "--jsonl", "no/such/file.jsonl"]])
def test_a_bad_family_or_fact_file_is_one_line(args: list[str]) -> None:
    with pytest.raises(SystemExit) as e:
        question_reading.main(["--model", "tiny", *args])
    assert "\n" not in str(e.value.code) and ("nope" in str(e.value.code) or "file.jsonl" in str(e.value.code))
