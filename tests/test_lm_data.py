"""data=text: documents split by document (disjoint, stable), packed blocks, bad corpus input as one line + exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engram.config.rules import ConfigError
from engram.data.families import text as text_family
from engram.data.records import as_data_cfg
from engram.data.text_blocks import TextDataModule, pack_documents
from engram.models import load_model

ROOT = Path(__file__).resolve().parent.parent
WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()


def write_corpus(root: Path, n: int, words: int = 60) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        body = " ".join(WORDS[(i * 7 + j) % len(WORDS)] for j in range(words))
        (root / f"doc_{i:03d}.txt").write_text(f"Document {i}. {body}\n")
    return root


def cfg(**kw):
    return as_data_cfg({"family": "text", **kw})


def test_stdlib_corpus_splits_are_disjoint_and_cover_every_document():
    d = cfg()
    splits = text_family.build(d)
    keys = {s: {r["key"] for r in recs} for s, recs in splits.items()}
    assert keys["train"].isdisjoint(keys["eval"]) and keys["train"].isdisjoint(keys["test"])
    assert keys["eval"].isdisjoint(keys["test"])
    every = {name for name, _, _ in text_family.documents(d)}
    assert keys["train"] | keys["eval"] | keys["test"] == every
    assert any(k.startswith("pydoc/") for k in every) and any(k.startswith("stdlib/") for k in every)
    assert all(r["seen"] for r in splits["train"]) and not any(r["seen"] for r in splits["test"])
    # about split_fraction of the documents each for validation and test
    n = len(every)
    assert 0.05 * n < len(keys["test"]) < 0.15 * n and 0.05 * n < len(keys["eval"]) < 0.15 * n


def test_a_documents_split_depends_only_on_its_name(tmp_path):
    small = text_family.build(cfg(path=str(write_corpus(tmp_path / "a", 40))))
    write_corpus(tmp_path / "a", 80)  # the same 40 documents and 40 more
    large = text_family.build(cfg(path=str(tmp_path / "a")))
    where = {r["key"]: s for s, recs in large.items() for r in recs}
    assert all(where[r["key"]] == s for s, recs in small.items() for r in recs)


def test_the_first_log_line_counts_documents_not_facts(tmp_path):
    from engram.inputs import describe_splits

    d = cfg(path=str(write_corpus(tmp_path / "a", 40)))
    splits = text_family.build(d)
    line = describe_splits(d, splits)
    assert line == (f"data=text: data.path={d.path}, {len(splits['train'])} documents to train on, "
                    f"{len(splits['eval'])} to validate on, {len(splits['test'])} to test on (each document in one "
                    "split)")
    assert "facts" not in describe_splits(cfg(), text_family.build(cfg()))


def test_few_files_are_cut_into_sections_that_split_by_section(tmp_path):
    paragraphs = [f"Paragraph {i}: " + " ".join(WORDS) * 5 for i in range(120)]
    book = tmp_path / "book.txt"
    book.write_text("\n\n".join(paragraphs) + "\n")
    splits = text_family.build(cfg(path=str(book)))
    names = [r["key"] for recs in splits.values() for r in recs]
    assert len(names) == len(set(names)) > 10 and all(n.startswith("book.txt#") for n in names)
    # nothing is lost: every paragraph is in exactly one section
    joined = "".join(r["answer"] for recs in splits.values() for r in recs)
    assert all(joined.count(f"Paragraph {i}:") == 1 for i in range(120))


def test_blocks_are_packed_to_block_size_with_eos_between_documents():
    _, tok = load_model("tiny")
    texts = ["one two three four five", "six seven eight", "nine ten eleven twelve thirteen fourteen"]
    ids = [tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for t in texts]
    flat = [t for x in ids for t in x]
    ds = pack_documents(texts, tok, block_size=4, max_tokens=None)
    assert len(ds) == len(flat) // 4
    assert [t for row in ds[:]["input_ids"].tolist() for t in row] == flat[: len(ds) * 4]
    expected_bytes = [len(tok.decode(flat[i * 4 + 1 : i * 4 + 4]).encode()) for i in range(len(ds))]
    assert ds[:]["num_bytes"].tolist() == expected_bytes
    capped = pack_documents(texts, tok, block_size=4, max_tokens=9)
    assert len(capped) == 2


def test_datamodule_batches_predict_every_position(tmp_path):
    _, tok = load_model("tiny")
    dm = TextDataModule(cfg(path=str(write_corpus(tmp_path / "c", 40)), block_size=16, num_tokens=64,
                            eval_tokens=32, batch_size=2), tok)
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids"].shape == (2, 16)
    assert (batch["labels"] == batch["input_ids"]).all() and (batch["prompt_lengths"] == 0).all()
    assert batch["attention_mask"].all()
    assert dm.num_train_tokens == 64
    assert dm.corpus["documents"]["train"] + dm.corpus["documents"]["eval"] + dm.corpus["documents"]["test"] == 40


@pytest.mark.parametrize("make,needle", [
    (lambda p: p / "nothing_here_*.txt", "names no file"),
    (lambda p: (p / "empty").mkdir() or p / "empty", "names no file"),
    (lambda p: (p / "bin.dat").write_bytes(b"text\x00\x01\x02") and p / "bin.dat", "is binary"),
    (lambda p: (p / "latin.txt").write_bytes("caf\xe9 ".encode("latin-1") * 10) and p / "latin.txt", "not UTF-8"),
    (lambda p: (p / "blank.txt").write_text("") is not None and p / "blank.txt", "only empty files"),
])
def test_bad_corpus_is_one_line_and_exit_2(tmp_path, make, needle):
    path = make(tmp_path)
    with pytest.raises(ConfigError, match=needle):
        text_family.check(cfg(path=str(path)))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    proc = subprocess.run([sys.executable, "train.py", "model=tiny", "engram=deepseek", "data=text",
                           f"data.path={path}", f"hydra.run.dir={tmp_path / 'run'}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "data.path" in lines[0] and needle in lines[0]


def test_unreadable_file_is_named(tmp_path, monkeypatch):
    write_corpus(tmp_path, 3)
    real_head = text_family._head

    def head(f: Path) -> bytes:  # as a file without read permission answers (root would read it anyway)
        if f.name == "doc_001.txt":
            raise PermissionError(13, "Permission denied")
        return real_head(f)

    monkeypatch.setattr(text_family, "_head", head)
    with pytest.raises(ConfigError) as err:
        text_family.check(cfg(path=str(tmp_path)))
    assert "cannot read" in str(err.value) and "doc_001.txt" in str(err.value)
    assert "Permission denied" in str(err.value)


def test_language_model_runs_refuse_fact_only_settings():
    from tests._training_utils import tiny_cfg

    with pytest.raises(ConfigError, match="engram.init=prepopulate"):
        tiny_cfg(Path("unused"), "data=text", "engram=recall")
    with pytest.raises(ConfigError, match="train.replay_ratio"):
        tiny_cfg(Path("unused"), "data=text", "train.replay_ratio=1")
