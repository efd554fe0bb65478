"""engram.address=hybrid (hash rows + rows found by product keys) and the six-row comparison: shapes and a fresh
zero memory that changes nothing, a planted near-duplicate key found for a query that hashes elsewhere, the product-key
index against exhaustive search, a tiny-model train + evaluate, the row order everywhere, bad settings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from engram import add_engram
from engram.config import ROW_ORDER, register_configs
from engram.evaluation.evaluate import reevaluate_run, write_comparison
from engram.memory.product_keys import ProductKeys
from engram.models import load_model
from engram.models.inject import engram_memories
from engram.tracking.dashboard import build_spec
from engram.tracking.run_dirs import read_run
from engram.training.pipeline import train
from tests._training_utils import tiny_cfg
from tests.test_evaluate import fake_run

ROOT = Path(__file__).resolve().parent.parent


def memory_cfg(address: str, **kw):
    base = dict(table_size=300, heads=4, dim=32, max_ngram=3, layers=[1], seed=0, hash="deepseek", gate="context",
                address=address, hybrid={"topk": 4, "key_dim": 16})
    return {**base, **kw}


def ids_batch(seed: int = 0, shape: tuple[int, int] = (2, 10)) -> torch.Tensor:
    return torch.randint(4, 2048, shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.numerics
@pytest.mark.parametrize("rows", [7, 1000, 1013])  # 1013: not a square, handled (pair -> row modulo rows)
def test_product_keys_find_the_exhaustive_top_k(rows):
    index = ProductKeys(rows, key_dim=16, seed=1)
    # float64: the two searches sum a score in different orders; a float32 near-tie could swap the top-1 row
    q = torch.randn(3, 50, 16, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    scores, found = index.search(q, 5)
    full_scores, full_rows = index.exhaustive(q, 5)
    assert found.shape == (3, 50, 5) and int(found.max()) < rows
    assert torch.equal(found[..., 0], full_rows[..., 0])  # the same top-1 row
    torch.testing.assert_close(scores, full_scores, rtol=0, atol=1e-12)  # and the same k best scores


def test_hybrid_shapes_and_a_fresh_zero_memory_changes_nothing():
    ids = ids_batch()
    model, tok = load_model("tiny")
    with torch.no_grad():
        base = model(ids).logits
    model = add_engram(model, memory_cfg("hybrid", init="zeros"), tokenizer=tok)
    with torch.no_grad():
        fresh = model(ids).logits
    lookup = engram_memories(model)[1].retrieval
    assert lookup.last_rows.shape == (2, 10, 4) and lookup.scale.shape == (8, 8)  # (n-gram orders x heads) x row
    assert torch.equal(fresh, base)  # zero rows: neither the hash nor the content rows add anything
    outs = {}
    for address, gain in (("hashed", 1.0), ("hybrid", 0.0)):  # gain 0: a fresh hybrid memory is the hashed one
        model, tok = load_model("tiny")
        torch.manual_seed(0)  # the same table and gate weights for both
        cfg = memory_cfg(address, hybrid={"topk": 4, "key_dim": 16, "gain_init": gain})
        model = add_engram(model, cfg, tokenizer=tok)
        with torch.no_grad():
            outs[address] = model(ids).logits
    assert torch.equal(outs["hashed"], outs["hybrid"]) and not torch.equal(outs["hashed"], base)


def test_hybrid_retrieval_finds_a_planted_near_duplicate_row():
    model, tok = load_model("tiny")
    model = add_engram(model, memory_cfg("hybrid"), tokenizer=tok)
    memory = engram_memories(model)[1]
    lookup = memory.retrieval
    ids = ids_batch(3, (1, 8))
    hidden: dict[str, torch.Tensor] = {}

    def keep_hidden(module: torch.nn.Module, args: tuple) -> None:
        hidden["h"] = args[0].detach()  # the layer's hidden state the content query reads

    handle = lookup.register_forward_pre_hook(keep_hidden)
    with torch.no_grad(), model.tracing() as traces:
        model(ids)
    handle.remove()
    hashed_rows = set((traces[1].lookup.slots[0, -1] + memory.offsets).tolist())  # where the last position hashes
    target = next(r for r in range(memory.table.num_embeddings - 1, 0, -1) if r not in hashed_rows)
    index = lookup.keys
    i, j = divmod(target, index.n)
    with torch.no_grad():
        q = lookup.query(hidden["h"][0, -1])
        q1, q2 = q.unflatten(-1, (2, -1))
        noise = torch.randn(2, q1.numel(), generator=torch.Generator().manual_seed(4))
        index.sub_keys[0, i] = q1 + 0.05 * q1.norm() * noise[0] / noise[0].norm()  # near, not equal
        index.sub_keys[1, j] = q2 + 0.05 * q2.norm() * noise[1] / noise[1].norm()
        memory.table.weight[target] = 1.0
        model(ids)
    assert int(lookup.last_rows[0, -1, 0]) == target and target not in hashed_rows


def test_hybrid_trains_evaluates_and_reloads_on_the_tiny_model(tmp_path):
    register_configs()
    run_dir = tmp_path / "run"
    cfg = tiny_cfg(run_dir, "variant=engram_hybrid", "data=entity", "optim.warmup_steps=0")
    assert cfg.engram.address == "hybrid"  # the variant fixes it
    metrics, objects = train(cfg)
    assert metrics["eval/num_examples"] == 8 and "edit/generalization" in metrics
    lookup = engram_memories(objects["model"])[1].retrieval
    assert not torch.equal(lookup.scale.detach(), torch.ones_like(lookup.scale))  # the content path trained
    (run_dir / ".hydra").mkdir()
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
    again = reevaluate_run(run_dir, tmp_path / "again")
    before = json.loads((run_dir / "eval.json").read_text())
    assert [r["generated"] for r in again.result["examples"]] == [r["generated"] for r in before["examples"]]


def test_six_rows_in_order_in_evaluate_report_and_dashboard(tmp_path):
    assert ROW_ORDER == ("baseline", "lora", "gated_lora", "engram", "engram_hybrid", "combined")
    for v in reversed(ROW_ORDER):  # run dirs as train_variants=true writes them (.hydra/ like a multirun job)
        fake_run(tmp_path / v, v, [True, False])
        (tmp_path / v / ".hydra").mkdir()
        OmegaConf.save(OmegaConf.create({"variant": {"name": v}}), tmp_path / v / ".hydra" / "config.yaml")
        OmegaConf.save(OmegaConf.create([f"variant={v}"]), tmp_path / v / ".hydra" / "overrides.yaml")
    runs = [read_run(tmp_path / v) for v in reversed(ROW_ORDER)]
    result = write_comparison(runs, tmp_path / "cmp")
    assert [r["variant"] for r in result["rows"]] == list(ROW_ORDER)
    md = result["markdown"].read_text().splitlines()
    assert [ln.split("|")[1].strip() for ln in md if ln.startswith("| ") and "Variant" not in ln] == list(ROW_ORDER)
    from engram.tracking.report import collect, comparison_order

    table = collect([tmp_path / v for v in reversed(ROW_ORDER)])
    assert list(comparison_order(table)["variant"]) == list(ROW_ORDER)
    section = build_spec()["sections"][0]
    assert section["rows"] == list(ROW_ORDER) and "six" in section["name"]


@pytest.mark.parametrize(("script", "args", "needle"), [
    ("train.py", ["engram=hybrid", "engram.hybrid.topk=0"], "engram.hybrid.topk=0"),
    ("train.py", ["engram=hybrid", "engram.table_size=16", "engram.hybrid.topk=32"], "engram.hybrid.topk=32"),
    ("train.py", ["variant=engram_hybrid", "engram.hybrid.key_dim=7"], "engram.hybrid.key_dim=7"),
    # the comparison checks every row's config before training any: here only engram_hybrid's is bad
    ("evaluate.py", ["train_variants=true", "engram.hybrid.topk=0"], "engram.hybrid.topk=0"),
    # the spelling before address=hybrid's keys became its own section: one line naming the new one
    ("train.py", ["engram=hybrid", "engram.hybrid_topk=16"],
     "engram.hybrid_topk=16 was renamed: use engram.hybrid.topk=16"),
])
def test_bad_hybrid_settings_are_one_line_and_exit_2(tmp_path, script, args, needle):
    proc = subprocess.run([sys.executable, script, "model=tiny", *args, f"hydra.run.dir={tmp_path}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"config error: {needle}"), proc.stderr


def test_benchmark_quick_hybrid_part_runs(capsys, tmp_path):
    sys.path.insert(0, str(ROOT))
    from benchmarks import run

    assert run.main(["--quick", "--only", "hybrid", "--json", str(tmp_path / "hybrid.json")]) == 0
    out = capsys.readouterr().out
    assert "product-key lookup time, 10,000 / 1,000 rows" in out and "model=none" in out
    # the JSON record: the printed rows, and the command without where the record went
    record = json.loads((tmp_path / "hybrid.json").read_text())
    assert record["info"]["command"] == "python benchmarks/run.py --quick --only hybrid"
    assert record["info"]["mode"] == "quick" and record["info"]["cpu"]
    targets = [r["target"] for r in record["rows"]]
    assert "product-key lookup time, 10,000 / 1,000 rows" in targets
    assert {r["result"] for r in record["rows"]} <= {"PASS", "FAIL", "info"}
