"""Issue 19, part 2: engram.offload.to=host -- tables in host memory or memory-mapped files (engram/memory/offload.py).

- equality: the run's base model with an in-memory memory and with a memory-mapped one (same seed), a few training
  steps on the same batches (the offloaded one prefetching each next batch): the largest difference of the logits
  and of the table rows (float rounding only: <= 1e-4);
- step time vs table size, memory-mapped: the tiny model (there the memory is a large share of a step, so any cost
  of the table's size shows), a pool of batches cycled as epochs do (the rows a data set uses stay in the page cache
  while the rest of the file stays on disk), the next batch's rows prefetched; the largest table's files are compared
  with the RAM this process may use (MemAvailable, or its cgroup's memory limit when lower). The first pass over the
  pool after dropping the files from the page cache is reported too (every row read from disk). In full mode, when
  the largest table would fit in that RAM, this part runs in a child process confined by a memory cgroup to 2/3 of
  the table (benchmarks/memory_cgroup.py), where the machine lets us make one;
- offload step / in-memory step at the same small size (what gathering and the host Adam cost).
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from benchmarks.bench_train import DEEPSEEK_64, _rows_to_table_size
from benchmarks.common import GIB, Row, TrainStep, check, interleaved, median, peak_rss_bytes, shared_clone, spread
from benchmarks.memory_cgroup import MemoryCgroup

TOLERANCE = 1e-4
CONFINE_FRACTION = 2 / 3  # the confined child may use this share of the largest table's size
ROW_BYTES = DEEPSEEK_64["dim"] // DEEPSEEK_64["heads"] * 4  # one float32 row of one head's table (64 floats)
ROOT = Path(__file__).resolve().parent.parent


def process_memory_limit() -> tuple[int, str]:
    """(bytes of RAM this process may use, where that number comes from): MemAvailable, or the memory limit of its
    cgroup (v1 or v2: the process's own memory and the page cache of its files together), when that is lower."""
    from engram.memory.budget import available_memory_bytes

    best, source = available_memory_bytes() or 0, "MemAvailable"
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return best, source
    for line in lines:
        _, controllers, path = line.split(":", 2)
        candidates = []
        if "memory" in controllers.split(","):
            root = Path("/sys/fs/cgroup/memory") / path.lstrip("/")
            candidates.append(root / "memory.limit_in_bytes")
        if controllers == "":
            candidates.append(Path("/sys/fs/cgroup") / path.lstrip("/") / "memory.max")
        for limit_file in candidates:
            try:
                limit_text = limit_file.read_text().strip()
                limit = int(limit_text) if limit_text != "max" else 1 << 62
            except (OSError, ValueError):
                continue
            if limit < best:
                best, source = limit, "its cgroup's memory limit"
    return best, source


def _engram_cfg(rows: int, **extra: Any) -> dict:
    return {**DEEPSEEK_64, "table_size": _rows_to_table_size(DEEPSEEK_64, rows), "sparse": True, "lr_multiplier": 5.0,
            **extra}


def equality(base: Any, tok: Any, batches: list[dict], directory: Path) -> list[Row]:
    """In-memory vs memory-mapped memory on `base`, len(batches) training steps each: max |difference| of logits
    and rows."""
    from engram.models.inject import add_engram

    cfg = _engram_cfg(8000, init_std=0.5)
    models = {"ram": add_engram(shared_clone(base), cfg, tok),
              "file": add_engram(shared_clone(base), {**cfg, "offload": {"to": "host", "dir": str(directory)}}, tok)}
    steps = {k: TrainStep(m, "engram", batches[0], cfg) for k, m in models.items()}
    for i, batch in enumerate(batches):
        if i + 1 < len(batches):
            models["file"].prefetch(batches[i + 1])
        for step in steps.values():
            step(batch)
    with torch.no_grad():
        logits = {k: m(input_ids=batches[0]["input_ids"], attention_mask=batches[0]["attention_mask"],
                       prompt_lengths=batches[0]["prompt_lengths"]).logits for k, m in models.items()}
    rows = {k: m.memory(1).table.weight.detach() for k, m in models.items()}
    d_logits = float((logits["ram"] - logits["file"]).abs().max())
    d_rows = float((rows["ram"] - rows["file"]).abs().max())
    moved = float((rows["file"] - add_engram(shared_clone(base), cfg, tok).memory(1).table.weight).abs().max())
    worst = max(d_logits, d_rows)
    hits = models["file"].memory(1).table.prefetcher.hits
    measured = f"max abs difference {d_logits:.1e} (logits), {d_rows:.1e} (rows)"
    return [Row("offload == in-memory outputs", measured, worst, f"<= {TOLERANCE:g}", worst <= TOLERANCE and moved > 0,
                note=f"{len(batches)} training steps on the same batches, memory-mapped table vs nn.Embedding + "
                     f"SparseAdam (rows moved by up to {moved:.2f}); {hits} of {len(batches) - 1} batches served "
                     "from the prefetch")]


def _drop_from_page_cache(directory: Path) -> None:
    for path in directory.glob("*.f32"):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


class _CycledStep:
    """One training step on the next batch of a pool (epochs over a small data set), announcing the batch after it
    to the memory first, as the data loader does in training."""

    def __init__(self, model: Any, pool: list[dict], cfg: dict) -> None:
        self.model, self.pool, self.i = model, pool, 0
        self.step = TrainStep(model, "engram", pool[0], cfg)

    def __call__(self) -> None:
        self.model.prefetch(self.pool[(self.i + 1) % len(self.pool)])
        self.step(self.pool[self.i % len(self.pool)])
        self.i += 1


def scaling(tok: Any, base: Any, pool: list[dict], rows_list: list[int], rounds: int, directory: Path,
            beyond_ram: bool = True) -> list[Row]:
    """Memory-mapped step time at each size, the largest vs the smallest; in-memory at the smallest for the cost of
    offloading; the RAM situation of the largest (a target when `beyond_ram`, else information)."""
    from engram.memory.budget import MemoryBudgetError
    from engram.models.inject import add_engram

    small, big = rows_list[0], rows_list[-1]
    configs = {"in-memory": _engram_cfg(small)}
    for rows in rows_list:
        configs[f"offload {rows:.0e}"] = _engram_cfg(rows, offload={"to": "host", "dir": str(directory / f"{rows}")})
    limit, source = process_memory_limit()
    try:
        steps = {name: _CycledStep(add_engram(shared_clone(base), cfg, tok), pool, cfg)
                 for name, cfg in configs.items()}
    except MemoryBudgetError as e:  # e.g. --offload-gib beyond the free disk
        return [Row(f"offload step, rows {big:.0e}", "refused", note=str(e))]
    big_dir = directory / f"{big}"
    file_bytes = sum(p.stat().st_size for p in big_dir.glob("*.weight.f32"))
    _drop_from_page_cache(big_dir)
    cold = interleaved({"cold": steps[f"offload {big:.0e}"]}, len(pool), warmup=0)["cold"]
    for step in steps.values():  # one pass over the pool: the rows the data uses are in the page cache now
        for _ in pool:
            step()
    times = interleaved(dict(steps), rounds, warmup=0)
    out = [Row(f"offload step, {name}", spread(t)) for name, t in times.items()]
    t_small, t_big = median(times[f"offload {small:.0e}"]), median(times[f"offload {big:.0e}"])
    out.append(check(f"offload step time rows {big:.0e} / {small:.0e} (memory-mapped)",
                     f"{t_big:.3g} s / {t_small:.3g} s", t_big / t_small, "<=", 1.1,
                     note=f"tiny model, {len(pool)} batches cycled; next batch prefetched"))
    ram = check("offload table file / RAM this process may use", f"{file_bytes / GIB:.2f} GiB / "
                f"{limit / GIB:.2f} GiB ({source})", file_bytes / max(limit, 1), ">=", 1.0,
                note=f"table of {big:.0e} x 64 floats (its two Adam moments are sparse files beside it); "
                          f"peak RSS of the process {peak_rss_bytes() / GIB:.2f} GiB")
    if not beyond_ram:
        ram.limit, ram.passed = "", None
    out.append(ram)
    out.append(Row(f"offload cold step, rows {big:.0e} (rows read from disk)", spread(cold),
                   median(cold) / t_small, note="first pass over the pool after the files left the page cache; "
                                                "ratio to the warm small-table step"))
    t_mem = median(times["in-memory"])
    out.append(Row(f"offload step / in-memory step, rows {small:.0e}", f"{t_small:.3g} s / {t_mem:.3g} s",
                   t_small / t_mem, note="gathering the rows, the leaf's gradient and the host Adam vs SparseAdam"))
    steps.clear()
    gc.collect()
    return out


def offload(base: Any, tok: Any, rows_list: list[int], rounds: int, equality_steps: int,
            directory: str | None = None, beyond_ram: bool = True, confine: bool = True) -> list[Row]:
    """Both parts; the table files go to a temporary directory (under `directory` if given), deleted at the end.
    `beyond_ram`: the largest table is meant to exceed the RAM this process may use (full mode); `confine=False`
    never makes a memory cgroup (the table must then be larger than the free RAM itself)."""
    from benchmarks.common import train_batch

    work = Path(tempfile.mkdtemp(prefix="engram-offload-", dir=directory))
    try:
        batches = [train_batch(tok, 8, num_train=8 * equality_steps, offset=8 * i) for i in range(equality_steps)]
        rows = equality(base, tok, batches, work / "equality")
        return rows + scaling_beyond_ram(rows_list, rounds, work / "scaling", beyond_ram, confine)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def scaling_beyond_ram(rows_list: list[int], rounds: int, directory: Path, beyond_ram: bool,
                       confine: bool = True) -> list[Row]:
    """`tiny_scaling`, in a memory-confined child process when the largest table would otherwise fit in RAM (and
    `confine`)."""
    table_bytes = rows_list[-1] * ROW_BYTES
    if beyond_ram and confine and table_bytes < process_memory_limit()[0]:
        cgroup = MemoryCgroup.make(int(table_bytes * CONFINE_FRACTION))
        if cgroup is not None:
            try:
                return _confined(cgroup, rows_list, rounds, directory)
            finally:
                cgroup.remove()
    return tiny_scaling(rows_list, rounds, directory, beyond_ram)


def tiny_scaling(rows_list: list[int], rounds: int, directory: Path, beyond_ram: bool) -> list[Row]:
    from benchmarks.common import frozen, train_batch
    from engram.models import load_model

    tiny, tiny_tok = load_model("tiny")
    frozen(tiny)
    pool = [train_batch(tiny_tok, 16, num_train=128, offset=16 * i) for i in range(8)]
    return scaling(tiny_tok, tiny, pool, rows_list, rounds, directory, beyond_ram)


def _confined(cgroup: MemoryCgroup, rows_list: list[int], rounds: int, directory: Path) -> list[Row]:
    directory.mkdir(parents=True, exist_ok=True)
    out = directory / "rows.json"
    args = json.dumps({"rows_list": rows_list, "rounds": rounds, "directory": str(directory), "out": str(out)})
    subprocess.run([sys.executable, "-m", "benchmarks.bench_offload", args], cwd=ROOT, check=True,
                   preexec_fn=cgroup.join)
    rows = [Row(**r) for r in json.loads(out.read_text())]
    confined = f"; the step rows ran in a child process in a memory cgroup of {cgroup.limit_bytes / GIB:.2f} GiB"
    for row in rows:
        if row.target.startswith("offload table file"):
            row.note += confined
    return rows


if __name__ == "__main__":  # the confined child of `_confined`
    job = json.loads(sys.argv[1])
    found = tiny_scaling(job["rows_list"], job["rounds"], Path(job["directory"]), beyond_ram=True)
    Path(job["out"]).write_text(json.dumps([asdict(r) for r in found]))
