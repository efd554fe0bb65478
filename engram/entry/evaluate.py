"""`engram-eval` (and `python evaluate.py`): a comparison of trained variants on one eval split (six rows by
default), or saved weights scored on any family.

    engram-eval experiment=smoke train_variants=true           # train the six, then comparison.md
    engram-eval multirun_dir=multirun/exact500/<date>          # compare finished runs
    engram-eval run_dir=outputs/default/<date>                 # score one run again from its weights
    engram-eval engram_path=outputs/default/<date>/engram.safetensors data=patterns

Exactly one of these modes (run_dirs=[...] lists finished runs like multirun_dir); two are one line, exit 2.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from engram.atomic import DiskFullError
from engram.cli import exit_config_error, run_checked, validated_or_exit
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
    from engram.training.comparison import train_variants  # the entry point joins the layers; evaluation does not

    try:
        run(cfg, typed, train_variants)
    except (EvaluateError, EngramLoadError, ConfigError, CachedGenerationError, DiskFullError) as e:  # one line each
        exit_config_error(str(e))


def cli() -> None:
    """The console script: the one-line checks of the command line, then Hydra."""
    run_checked(main, "evaluate")
