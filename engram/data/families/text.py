"""data=text: plain text for language modelling, split by document (no document in two splits).

The documents come from `data.path` (a text file, a directory of them, or a glob; fewer than 20 files, or files
that leave a split empty, are cut at blank lines into sections of at least 2 000 characters, which are then the
documents) or, without a path, from
`data.corpus=python_stdlib`: the prose of Python's own documentation (`pydoc_data.topics`, one document per topic)
and the source files of the standard library (one document per module; tests, idlelib and site-packages left
out). Both ship with every Python, so nothing is fetched; the corpus follows the running Python version, which
eval.json records.

A record is one document: `{"prompt": "", "answer": <text>, "category": <source>, "key": <name>, "seen": ...}`.
engram/data/text_blocks.py tokenises the documents of each split and packs them into `data.block_size` blocks.
Which split a document falls in depends only on its name (a hash), so adding documents never moves another one.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engram.config.rules import ConfigError
from engram.config.rules import check as rule
from engram.data.records import Record, record
from engram.variants.common import variant_spec

__all__ = ["CORPORA", "Params", "build", "build_text_tokenizer", "check", "check_run", "documents", "language_model",
           "split_of", "tokenizer"]

generated = False  # read from files: data.num_train / num_eval do not apply (data.num_tokens caps training)
from_files = True
language_model = True  # packed token blocks (text_blocks.py), perplexity metrics (engram/evaluation/lm_eval.py)
checks_own_paths = True  # data.path may be a directory or a glob, not only a file

CORPORA = ("python_stdlib",)
SKIPPED_PARTS = {"test", "tests", "idlelib", "site-packages", "dist-packages", "__pycache__", "pydoc_data"}
SNIFF_BYTES = 8192
MIN_FILES = 20  # fewer files than this: each is cut into sections (below) so every split gets documents
SECTION_CHARS = 2000


@dataclass
class Params:
    """`data.text.*` (data=text): what only a model trained on the text from scratch needs."""

    vocab_size: int = 4096  # model=scratch: tokens of the byte-level BPE trained on the training split


def sections(text: str) -> list[str]:
    """A text cut at blank lines into consecutive sections of at least SECTION_CHARS characters (the last may be
    shorter); nothing is dropped or reordered."""
    out, current = [], ""
    for paragraph in re.split(r"(?<=\n)\s*\n", text):
        current += paragraph + "\n"
        if len(current) >= SECTION_CHARS:
            out.append(current)
            current = ""
    if current.strip():
        out.append(current)
    return out


def check(d: Any) -> None:
    rule(d.corpus in CORPORA, "data.corpus", d.corpus, f"is not one of {', '.join(CORPORA)}")
    rule(isinstance(d.block_size, int) and 8 <= d.block_size <= 65536, "data.block_size", d.block_size,
         "must be an integer in [8, 65536]")
    rule(d.num_tokens is None or (isinstance(d.num_tokens, int) and d.num_tokens >= d.block_size), "data.num_tokens",
         d.num_tokens, f"must be null (the whole training split) or an integer >= data.block_size ({d.block_size})")
    rule(isinstance(d.eval_tokens, int) and d.eval_tokens >= d.block_size, "data.eval_tokens", d.eval_tokens,
         f"must be an integer >= data.block_size ({d.block_size})")
    rule(0.0 < d.split_fraction < 0.5, "data.split_fraction", d.split_fraction,
         "must be in (0, 0.5) for data=text (that share of documents each for validation and test)")
    rule(isinstance(d.text.vocab_size, int) and 260 <= d.text.vocab_size <= 1_000_000, "data.text.vocab_size",
         d.text.vocab_size, "must be an integer in [260, 1000000] (256 bytes, the special tokens and merges)")
    if d.path:
        text_files(str(d.path))  # raises ConfigError naming the path or the bad file


PROMPT_KEYED_HASHES = ("answer", "span")  # they key on the prompt, and text has none


def check_run(cfg: Any) -> None:
    """What a language-model training run cannot combine with (the whole config, after the groups' own checks).
    evaluate.py scores saved weights, whose own config was checked when they were trained."""
    if cfg.task_name == "evaluate":
        return
    rule(cfg.sequential.batch == 0, "sequential.batch", cfg.sequential.batch, "teaches facts; data=text has none")
    rule(cfg.train.replay_ratio == 0, "train.replay_ratio", cfg.train.replay_ratio,
         "replays general prompts beside facts; data=text has none")
    if variant_spec(cfg.variant.name).engram:
        rule(cfg.engram.init != "prepopulate", "engram.init", cfg.engram.init,
             "writes facts before training; data=text has none (use engram=deepseek, the paper's memory)")
        rule(cfg.engram.hash not in PROMPT_KEYED_HASHES, "engram.hash", cfg.engram.hash,
             "keys on the prompt; data=text has none (use engram=deepseek, the paper's n-gram keys)")


def text_files(path: str) -> list[Path]:
    """The files `data.path` names (a file, a directory searched recursively, or a glob), sorted; each checked
    to be readable UTF-8 text. ConfigError (one line, naming the file) otherwise."""
    expanded = os.path.expanduser(path)
    if Path(expanded).is_dir():
        files = sorted(p for p in Path(expanded).rglob("*") if p.is_file() and not _hidden(p, Path(expanded)))
    elif Path(expanded).is_file():
        files = [Path(expanded)]
    else:
        files = sorted(Path(p) for p in glob.glob(expanded, recursive=True) if Path(p).is_file())
    if not files:
        raise ConfigError("data.path", path, "names no file (a text file, a directory of them, or a glob)")
    for f in files:
        try:
            head = _head(f)
        except OSError as e:
            raise ConfigError("data.path", path, f"cannot read {f}: {e.strerror or e}") from None
        if b"\x00" in head:
            raise ConfigError("data.path", path, f"{f} is binary, not text (a NUL byte in its first 8 KiB)")
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as e:
            if e.start < len(head) - 4:  # a character cut at the sniff boundary is fine
                raise ConfigError("data.path", path, f"{f} is not UTF-8 text (byte {e.start})") from None
    if all(f.stat().st_size == 0 for f in files):
        raise ConfigError("data.path", path, "holds only empty files: no text to train on")
    return files


def _head(f: Path) -> bytes:
    with f.open("rb") as fh:
        return fh.read(SNIFF_BYTES)


def _hidden(p: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in p.relative_to(root).parts)


Document = tuple[str, str, str]  # (name, source, text)


def documents(d: Any) -> list[Document]:
    """(name, source, text) of every non-empty document, sorted by name: the files of data.path (their sections
    when there are fewer than MIN_FILES), or the built-in corpus."""
    if not d.path:
        return python_stdlib()
    files = file_documents(d)
    return by_section(files) if len(files) < MIN_FILES else files


def file_documents(d: Any) -> list[Document]:
    """One document per non-empty file of data.path, sorted by name."""
    root = Path(os.path.expanduser(str(d.path)))
    out = []
    for f in text_files(str(d.path)):
        try:
            text = f.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError("data.path", d.path, f"cannot read {f} as UTF-8 text ({e})") from None
        out.append((str(f.relative_to(root)) if root.is_dir() else f.name, "file", text))
    return sorted((doc for doc in out if doc[2].strip()), key=lambda doc: doc[0])


def by_section(docs: list[Document]) -> list[Document]:
    """Each document cut into its sections (see `sections`), named `<name>#<index>`, sorted by name."""
    return sorted(((f"{name}#{i:05d}", source, part) for name, source, text in docs
                   for i, part in enumerate(sections(text))), key=lambda doc: doc[0])


def python_docs() -> list[Document]:
    """Python's documentation topics (prose), as shipped with this Python."""
    from pydoc_data.topics import topics  # ships with every CPython

    return [(f"pydoc/{name}", "docs", text) for name, text in topics.items()]


def python_stdlib() -> list[Document]:
    """Python's documentation topics (prose) and standard-library modules (code), as shipped with this Python."""
    docs = python_docs()
    root = Path(sysconfig.get_paths()["stdlib"])
    for f in sorted(root.rglob("*.py")):
        rel = f.relative_to(root)
        if SKIPPED_PARTS.intersection(rel.parts) or any(p.startswith("test_") for p in rel.parts):
            continue
        try:
            docs.append((f"stdlib/{rel.as_posix()}", "code", f.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError):  # a module in another encoding is rare; skip it, not the corpus
            continue
    return sorted((doc for doc in docs if doc[2].strip()), key=lambda doc: doc[0])


def split_of(name: str, fraction: float, seed: int) -> str:
    """"test", "eval" (validation) or "train" for a document, from a hash of its name and data.seed."""
    u = int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "big") / 2**64
    return "test" if u < fraction else "eval" if u < 2 * fraction else "train"


def build(d: Any) -> dict[str, list[Record]]:
    """Every document in exactly one of train / eval / test. When files as documents leave a split empty, the files'
    sections are the documents instead."""
    docs = documents(d)
    splits = assign_splits(docs, d)
    if d.path and not all(splits.values()) and len(docs) >= MIN_FILES:  # whole files left a split empty
        splits = assign_splits(by_section(docs), d)
    for split, docs in splits.items():
        if not docs:
            where = d.path or f"data.corpus={d.corpus}"
            raise ConfigError("data.path" if d.path else "data.corpus", where,
                              f"has too few documents for a {split} split (each document goes to one split; "
                              f"{sum(len(v) for v in splits.values())} found)")
    return splits


def assign_splits(docs: list[Document], d: Any) -> dict[str, list[Record]]:
    splits: dict[str, list[Record]] = {"train": [], "eval": [], "test": []}
    for name, source, text in docs:
        split = split_of(name, float(d.split_fraction), int(d.seed))
        splits[split].append(record("", text, source, name, split == "train"))
    return splits


def corpus_info(d: Any, splits: dict[str, list[Record]]) -> dict[str, Any]:
    """What eval.json records about the corpus: where it came from, the documents per split, and a fingerprint."""
    names = hashlib.sha256("\n".join(r["key"] for s in ("train", "eval", "test") for r in splits[s]).encode())
    return {"source": str(d.path) if d.path else d.corpus, "python": sys.version.split()[0],
            "documents": {s: len(v) for s, v in splits.items()}, "fingerprint": names.hexdigest()[:16]}


SPECIALS = ("<pad>", "<|endoftext|>")  # padding, and the eos that separates documents in a block


def build_text_tokenizer(d: Any) -> Any:
    """data=text's own tokenizer, for a model trained from scratch on it (model=scratch): a byte-level BPE (the
    `tokenizers` library's, GPT-2's scheme) of `data.text.vocab_size` tokens trained on the training split only, so a
    small model gets a small vocabulary instead of a pretrained model's 49 152 tokens, whose embedding would dwarf
    it. Byte-level: every string has a tokenisation and decodes back to itself, so bits per byte stay exact.
    Deterministic (the same documents give the same merges), so a run dir's tokenizer is rebuilt from its config."""
    # lazy: transformers costs ~2 s, and validation imports the family without needing a tokenizer
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    texts = [r["answer"] for r in build(d)["train"]]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=int(d.text.vocab_size), special_tokens=list(SPECIALS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=SPECIALS[0], eos_token=SPECIALS[1],
                                   bos_token=SPECIALS[1])


tokenizer = build_text_tokenizer  # what model=scratch builds its vocabulary from
