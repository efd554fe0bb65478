"""`python -m engram.compress build / ask / eval / sweep` on the tiny model (in process: one import of torch), and bad
input as a real subprocess: one line on stderr, exit 2, nothing written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from engram.compress.__main__ import main
from engram.compress.config import CONF_DIR

ROOT = Path(__file__).resolve().parent.parent
TINY = ["model=tiny", "compress.layer=1", "compress.k=4", "compress.num_docs=3", "compress.num_train_docs=3",
        "logger=none"]


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main(list(argv)) == 0
    out = capsys.readouterr().out
    return json.loads(out[out.index("{\n"):])


def test_build_ask_and_refuse_another_layer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store"
    built = run_main(capsys, "build", "docs=bios", f"store={store}", *TINY)
    assert built["stored"] == 3 and "layer=1" in built["spec"]
    answer = run_main(capsys, "ask", "Where did", "the", "first person study?", f"store={store}", *TINY)
    assert answer["question"] == "Where did the first person study?" and answer["engram"].startswith("bio-")
    assert answer["k"] == 4 and isinstance(answer["answer"], str)
    with pytest.raises(SystemExit) as exit_info:
        main(["build", "docs=bios", f"store={store}", *TINY, "compress.layer=0"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "holds engrams of" in err and "layer=1" in err and "layer=0" in err


def test_eval_writes_every_condition(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    result = run_main(capsys, "eval", f"out={out}", "compress.pooling=head", "compress.head.steps=2", *TINY)
    assert [r["condition"] for r in result["rows"]] == ["full", "none", "engram", "retrieval"]
    saved = json.loads((out / "compress.json").read_text())
    engram_row = saved["rows"][2]
    assert engram_row["k"] == 4 and engram_row["compression_ratio"] == pytest.approx(engram_row["doc_tokens"] / 4)
    assert saved["rows"][3]["store_size"] == 6 and 0 <= saved["rows"][3]["retrieval_hit"] <= 1
    assert "| full |" in (out / "compress.md").read_text()


def test_sweep_record_composes_to_the_promised_grid() -> None:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("compress", overrides=["experiment=compress_sweep"])
    assert cfg.experiment_name == "compress_sweep" and cfg.model.name == "smollm"
    s = cfg.compress.sweep
    assert list(s.layers) == [2, 15, 28] and list(s.ks) == [1, 4, 16]
    assert list(s.poolings) == ["mean", "attention", "head"]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engram.compress", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize(("args", "needle"), [
    ((), "command=(none)"),
    (("compres",), "command=compres is not a command"),
    (("eval", "compress.pooling=max", "model=tiny"), "compress.pooling=max"),
    (("eval", "compress.k=0", "model=tiny"), "compress.k=0"),
    (("eval", "compress.layer=7", "model=tiny"), "compress.layer=7 must be a layer in 0..1"),
    (("eval", "docs=stdlib", "model=tiny", "compress.layer=1"), "docs=stdlib has no questions"),
    (("build", "docs=missing.jsonl", "model=tiny", "compress.layer=1"), "docs=missing.jsonl"),
    (("ask",), "question=(none)"),
    (("eval", "stray"), "argument=stray"),
    (("eval", "compress.nope=1"), "do not compose"),
    (("eval", "model=gpt9"), "model=gpt9 is not a known model"),
    (("info",), "holds no engrams; build it first"),
    (("delete", "bio-0"), "holds no engrams; build it first"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: tuple[str, ...], needle: str) -> None:
    done = cli(*args, f"out={tmp_path / 'run'}", f"store={tmp_path / 'store'}") if args else cli()
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], lines
    assert not (tmp_path / "run").exists() and not (tmp_path / "store").exists()


def test_info_and_delete_edit_a_store_by_document_id(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A store built by `build`: `info` lists its documents and sizes without loading a model; `delete` removes
    documents (all or none: an unknown id is one line, exit 2, and nothing goes) and survives a reopen."""
    from engram.compress.store import EngramStore

    store = tmp_path / "store"
    run_main(capsys, "build", "docs=bios", f"store={store}", *TINY)
    info = run_main(capsys, "info", f"store={store}")
    ids = info["doc_ids"]
    assert len(ids) == 3 and info["documents"] == 3 and info["vectors"] == 12 and info["deleted"] == 0
    assert info["vector_bytes"] == 4 * 12 * 64 and info["disk_bytes"] > info["vector_bytes"]
    assert info["compression_ratio"] > 1 and "layer=1" in info["spec"]
    with pytest.raises(SystemExit) as exit_info:
        main(["delete", ids[0], "no-such-doc", f"store={store}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "doc_id=no-such-doc is not in store=" in err
    assert EngramStore(store).doc_ids() == ids  # nothing went
    after = run_main(capsys, "delete", ids[0], ids[2], f"store={store}")
    assert after["deleted"] == 2 and after["doc_ids"] == [ids[1]] and after["vectors"] == 4
    reopened = EngramStore(store)  # a restart
    assert reopened.doc_ids() == [ids[1]] and reopened.get(ids[1]).k == 4


def test_delete_takes_ids_with_equals_signs_and_spaces_after_a_double_dash(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from engram.compress.store import EngramStore

    docs = tmp_path / "docs.jsonl"
    texts = {"doc=1": "Vella Orn was born in Tarsk and studies moths.", "a b": "Quen Dalor repairs clocks in Ost.",
             "plain": "Ilse Marrow keeps bees on a roof in Vennick."}
    docs.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in texts.items()))
    store = tmp_path / "store"
    run_main(capsys, "build", f"docs={docs}", f"store={store}", *TINY)
    assert sorted(EngramStore(store).doc_ids()) == sorted(texts)
    after = run_main(capsys, "delete", f"store={store}", "--", "doc=1", "a b")
    assert after["deleted"] == 2 and after["doc_ids"] == ["plain"]


def test_runs_started_in_the_same_second_get_a_directory_each(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from omegaconf import OmegaConf

    from engram.compress.run import run_dir

    monkeypatch.chdir(tmp_path)
    cfg = OmegaConf.create({"out": None, "experiment_name": "compress"})
    dirs = [run_dir(cfg) for _ in range(3)]  # well inside one second
    assert len(set(dirs)) == 3 and all(d.is_dir() and d.parent == Path("outputs/compress") for d in dirs)
    named = OmegaConf.create({"out": str(tmp_path / "mine"), "experiment_name": "compress"})
    assert run_dir(named) == run_dir(named) == tmp_path / "mine"  # a named directory is reused on purpose
