"""jsonl family and the export command: round trip, file:line errors, splits, config validation."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from engram.config import ConfigError, validate
from engram.data import build_splits
from engram.data.__main__ import compose, main
from engram.data.families.jsonl import JsonlFormatError, read_jsonl, write_jsonl


def msg(prompt, answer, **extra):
    return json.dumps({"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}],
                       **extra})


def test_export_then_jsonl_gives_back_the_same_records(tmp_path, capsys):
    args = ["data=exact_match", "data.num_train=300", "data.num_eval=40", "data.eval_seen_fraction=0.5", "data.seed=7"]
    out = tmp_path / "facts.jsonl"
    assert main(["export", *args, f"out={out}"]) == 0
    assert "wrote 300 train records" in capsys.readouterr().out
    original = build_splits(validate(compose(args)).data)

    lines = out.read_text().splitlines()
    assert len(lines) == 300
    first = json.loads(lines[0])
    assert [m["role"] for m in first["messages"]] == ["user", "assistant"]
    assert first["value"] == first["messages"][1]["content"] and first["key"] and first["category"]

    cfg = validate(compose(["data=jsonl", f"data.path={out}", f"data.valid_path={tmp_path / 'facts.valid.jsonl'}"]))
    back = build_splits(cfg.data)
    assert back["train"] == original["train"]
    assert back["eval"] == original["eval"]  # seen flags included: recomputed from the train keys


def test_export_cli_runs_as_a_module(tmp_path):
    out = tmp_path / "p.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "engram.data", "export", "data=patterns", "data.num_train=20", "data.num_eval=8",
         f"out={out}"], capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(read_jsonl(out)) == 20 and len(read_jsonl(tmp_path / "p.valid.jsonl")) == 8


def test_export_bad_config_exits_2_with_the_key(tmp_path, capsys):
    assert main(["export", "data.num_train=0", f"out={tmp_path / 'x.jsonl'}"]) == 2
    assert "data.num_train=0" in capsys.readouterr().err
    assert main(["export", "data=exact_match"]) == 2  # no out=
    assert main(["nope"]) == 2


def test_bad_line_error_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(msg("a?", "b") + "\n\n" + "{not json\n")
    with pytest.raises(JsonlFormatError) as e:
        read_jsonl(path)
    assert str(e.value).startswith(f"{path}:3: invalid JSON")
    assert e.value.line == 3


@pytest.mark.parametrize(
    "line, reason",
    [
        ('["a", "b"]', "expected a JSON object"),
        ('{"prompt": "a"}', 'missing "messages"'),
        ('{"messages": [{"role": "user", "content": "a"}]}', "one user then one assistant"),
        ('{"messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}]}', "roles"),
        ('{"messages": [{"role": "user", "content": 1}, {"role": "assistant", "content": "b"}]}', "string"),
        (msg("a", "b", key=5), '"key" must be a string'),
    ],
)
def test_bad_line_reasons(tmp_path, line, reason):
    path = tmp_path / "d.jsonl"
    path.write_text(msg("q", "a") + "\n" + line + "\n")
    with pytest.raises(JsonlFormatError, match=rf"d\.jsonl:2: .*{reason}"):
        build_splits({"family": "jsonl", "path": str(path)})


def test_missing_file_fails_at_config_validation(tmp_path):
    with pytest.raises(ConfigError, match=r"data\.path=.*missing\.jsonl does not exist"):
        validate(compose(["data=jsonl", f"data.path={tmp_path / 'missing.jsonl'}"]))
    with pytest.raises(ConfigError, match=r"data\.path"):
        validate(compose(["data=jsonl"]))


def test_split_fraction_without_valid_file(tmp_path):
    path = tmp_path / "all.jsonl"
    path.write_text("\n".join(msg(f"q{i}?", f"a{i}", key=f"k{i}", category="c") for i in range(50)) + "\n")
    cfg = {"family": "jsonl", "path": str(path), "split_fraction": 0.2, "seed": 1}
    s = build_splits(cfg)
    assert s == build_splits(cfg)
    assert len(s["train"]) == 40 and len(s["eval"]) == 10
    assert not {r["key"] for r in s["train"]} & {r["key"] for r in s["eval"]}
    assert not any(r["seen"] for r in s["eval"])
    assert {r["prompt"] for r in s["train"] + s["eval"]} == {f"q{i}?" for i in range(50)}


def test_defaults_caps_and_test_file(tmp_path):
    train = tmp_path / "t.jsonl"
    train.write_text("\n".join(msg(f"q{i}", f"a{i}") for i in range(10)) + "\n")
    test = tmp_path / "test.jsonl"
    write_jsonl([{"prompt": "q1", "answer": "a1", "category": "x", "key": "q1", "seen": True}], test)
    s = build_splits({"family": "jsonl", "path": str(train), "valid_path": str(train), "test_path": str(test),
                      "num_train": 4, "num_eval": 6})
    assert [r["prompt"] for r in s["train"]] == ["q0", "q1", "q2", "q3"]  # file order kept
    assert s["train"][0]["category"] == "jsonl" and s["train"][0]["key"] == "q0"  # defaults
    assert len(s["eval"]) == 6 and [r["seen"] for r in s["eval"]] == [True] * 4 + [False] * 2
    assert s["test"] == [{"prompt": "q1", "answer": "a1", "category": "x", "key": "q1", "seen": True}]


def test_non_utf8_line_is_named_by_file_and_line(tmp_path):
    path = tmp_path / "latin1.jsonl"
    latin1 = b'{"messages": [{"role": "user", "content": "caf\xe9?"}, {"role": "assistant", "content": "b"}]}'
    path.write_bytes((msg("q", "a") + "\n").encode() + latin1 + b"\n")
    with pytest.raises(JsonlFormatError, match=r"latin1\.jsonl:2: is not UTF-8 \(byte 0xe9 at column \d+\)"):
        read_jsonl(path)


def test_user_test_file_is_scored_next_to_the_eval_split(tmp_path, capsys):
    """data.test_path without a valid file on the tiny model: every training fact is taught (split_fraction is not
    carved out), the test file is the eval split and gets test/ metrics, seen/unseen by key against the training
    keys, its own rows in eval.json and eval.md; the title counts the facts trained, not data.num_train's cap."""
    from engram.training.pipeline import train
    from tests._training_utils import tiny_cfg

    train_file, test_file = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    train_file.write_text("\n".join(msg(f"What is code {i}?", f"C{i}", key=f"k{i}") for i in range(20)) + "\n")
    test_file.write_text("\n".join(msg(f"Code {i}, please?", f"C{i}", key=f"k{i}") for i in range(15, 25)) + "\n")
    run_dir = tmp_path / "run"
    cfg = tiny_cfg(run_dir, "data=jsonl", f"data.path={train_file}", f"data.test_path={test_file}",
                   "data.num_train=100000000", "data.num_eval=1000", "data.split_fraction=0.1")
    metrics, objects = train(cfg)

    train_keys = {r["key"] for r in objects["datamodule"].train_records}
    assert len(train_keys) == 20  # all of them: the test file is the held-out part
    expected_seen = len({f"k{i}" for i in range(15, 25)} & train_keys)
    assert metrics["test/num_examples"] == 10 and metrics["test/num_seen"] == expected_seen
    assert metrics["test/num_unseen"] == 10 - expected_seen and "test/exact_match" in metrics
    assert metrics["eval/num_examples"] == 10 and metrics["eval/exact_match"] == metrics["test/exact_match"]

    result = json.loads((run_dir / "eval.json").read_text())
    assert result["info"]["num_train"] == 20
    assert len(result["examples"]) == 10 and len(result["test_examples"]) == 10
    assert [r["seen"] for r in result["test_examples"]] == [f"k{i}" in train_keys for i in range(15, 25)]
    assert result["metrics"]["test/exact_match"] == metrics["test/exact_match"]
    md = (run_dir / "eval.md").read_text()
    assert "Test file (data.test_path)" in md and "test file exact match (10)" in md
    out = capsys.readouterr().out
    assert "jsonl (20 train)" in out and "100000000" not in out


