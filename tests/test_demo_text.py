"""demo.py on a language-model run (data=text): its examples are openings of held-out (test-split) documents,
labelled as such, continued as raw text (no chat template) by both models, in the page and in the terminal; the
summary names the corpus and the training tokens. The fact run's view: tests/test_demo.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from _training_utils import tiny_cfg
from omegaconf import OmegaConf

from engram.data import build_splits
from engram.demo.page import render_page
from engram.demo.session import DemoRun, example_prompts, load_demo

ROOT = Path(__file__).resolve().parent.parent
NEW_TOKENS = 6
TEXT_LABEL = "held-out text"  # what the page and the terminal call a text run's examples
CHAT_MARKERS = ("<|im_start|>", "<|im_end|>", "user\n", "assistant")
WORDS = ("river stone lantern harbour meadow copper violet thunder orchard glacier compass velvet ember summit "
         "willow quartz falcon pebble canyon marble").split()


def write_corpus(root: Path, n: int = 40) -> Path:
    """`n` files (enough to split by file), each a multi-line document with its own words and opening."""
    root.mkdir(parents=True)
    for i in range(n):
        lines = [" ".join(WORDS[(i * 3 + 5 * k + j) % len(WORDS)] for j in range(9)) for k in range(12)]
        (root / f"doc_{i:03d}.txt").write_text(f"Chapter {i} of the corpus.\n" + "\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="module")
def text_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[str]]]:
    """(a finished tiny data=text run dir with its .hydra/config.yaml, the documents of each split)."""
    from engram.training.pipeline import train

    root = tmp_path_factory.mktemp("demo_text")
    corpus = write_corpus(root / "corpus")
    run = root / "run"
    cfg = tiny_cfg(run, "data=text", f"data.path={corpus}", "data.block_size=32", "data.num_tokens=256",
                   "data.eval_tokens=128", "engram.init=zeros")
    train(cfg)
    (run / ".hydra").mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run / ".hydra" / "config.yaml")  # what Hydra writes for train.py (the demo reads it)
    splits = {s: [str(r["answer"]) for r in records] for s, records in build_splits(cfg.data).items()}
    return run, splits


@pytest.fixture(scope="module")
def demo(text_run) -> DemoRun:
    return load_demo(text_run[0], NEW_TOKENS)


def demo_py(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "240"}
    return subprocess.run([sys.executable, str(ROOT / "demo.py"), *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=300, input=stdin)


def test_the_examples_are_openings_of_held_out_documents(demo: DemoRun, text_run) -> None:
    _, splits = text_run
    shown = example_prompts(demo)
    assert [label for _, label in shown] == [TEXT_LABEL] * 3 + ["general"] * 2
    for prompt, _ in shown[:3]:
        doc = next((d for d in splits["test"] if d.startswith(prompt)), None)
        assert doc is not None, prompt  # the opening of a test document ...
        assert not any(d.startswith(prompt) for d in splits["train"] + splits["eval"])  # ... and of no other
        assert len(prompt) < len(doc) and doc[len(prompt)].isspace()  # cut at a whitespace
        assert 20 <= len(demo.tokenizer(prompt, add_special_tokens=False)["input_ids"]) <= 60
    assert demo.facts == []  # the training documents are not offered as facts


def test_text_prompts_are_continued_as_raw_text_without_the_chat_template(demo: DemoRun) -> None:
    assert getattr(demo.tokenizer, "chat_template", None)  # the tokenizer has one: leaving it out is the point
    layer = demo.layers[0]
    for prompt in (example_prompts(demo)[0][0], "Why is the sky blue?"):
        c = demo.ask(prompt)
        shown = "".join(p for p, _ in c.trace.prompt(layer))
        assert shown == prompt  # the whole prompt, its own tokens, nothing around it
        assert not any(m in shown for m in CHAT_MARKERS)
        assert len(c.trace.gates[layer]) == len(c.trace.tokens)  # a tint for every prompt + continuation token
        ids = demo.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        assert c.trace.answer_start == len(ids)


def test_the_page_labels_held_out_text_and_summarises_the_corpus(demo: DemoRun, text_run) -> None:
    shown = [demo.ask(p, label) for p, label in example_prompts(demo, 2, 1)]
    page = render_page(shown, demo.layer_names(), demo.summary)
    assert page.count(f'<span class="label">{TEXT_LABEL}</span>') == 2 and "trained fact" not in page
    assert not any(m in page for m in ("&lt;|im_start|&gt;", "&lt;|im_end|&gt;"))
    summary = demo.summary
    assert summary["data"] == "text" and summary["corpus"] == str(text_run[0].parent / "corpus")
    assert summary["tokens trained"] == "256" and "facts trained" not in summary
    assert "perplexity (test)" in summary


def test_demo_py_writes_a_text_page_and_continues_typed_text(text_run, tmp_path: Path) -> None:
    run_dir, splits = text_run
    out = tmp_path / "demo.html"
    done = demo_py(f"run_dir={run_dir}", "--html", str(out), "--max-new-tokens", str(NEW_TOKENS))
    assert done.returncode == 0, done.stderr[-2000:]
    page = out.read_text()
    assert page.count(f'<span class="label">{TEXT_LABEL}</span>') == 3 and "trained fact" not in page
    assert "&lt;|im_start|&gt;" not in page and "continued greedily (raw text" in page
    done = demo_py(f"run_dir={run_dir}", "--max-new-tokens", str(NEW_TOKENS), stdin="1\nriver stone\n:q\n")
    assert done.returncode == 0, done.stderr[-2000:]
    text = done.stdout
    assert f"{TEXT_LABEL}s (type the number)" in text and "trained fact" not in text
    assert text.count("base model (memories off)") == 2 and "<|im_start|>" not in text
    assert "prompt: river stone" in text  # the typed text as it was typed: no template around it
