"""engram.offload.to=host: tables in host RAM or memory-mapped files train exactly like in-memory tables (tiny
model)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from engram.config import DataConfig
from engram.data.datamodule import EngramDataModule
from engram.memory.offload import HostTable
from engram.models.inject import engram_param_groups, host_tables
from engram.models.loading import load_model
from engram.training.module import EngramLitModule
from engram.training.optim import build_optimizer, split_trainable
from engram.training.variants import apply_variant

ENGRAM = {"table_size": 257, "dim": 32, "layers": [1], "init_std": 0.5, "lr_multiplier": 5.0}
OPTIM = {"lr": 1e-2}
pytestmark = pytest.mark.numerics  # compares two code paths' floats: see .ci/run


def _build(dtype: str = "float32", **engram: object) -> tuple[EngramLitModule, torch.optim.Optimizer, object]:
    model, tok = load_model("tiny", dtype=dtype)
    cfg = OmegaConf.create({"variant": {"name": "engram", "finetune": "none"}, "engram": {**ENGRAM, **engram}})
    model = apply_variant(model, cfg, tok)
    module = EngramLitModule(model, "engram", OPTIM, cfg.engram)
    groups = engram_param_groups(model)
    optimizer = build_optimizer(split_trainable(model, groups["tables"], groups["dense"]), OPTIM,
                                ENGRAM["lr_multiplier"], True, host_tables(model))
    return module, optimizer, tok


@pytest.fixture
def float64_default() -> object:
    """torch's default dtype float64 while the test runs: a HostTable in host RAM then holds float64 rows too."""
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def _batches(tok: object, n: int) -> list[dict[str, torch.Tensor]]:
    data = OmegaConf.structured(DataConfig(num_train=8 * n, num_eval=4, batch_size=8))
    loader = EngramDataModule(data, tok).train_dataloader()
    return [b for b, _ in zip(loader, range(n), strict=False)]


def _train(module: EngramLitModule, optimizer: torch.optim.Optimizer, batches: list, prefetch: bool = False
           ) -> list[torch.Tensor]:
    losses = []
    for i, batch in enumerate(batches):
        if prefetch and i + 1 < len(batches):  # as the data loader does: the next batch is announced early
            module.model.prefetch(batches[i + 1])
        optimizer.zero_grad()
        loss = module(batch)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
    return losses


def _table(module: EngramLitModule) -> torch.Tensor:
    return module.model.memory(1).table.weight.detach().clone()


