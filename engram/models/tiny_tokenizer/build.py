"""Rebuild the shipped tiny tokenizer (byte-level BPE, 2048 tokens, ChatML specials).

Trained on the plain-text help of a few standard-library modules: English prose plus code, enough that
test prompts tokenise into short sequences. The output is committed; rerun only to change it:
    python -m engram.models.tiny_tokenizer.build
"""

import importlib
import pydoc
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"]
CORPUS_MODULES = ["json", "os", "re", "collections", "itertools", "functools", "pathlib", "http", "socket", "math",
                  "statistics", "string", "textwrap", "argparse", "logging", "unittest", "datetime", "random"]


OUTPUT = Path(__file__).with_name("tokenizer.json")


def build(out: Path = OUTPUT, vocab_size: int = 2048) -> Tokenizer:
    texts = [pydoc.render_doc(importlib.import_module(m), renderer=pydoc.plaintext) for m in CORPUS_MODULES]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    tok.save(str(out))
    return tok


if __name__ == "__main__":
    build()
