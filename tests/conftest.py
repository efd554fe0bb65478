"""Settings shared by every test: offline, and one torch thread.

Tiny models run fastest on one thread, and on a small shared machine a second thread per process mostly fights
other processes for the cores (measured here: ~25x slower tiny-model steps). Subprocesses (train.py runs)
inherit the environment. ENGRAM_TEST_THREADS overrides, e.g. for the slow SmolLM2 tests on an idle machine.
"""

import os

THREADS = os.environ.get("ENGRAM_TEST_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", THREADS)
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402  (after OMP_NUM_THREADS so the setting applies)

torch.set_num_threads(int(THREADS))

from engram.config import register_configs  # noqa: E402

register_configs()  # the group YAMLs extend the schemas in Hydra's ConfigStore: every compose needs them
