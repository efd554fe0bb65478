"""Correctness kept by the performance work (no timing asserts): sparse == dense training, the memory budget
refusal and its estimate, incremental slot statistics, and the benchmark harness itself (`make bench`)."""

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from engram import add_engram
from engram.config import ConfigError, EngramConfig
from engram.memory.budget import MemoryBudgetError, estimate_engram_bytes
from engram.models import load_model
from engram.models.inject import engram_memories, engram_param_groups
from engram.training.module import EngramLitModule

ROOT = Path(__file__).resolve().parent.parent


def batch_of(tok, n=6):
    from engram.data.collate import TrainCollator
    from engram.data.datamodule import EngramDataModule

    dm = EngramDataModule({"family": "exact_match", "num_train": 16, "num_eval": 4, "prompt_format": "plain"}, tok)
    dm.setup()
    ds = dm.datasets["train"].select_columns(["input_ids", "labels", "prompt_length"])
    return TrainCollator(tok.pad_token_id)([ds[i] for i in range(n)])


def loss_curve(sparse: bool, hash_: str, steps: int = 4) -> tuple[list[float], torch.Tensor]:
    # float64: a sparse gradient is coalesced in another order than the dense one is accumulated
    model, tok = load_model("tiny", dtype="float64")
    cfg = {"table_size": 200, "dim": 32, "heads": 4, "layers": [0, 1], "hash": hash_, "sparse": sparse,
           "gate_bias": 0.0, "gate": "context" if hash_ != "poc" else "mlp"}
    model = add_engram(model, cfg, tok)
    model.requires_grad_(False)
    groups = engram_param_groups(model)
    params = groups["tables"] + groups["dense"]
    for p in params:
        p.requires_grad_(True)
    module = EngramLitModule(model, "engram", {"lr": 0.5}, cfg)
    opt = torch.optim.SGD(params, lr=0.5)  # SGD takes sparse and dense gradients alike
    batch, losses = batch_of(tok), []
    model.train()
    for _ in range(steps):
        loss = module(batch)
        loss.backward()
        assert groups["tables"][0].grad.is_sparse == sparse
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    return losses, torch.cat([t.detach().flatten() for t in groups["tables"]])


@pytest.mark.numerics
@pytest.mark.parametrize("hash_", ["deepseek", "poc"])
def test_sparse_and_dense_tables_give_the_same_loss_curve(hash_):
    sparse_losses, sparse_tables = loss_curve(True, hash_)
    dense_losses, dense_tables = loss_curve(False, hash_)
    assert sparse_losses[0] == dense_losses[0]  # same seed, same memory, the same forward
    assert sparse_losses[-1] < sparse_losses[0]  # the steps did train something
    torch.testing.assert_close(torch.tensor(sparse_losses), torch.tensor(dense_losses), rtol=0, atol=1e-10)
    torch.testing.assert_close(sparse_tables, dense_tables, rtol=0, atol=1e-10)


def test_memory_budget_refuses_a_table_that_cannot_fit_before_allocating():
    model, tok = load_model("tiny")
    huge = {"hash": "poc", "table_size": 10**10, "dim": 576, "layers": [1]}  # ~64 TB with Adam state
    with pytest.raises(MemoryBudgetError) as err:
        add_engram(model, huge, tok)
    msg = str(err.value)
    assert isinstance(err.value, ConfigError) and "\n" not in msg
    assert msg.startswith("config error: engram.table_size=10000000000 needs ~") and "GiB" in msg
    assert engram_memories(model) == {} and not model._forward_pre_hooks  # nothing was added
    assert engram_memories(add_engram(model, {**huge, "table_size": 100}))  # a small table still goes in


def test_memory_budget_limit_override(monkeypatch):
    model, tok = load_model("tiny")
    cfg = {"table_size": 50_000, "dim": 64, "layers": [0, 1]}  # ~2 x 400k rows x 16 floats x 3 = ~80 MB
    monkeypatch.setenv("ENGRAM_MEMORY_LIMIT_GB", "0.01")
    with pytest.raises(MemoryBudgetError, match="only 0.0 GiB of RAM is available"):
        add_engram(model, cfg, tok)
    assert engram_memories(model) == {}  # refused before anything went in
    monkeypatch.setenv("ENGRAM_MEMORY_LIMIT_GB", "1")
    model = add_engram(model, cfg, tok)
    assert sorted(engram_memories(model)) == [0, 1]  # the raised limit lets both memories in