def _logits(module: EngramLitModule, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return module.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits


def test_offloaded_table_trains_like_the_in_memory_table(float64_default: None) -> None:
    """In float64: the two paths sum a row's duplicate lookups in a different order, and in float32 Adam amplifies
    that rounding past any tolerance that would still catch a wrong update (~lr); float64 rounding stays ~1e-15."""
    ref, ref_opt, tok = _build("float64")
    off, off_opt, _ = _build("float64", offload={"to": "host"})
    assert isinstance(off.model.memory(1).table, HostTable) and _table(off).dtype == torch.float64
    assert torch.equal(_table(ref), _table(off))  # the same random rows from the same seed, bit for bit
    dense = dict(off.model.memories.named_parameters())
    assert dense and "1.table.weight" not in dense  # the offloaded rows are no parameter
    for name, p in dense.items():
        assert torch.equal(p, ref.model.memories.get_parameter(name)), name  # the same gates, drawn after the rows
    batches = _batches(tok, 4)
    ref_losses = _train(ref, ref_opt, batches)
    off_losses = _train(off, off_opt, batches, prefetch=True)
    close = {"rtol": 0, "atol": 1e-10}
    torch.testing.assert_close(torch.stack(off_losses), torch.stack(ref_losses), **close)
    fresh = _build("float64", offload={"to": "host"})[0]
    assert not torch.equal(_table(off), fresh.model.memory(1).table.weight)  # moved
    torch.testing.assert_close(_table(off), _table(ref), **close)
    torch.testing.assert_close(_logits(off, batches[0]), _logits(ref, batches[0]), **close)
    assert off.model.memory(1).table.prefetcher.hits == 3  # every announced batch was served from the prefetch


def test_memory_mapped_table_trains_bit_for_bit_like_the_host_ram_table(tmp_path: Path) -> None:
    """The files are float32 by format; the same HostTable operations in the same order as in host RAM."""
    mapped, mapped_opt, tok = _build(offload={"to": "host", "dir": str(tmp_path)})
    ram, ram_opt, _ = _build(offload={"to": "host"})
    assert mapped.model.memory(1).table.memory_mapped and not ram.model.memory(1).table.memory_mapped
    batches = _batches(tok, 4)
    assert torch.equal(torch.stack(_train(mapped, mapped_opt, batches, prefetch=True)),
                       torch.stack(_train(ram, ram_opt, batches, prefetch=True)))
    assert torch.equal(_table(mapped), _table(ram)) and not torch.equal(_table(ram), _table(_build()[0]))  # moved
    assert torch.equal(_logits(mapped, batches[0]), _logits(ram, batches[0]))


def test_prefetched_rows_equal_the_rows_read_now_even_after_an_update() -> None:
    table = HostTable(101, 4)
    rows = torch.tensor([3, 7, 50])
    table.prefetch(lambda: rows)
    out = table(torch.tensor([[7, 3], [50, 7]]))  # takes the prefetch (grad enabled: a leaf is kept)
    assert table.prefetcher.hits == 1
    torch.testing.assert_close(out, table.weight[torch.tensor([[7, 3], [50, 7]])])
    table.prefetch(lambda: torch.tensor([7, 8]))  # gathered before the update below writes row 7
    out.sum().backward()
    table.adam_step(0.1, 0.9, 0.999, 1e-8)
    fresh = table.weight[torch.tensor([7, 8])].clone()
    assert torch.equal(table(torch.tensor([7, 8])), fresh)  # the prefetched copy of row 7 was refreshed
    assert table.prefetcher.hits == 2


def test_memory_mapped_table_persists_and_reloads(tmp_path: Path) -> None:
    table = HostTable(64, 8, directory=tmp_path, name="layer1")
    table(torch.tensor([1, 2, 2, 63])).pow(2).sum().backward()
    table.adam_step(0.1, 0.9, 0.999, 1e-8)
    table.flush()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "layer1.exp_avg.f32", "layer1.exp_avg_sq.f32", "layer1.json", "layer1.weight.f32"]
    again = HostTable(64, 8, directory=tmp_path, name="layer1", reuse=True)
    for part in ("weight", "exp_avg", "exp_avg_sq"):
        assert torch.equal(getattr(again, part), getattr(table, part)), part
    assert again.step == 1 and bool(again.exp_avg[1].abs().sum() > 0) and bool(again.exp_avg[5].eq(0).all())
    with pytest.raises(ValueError, match="engram.offload.reuse"):
        HostTable(65, 8, directory=tmp_path, name="layer1", reuse=True)


def test_offloaded_table_saves_loads_and_checkpoints_like_an_embedding(tmp_path: Path) -> None:
    ref, ref_opt, tok = _build()
    _train(ref, ref_opt, _batches(tok, 1))
    off, _, _ = _build(offload={"to": "host", "dir": str(tmp_path / "tables")})
    assert not torch.equal(_table(ref), _table(off))
    path = ref.model.save_engram(tmp_path / "saved")
    off.model.load_engram(path)  # the safetensors file of an in-memory table loads into the file-backed one
    assert torch.equal(_table(off), _table(ref))
    assert "model.memories.1.table.weight" in off._checkpointed()  # checkpoints keep the offloaded rows


