"""Per-step measurements: lr, step time, tokens/s; for Engram variants the gate and slot statistics; for gated_lora
the LoRA gate on answer vs prompt positions."""

from __future__ import annotations

import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from engram.evaluation.gate_classes import GateByClass
from engram.evaluation.gate_stats import collect_gate_stats, gate_histograms, reset_slot_usage
from engram.evaluation.lora_gate import gate_split_means
from engram.tracking.run_log import log_histograms


def _unwrap(pl_module: L.LightningModule) -> Any:
    return pl_module.model


class StepStats(Callback):
    """Logs train/lr (first group, and the table group when present), train/step_time_s and train/tokens_per_s."""

    def __init__(self) -> None:
        self.first_step: int | None = None  # the global step training (re)started at; resume tests read it
        self._t0 = 0.0

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self.first_step is None:
            self.first_step = trainer.global_step
        self._t0 = time.perf_counter()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        dt = max(time.perf_counter() - self._t0, 1e-9)
        tokens = int(batch["attention_mask"].sum())
        stats = {"train/step_time_s": dt, "train/tokens_per_s": tokens / dt}
        if trainer.optimizers:
            for group in trainer.optimizers[0].param_groups:
                name = group.get("name", "dense")
                stats["train/lr" if name in ("dense", "engram_dense") and "train/lr" not in stats
                      else f"train/lr_{name}"] = float(group["lr"])
        pl_module.log_dict(stats, on_step=True, on_epoch=False, batch_size=len(batch["input_ids"]))


class GateStats(Callback):
    """Engram gate mean/std/fraction open, slot utilisation and collision rate per layer; gate histograms. With a
    `tokenizer` (language-model runs) also the step's mean gate per token class (`train/gate_class/...`,
    engram/evaluation/gate_classes.py). Read from the memory traces of the step's training forward, which
    `EngramLitModule.training_step` returns in its outputs."""

    def __init__(self, every_n_steps: int = 5, tokenizer: Any = None) -> None:
        self.every_n_steps = max(1, int(every_n_steps))
        self.tokenizer = tokenizer

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        reset_slot_usage(_unwrap(pl_module))

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        # Scalars every step (Lightning sends them to the loggers every log_every_n_steps); histograms are heavier.
        model, traces = _unwrap(pl_module), outputs["traces"]
        pl_module.log_dict(collect_gate_stats(model, traces), on_step=True, on_epoch=False,
                           batch_size=len(batch["input_ids"]))
        if self.tokenizer is not None:
            by_class = GateByClass(self.tokenizer, None)
            by_class(batch, traces)
            pl_module.log_dict({f"train/{k}": v for k, v in by_class.metrics().items() if "/share/" not in k},
                               on_step=True, on_epoch=False, batch_size=len(batch["input_ids"]))
        step = trainer.global_step
        if trainer.is_global_zero and (step % self.every_n_steps == 0 or step == 1):
            log_histograms(trainer.loggers, gate_histograms(traces), step)


class LoRAGateStats(Callback):
    """gated_lora: `train/gate_answer` and `train/gate_prompt`, the mean gate of the step's forward at the positions
    that predict an answer token and at the other real tokens (engram/evaluation/lora_gate.py)."""

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        gate = outputs.get("lora_gate") if isinstance(outputs, dict) else None
        if gate is None:
            return
        means = gate_split_means(gate, batch["labels"], batch["attention_mask"])
        pl_module.log_dict({f"train/{k}": v for k, v in means.items()}, on_step=True, on_epoch=True,
                           batch_size=len(batch["input_ids"]))
