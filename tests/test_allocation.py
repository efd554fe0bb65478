"""experiment=lm_allocation's arms (engram/conf/arm/alloc_*.yaml): each the share rho of the idle expert parameters it
says it gives the memory, all at the total parameters of the MoE alone, the dense reference at its active FLOPs
per token (engram/models/accounting.py on the models the arms build)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from engram.models.accounting import Accounting, account
from engram.models.allocation import allocate
from tests._training_utils import tiny_cfg
from tests.test_lm_data import write_corpus
from tools.allocation_arms import arm_config, arm_model

SHARES = {"alloc_rho0": 0.0, "alloc_rho10": 0.1, "alloc_rho25": 0.25, "alloc_rho50": 0.5, "alloc_rho75": 0.75,
          "alloc_rho100": 1.0}


def arm(name: str) -> Accounting:
    model, cfg = arm_model(name)
    return account(model, int(cfg.data.block_size))


@pytest.fixture(scope="module")
def arms() -> dict[str, Accounting]:
    return {name: arm(name) for name in [*SHARES, "alloc_dense"]}


def test_every_arm_has_the_moe_total_and_the_share_it_names(arms: dict[str, Accounting]) -> None:
    moe = arms["alloc_rho0"]
    for name, rho in SHARES.items():
        a = arms[name]
        assert a.total == pytest.approx(moe.total, rel=1e-3), name  # equal total parameters
        assert a.memory_share == pytest.approx(rho, abs=0.02), name
        assert a.active >= moe.active and a.flops_per_token == pytest.approx(moe.flops_per_token, rel=0.1), name


def test_the_dense_reference_costs_what_two_experts_do(arms: dict[str, Accounting]) -> None:
    dense, moe = arms["alloc_dense"], arms["alloc_rho0"]
    assert dense.memory_share is None and dense.total < moe.total
    assert dense.flops_per_token == pytest.approx(moe.flops_per_token, rel=0.01)  # the router is all it lacks


@pytest.mark.parametrize("rho", [0.15, 0.4, 0.9])
def test_any_share_is_one_key_at_the_moe_total(arms: dict[str, Accounting], rho: float) -> None:
    """Another grid than the study's: +arm=alloc_memory model.memory_share=<rho> sizes the experts and the rows."""
    model, cfg = arm_model("alloc_memory", f"model.memory_share={rho}")
    a = account(model, int(cfg.data.block_size))
    assert a.total == pytest.approx(arms["alloc_rho0"].total, rel=1e-3) and a.total <= arms["alloc_rho0"].total
    assert a.memory_share == pytest.approx(rho, abs=0.03)
    assert cfg.model.experts == 22 - round(rho * 20) and cfg.model.memory_share is None


def test_allocate_applies_once() -> None:
    cfg = allocate(arm_config("alloc_rho50"))
    experts, rows = cfg.model.experts, cfg.engram.table_size
    assert (experts, rows) != (22, arm_config("alloc_rho50").engram.table_size)
    allocate(cfg)  # the share was used up: a second call changes nothing
    assert (cfg.model.experts, cfg.engram.table_size) == (experts, rows)


def test_a_share_run_trains_at_its_sizes_and_its_run_dir_scores_again(tmp_path: Path) -> None:
    """model.memory_share on a tiny text run: the model built has the experts and rows it derives, at the MoE's
    total; evaluate.py run_dir=<it> scores the trained run again from the config Hydra saved (the request)."""
    from engram.evaluation.evaluate import reevaluate_run
    from engram.tracking.report import load_job
    from engram.training.pipeline import train

    corpus = write_corpus(tmp_path / "corpus", 40, words=120)
    shape = ["model=scratch", "data=text", f"data.path={corpus}", "data.text.vocab_size=300", "data.block_size=32",
             "data.num_tokens=256", "data.eval_tokens=128", "model.hidden_size=32", "model.intermediate_size=32",
             "model.attention_window=null", "model.experts=6", "model.experts_per_token=1", "engram=deepseek",
             "engram.dim=32"]
    moe = train(tiny_cfg(tmp_path / "moe", *shape, "variant=baseline"))[0]
    cfg = tiny_cfg(tmp_path / "run", *shape, "variant=engram", "model.memory_share=0.4")
    (tmp_path / "run" / ".hydra").mkdir(parents=True)
    OmegaConf.save(cfg, tmp_path / "run" / ".hydra" / "config.yaml")  # as Hydra does: before the job runs
    metrics, objects = train(cfg)
    assert objects["model"].lm.config.num_local_experts == 4  # 6 - round(0.4 * 5)
    assert metrics["params/total"] == pytest.approx(moe["params/total"], rel=0.01) and metrics["params/table"] > 0
    assert metrics["params/total"] <= moe["params/total"] and metrics["params/active"] > moe["params/active"]
    again = reevaluate_run(tmp_path / "run", tmp_path / "again")
    assert again.result["metrics"]["lm/loss"] == pytest.approx(metrics["lm/loss"], rel=1e-5)
    saved = json.loads((tmp_path / "run" / "eval.json").read_text())["metrics"]
    assert saved["params/total"] == metrics["params/total"]
    row = load_job(tmp_path / "run")  # report.py's row: the sizes built, not the 6 experts Hydra saved
    assert (row["experts"], row["table_size"]) == (4, cfg.engram.table_size) and cfg.engram.table_size != 5000
