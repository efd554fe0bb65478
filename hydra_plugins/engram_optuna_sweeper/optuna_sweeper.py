"""`hydra/sweeper: optuna` on Optuna 4+ (ask/tell), in place of hydra-optuna-sweeper (Optuna < 3, whose RDB storage
fails with SQLAlchemy 2). Same keys as that plugin's (engram/conf/hparams_search/optuna.yaml); the search space and
the sweep loop are engram/training/search_space.py and engram/training/optuna_sweep.py, imported only when a sweep
runs: Hydra imports this module on every start to find its plugins. No `from __future__ import annotations`:
Hydra's plugin scan runs the module before it is in sys.modules, where dataclasses looks string annotations up."""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


@dataclass
class OptunaSweeperConf:
    _target_: str = "hydra_plugins.engram_optuna_sweeper.optuna_sweeper.EngramOptunaSweeper"
    _recursive_: bool = False  # the sampler stays a config: the sweep makes one per trial, seeded per trial
    # `_target_` and arguments of an optuna.samplers class; its `seed` seeds each trial's sampler with the number
    sampler: dict[str, Any] = field(default_factory=lambda: {"_target_": "optuna.samplers.TPESampler", "seed": None})
    direction: Any = "minimize"  # or maximize, or a list of them (one per value the task returns)
    # None: in memory (this process). sqlite:///path.db or postgresql://user:pw@host/db: one study for every
    # worker given the same storage and study_name (docs/experiments.md, "Sweeps shared by several workers")
    storage: str | None = None
    study_name: str | None = None
    n_trials: int = 20  # the study's budget, shared by all its workers
    n_jobs: int = 2  # trials asked and launched together (in parallel with a parallel launcher)
    max_failure_rate: float = 0.0  # of one launched batch; above it the worker stops with the first error
    params: dict[str, Any] | None = None  # key: Hydra override value (choice, interval, tag(log, ...), range, fixed)


ConfigStore.instance().store(group="hydra/sweeper", name="optuna", node=OptunaSweeperConf, provider="engram-lab")


class EngramOptunaSweeper(Sweeper):
    def __init__(self, **settings: Any) -> None:
        self.settings = settings

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(config=config, hydra_context=hydra_context,
                                                                task_function=task_function)

    def sweep(self, arguments: list[str]) -> None:
        from engram.training.optuna_sweep import run_sweep, settings_from

        run_sweep(settings_from(self.settings), str(self.config.hydra.sweep.dir), self.launcher, arguments)
