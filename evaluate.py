"""Evaluate trained variants: a comparison on one eval split (six rows by default), or saved weights on any family.

    python evaluate.py experiment=smoke four_way=true                 # train the six, then comparison.md
    python evaluate.py multirun_dir=multirun/exact500/<date>          # compare finished runs
    python evaluate.py run_dir=outputs/default/<date>                 # score one run again from its weights
    python evaluate.py engram_path=outputs/default/<date>/engram.safetensors data=patterns
"""

import sys

import hydra
from omegaconf import DictConfig

from engram.atomic import DiskFullError
from engram.cli import check_group_choices, check_overrides, exit_config_error, validated_or_exit
from engram.conf import SEARCH_PATH
from engram.config import ConfigError, register_configs

register_configs()


@hydra.main(version_base="1.3", config_path=SEARCH_PATH, config_name="evaluate")
def main(cfg: DictConfig) -> None:
    typed = validated_or_exit(cfg, evaluate=True)  # before any model or data loads
    # lazy: torch + transformers + peft + lightning + wandb cost ~8 s (measured); bad inputs exit before them
    from engram.evaluation.evaluate import EvaluateError, run
    from engram.evaluation.generate_eval import CachedGenerationError
    from engram.models.inject import EngramLoadError
    from engram.training.four_way import train_variants  # the entry point joins the layers; evaluation does not

    try:
        run(cfg, typed, train_variants)
    except (EvaluateError, EngramLoadError, ConfigError, CachedGenerationError, DiskFullError) as e:  # one line each
        exit_config_error(str(e))


if __name__ == "__main__":
    check_group_choices(sys.argv[1:])
    check_overrides(sys.argv[1:], "evaluate")
    main()
