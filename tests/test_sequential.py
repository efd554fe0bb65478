"""Sequential writing (issues 14, 28): facts taught batch by batch with a forgetting curve, for a memory and for LoRA;
beside recall, the taught facts' rewordings and their entities' neighbour questions after every batch."""

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


PROBES = ("rewordings", "neighbors")


def curve(run_dir: Path) -> dict:
    return json.loads((run_dir / "sequential.json").read_text())


def assert_probes_scored(data: dict) -> None:
    """Every point scores the rewordings and neighbours of the facts taught so far: shares, with growing counts."""
    points = data["points"]
    for key in PROBES:
        assert all(0.0 <= p[key] <= 1.0 for p in points), key
        counts = [p[f"{key}_n"] for p in points]
        assert counts == sorted(counts) and 0 < counts[-1] <= data[f"{key}_total"], key


def test_a_memory_written_in_batches_keeps_every_earlier_batch(tmp_path: Path) -> None:
    train(tiny_cfg(tmp_path, *RECALL, "sequential.batch=10", "data.num_train=40", "data.num_eval=20"))
    data = curve(tmp_path)
    points = data["points"]
    assert [p["facts"] for p in points] == [10, 20, 30, 40]
    assert all(p["recall_latest"] >= 0.9 for p in points)
    assert points[-1]["recall_first"] == points[0]["recall_first"]  # later writes did not disturb the first batch
    assert points[-1]["recall_all"] >= 0.9
    # rows fire only on their own keys: the general prompts' answers are untouched after every batch
    assert len({p["locality_tf"] for p in points}) == 1
    # exact keys: a neighbour question reads no row, so the base model's reply is still every argmax
    assert_probes_scored(data)
    assert data["before"]["neighbors"] == 1.0 and all(p["neighbors"] == 1.0 for p in points)
    metrics = json.loads((tmp_path / "eval.json").read_text())["metrics"]
    assert metrics["eval/exact_match_seen"] >= 0.85 and metrics["eval/retention"] == 1.0


def test_the_question_keyed_memory_recalls_rewordings_the_exact_key_memory_does_not(tmp_path: Path) -> None:
    train(tiny_cfg(tmp_path / "question", *RECALL, "engram=question", "sequential.batch=10", "data.num_train=40",
                   "data.num_eval=20"))
    train(tiny_cfg(tmp_path / "recall", *RECALL, "sequential.batch=10", "data.num_train=40", "data.num_eval=20"))
    question, exact = curve(tmp_path / "question"), curve(tmp_path / "recall")
    assert_probes_scored(question)
    assert [p["rewordings_n"] for p in question["points"]] == [p["rewordings_n"] for p in exact["points"]]
    assert question["points"][-1]["rewordings"] >= 0.5 and exact["points"][-1]["rewordings"] == 0.0
    assert question["points"][-1]["recall_all"] >= 0.9


def test_lora_is_fine_tuned_on_each_batch_and_the_curve_is_recorded(tmp_path: Path) -> None:
    train(tiny_cfg(tmp_path, "variant=lora", "trainer.max_epochs=0", "trainer.max_steps=-1", "sequential.batch=16",
                   "sequential.epochs=2", "optim.lr=0.01", "data.num_eval=16"))
    data = curve(tmp_path)
    assert data["variant"] == "lora" and data["epochs"] == 2
    points = data["points"]
    assert [p["facts"] for p in points] == [16, 32]
    assert all(0.0 <= p[k] <= 1.0 for p in points for k in ("recall_all", "recall_first", "locality_tf"))
    assert_probes_scored(data)
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

    def point(facts: int, recall: float, **probes: float) -> dict:
        return {"batch": facts // 10, "facts": facts, "recall_all": recall, "recall_first": recall / 2,
                "recall_latest": 1.0, "locality_tf": 0.5, "teach_s": 2.0, **probes}

    for name in ("memory", "lora", "old"):
        (tmp_path / name).mkdir()
    (tmp_path / "memory" / "sequential.json").write_text(json.dumps(
        {"variant": "engram", "batch": 10, "batches": 2, "points": [
            point(10, 1.0, rewordings=0.9, rewordings_n=4, neighbors=1.0, neighbors_n=4),
            point(20, 1.0, rewordings=0.8, rewordings_n=10, neighbors=0.95, neighbors_n=20)]}))
    (tmp_path / "lora" / "sequential.json").write_text(json.dumps(  # still running: 1 of 3 batches
        {"variant": "lora", "batch": 10, "batches": 3, "points": [point(10, 0.6, rewordings=0.25, rewordings_n=4)]}))
    (tmp_path / "old" / "sequential.json").write_text(json.dumps(  # written before rewordings and neighbours
        {"variant": "engram", "batch": 10, "batches": 1, "points": [point(10, 1.0)]}))
    curves = read_curves([("engram", tmp_path / "memory"), ("lora", tmp_path / "lora"), ("none", tmp_path),
                          ("old", tmp_path / "old")])
    assert list(curves) == ["engram", "lora", "old"]
    drawn = plot_forgetting(curves, tmp_path / "forgetting.png")
    assert (tmp_path / "forgetting.png").stat().st_size > 0
    assert drawn["recall_all"] == {"engram": [[10.0, 1.0], [20.0, 1.0]], "lora": [[10.0, 0.6]], "old": [[10.0, 1.0]]}
    assert drawn["recall_first"]["lora"] == [[10.0, 0.3]]
    # a curve without a metric is left out of its panel
    assert drawn["rewordings"] == {"engram": [[10.0, 0.9], [20.0, 0.8]], "lora": [[10.0, 0.25]]}
    assert drawn["neighbors"] == {"engram": [[10.0, 1.0], [20.0, 0.95]]}
    table = "\n".join(forgetting_table(curves))
    assert "| engram | engram | 10 | 2/2 | 20 | 100.0% | 50.0% | 80.0% of 10 | 95.0% of 20 | 50.0% | 4 | 0.20 |" \
        in table
    assert "| lora | lora | 10 | 1/3 | 10 | 60.0% | 30.0% | 25.0% of 4 | - | 50.0% |" in table
    assert "| old | engram | 10 | 1/1 | 10 | 100.0% | 50.0% | - | - | 50.0% |" in table


def test_old_curves_without_rewordings_or_neighbours_plot_as_before(tmp_path: Path) -> None:
    from engram.tracking.forgetting import plot_forgetting

    points = [{"batch": 1, "facts": 10, "recall_all": 1.0, "recall_first": 1.0, "recall_latest": 1.0,
               "locality_tf": 1.0, "teach_s": 1.0}]
    drawn = plot_forgetting({"old": {"variant": "engram", "batch": 10, "points": points}}, tmp_path / "f.png")
    assert list(drawn) == ["recall_all", "recall_first", "locality_tf"]
