"""data=jsonl (engram/data/jsonl.py): records from files, so `data.num_train` / `num_eval` only cap what they hold."""

from typing import Any

from engram.config.rules import check as rule
from engram.data.jsonl import build_jsonl as build

__all__ = ["build", "check", "from_files"]

generated = False  # not built from data.seed: no cap on num_train + num_eval
from_files = True  # no training records or an empty test file: data.path / data.test_path is to blame


def check(d: Any) -> None:
    rule(bool(d.path), "data.path", d.path, "is required for data=jsonl (a messages-format .jsonl file)")
