"""demo.py (issue 17): the gate readout, the terminal session driven by --prompts, the HTML page's content, report.py's
gate gallery and bad input. The tiny run's memory holds two facts (tests/_demo_utils.py), so its gate is known:
1 at the position predicting each answer token of those facts, 0 everywhere else. The page in a real browser:
tests/test_demo_browser.py."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from _demo_utils import WRITTEN, tiny_memory_run
from rich.console import Console

from engram.config.rules import ConfigError
from engram.data.formatting import encode_prompts
from engram.demo.args import default_run, parse
from engram.demo.gallery import gate_gallery
from engram.demo.gates import answer_ids, read_gates
from engram.demo.heat import HOT, heat_hex, visible
from engram.demo.page import render_page
from engram.demo.session import DemoRun, example_prompts, load_demo
from engram.demo.terminal import comparison_view
from engram.tracking.report import write_report
from engram.tracking.report_cli import main as report_main

ROOT = Path(__file__).resolve().parent.parent
NEW_TOKENS = 12
GENERAL = "Why is the sky blue?"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    return tiny_memory_run(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def demo(run: tuple[Path, list[dict]]) -> DemoRun:
    return load_demo(run[0], NEW_TOKENS)


def demo_py(*args: str, cwd: Path = ROOT, stdin: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "240"}
    return subprocess.run([sys.executable, str(ROOT / "demo.py"), *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300, input=stdin)


# ---------------------------------------------------------------- gate readout


def test_the_gate_is_one_exactly_where_a_written_fact_is_answered(demo: DemoRun, run) -> None:
    _, facts = run
    layer = demo.layers[0]
    for fact in facts:
        c = demo.ask(fact["prompt"], "trained fact")
        assert c.memory_answer == fact["answer"]  # the memory recalls it ...
        assert c.base_answer != fact["answer"]  # ... the same weights with the memories off do not
        prompt, answer = c.trace.prompt(layer), c.trace.answer(layer)
        assert "".join(p for p, _ in answer) == fact["answer"]
        # the last prompt token predicts the first answer token: from there on every position got its row
        assert [v for _, v in prompt] == [0.0] * (len(prompt) - 1) + [1.0]
        assert [v for _, v in answer] == [1.0] * len(answer)
        assert fact["prompt"].replace(" ", "") in "".join(p for p, _ in prompt).replace(" ", "")


def test_the_gate_stays_shut_on_prompts_the_memory_never_saw(demo: DemoRun) -> None:
    for prompt in (GENERAL, demo.facts[WRITTEN]["prompt"]):  # a general prompt; a training fact never written
        c = demo.ask(prompt)
        assert c.base_answer == c.memory_answer
        assert set(c.trace.gates[demo.layers[0]]) == {0.0}


def test_the_readout_matches_what_the_memory_did_while_generating(demo: DemoRun, run) -> None:
    """The teacher-forced forward sees the keys greedy decoding looked up: the memory entering of every decoding
    step (its trace, read by a forward hook, PyTorch's public API) equals the readout over prompt + answer."""
    memory = demo.model.memory(demo.layers[0])
    for prompt in (run[1][0]["prompt"], GENERAL):
        ids = encode_prompts(demo.tokenizer, [prompt], demo.prompt_format)[0]
        seen: list[float] = []
        handle = memory.register_forward_hook(lambda _m, _a, result, out=seen:
                                              out.extend(result[1].entering()[0].tolist()))  # (residual, trace)
        try:
            answer = answer_ids(demo.model, demo.tokenizer, ids, NEW_TOKENS)
        finally:
            handle.remove()
        readout = read_gates(demo.model, ids + answer, len(ids))[demo.layers[0]]
        n = min(len(seen), len(readout))
        assert n >= len(ids) + len(answer) - 1 and seen[:n] == pytest.approx(readout[:n], abs=1e-4)


# ---------------------------------------------------------------- views


def test_terminal_view_tints_the_answer_tokens_with_the_hot_colour(demo: DemoRun, run) -> None:
    fact = run[1][1]
    out = io.StringIO()
    console = Console(file=out, width=200, color_system="truecolor", force_terminal=True)
    console.print(comparison_view(demo.ask(fact["prompt"], "trained fact"), demo.layers[0], "final"))
    text = out.getvalue()
    assert "base model (memories off)" in text and "with memory" in text
    hot = "48;2;{};{};{}m".format(*HOT)  # the ANSI truecolor background of gate 1
    n_answer = len(demo.tokenizer(fact["answer"], add_special_tokens=False)["input_ids"])
    assert text.count(hot) == n_answer + 1  # every answer token and the prompt's last, nothing else
    assert "".join(part.split("\x1b")[0] for part in text.split(hot)[1:]) == "⏎" + fact["answer"]


def test_the_session_with_a_prompts_file_shows_both_answers(demo: DemoRun, run, tmp_path: Path) -> None:
    run_dir, facts = run
    prompts = tmp_path / "prompts.txt"
    prompts.write_text(f"# a comment\n{facts[1]['prompt']}\n\n{GENERAL}\n")
    done = demo_py(f"run_dir={run_dir}", "--prompts", str(prompts), "--max-new-tokens", str(NEW_TOKENS))
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert out.count("base model (memories off)") == 2 and out.count("with memory") == 2
    assert facts[1]["answer"] in out  # the memory's answer
    base = demo.ask(facts[1]["prompt"]).base_answer
    assert base != facts[1]["answer"] and (visible(base) or "(empty)") in out
    assert "the memory changed the answer" in out and "same answer" in out
    assert "trained facts" in out and facts[0]["prompt"] in out  # offered as examples


def test_the_interactive_session_answers_a_fact_by_number_and_switches_layers(run) -> None:
    run_dir, facts = run
    done = demo_py(f"run_dir={run_dir}", "--max-new-tokens", str(NEW_TOKENS), stdin="2\n:layer 9\n:layer final\n:q\n")
    assert done.returncode == 0, done.stderr[-2000:]
    assert facts[1]["answer"] in done.stdout and "with memory (tint: final)" in done.stdout
    assert "no memory at '9'; memory layers: final" in done.stdout


def test_html_page_is_self_contained_and_carries_the_gate_of_every_token(demo: DemoRun, run) -> None:
    fact = run[1][0]
    page = render_page([demo.ask(fact["prompt"], "trained fact"), demo.ask(GENERAL, "general")], demo.layer_names(),
                       demo.summary)
    for outside in ("http://", "https://", "<script", "<link", "src=", "@import", "url("):
        assert outside not in page
    hot = page.count('data-gate="1.000"')
    assert hot == len(demo.tokenizer(fact["answer"], add_special_tokens=False)["input_ids"]) + 1
    assert heat_hex(1.0) == "#{:02x}{:02x}{:02x}".format(*HOT) and heat_hex(1.0) in page
    assert "rows per head" in page and "fingerprint" in page  # the run's config summary


def test_a_fact_run_keeps_its_trained_fact_labels_and_chat_prompts(demo: DemoRun, run) -> None:
    """What a text run changes (tests/test_demo_text.py) leaves a fact run as it was."""
    shown = example_prompts(demo)
    assert shown == [(f["prompt"], "trained fact") for f in demo.facts[:3]] + [(p, "general") for p, _ in shown[3:]]
    assert len(shown) == 5 and demo.prompt_format == "chat"
    c = demo.ask(run[1][0]["prompt"], "trained fact")
    assert "<|im_start|>" in "".join(p for p, _ in c.trace.prompt(demo.layers[0]))  # the template is still there
    page = render_page([c], demo.layer_names(), demo.summary)
    assert '<span class="label">trained fact</span>' in page and "held-out text" not in page
    assert "Each prompt answered greedily" in page and "facts trained" in page and "tokens trained" not in page


# ---------------------------------------------------------------- report.py's gallery


def test_report_draws_a_gate_gallery_for_memory_runs_and_skips_runs_without_one(run, tmp_path: Path) -> None:
    run_dir, facts = run
    (run_dir / "eval.json").write_text(json.dumps({"metrics": {}, "info": {"variant": "engram"}}))
    bare = tmp_path / "bare"  # a memory run whose memory file is gone
    (bare / ".hydra").mkdir(parents=True)
    (bare / ".hydra" / "config.yaml").write_text((run_dir / ".hydra" / "config.yaml").read_text())
    (bare / "eval.json").write_text((run_dir / "eval.json").read_text())
    df = pd.DataFrame([{"job": str(run_dir), "variant": "engram", "status": "ok"},
                       {"job": str(bare), "variant": "engram", "status": "ok"},
                       {"job": "elsewhere", "variant": "baseline", "status": "ok"}])
    out = tmp_path / "report"
    write_report(df.assign(label=["a", "b", "c"]), out, [], gallery=gate_gallery)
    pngs = list(out.glob("gates_*.png"))
    assert len(pngs) == 1 and pngs[0].stat().st_size > 5000
    md = (out / "report.md").read_text()
    assert "## Gate heat maps" in md and f"]({pngs[0].name})" in md and "skipped, no saved memory" in md
    drawn = json.loads((out / "gate_gallery.json").read_text())[pngs[0].name]["comparisons"]
    fact = next(c for c in drawn if c["prompt"] == facts[0]["prompt"])
    assert fact["memory_answer"] == facts[0]["answer"] and max(next(iter(fact["trace"]["gates"].values()))) == 1.0
    assert {c["label"] for c in drawn} == {"trained fact", "general"}


def test_report_calls_the_gallery_unless_told_not_to(run, tmp_path: Path) -> None:
    (run[0] / "eval.json").write_text(json.dumps({"metrics": {}, "info": {"variant": "engram"}}))
    called: list[list[Path]] = []

    def stub(runs: list[Path], out: Path) -> list[str]:
        called.append(runs)
        return ["## stub gallery"]

    assert report_main([str(run[0]), "--out", str(tmp_path / "a")], gallery=stub) == 0
    assert [p.resolve() for p in called[0]] == [run[0].resolve()]
    assert "## stub gallery" in (tmp_path / "a" / "report.md").read_text()
    assert report_main([str(run[0]), "--out", str(tmp_path / "b"), "--no-gallery"], gallery=stub) == 0
    assert len(called) == 1


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("case", ["missing", "no_memory", "unreadable_prompts", "empty_prompts", "unknown_key",
                                  "no_default_run", "engram_path_outside_a_run"])
def test_bad_input_is_one_line_and_exit_2(case: str, run, tmp_path: Path) -> None:
    run_dir, _ = run
    baseline = tmp_path / "baseline"  # a finished run without a memory
    (baseline / ".hydra").mkdir(parents=True)
    (baseline / ".hydra" / "config.yaml").write_text("variant:\n  name: baseline\nmodel:\n  name: tiny\n")
    binary = tmp_path / "prompts.bin"
    binary.write_bytes(b"\xff\xfe\x00bad")
    (tmp_path / "empty.txt").write_text("# only a comment\n\n")
    loose = tmp_path / "loose.safetensors"  # a memory with no run config naming its base model
    loose.write_bytes((run_dir / "engram.safetensors").read_bytes())
    args, expected = {
        "missing": ([f"run_dir={tmp_path / 'nope'}"], "does not exist"),
        "no_memory": ([f"run_dir={baseline}"], "has no saved memory"),
        "unreadable_prompts": ([f"run_dir={run_dir}", "--prompts", str(binary)], "is not UTF-8"),
        "empty_prompts": ([f"run_dir={run_dir}", "--prompts", str(tmp_path / "empty.txt")], "holds no prompt"),
        "unknown_key": (["run=x"], "config error: run=x is not a key of demo.py"),
        "no_default_run": ([], "holds no finished run with a memory"),
        "engram_path_outside_a_run": ([f"engram_path={loose}"], "is not inside a run dir"),
    }[case]
    done = demo_py(*args, cwd=tmp_path)  # cwd: no outputs/default/ here
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in done.stderr


def test_unknown_layer_is_one_line_after_loading(run, tmp_path: Path) -> None:
    prompts = tmp_path / "p.txt"
    prompts.write_text("hello\n")
    done = demo_py(f"run_dir={run[0]}", "--layer", "7", "--prompts", str(prompts))
    assert done.returncode == 2 and done.stderr.strip().splitlines()[-1].startswith("config error: --layer=7")


def test_default_run_is_the_newest_with_a_memory(run, tmp_path: Path) -> None:
    root = tmp_path / "outputs" / "default"
    for name, memory in (("2026-01-01_00-00-00", True), ("2026-02-01_00-00-00", True), ("2026-03-01_00-00-00", False)):
        (root / name / ".hydra").mkdir(parents=True)
        (root / name / ".hydra" / "config.yaml").write_text("x: 1\n")
        if memory:
            (root / name / "engram.safetensors").write_bytes(b"")
    assert default_run(root).name == "2026-02-01_00-00-00"
    with pytest.raises(ConfigError):
        default_run(tmp_path / "none")
    assert parse([f"engram_path={run[0] / 'engram.safetensors'}"]).source == run[0] / "engram.safetensors"
