"""Issue 19, part 3: engram.shard=rows -- tables split by rows over DDP processes (engram/memory/shard.py).

The real pipeline twice with trainer=ddp_sim (2 forked gloo processes on this machine), tiny model, the same data
and seed: DDP with whole tables in every process, and DDP with each process holding half of the rows. The memories
they save (every table row and gate weight after training) and their evaluation metrics must agree to float
rounding. Step time is reported, not targeted: both processes share the same 2 cores here, and the collectives of
a real cluster are not what gloo over loopback costs.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from benchmarks.common import Row

TOLERANCE = 1e-4
CONF = Path(__file__).resolve().parent.parent / "conf"


def _run(run_dir: Path, shard: str, steps: int) -> tuple[dict, dict]:
    from hydra import compose, initialize_config_dir
    from safetensors.torch import load_file

    from engram.config import register_configs, validate
    from engram.training.pipeline import train

    register_configs()
    overrides = ["model=tiny", "engram=deepseek", "variant=engram", "trainer=ddp_sim", "logger=none",
                 f"trainer.max_steps={steps}", "trainer.enable_checkpointing=false", "eval_max_new_tokens=4",
                 "data.num_train=64", "data.num_eval=8", "data.batch_size=8", "engram.table_size=4096",
                 f"engram.shard={shard}", f"+paths.output_dir={run_dir}"]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = validate(compose("train", overrides=overrides))
    metrics, _ = train(cfg)
    return load_file(str(run_dir / "engram.safetensors")), metrics


def shard(steps: int = 4) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="engram-shard-") as tmp:
        runs = {kind: _run(Path(tmp) / kind, kind, steps) for kind in ("none", "rows")}
    (whole, m_whole), (split, m_split) = runs["none"], runs["rows"]
    same_keys = whole.keys() == split.keys()
    worst = max(float((whole[k] - split[k]).abs().max()) for k in whole) if same_keys else float("inf")
    rows = whole["layers.1.table.weight"].shape[0]
    scored = sorted(k for k in m_whole if k.split("/")[0] in ("eval", "train", "val")
                    and not any(t in k for t in ("latency", "time", "per_s")))  # timings differ, results must not
    differ = [k for k in scored if abs(m_whole[k] - m_split.get(k, float("nan"))) > TOLERANCE or k not in m_split]
    loss = "train/loss" if "train/loss" in m_whole else scored[0]
    t_whole, t_split = m_whole["time/train_s"], m_split["time/train_s"]
    return [
        Row("sharded == unsharded outputs (2 gloo processes)",
            f"max abs difference over all saved tensors {worst:.1e}", worst, f"<= {TOLERANCE:g}",
            bool(worst <= TOLERANCE and not differ),
            note=f"trainer=ddp_sim, tiny model, {steps} steps; {len(scored)} metrics compared, differing: "
                 f"{differ or 'none'} ({loss} {m_whole[loss]:.6f} vs {m_split[loss]:.6f}); each process held "
                 f"{(rows + 1) // 2:,} of {rows:,} rows"),
        Row("sharded / unsharded training time (2 gloo processes)", f"{t_split:.1f} s / {t_whole:.1f} s",
            t_split / t_whole, note="fit time incl. process start; report only (2 processes on 2 shared cores)"),
    ]
