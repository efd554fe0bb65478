"""Where the tables live: `engram.offload.*` (host RAM or memory-mapped files; its keys, `OffloadConfig`, are declared
here) and `engram.shard` (rows split over the DDP processes), with their rules. They cross groups (engram x trainer x
checkpoints), so they sit here rather than in `validate_engram`. Nothing here imports torch: a bad combination fails
in well under a second, with one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engram.config.rules import check, one_of

OFFLOAD_KINDS = ("none", "host")
SHARD_KINDS = ("none", "rows")
# keys that say where a memory's tables live, not what the memory is: a saved memory loads with any of them
STORAGE_KEYS = ("offload", "shard")


@dataclass
class OffloadConfig:
    """`engram.offload.*`: where the tables live (not part of a saved memory's identity, see STORAGE_KEYS); offloaded,
    the looked-up rows are gathered each step (engram/memory/offload.py)."""

    to: str = "none"  # none (the tables are in the model) | host (outside it: host RAM, or memory-mapped files in dir)
    dir: str | None = None  # to=host: memory-map the tables (and Adam moments) to files here
    reuse: bool = False  # dir: open the tables already in dir instead of initialising them


def offload_of(e: Any) -> Any:
    """`engram.offload` of an engram config; the defaults (in the model) for a partial one that has none."""
    return getattr(e, "offload", None) or OffloadConfig()


def process_count(trainer: Any) -> int | None:
    """Processes a Lightning trainer config starts (devices x num_nodes); None when it cannot be known up front
    (devices="auto" or "-1" on an accelerator other than the CPU, or a value the trainer rules would refuse)."""
    try:
        return _process_count(trainer)
    except (TypeError, ValueError):
        return None


def _process_count(trainer: Any) -> int | None:
    get = trainer.get
    devices, nodes = get("devices", "auto"), get("num_nodes", 1)
    if isinstance(devices, str):
        text = devices.strip()
        if text in ("auto", "-1"):
            return 1 if get("accelerator", "auto") == "cpu" and text == "auto" else None
        count = len([d for d in text.split(",") if d]) if "," in text else int(text)
    elif isinstance(devices, int) and not isinstance(devices, bool):
        count = devices if devices >= 1 else None
        if count is None:
            return None
    else:
        count = len(list(devices))
    return count * int(nodes or 1)


def validate_storage(cfg: Any) -> None:
    """`engram.offload.*` and `engram.shard` against each other, the trainer and checkpointing."""
    e, trainer = cfg.engram, cfg.trainer
    offload = e.offload
    one_of("engram.offload.to", offload.to, OFFLOAD_KINDS)
    one_of("engram.shard", e.shard, SHARD_KINDS)
    check(offload.dir is None or offload.to == "host", "engram.offload.dir", offload.dir,
          "needs engram.offload.to=host (the tables are only memory-mapped when offloaded)")
    check(not offload.reuse or offload.dir is not None, "engram.offload.reuse", offload.reuse,
          "needs engram.offload.dir (the files to open)")
    processes = process_count(trainer) if hasattr(trainer, "get") else 1
    strategy = str(trainer.get("strategy", "auto")) if hasattr(trainer, "get") else "auto"
    if offload.to == "host":
        check(bool(e.sparse), "engram.offload.to", offload.to, "needs engram.sparse=true (each step updates only "
              "the looked-up rows)")
        check(e.init != "prepopulate", "engram.offload.to", offload.to, "cannot be combined with "
              "engram.init=prepopulate yet (writing facts optimises the table as a parameter)")
        check(processes == 1, "engram.offload.to", offload.to, f"runs in one process, but the trainer starts "
              f"{processes or 'an unknown number of'} (set trainer.devices=1; to spread a table over processes use "
              "engram.shard=rows)")
    if e.shard == "rows":
        check(offload.to == "none", "engram.shard", e.shard, "cannot be combined with engram.offload.to=host yet")
        check(bool(e.sparse), "engram.shard", e.shard, "needs engram.sparse=true (each shard trains with SparseAdam)")
        check(strategy.startswith("ddp") and (processes is None or processes >= 2), "engram.shard", e.shard,
              f"needs a multi-process DDP trainer (trainer=ddp_sim, or trainer=ddp with devices x num_nodes >= 2), "
              f"not strategy={strategy} with {processes} process(es)")
        check(not trainer.get("enable_checkpointing", True), "engram.shard", e.shard,
              "does not write resumable checkpoints yet; set trainer.enable_checkpointing=false (the full table is "
              "still saved to engram.safetensors at the end)")
        check(cfg.get("ckpt_path") is None, "engram.shard", e.shard, "cannot resume from ckpt_path yet")
        check(int(cfg.sequential.batch) == 0, "engram.shard", e.shard, "does not support sequential.batch > 0")
