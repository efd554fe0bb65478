"""Checkpoints a crash cannot spoil: `last.ckpt` rewritten during training, each time atomically.

`LastCheckpoint` rewrites `<run dir>/checkpoints/last.ckpt` every `checkpoint.every_n_steps` optimizer steps, at
every epoch end and when training ends, so a killed run loses at most that many steps. `AtomicCheckpointIO` is the
Trainer's CheckpointIO plugin: each checkpoint goes to a temp file that replaces the old one in one rename, so a
kill or a full disk during a save leaves the previous checkpoint whole. Resume with `ckpt_path=<run dir>` (or the
.ckpt file itself).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from engram.atomic import atomic_write


class AtomicCheckpointIO(TorchCheckpointIO):
    """torch.save into a temp file next to the target, then os.replace (local paths; remote ones as before)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None or "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        atomic_write(path, lambda tmp: torch.save(checkpoint, tmp))


class LastCheckpoint(ModelCheckpoint):
    """Only `last.ckpt`: every `every_n_steps` optimizer steps (0 = none mid-epoch), each epoch end, train end."""

    def __init__(self, dirpath: str | Path, every_n_steps: int) -> None:
        super().__init__(dirpath=dirpath, save_last=True, save_top_k=0,
                         every_n_train_steps=int(every_n_steps) or None, enable_version_counter=False)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # ModelCheckpoint saves at epoch end only alongside a top-k save, and top-k is off here (save_top_k=0)
        super().on_train_epoch_end(trainer, pl_module)
        if not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