def test_train_with_offloaded_tables_prefetches_and_saves(tmp_path: Path) -> None:
    """The real pipeline (Lightning zeroes gradients between forward and backward) with memory-mapped tables: the
    data loader announces each batch, the rows move, and engram.safetensors holds the file's rows."""
    from safetensors.torch import load_file

    from engram.training.pipeline import train
    from tests._training_utils import tiny_cfg

    cfg = tiny_cfg(tmp_path / "run", "variant=engram", "trainer.max_steps=3", "engram.offload.to=host",
                   f"engram.offload.dir={tmp_path / 'tables'}")
    _, objects = train(cfg)
    table = objects["model"].memory(1).table
    assert isinstance(table, HostTable) and table.step == 3 and table.prefetcher.hits >= 2
    saved = load_file(str(tmp_path / "run" / "engram.safetensors"))["layers.1.table.weight"]
    assert torch.equal(saved, table.weight)
    assert bool(table.exp_avg.abs().sum() > 0)  # the moments trained in the file
    again = HostTable(table.rows, table.dim, directory=tmp_path / "tables", name=table.name, reuse=True)
    assert again.step == 3 and torch.equal(again.weight, table.weight)  # engram.offload.reuse resumes at step 3


@pytest.mark.parametrize(("overrides", "needle"), [
    (["engram.offload.to=disk"], "engram.offload.to=disk is not one of none, host"),
    (["engram.offload.dir=x"], "engram.offload.dir=x needs engram.offload.to=host"),
    (["engram.offload.to=host", "engram.sparse=false"], "engram.offload.to=host needs engram.sparse=true"),
    (["engram.offload.to=host", "trainer=ddp_sim"], "engram.offload.to=host runs in one process"),
    (["engram.offload.to=host", "engram.init=prepopulate"], "engram.init=prepopulate"),
    (["engram.offload=host"], "engram.offload=host was renamed: use engram.offload.to=host"),
    (["engram.shard=rows"], "engram.shard=rows needs a multi-process DDP trainer"),
    (["engram.shard=rows", "trainer=ddp_sim"], "trainer.enable_checkpointing=false"),
    (["engram.shard=rows", "trainer=ddp_sim", "trainer.enable_checkpointing=false", "engram.offload.to=host"],
     "engram.offload.to=host runs in one process"),
    (["engram.shard=cols"], "engram.shard=cols is not one of none, rows"),
])
def test_bad_storage_settings_are_one_config_line(tmp_path: Path, overrides: list[str], needle: str) -> None:
    from engram.config import ConfigError
    from tests._training_utils import tiny_cfg

    with pytest.raises(ConfigError) as info:
        tiny_cfg(tmp_path, "variant=engram", *overrides)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_bad_storage_setting_exits_2_before_torch_loads(tmp_path: Path) -> None:
    from tests.test_bad_inputs import assert_one_line_exit_2

    assert_one_line_exit_2(tmp_path, "train.py", ["engram.shard=rows"], "engram.shard=rows needs a multi-process")


def test_resumed_offloaded_run_ends_like_a_resumed_in_memory_run(tmp_path: Path) -> None:
    """A checkpoint of a memory-mapped run holds its rows and both moments: 2 steps, then a resumed run to 4 steps,
    ends where the same in-memory procedure ends (a lost moment or row would move the rows by ~1e-2). The model in
    float64, so that only the file's float32 rows and moments round (~1e-7 a step; measured ~5e-7 after 4 steps)."""
    from engram.training.pipeline import train
    from tests._training_utils import tiny_cfg

    def run(name: str, *overrides: str) -> object:
        cfg = tiny_cfg(tmp_path / name, "variant=engram", "trainer.max_epochs=5", "model.dtype=float64", *overrides)
        return train(cfg)[1]["model"].memory(1).table

    ends = {}
    for where in ("ram", "file"):
        offload = [] if where == "ram" else ["engram.offload.to=host", f"engram.offload.dir={tmp_path / where}"]
        run(f"{where}-first", "trainer.max_steps=2", "trainer.enable_checkpointing=true", *offload)
        ckpt = tmp_path / f"{where}-first" / "checkpoints" / "last.ckpt"
        ends[where] = run(f"{where}-resumed", "trainer.max_steps=4", f"ckpt_path={ckpt}", *offload)
    assert isinstance(ends["file"], HostTable) and ends["file"].step == 4
    torch.testing.assert_close(ends["file"].weight.double(), ends["ram"].weight.detach(), rtol=0, atol=1e-5)
