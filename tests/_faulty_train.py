"""train.py with one fault injected, for the reliability tests: `python tests/_faulty_train.py <train.py args>`.

ENGRAM_TEST_KILL_AT_STEP=K       SIGKILL this process right after optimizer step K, before that step's checkpoint
                                 (Lightning runs checkpoint callbacks last), as a crash or an OOM kill would.
ENGRAM_TEST_DISK_FULL_AT_SAVE=N  the N-th checkpoint save writes part of the file, then fails with ENOSPC.
ENGRAM_TEST_KILL_AFTER_BATCH=B   (sequential.batch > 0) SIGKILL this process once batch B's state is saved.

The faults are patched in here, in the test process only; train.py and the engram package stay as shipped.
"""

from __future__ import annotations

import errno
import os
import runpy
import signal
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from lightning.pytorch.callbacks import Callback  # noqa: E402

import engram.training.pipeline as pipeline  # noqa: E402
import engram.training.sequential as sequential  # noqa: E402


class KillAtStep(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


def disk_full_at(n: int) -> Any:
    real_save, calls = torch.save, []

    def save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        calls.append(f)
        if len(calls) < n:
            return real_save(obj, f, *args, **kwargs)
        with open(f, "wb") as out:
            out.write(b"PK\3\4 partial")  # the start of a file under whatever name the caller chose
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(f))

    return save


if __name__ == "__main__":
    if step := os.environ.get("ENGRAM_TEST_KILL_AT_STEP"):
        build = pipeline.build_callbacks
        pipeline.build_callbacks = lambda cfg, run_dir, *rest: [KillAtStep(int(step)), *build(cfg, run_dir, *rest)]
    if batch := os.environ.get("ENGRAM_TEST_KILL_AFTER_BATCH"):
        save = sequential.save_state

        def save_then_die(model: Any, run_dir: Path, curve: dict[str, Any]) -> Path:
            saved = save(model, run_dir, curve)
            if len(curve["points"]) == int(batch):
                os.kill(os.getpid(), signal.SIGKILL)
            return saved

        sequential.save_state = save_then_die
    if n := os.environ.get("ENGRAM_TEST_DISK_FULL_AT_SAVE"):
        torch.save = disk_full_at(int(n))

    sys.argv[0] = str(ROOT / "train.py")
    runpy.run_path(sys.argv[0], run_name="__main__")  # as `python train.py` (Hydra finds pkg://engram.conf)