def facts_and_test_file(tmp_path, n_train=400, test_keys=range(380, 430)):
    train, test = tmp_path / "facts.jsonl", tmp_path / "test.jsonl"
    train.write_text("\n".join(msg(f"What is code {i}?", f"C{i}", key=f"k{i}") for i in range(n_train)) + "\n")
    test.write_text("\n".join(msg(f"Code {i}, please?", f"C{i}", key=f"k{i}") for i in test_keys) + "\n")
    return train, test


def test_test_file_without_valid_file_teaches_every_fact(tmp_path):
    """data.test_path and no data.valid_path: all 400 facts are taught, the test file is the eval split (and the
    test split); split_fraction is carved out only when neither file is given."""
    train, test = facts_and_test_file(tmp_path)
    s = build_splits({"family": "jsonl", "path": str(train), "test_path": str(test), "split_fraction": 0.1})
    assert len(s["train"]) == 400 and [r["prompt"] for r in s["train"]] == [f"What is code {i}?" for i in range(400)]
    assert s["eval"] == s["test"] and len(s["eval"]) == 50
    assert [r["seen"] for r in s["eval"]] == [i < 400 for i in range(380, 430)]
    carved = build_splits({"family": "jsonl", "path": str(train), "split_fraction": 0.1})
    assert (len(carved["train"]), len(carved["eval"])) == (360, 40) and "test" not in carved
    with_valid = build_splits({"family": "jsonl", "path": str(train), "valid_path": str(test), "test_path": str(test)})
    assert len(with_valid["train"]) == 400 and len(with_valid["eval"]) == 50


def test_startup_line_says_how_many_facts_are_taught_and_held_out(tmp_path, caplog):
    """train.py's first log line (validated_or_exit, before any weights load) counts the taught and held-out facts."""
    from engram.cli import validated_or_exit

    train, test = facts_and_test_file(tmp_path)
    lines = {}
    for name, extra in (("test", [f"data.test_path={test}"]), ("carved", [])):
        caplog.clear()
        with caplog.at_level("INFO", logger="engram.cli"):
            validated_or_exit(compose(["model=tiny", "data=jsonl", f"data.path={train}", *extra]))
        lines[name] = [r.getMessage() for r in caplog.records if r.name == "engram.cli"]
    assert lines["test"] == ["data=jsonl: 400 facts taught, 50 for evaluation (30 held out, 20 taught); eval: "
                             "data.test_path; every fact of data.path is taught"]
    assert lines["carved"] == ["data=jsonl: 360 facts taught, 40 for evaluation (40 held out, 0 taught); eval: 10% of "
                               "data.path (data.split_fraction), not taught"]
