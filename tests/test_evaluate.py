"""The comparison and re-evaluation. The comparison-table tests use eval.json files written here; the smoke
comparison trains the six variants for real on the tiny model, and the saved weights are then scored again."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from engram.config import ROW_ORDER, ConfigError, validate
from engram.evaluation.evaluate import (
    EvaluateError,
    evaluate_model,
    load_weights,
    reevaluate_run,
    run,
    runs_from,
    write_comparison,
)
from engram.evaluation.metrics import consistency_from_rows
from engram.tracking.run_dirs import read_run
from engram.training.comparison import train_variants

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny matrices on a shared 2-core machine: a second thread only adds contention (measured ~25x slower)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def composed(*overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "engram" / "conf"), version_base="1.3"):
        return compose(config_name="evaluate", overrides=list(overrides))


def fake_run(run_dir: Path, variant: str, correct: list[bool], prompts: list[str] | None = None,
             family: str = "exact_match", keys: list[str] | None = None, generated: list[str] | None = None) -> Path:
    prompts = prompts or [f"q{i}" for i in range(len(correct))]
    keys = keys or prompts
    generated = generated or ["a" if c else "b" for c in correct]
    rows = [{"prompt": p, "expected": "a", "generated": g, "correct": c, "category": "cap" if i % 2 else "el",
             "seen": i % 2 == 0, "key": k}
            for i, (p, c, k, g) in enumerate(zip(prompts, correct, keys, generated, strict=True))]
    em = sum(correct) / len(correct)
    payload = {"info": {"variant": variant, "model": "tiny", "data": family, "num_train": 8, "experiment": "t"},
               "metrics": {"eval/exact_match": em, "eval/exact_match_seen": em, "eval/exact_match_unseen": 0.0,
                           "eval/retention": 0.9, "eval/latency_ms": 3.0, "params/trainable": 10.0,
                           "eval/num_examples": float(len(rows))},
               "per_category": {"cap": {"n": 1, "correct": 1, "exact_match": 1.0},
                                "el": {"n": 1, "correct": 0, "exact_match": 0.0}},
               "examples": rows}
    run_dir.mkdir(parents=True)
    (run_dir / "eval.json").write_text(json.dumps(payload))
    return run_dir


def test_comparison_rows_in_variant_order(tmp_path):
    dirs = [fake_run(tmp_path / v, v, [True, False, v != "baseline", True])
            for v in ("combined", "engram", "baseline", "lora")]
    out = tmp_path / "cmp"
    result = write_comparison([read_run(d) for d in dirs], out, "t")
    assert [r["variant"] for r in result["rows"]] == ["baseline", "lora", "engram", "combined"]
    md = (out / "comparison.md").read_text().splitlines()
    table = [ln for ln in md if ln.startswith("| ") and not ln.startswith("| Variant")]
    assert [ln.split("|")[1].strip() for ln in table] == ["baseline", "lora", "engram", "combined"]
    assert table[0].startswith("| baseline | 50.0% |")
    assert "same 4 eval prompts" in "\n".join(md)
    data = json.loads((out / "comparison.json").read_text())
    assert data["num_examples"] == 4 and data["rows"][2]["exact_match"] == 0.75


def test_different_splits_are_refused(tmp_path):
    a = fake_run(tmp_path / "a", "baseline", [True, False])
    b = fake_run(tmp_path / "b", "engram", [True, False], prompts=["other", "q1"])
    with pytest.raises(EvaluateError, match="different eval splits"):
        write_comparison([read_run(a), read_run(b)], tmp_path / "out")
    write_comparison([read_run(a), read_run(b)], tmp_path / "out", check_split=False)


def test_failed_variant_is_a_row(tmp_path):
    ok = fake_run(tmp_path / "ok", "engram", [True])
    bad = tmp_path / "bad"
    (bad / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create({"variant": {"name": "lora"}}), bad / ".hydra" / "config.yaml")
    (bad / "FAILED.txt").write_text("Traceback...\nRuntimeError: out of memory\n")
    result = write_comparison(runs_from([str(ok), str(bad)], None), tmp_path / "out")
    assert [(r["variant"], r["status"]) for r in result["rows"]] == [("lora", "failed"), ("engram", "ok")]
    md = result["markdown"].read_text()
    assert "| lora | failed |" in md and "RuntimeError: out of memory" in md


def test_consistency_on_patterns(tmp_path):
    rows = [{"key": "k1", "generated": "x"}, {"key": "k1", "generated": " x"}, {"key": "k2", "generated": "y"},
            {"key": "k2", "generated": "z"}, {"key": "k3", "generated": "w"}]
    assert consistency_from_rows(rows) == 0.5  # k1 agrees, k2 does not, k3 has one paraphrase only
    assert math.isnan(consistency_from_rows(rows[-1:]))
    d = fake_run(tmp_path / "p", "engram", [True, True, False], family="patterns", keys=["k", "k", "j"],
                 generated=["a", "a", "b"])
    result = write_comparison([read_run(d)], tmp_path / "out")
    assert result["rows"][0]["consistency"] == 1.0 and "Consistency" in result["markdown"].read_text()


def test_nothing_to_evaluate_and_bad_paths(tmp_path):
    cfg = composed("model=tiny", f"output_dir={tmp_path}")
    with pytest.raises(ConfigError, match="nothing to evaluate"):
        run(cfg, validate(cfg))
    cfg = composed("model=tiny", f"run_dirs=[{tmp_path / 'missing'}]")
    with pytest.raises(EvaluateError, match="not found"):
        run(cfg, validate(cfg))
    cfg = composed("model=tiny", "train_variants=true", "variants=[baseline,adapter]")
    with pytest.raises(ConfigError, match="adapter"):
        run(cfg, validate(cfg))
    cfg = composed("model=tiny", "train_variants=true", f"multirun_dir={tmp_path}")
    with pytest.raises(ConfigError, match="train_variants=true and multirun_dir="):  # neither is silently dropped
        run(cfg, validate(cfg), train_variants)
    cfg = composed("model=tiny", "variants=[baseline,engram]", f"run_dirs=[{tmp_path}]")
    with pytest.raises(ConfigError, match="variants=.*train_variants=true; it does nothing with the runs mode"):
        run(cfg, validate(cfg))  # rows chosen for a comparison that is not trained: said, not ignored


# ---------------------------------------------------------------- real runs on the tiny model


@pytest.fixture(scope="module")
def smoke_comparison(tmp_path_factory):
    """`python evaluate.py experiment=smoke train_variants=true`, in process: trains the six variants, compares them."""
    out = tmp_path_factory.mktemp("train_variants")
    cfg = composed("experiment=smoke", "train_variants=true", f"output_dir={out}")
    return run(cfg, validate(cfg), train_variants), out


def test_smoke_comparison_has_six_rows(smoke_comparison):
    result, out = smoke_comparison
    md = (out / "comparison.md").read_text()
    rows = [ln for ln in md.splitlines() if ln.startswith("| ") and not ln.startswith("| Variant")]
    assert [ln.split("|")[1].strip() for ln in rows] == list(ROW_ORDER)
    assert "failed" not in md
    by = {r["variant"]: r for r in result["rows"]}
    assert all(r["num_examples"] == 8 for r in by.values())  # one split, checked across the six
    assert by["baseline"]["trainable_params"] == 0
    assert by["lora"]["trainable_params"] > 0 and by["engram"]["trainable_params"] > 0
    assert by["combined"]["trainable_params"] == by["lora"]["trainable_params"] + by["engram"]["trainable_params"]
    assert all(r["latency_ms"] > 0 and 0.0 <= r["retention"] <= 1.0 for r in by.values())
    assert by["baseline"]["retention"] == 1.0  # the frozen base answers exactly as itself
    assert by["baseline"]["neighbors"] == 1.0  # and its untaught questions too
    assert all(0.0 <= r["neighbors"] <= 1.0 and 0.0 <= r["neighbors_tf"] <= 1.0 for r in by.values())
    assert "| Neighbours | Neighbours tf |" in md
    for v in ROW_ORDER:
        assert (out / "runs" / v / "eval.json").is_file()
        assert OmegaConf.load(out / "runs" / v / ".hydra" / "config.yaml").variant.name == v
    hybrid = OmegaConf.load(out / "runs" / "engram_hybrid" / ".hydra" / "config.yaml")
    assert hybrid.engram.address == "hybrid"
    assert by["engram_hybrid"]["trainable_params"] > by["engram"]["trainable_params"]  # + query, keys, scale
    from engram.tracking.report import collect

    table = collect([out / "runs"])  # report.py works on a comparison's runs like on a multirun, in the same order
    assert list(table["label"]) == list(ROW_ORDER) and (table["status"] == "ok").all()
    assert table["neighbors"].notna().all() and table["neighbors_tf"].notna().all()


def test_duplicate_variants_get_told_apart(tmp_path):
    runs = [read_run(fake_run(tmp_path / str(i), "engram", [True])) for i in range(2)]
    rows = write_comparison(runs, tmp_path / "out")["rows"]
    assert [r["variant"] for r in rows] == ["engram (0)", "engram (1)"]


def test_reevaluate_combined_reproduces_its_answers(smoke_comparison, tmp_path):
    """The saved LoRA adapter + memory on a fresh base model give the same greedy answers as at the end of training."""
    _, out = smoke_comparison
    trained = out / "runs" / "combined"
    again = reevaluate_run(trained, tmp_path / "again")
    before = json.loads((trained / "eval.json").read_text())["examples"]
    assert [r["generated"] for r in again.result["examples"]] == [r["generated"] for r in before]
    # one evaluate-and-save path: re-evaluation writes every eval/params/gate metric training wrote
    trained_metrics = json.loads((trained / "eval.json").read_text())["metrics"]
    assert {k for k in trained_metrics if k.split("/")[0] in ("eval", "params", "final")} <= set(again.metrics)
    # the neighbour questions scored again against a fresh base's own replies: the same answers, the same score
    assert again.metrics["edit/neighbors"] == trained_metrics["edit/neighbors"]
    neighbor_rows = json.loads((trained / "eval.json").read_text())["neighbor_examples"]
    assert again.result["neighbor_examples"] == neighbor_rows and len(neighbor_rows) == again.metrics[
        "neighbor/num_examples"] > 0
    # a memory alone, on a fresh base model, scored on another data family (patterns -> consistency)
    pcfg = validate(composed("experiment=smoke", "data=patterns", "data.num_eval=6"))
    metrics = evaluate_model(pcfg, tmp_path / "patterns", variant="engram",
                             engram_path=trained / "engram.safetensors")
    assert metrics["eval/num_examples"] == 6 and "eval/consistency" in metrics
    assert metrics["params/trainable"] > 0  # the memory's parameters, added to the base


def test_reloaded_weights_are_the_trained_ones_not_a_fresh_init(smoke_comparison):
    """load_weights puts the saved adapter + memory on a fresh base: bit-identical to the files, different from a
    fresh add_engram / LoRA init, and the model's logits differ from the plain base model's."""
    from safetensors.torch import load_file

    from engram import add_engram
    from engram.models import load_model
    from engram.models.inject import engram_state_dict, read_engram_config

    _, out = smoke_comparison
    trained = out / "runs" / "combined"
    model, tok = load_model("tiny")
    ids = tok(["The capital of France is"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        plain_logits = model(ids).logits
    reloaded = load_weights(model, tok, trained, "combined", None)

    saved_memory = load_file(str(trained / "engram.safetensors"))
    memory = engram_state_dict(reloaded)
    assert saved_memory.keys() == memory.keys()
    assert all(torch.equal(memory[k], saved_memory[k]) for k in saved_memory)
    fresh, _ = load_model("tiny")
    fresh_memory = engram_state_dict(add_engram(fresh, read_engram_config(trained / "engram.safetensors"), tok))
    assert any(not torch.equal(fresh_memory[k], saved_memory[k]) for k in saved_memory)

    saved_lora = load_file(str(trained / "lora_adapter" / "adapter_model.safetensors"))
    lora = {n: p for n, p in reloaded.named_parameters() if "lora_" in n}
    assert len(lora) == len(saved_lora) > 0
    lora_b = [v for k, v in saved_lora.items() if "lora_B" in k]
    assert lora_b and any(v.abs().sum() > 0 for v in lora_b)  # trained: LoRA's B starts at zero
    assert sorted(float(p.detach().abs().sum()) for p in lora.values()) == sorted(
        float(v.abs().sum()) for v in saved_lora.values())
    with torch.no_grad():
        assert not torch.allclose(reloaded(ids).logits, plain_logits)


def test_comparison_goes_to_wandb_offline(tmp_path, monkeypatch):
    """logger=wandb: the comparison becomes a wandb.Table in an offline run of the experiment's group."""
    from engram.evaluation.evaluate import log_comparison_table

    monkeypatch.setenv("WANDB_MODE", "offline")
    for var in ("WANDB_DIR", "WANDB_SILENT", "WANDB_CONSOLE", "WANDB_DISABLE_CODE"):
        monkeypatch.delenv(var, raising=False)  # prepare_wandb_env sets them; keep them out of other tests
    dirs = [fake_run(tmp_path / v, v, [True, v == "engram"]) for v in ("baseline", "engram")]
    rows = write_comparison([read_run(d) for d in dirs], tmp_path / "out")["rows"]
    cfg = validate(composed("model=tiny", "logger=wandb", "experiment_name=cmp"))
    log_comparison_table(cfg, rows, tmp_path / "out")
    tables = list((tmp_path / "out" / "wandb").glob("offline-run-*/files/media/table/four_way/comparison*.json"))
    assert len(tables) == 1
    table = json.loads(tables[0].read_text())
    assert [r[0] for r in table["data"]] == ["baseline", "engram"] and table["columns"][1] == "exact_match"
    assert [r[1] for r in table["data"]] == [0.5, 1.0]