@pytest.mark.parametrize("kw", [
    {"hash": "deepseek", "table_size": 1000, "dim": 64, "heads": 4, "max_ngram": 3},
    {"hash": "deepseek", "table_size": [500, 700], "dim": 48, "heads": 2, "max_ngram": 3},
    {"hash": "poc", "table_size": 3000, "dim": 96, "heads": 4, "max_ngram": 2, "gate": "mlp"},
    {"hash": "span", "table_size": 800, "dim": 32, "heads": 4},
])
def test_memory_budget_estimate_covers_the_real_tables(kw):
    model, tok = load_model("tiny")
    cfg = {**kw, "layers": [0, 1], "compress_vocab": False}
    model = add_engram(model, cfg)
    real = sum(t.nbytes for t in engram_param_groups(model)["tables"])
    est = estimate_engram_bytes(SimpleNamespace(**{**EngramConfig().__dict__, **cfg}), 2, model.config.hidden_size)
    assert real <= est.tables <= real * 1.3  # an upper bound for the prime sizes (loose only for tiny tables)
    # what SparseAdam really allocates for the tables after one step (its per-row moments)
    tables = engram_param_groups(model)["tables"]
    opt = torch.optim.SparseAdam(tables)
    for t in tables:
        t.grad = torch.sparse_coo_tensor(torch.tensor([[0]]), torch.ones(1, t.shape[1]), t.shape)
    opt.step()
    moments = sum(v.nbytes for state in opt.state.values() for v in state.values() if torch.is_tensor(v) and v.dim())
    assert moments <= est.optimizer <= moments * 1.3


def test_memory_budget_estimate_is_tight_for_big_tables():
    cfg = SimpleNamespace(**{**EngramConfig().__dict__, "table_size": 1_250_000, "layers": [1]})
    est = estimate_engram_bytes(cfg, 1, 576)  # the benchmark's 10^7-row deepseek table
    assert est.rows == pytest.approx(10**7, rel=1e-3) and est.row_dim == 64
    assert est.tables == pytest.approx(10**7 * 64 * 4, rel=1e-3)


def test_slot_utilisation_running_count_equals_a_full_scan():
    model, tok = load_model("tiny")
    model = add_engram(model, {"table_size": 300, "dim": 32, "layers": [1]}, tok)
    memory = engram_memories(model)[1]
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _ in range(3):
            model(torch.randint(4, 2048, (4, 12), generator=g))
    assert int(memory.hit_count) == int(memory.hits.sum()) > 0
    assert memory.slot_utilisation() == pytest.approx(float(memory.hits.float().mean()))
    memory.reset_slot_usage()
    assert memory.slot_utilisation() == 0.0
    with torch.no_grad():
        model(torch.randint(4, 2048, (4, 12), generator=g))
    assert int(memory.hit_count) == int(memory.hits.sum()) > 0


def test_benchmark_shared_clone_shares_base_weights_but_not_memories():
    sys.path.insert(0, str(ROOT))
    from benchmarks.common import frozen, shared_clone

    base, tok = frozen(load_model("tiny")[0]), load_model("tiny")[1]
    a = add_engram(shared_clone(base), {"table_size": 300, "dim": 32, "layers": [1]}, tok)
    b = add_engram(shared_clone(base), {"table_size": 900, "dim": 32, "layers": [1]}, tok)
    assert a.model.embed_tokens.weight is base.model.embed_tokens.weight is b.model.embed_tokens.weight
    assert engram_memories(a)[1].table.weight.shape != engram_memories(b)[1].table.weight.shape
    assert engram_memories(base) == {}


def test_benchmark_quick_hash_part_runs(capsys):
    sys.path.insert(0, str(ROOT))
    from benchmarks import run

    assert run.main(["--quick", "--only", "hash"]) == 0
    out = capsys.readouterr().out
    assert "NgramHasher.hash on 1.00 M tokens" in out and "threads" in out
    with pytest.raises(SystemExit) as err:
        run.main(["--only", "nope"])
    assert err.value.code == 2
