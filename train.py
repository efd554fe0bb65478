"""Train one variant (baseline / lora / engram / combined) and evaluate it.

    python train.py                                   # SmolLM2 + Engram on 500 exact-match facts
    python train.py model=tiny variant=lora trainer=debug
    python train.py -m engram.table_size=1000,5000,50000 data.num_train=500,5000
"""

import sys

import hydra
from omegaconf import DictConfig

from engram.atomic import DiskFullError
from engram.cli import check_group_choices, check_overrides, exit_expected_error, validated_or_exit
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


if __name__ == "__main__":
    check_group_choices(sys.argv[1:])
    check_overrides(sys.argv[1:], "train")
    main()
