"""experiment=lm_allocation's arms (engram/conf/arm/alloc_*.yaml): each the share rho of the idle expert parameters it
says it gives the memory, all at the total parameters of the MoE alone, the dense reference at its active FLOPs
per token (engram/models/accounting.py on the models the arms build)."""

from __future__ import annotations

import pytest

from engram.models.accounting import Accounting, account
from tools.allocation_arms import arm_model

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
