"""One LightningModule for every variant: the variant only decides which weights require grad (variants.py).

The loss is the causal-LM loss on answer tokens (labels are -100 on prompt and padding). An EngramModel also gets
`prompt_lengths` so span hashing knows where the prompt ends. A NaN/inf loss stops training at once with a
`NonFiniteLossError` instead of stepping on it (and later saving a broken model). Checkpoints hold only the trainable
weights: the frozen base is rebuilt from its config, so an Engram checkpoint of SmolLM2 is megabytes, not 540 MB.
They also carry the torch RNG state, so LoRA dropout after a resume draws the masks an uninterrupted run would.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from engram.data.collate import answer_window
from engram.memory.shard import shard_tables, unshard_tables
from engram.models.engram_model import EngramModel, causal_lm
from engram.models.gated_lora import GatedLoRAModel
from engram.models.inject import host_tables, memory_tracing
from engram.models.layer_runner import top_logits
from engram.training.optim import build_optimizer, build_scheduler, split_trainable
from engram.training.prefix_cache import PrefixCache
from engram.training.replay import ReplaySource, gate_penalty, off_answer_positions, replay_kl
from engram.training.variants import engram_groups


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or inf; the run stops and nothing is saved."""


class EngramLitModule(L.LightningModule):
    def __init__(self, model: nn.Module, variant: str, optim_cfg: Any, engram_cfg: Any = None,
                 replay: ReplaySource | None = None, replay_weight: float = 1.0,
                 prefix_cache: PrefixCache | None = None) -> None:
        """`replay`: general prompts scored by KL to the base each step (train.replay_ratio); `engram_cfg.gate_l1`:
        penalty on the memory entering off the answer positions (engram/training/replay.py). `prefix_cache`: the
        training steps run only the layers above the frozen prefix (engram/training/prefix_cache.py)."""
        super().__init__()
        self.prefix_cache = prefix_cache
        self.replay, self.replay_weight = replay, float(replay_weight)
        self.gate_l1 = float(engram_cfg.get("gate_l1", 0.0)) if engram_cfg is not None else 0.0
        self.model = model
        self.variant = variant
        self.optim_cfg = dict(optim_cfg or {})
        self.lr_multiplier = float(engram_cfg.get("lr_multiplier", 1.0)) if engram_cfg is not None else 1.0
        self.sparse_tables = bool(engram_cfg.get("sparse", False)) if engram_cfg is not None else False
        self.shard_rows = engram_cfg is not None and engram_cfg.get("shard", "none") == "rows"
        # an MoE's load-balancing loss (model.router_aux_loss), which transformers adds only to a loss it computes
        self.router_aux_weight = float(getattr(causal_lm(model).config, "router_aux_loss_coef", 0.0) or 0.0)
        self.strict_loading = False  # checkpoints carry the trainable weights only (see on_save_checkpoint)
        self.model.train()  # see on_fit_start; set here too so Lightning's model summary reports train mode

    @property
    def has_trainable(self) -> bool:
        return any(p.requires_grad for p in self.model.parameters())

    def on_fit_start(self) -> None:
        # load_model returns eval-mode models; LoRA dropout must train. The frozen base has no dropout of its own.
        self.model.train()

    def configure_model(self) -> None:
        """engram.shard=rows: once the DDP processes exist (before DDP wraps the model), keep only this process's
        rows of every table (engram/memory/shard.py) and tell DDP not to synchronise those shards."""
        if self.shard_rows and torch.distributed.is_initialized():
            names = [f"model.{n}" for n in shard_tables(self.model)]
            DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(self, names)

    def on_fit_end(self) -> None:
        if self.shard_rows and torch.distributed.is_initialized():
            unshard_tables(self.model)  # every process: evaluation and engram.safetensors see the whole table
        for table in host_tables(self.model):  # memory-mapped rows and the Adam step count, for engram.offload.reuse
            table.flush()

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean cross-entropy over answer tokens (labels != -100), as the HF causal-LM loss computes it."""
        return self.loss_and_output(batch)[0]

    def loss_and_output(self, batch: dict[str, torch.Tensor], router: bool = False) -> tuple[torch.Tensor, Any]:
        """The loss (`forward`) and the model's output it came from (None from the prefix cache's states): what
        else the forward returned, such as a gated LoRA's `lora_gate`, is read from there. `router`: an MoE's output
        also holds its routers' load-balancing loss (`aux_loss`).

        Only positions from the shortest prompt on get logits (`answer_window`).
        """
        if self.prefix_cache is not None:
            return self._cached_loss(batch), None
        keep, targets = answer_window(batch)
        kwargs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], "logits_to_keep": keep}
        if isinstance(self.model, EngramModel):  # a plain LM (or PeftModel) would reject the keyword
            kwargs["prompt_lengths"] = batch["prompt_lengths"]
        if router and self.router_aux_weight > 0:  # only here: cached generation cannot compute it
            kwargs["output_router_logits"] = True
        out = self.model(**kwargs)
        logits = out.logits
        return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1),
                               ignore_index=-100), out

    def _cached_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The same loss from the cached states entering the lowest trainable layer, logits at answer positions
        only."""
        assert self.prefix_cache is not None
        ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
        answer = labels[:, 1:] != -100  # position t predicts token t + 1
        rows, cols = answer.nonzero(as_tuple=True)
        hidden = self.prefix_cache.hidden(ids, mask)
        logits = top_logits(self.model, hidden, ids, mask, batch["prompt_lengths"], self.prefix_cache.depth, rows,
                            cols)
        return F.cross_entropy(logits.float(), labels[:, 1:][answer])

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, Any]:
        """{"loss", "traces": the memories' traces of this batch's forward, without graphs, and for a gated LoRA
        "lora_gate": its gate at every position} (GateStats and LoRAGateStats read them from the step's outputs)."""
        live = self.gate_l1 > 0  # the gate penalty is a loss on the memory entering: its traces keep the graph
        with memory_tracing(self.model, live) as traces:
            loss, out = self.loss_and_output(batch, router=True)
        size = len(batch["input_ids"])
        router_aux = getattr(out, "aux_loss", None)
        if router_aux is not None:  # asked for only when it has a weight (loss_and_output)
            self.log("train/router_aux", router_aux.detach(), on_step=True, batch_size=size)
            loss = loss + self.router_aux_weight * router_aux
        if live:
            penalty = gate_penalty(traces, off_answer_positions(batch))
            if penalty is not None:
                self.log("train/gate_off_answer", penalty.detach(), on_step=True, batch_size=size)
                loss = loss + self.gate_l1 * penalty
        if self.replay is not None and isinstance(self.model, EngramModel | GatedLoRAModel):
            replay = self.replay.batch(self.global_step, batch["input_ids"].device)
            with memory_tracing(self.model, live) as replay_traces:
                kl = replay_kl(self.model, replay)
            self.log("train/replay_kl", kl.detach(), on_step=True, on_epoch=True, batch_size=size)
            loss = loss + self.replay_weight * kl
            if live:
                penalty = gate_penalty(replay_traces, replay["attention_mask"].bool())
                if penalty is not None:
                    loss = loss + self.gate_l1 * penalty
        if not torch.isfinite(loss.detach()).all():
            raise NonFiniteLossError(
                f"training stopped: loss is {loss.item()} at global step {self.global_step} "
                f"(epoch {self.current_epoch}, batch {batch_idx}); no weights were saved. "
                f"Lower optim.lr (now {self.optim_cfg.get('lr')}) or check the data."
            )
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, sync_dist=True,
                 batch_size=len(batch["input_ids"]))
        step = {"loss": loss, "traces": {layer: trace.without_graph() for layer, trace in traces.items()}}
        gate = getattr(out, "lora_gate", None)
        return step if gate is None else {**step, "lora_gate": gate}

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        loss = self(batch)
        self.log("val/loss", loss, prog_bar=True, on_epoch=True, sync_dist=True, batch_size=len(batch["input_ids"]))

    def configure_optimizers(self) -> Any:
        tables, engram_dense = engram_groups(self.model, self.variant)
        groups = split_trainable(self.model, tables, engram_dense)
        optimizer = build_optimizer(groups, self.optim_cfg, self.lr_multiplier, self.sparse_tables,
                                    host_tables(self.model))
        if optimizer is None:
            return None
        total = self.trainer.estimated_stepping_batches
        total = int(total) if math.isfinite(total) else 1000
        scheduler = build_scheduler(optimizer, self.optim_cfg, total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def configure_gradient_clipping(
        self, optimizer: torch.optim.Optimizer, gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        # clip_grad_norm_ cannot take sparse table gradients; SparseAdam normalises those rows anyway.
        if not gradient_clip_val:
            return
        dense = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None and not p.grad.is_sparse]
        if dense:
            if gradient_clip_algorithm == "value":
                torch.nn.utils.clip_grad_value_(dense, gradient_clip_val)
            else:
                torch.nn.utils.clip_grad_norm_(dense, gradient_clip_val)

    def _checkpointed(self) -> set[str]:
        """The trainable weights, plus the memories' saved buffers (address records such as fingerprint owners:
        state that training changes without a gradient)."""
        keep = {f"model.{n}" for n, p in self.model.named_parameters() if p.requires_grad}
        memories = getattr(self.model, "memories", None)
        if isinstance(memories, nn.Module):
            # offloaded tables (engram.offload.to=host) are no parameters but train: their rows are saved too
            keep |= {f"model.memories.{n}" for n in memories.state_dict()
                     if ".address." in f".{n}" or n.endswith(".table.weight")}
        return keep

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        keep = self._checkpointed()
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in keep}
        checkpoint["rng"] = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            checkpoint["rng"]["cuda"] = torch.cuda.get_rng_state_all()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        expected = self._checkpointed()
        missing = sorted(expected - set(checkpoint["state_dict"]))
        if missing:
            raise ValueError(
                f"checkpoint does not match this variant ({self.variant}): {len(missing)} trainable weights missing, "
                f"e.g. {missing[0]}"
            )
        # Nothing between this restore and the first resumed step draws from the global RNG (the train loader
        # has its own generators), so the next dropout mask is the one the interrupted run was about to draw.
        rng = checkpoint.get("rng") or {}
        if "torch" in rng:
            torch.set_rng_state(rng["torch"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
