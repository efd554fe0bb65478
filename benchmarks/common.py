"""Shared pieces of the benchmarks: interleaved timing, RSS, machine info, result rows, training steps.

Timings on a shared 2-core machine are noisy, so every comparison is measured side by side in one process:
the configurations run in turns (A, B, C, then C, B, A, ...), and the median per configuration is compared.
"""

from __future__ import annotations

import contextlib
import copy
import os
import platform
import resource
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

GIB = 1024**3


# ---------------------------------------------------------------- results


@dataclass
class Row:
    target: str
    measured: str
    ratio: float | None = None
    limit: str = ""  # e.g. "<= 1.10"; empty for information rows
    passed: bool | None = None  # None: information only
    note: str = ""

    @property
    def verdict(self) -> str:
        return "info" if self.passed is None else ("PASS" if self.passed else "FAIL")


def check(target: str, measured: str, ratio: float, op: str, bound: float, note: str = "") -> Row:
    ok = ratio <= bound if op == "<=" else ratio >= bound
    return Row(target, measured, ratio, f"{op} {bound:g}", bool(ok), note)


def format_table(rows: list[Row]) -> str:
    head = ("target", "measured", "ratio", "limit", "result")
    body = [(r.target, r.measured, "" if r.ratio is None else f"{r.ratio:.3f}", r.limit, r.verdict) for r in rows]
    widths = [max(len(str(x[i])) for x in [head, *body]) for i in range(len(head))]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    out = [line, sep]
    out += ["| " + " | ".join(str(c).ljust(w) for c, w in zip(b, widths, strict=True)) + " |" for b in body]
    notes = [f"- {r.target}: {r.note}" for r in rows if r.note]
    return "\n".join(out + ([""] + notes if notes else []))


# ---------------------------------------------------------------- machine


def rss_bytes() -> int:
    """Resident set size of this process now."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def machine_info(threads: int) -> dict[str, str]:
    from engram.memory.budget import available_memory_bytes

    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    avail = available_memory_bytes() or 0
    return {
        "cpu": f"{cpu}, {os.cpu_count()} logical cores",
        "torch": f"{torch.__version__}, {threads} threads",
        "ram": f"{total / GIB:.1f} GiB total, {avail / GIB:.1f} GiB available at start",
        "load average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "python": platform.python_version(),
        "THP_MEM_ALLOC_ENABLE": os.environ.get("THP_MEM_ALLOC_ENABLE", "unset"),
    }


def commit() -> str:
    """The checkout's short commit (what code measured), "unknown" outside git."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# ---------------------------------------------------------------- timing


def interleaved(fns: dict[str, Callable[[], Any]], rounds: int, warmup: int = 1) -> dict[str, list[float]]:
    """Seconds per call of each fn, the configurations taking turns; the order reverses every round so a slow
    drift of the machine's load does not favour whichever runs first."""
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else reversed(names):
            t0 = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - t0)
    return times


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def spread(xs: list[float]) -> str:
    return f"{median(xs):.3g} s (min {min(xs):.3g}, max {max(xs):.3g}, n={len(xs)})"


# ---------------------------------------------------------------- models and steps


def frozen(model: nn.Module) -> nn.Module:
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def shared_clone(model: nn.Module) -> nn.Module:
    """A copy of `model` whose parameters and buffers are the same tensors (no extra memory): each benchmarked
    configuration gets its own modules and hooks on one set of frozen base weights."""
    memo = {id(t): t for t in [*model.parameters(), *model.buffers()]}
    return copy.deepcopy(model, memo)


def grad_from_layer(model: nn.Module, layer: int) -> None:
    """Make the frozen baseline's backward run from the loss down to decoder layer `layer`'s input, the same path
    an Engram memory at that layer needs (a frozen model has nothing to differentiate otherwise)."""

    def hook(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        if args:
            return (args[0].detach().requires_grad_(True), *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": kwargs["hidden_states"].detach().requires_grad_(True)}

    model.model.layers[layer].register_forward_pre_hook(hook, with_kwargs=True)


class TrainStep:
    """One training step built from the pipeline's public pieces: the LightningModule's loss (answer-only, logits
    from the shortest prompt on), the pipeline's optimizer builder (AdamW on dense parts, SparseAdam on sparse
    tables), zero_grad(set_to_none). `stats=True` also computes what the GateStats callback logs every step."""

    def __init__(
        self, model: nn.Module, variant: str, batch: dict[str, torch.Tensor], engram_cfg: dict | None = None,
        optim_cfg: dict | None = None, stats: bool = False, prefix_cache: Any = None,
    ) -> None:
        from engram.models.inject import host_tables
        from engram.training.module import EngramLitModule
        from engram.training.optim import build_optimizer, split_trainable
        from engram.training.variants import engram_groups

        self.model, self.batch, self.stats = model, batch, stats
        optim_cfg = optim_cfg or {"lr": 1e-3}
        ecfg = engram_cfg or {}
        self.module = EngramLitModule(model, variant, optim_cfg, ecfg if variant != "baseline" else None,
                                      prefix_cache=prefix_cache)
        tables, dense = engram_groups(model, variant)
        for p in tables + dense:
            p.requires_grad_(True)
        groups = split_trainable(model, tables, dense)
        self.optimizer = build_optimizer(groups, optim_cfg, float(ecfg.get("lr_multiplier", 1.0)),
                                         bool(ecfg.get("sparse", True)), host_tables(model))
        model.train()

    def __call__(self, batch: dict[str, torch.Tensor] | None = None) -> None:
        from engram.models.inject import memory_tracing

        with (memory_tracing(self.model) if self.stats else contextlib.nullcontext({})) as traces:
            loss = self.module(self.batch if batch is None else batch)
        loss.backward()
        if self.optimizer is not None:
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        if self.stats:
            from engram.evaluation.gate_stats import collect_gate_stats

            collect_gate_stats(self.model, traces)


def train_batch(tokenizer: Any, batch_size: int, prompt_format: str = "plain", num_train: int = 64,
                offset: int = 0) -> dict[str, torch.Tensor]:
    """One right-padded training batch of exact-match facts (the pipeline's own collator)."""
    from engram.data.datamodule import EngramDataModule

    dm = EngramDataModule({"family": "exact_match", "num_train": num_train, "num_eval": 8,
                           "prompt_format": prompt_format, "batch_size": batch_size}, tokenizer)
    dm.setup()
    ds = dm.datasets["train"].select_columns(["input_ids", "labels", "prompt_length"])
    from engram.data.collate import TrainCollator
    from engram.data.formatting import pad_id

    rows = [ds[i] for i in range(offset, offset + batch_size)]
    return TrainCollator(pad_id(tokenizer))(rows)
