"""engram.shard=rows: tables split by rows over 2 gloo processes give the unsharded model's outputs and training."""

from __future__ import annotations

import math
import os
import socket
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from lightning.pytorch.callbacks import Callback
from omegaconf import OmegaConf

from engram.config import DataConfig
from engram.data.datamodule import EngramDataModule
from engram.memory.shard import ShardedTable, shard_range, shard_tables, unshard_tables
from engram.models.inject import engram_param_groups
from engram.models.loading import load_model
from engram.training.module import EngramLitModule
from engram.training.optim import build_optimizer, split_trainable
from engram.training.variants import apply_variant

ENGRAM = {"table_size": 257, "dim": 32, "layers": [1], "init_std": 0.5}
OPTIM = {"lr": 1e-2}
WORLD, STEPS = 2, 2
pytestmark = pytest.mark.numerics  # compares two code paths' floats: see .ci/run


def _build() -> tuple[EngramLitModule, object]:
    # float64: all-reduced halves sum in another order than one process's batch; Adam amplifies float32 rounding
    model, tok = load_model("tiny", dtype="float64")
    cfg = OmegaConf.create({"variant": {"name": "engram", "finetune": "none"}, "engram": ENGRAM})
    return EngramLitModule(apply_variant(model, cfg, tok), "engram", OPTIM, cfg.engram), tok


def _optimizer(module: EngramLitModule) -> torch.optim.Optimizer:
    groups = engram_param_groups(module.model)
    return build_optimizer(split_trainable(module.model, groups["tables"], groups["dense"]), OPTIM, 5.0, True)


def _halves(tok: object) -> list[list[dict[str, torch.Tensor]]]:
    """STEPS batches of 8, each split into one half per process (rows 0-3, rows 4-7)."""
    data = OmegaConf.structured(DataConfig(num_train=8 * STEPS, num_eval=4, batch_size=8))
    loader = EngramDataModule(data, tok).train_dataloader()
    batches = [b for b, _ in zip(loader, range(STEPS), strict=False)]
    return [[{k: v[r * 4 : (r + 1) * 4] for k, v in b.items()} for r in range(WORLD)] for b in batches]


def _logits(module: EngramLitModule, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return module.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                            prompt_lengths=batch["prompt_lengths"]).logits


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        module, tok = _build()
        ignored = shard_tables(module.model)
        table = module.model.memory(1).table
        assert isinstance(table, ShardedTable) and ignored == ["memories.1.table.weight"]
        optimizer = _optimizer(module)
        outputs = []
        for halves in _halves(tok):
            outputs.append(_logits(module, halves[rank]))
            optimizer.zero_grad()
            module(halves[rank]).backward()
            for p in module.model.parameters():  # what DDP does for every parameter but the shards
                if p.grad is not None and p is not table.weight:
                    dist.all_reduce(p.grad)
                    p.grad /= WORLD
            optimizer.step()
        outputs.append(_logits(module, _halves(tok)[0][rank]))
        unshard_tables(module.model)
        torch.save({"outputs": outputs, "shard": table.weight.detach().shape[0],
                    "table": module.model.memory(1).table.weight.detach()}, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_row_sharded_tables_match_the_unsharded_model_over_two_gloo_processes(tmp_path: Path) -> None:
    mp.start_processes(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, start_method="fork")
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    # the unsharded reference: one process, the mean of the two halves' losses (what DDP's averaging optimises)
    ref, tok = _build()
    optimizer = _optimizer(ref)
    expected = []
    for halves in _halves(tok):
        expected.append([_logits(ref, h) for h in halves])
        optimizer.zero_grad()
        (sum(ref(h) for h in halves) / WORLD).backward()
        optimizer.step()
    expected.append([_logits(ref, h) for h in _halves(tok)[0]])
    rows = ref.model.memory(1).table.weight.shape[0]
    assert [r["shard"] for r in ranks] == [hi - lo for lo, hi in (shard_range(rows, i, WORLD) for i in range(WORLD))]
    for step, want in enumerate(expected):
        for r in range(WORLD):
            torch.testing.assert_close(ranks[r]["outputs"][step], want[r], rtol=0, atol=1e-10)
    for r in range(WORLD):  # after the steps, the gathered table is the unsharded model's
        assert ranks[r]["table"].dtype == torch.float64
        torch.testing.assert_close(ranks[r]["table"], ref.model.memory(1).table.weight.detach(), rtol=0, atol=1e-10)


def test_shard_ranges_cover_every_row_once() -> None:
    for rows, world in ((257, 2), (10, 3), (5, 4), (1000003, 8)):
        ranges = [shard_range(rows, r, world) for r in range(world)]
        assert ranges[0][0] == 0 and ranges[-1][1] == rows
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))


class ShardProbe(Callback):
    """Records, in each process at the end of training, how many table rows that process held."""

    def __init__(self, out: Path) -> None:
        self.out = out

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        table = pl_module.model.memory(1).table
        held = table.weight.shape[0] if isinstance(table, ShardedTable) else -1
        (self.out / f"rank{trainer.global_rank}.txt").write_text(str(held))


def test_train_ddp_sim_sharded_equals_unsharded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """trainer=ddp_sim end to end (Lightning, 2 forked gloo processes): the saved memory of a row-sharded run equals
    the unsharded DDP run's, and each process held half of the rows while training. In float64, so that a wrong
    gradient cannot hide behind float32 rounding (which Adam amplifies to ~lr; benchmarks/bench_shard.py)."""
    from safetensors.torch import load_file

    from engram.training import pipeline
    from tests._training_utils import tiny_cfg

    original = pipeline.build_callbacks
    monkeypatch.setattr(pipeline, "build_callbacks", lambda cfg, run_dir, *rest: [*original(cfg, run_dir, *rest),
                                                                                  ShardProbe(tmp_path)])
    tables = {}
    for shard in ("none", "rows"):
        run = tmp_path / shard
        cfg = tiny_cfg(run, "variant=engram", "trainer=ddp_sim", "trainer.max_steps=3",
                       "trainer.enable_checkpointing=false", f"engram.shard={shard}", "model.dtype=float64")
        pipeline.train(cfg)
        tables[shard] = load_file(str(run / "engram.safetensors"))
        held = [int((tmp_path / f"rank{r}.txt").read_text()) for r in range(WORLD)]
        rows = tables[shard]["layers.1.table.weight"].shape[0]
        assert held == ([-1, -1] if shard == "none" else [math.ceil(rows / 2), rows - math.ceil(rows / 2)])
    assert tables["none"].keys() == tables["rows"].keys()
    for key, value in tables["none"].items():
        assert value.dtype == torch.float64, key
        torch.testing.assert_close(tables["rows"][key], value, rtol=0, atol=1e-10, msg=key)
