"""Issue 19, part 3: engram.shard=rows -- tables split by rows over DDP processes (engram/memory/shard.py).

The real pipeline twice with trainer=ddp_sim (2 forked gloo processes on this machine), tiny model, the same data
and seed: DDP with whole tables in every process, and DDP with each process holding half of the rows. The memories
they save (every table row and gate weight after training) and their evaluation metrics must agree.

The target is checked in float64 (model.dtype=float64). In float32 the two runs add the same gradients in another
order (the sharded lookup's all-reduce vs DDP's sparse all-reduce), and Adam's m / sqrt(v) turns a rounding
difference in a near-zero gradient into a step-sized one, so float32 tables drift apart by ~lr after a few steps
(reported as information). In float64 that rounding is ~1e-16 and the runs agree to ~1e-13: the sharded algorithm
is the unsharded one. Step time is reported, not targeted: both processes share the same 2 cores here, and the
collectives of a real cluster are not what gloo over loopback costs.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from benchmarks.common import Row

TOLERANCE = 1e-9  # float64: rounding (~1e-16) amplified by a few Adam steps stays far below this
CONF = Path(__file__).resolve().parent.parent / "engram" / "conf"


def _run(run_dir: Path, shard: str, steps: int, dtype: str) -> tuple[dict, dict]:
    from hydra import compose, initialize_config_dir
    from safetensors.torch import load_file

    from engram.config import register_configs, validate
    from engram.training.pipeline import train

    register_configs()
    overrides = ["model=tiny", f"model.dtype={dtype}", "engram=deepseek", "variant=engram", "trainer=ddp_sim",
                 "logger=none", f"trainer.max_steps={steps}", "trainer.enable_checkpointing=false",
                 "eval_max_new_tokens=4", "data.num_train=64", "data.num_eval=8", "data.batch_size=8",
                 "engram.table_size=4096", f"engram.shard={shard}", f"+paths.output_dir={run_dir}"]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = validate(compose("train", overrides=overrides))
    metrics, _ = train(cfg)
    return load_file(str(run_dir / "engram.safetensors")), metrics


def _compare(steps: int, dtype: str) -> tuple[float, list[str], int, dict, dict]:
    """Largest difference over every saved tensor, the metrics that differ, the table's rows, both metric dicts."""
    with tempfile.TemporaryDirectory(prefix="engram-shard-") as tmp:
        runs = {kind: _run(Path(tmp) / f"{kind}-{dtype}", kind, steps, dtype) for kind in ("none", "rows")}
    (whole, m_whole), (split, m_split) = runs["none"], runs["rows"]
    same_keys = whole.keys() == split.keys()
    worst = max(float((whole[k] - split[k]).abs().max()) for k in whole) if same_keys else float("inf")
    scored = sorted(k for k in m_whole if k.split("/")[0] in ("eval", "train", "val")
                    and not any(t in k for t in ("latency", "time", "per_s")))  # timings differ, results must not
    differ = [k for k in scored if k not in m_split or abs(m_whole[k] - m_split[k]) > 1e-4]
    return worst, differ, int(whole["layers.1.table.weight"].shape[0]), m_whole, m_split


def shard(steps: int = 4) -> list[Row]:
    worst, differ, rows, m_whole, m_split = _compare(steps, "float64")
    worst32, differ32, _, m_whole32, m_split32 = _compare(steps, "float32")
    loss = "train/loss" if "train/loss" in m_whole else "val/loss"
    t_whole, t_split = m_whole32["time/train_s"], m_split32["time/train_s"]
    return [
        Row("sharded == unsharded outputs, float64 (2 gloo processes)",
            f"max abs difference over all saved tensors {worst:.1e}", worst, f"<= {TOLERANCE:g}",
            bool(worst <= TOLERANCE and not differ),
            note=f"trainer=ddp_sim, tiny model, model.dtype=float64, {steps} steps; metrics differing: "
                 f"{differ or 'none'} ({loss} {m_whole[loss]:.6f} vs {m_split[loss]:.6f}); each process held "
                 f"{(rows + 1) // 2:,} of {rows:,} rows"),
        Row("sharded vs unsharded outputs, float32", f"max abs difference over all saved tensors {worst32:.1e}",
            worst32, note=f"information: the same gradients summed in another order, amplified by Adam (module "
                          f"doc); metrics differing by > 1e-4: {differ32 or 'none'}"),
        Row("sharded / unsharded training time (2 gloo processes)", f"{t_split:.1f} s / {t_whole:.1f} s",
            t_split / t_whole, note="float32 runs; fit time incl. process start; report only (2 processes on 2 "
                                    "shared cores)"),
    ]
