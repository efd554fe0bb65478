"""Sequential writing (issue 14): facts taught batch by batch with a forgetting curve, for a memory and for LoRA."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _training_utils import tiny_cfg
from safetensors.torch import load_file

from engram.config import ConfigError
from engram.training.pipeline import train

RECALL = ("engram=recall", "engram.dim=64", "engram.table_size=5000", "trainer.max_epochs=0", "trainer.max_steps=-1",
          "eval_max_new_tokens=12")


def curve(run_dir: Path) -> dict:
    return json.loads((run_dir / "sequential.json").read_text())


def test_a_memory_written_in_batches_keeps_every_earlier_batch(tmp_path: Path) -> None:
    train(tiny_cfg(tmp_path, *RECALL, "sequential.batch=10", "data.num_train=40"))
    points = curve(tmp_path)["points"]
    assert [p["facts"] for p in points] == [10, 20, 30, 40]
    assert all(p["recall_latest"] >= 0.9 for p in points)
    assert points[-1]["recall_first"] == points[0]["recall_first"]  # later writes did not disturb the first batch
    assert points[-1]["recall_all"] >= 0.9
    # rows fire only on their own keys: the general prompts' answers are untouched after every batch
    assert len({p["locality_tf"] for p in points}) == 1
    metrics = json.loads((tmp_path / "eval.json").read_text())["metrics"]
    assert metrics["eval/exact_match_seen"] >= 0.85 and metrics["eval/retention"] == 1.0


def test_lora_is_fine_tuned_on_each_batch_and_the_curve_is_recorded(tmp_path: Path) -> None:
    train(tiny_cfg(tmp_path, "variant=lora", "trainer.max_epochs=0", "trainer.max_steps=-1", "sequential.batch=16",
                   "sequential.epochs=2", "optim.lr=0.01"))
    data = curve(tmp_path)
    assert data["variant"] == "lora" and data["epochs"] == 2
    points = data["points"]
    assert [p["facts"] for p in points] == [16, 32]
    assert all(0.0 <= p[k] <= 1.0 for p in points for k in ("recall_all", "recall_first", "locality_tf"))
    # the adapter was fine-tuned: peft initialises lora_B to zero
    saved = load_file(tmp_path / "lora_adapter" / "adapter_model.safetensors")
    lora_b = [t for name, t in saved.items() if "lora_B" in name]
    assert lora_b and any(bool(t.abs().sum() > 0) for t in lora_b)


@pytest.mark.parametrize(("overrides", "key"), [
    (("sequential.batch=-1",), "sequential.batch"),
    (("sequential.batch=5", "sequential.epochs=0"), "sequential.epochs"),
    (("variant=baseline", "sequential.batch=5"), "sequential.batch"),
])
def test_bad_sequential_settings_fail_with_one_line(tmp_path: Path, overrides: tuple[str, ...], key: str) -> None:
    with pytest.raises(ConfigError) as e:
        tiny_cfg(tmp_path, *overrides)
    assert str(e.value).startswith(f"config error: {key}=") and "\n" not in str(e.value)



def test_the_forgetting_plot_and_table_show_finished_and_unfinished_curves(tmp_path: Path) -> None:
    from engram.tracking.forgetting import forgetting_table, plot_forgetting, read_curves

    def point(facts: int, recall: float) -> dict:
        return {"batch": facts // 10, "facts": facts, "recall_all": recall, "recall_first": recall / 2,
                "recall_latest": 1.0, "locality_tf": 0.5, "teach_s": 2.0}

    (tmp_path / "memory").mkdir()
    (tmp_path / "lora").mkdir()
    (tmp_path / "memory" / "sequential.json").write_text(json.dumps(
        {"variant": "engram", "batch": 10, "batches": 2, "points": [point(10, 1.0), point(20, 1.0)]}))
    (tmp_path / "lora" / "sequential.json").write_text(json.dumps(  # still running: 1 of 3 batches
        {"variant": "lora", "batch": 10, "batches": 3, "points": [point(10, 0.6)]}))
    curves = read_curves([("engram", tmp_path / "memory"), ("lora", tmp_path / "lora"), ("none", tmp_path)])
    assert list(curves) == ["engram", "lora"]
    drawn = plot_forgetting(curves, tmp_path / "forgetting.png")
    assert (tmp_path / "forgetting.png").stat().st_size > 0
    assert drawn["recall_all"] == {"engram": [[10.0, 1.0], [20.0, 1.0]], "lora": [[10.0, 0.6]]}
    assert drawn["recall_first"]["lora"] == [[10.0, 0.3]]
    table = "\n".join(forgetting_table(curves))
    assert "| engram | engram | 10 | 2/2 | 20 | 100.0% | 50.0% | 50.0% | 4 | 0.20 |" in table
    assert "| lora | lora | 10 | 1/3 | 10 | 60.0% |" in table
