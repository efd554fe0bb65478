"""`engram-train` (and `python train.py`): train one variant (baseline / lora / engram / combined) and evaluate it.

    engram-train                                      # SmolLM2 + Engram on 500 exact-match facts
    engram-train model=tiny variant=lora trainer=debug
    engram-train -m engram.table_size=1000,5000,50000 data.num_train=500,5000
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from engram.atomic import DiskFullError
from engram.cli import exit_expected_error, run_checked, validated_or_exit
from engram.conf import SEARCH_PATH
from engram.config import register_configs

register_configs()


@hydra.main(version_base="1.3", config_path=SEARCH_PATH, config_name="train")
def main(cfg: DictConfig) -> float | None:
    typed = validated_or_exit(cfg)  # before any model or data loads
    # lazy: lightning + peft + torch + transformers + wandb cost ~7 s (measured); bad inputs exit before them
    from engram.evaluation.generate_eval import CachedGenerationError
    from engram.training.module import NonFiniteLossError
    from engram.training.pipeline import run_task

    try:
        metrics = run_task(typed)
    except (DiskFullError, CachedGenerationError, NonFiniteLossError) as e:  # each message is the whole story
        exit_expected_error(e)
        raise  # unreachable
    return metrics.get(typed.optimized_metric)


def cli() -> None:
    """The console script: the one-line checks of the command line, then Hydra."""
    run_checked(main, "train")
