"""The Optuna sweep behind `hparams_search=optuna` (the Hydra plugin in hydra_plugins/engram_optuna_sweeper is a
thin shell around `run_sweep`).

One study, any number of workers: every `python train.py -m hparams_search=optuna ...` process pointed at the same
`hydra.sweeper.storage` (an SQLite file or a PostgreSQL server) and `study_name` asks the study for trials until it
holds `n_trials` of them (its budget, shared by all workers), launches them with the Hydra launcher and tells the
study the job's return value (train.py returns `optimized_metric`).

- Budget: a worker stops once the study holds `n_trials` trials (complete, running, failed or pruned). The
  check and the ask are two steps, so a worker that loses the race gets a trial numbered `n_trials` or above:
  it is told FAIL without running, with the user attribute `never_run` (samplers ignore failed trials).
- Job dirs: a trial's job number is its trial number (`hydra.sweep.subdir` is `${hydra.job.num}`), so workers
  sharing one `hydra.sweep.dir` write 0, 1, 2, ... without colliding.
- Seeds: each trial's sampler is seeded from (the sampler's seed, the trial number). One worker on a fresh study
  draws the same parameters run after run; two workers never replay one random stream.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.utils import instantiate
from omegaconf import OmegaConf
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, Trial, TrialState

from engram.atomic import atomic_write
from engram.cli import exit_config_error
from engram.training.search_space import search_space, trial_overrides

log = logging.getLogger(__name__)

NEVER_RUN = "never_run"  # user attribute of a surplus trial: asked after the budget was spent, told FAIL unrun
RESULTS_FILE = "optimization_results.yaml"  # in the sweep dir; report.py reads it (engram/tracking/report.py)
OPEN_ATTEMPTS = 6  # workers starting together race to create the tables (optuna#1092, #4621): retry


class StudyStorageError(Exception):
    """The storage URL is unusable (bad URL, missing driver, server unreachable); the message is one line."""


@dataclass
class SweepSettings:
    """hydra.sweeper's keys (hydra_plugins/engram_optuna_sweeper registers them and their defaults)."""

    sampler: dict[str, Any]
    direction: str | list[str]
    storage: str | None
    study_name: str | None
    n_trials: int
    n_jobs: int
    max_failure_rate: float
    params: dict[str, Any] | None

    @property
    def directions(self) -> list[str]:
        return [self.direction] if isinstance(self.direction, str) else list(self.direction)


def trial_seed(seed: int | None, number: int) -> int | None:
    """The seed of trial `number`'s sampler: distinct per trial, a function of (seed, number) only."""
    if seed is None:
        return None
    return int(np.random.SeedSequence([int(seed), number]).generate_state(1)[0])


class TrialSeededSampler(BaseSampler):
    """Delegates to a sampler made afresh for each trial, seeded from (seed, trial number). Optuna's samplers keep
    their history in the study, so a fresh one loses nothing but the random stream two workers would share."""

    def __init__(self, make: Callable[[int | None], BaseSampler], seed: int | None) -> None:
        self._make, self._seed = make, seed
        self._inner = make(seed)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._inner = self._make(trial_seed(self._seed, trial.number))
        self._inner.before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self._inner.infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self._inner.sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._inner.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self._inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._inner.reseed_rng()


def make_sampler(config: dict[str, Any]) -> TrialSeededSampler:
    """The sampler of hydra.sweeper.sampler (`_target_` and its arguments), seeded per trial."""
    config = dict(config)
    seeded = "seed" in config
    seed = config.pop("seed", None)
    return TrialSeededSampler(lambda s: instantiate(config, **({"seed": s} if seeded else {})), seed)


def shown_url(url: str | None) -> str:
    """The storage as logs and errors show it: the password hidden."""
    if url is None:
        return "in memory"
    from sqlalchemy.engine import make_url  # lazy: only a shared study needs SQLAlchemy
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def open_storage(url: str | None) -> optuna.storages.BaseStorage | None:
    """The RDB storage at `url` (None: in memory, this process only). Checks the URL and its driver first, then
    connects, retrying while another worker is creating the same tables."""
    if url is None:
        return None
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    try:
        parsed = make_url(url)
    except ArgumentError as e:
        raise StudyStorageError(f"{url}: not a database URL ({e})") from e
    shown = parsed.render_as_string(hide_password=True)
    try:
        parsed.get_dialect().import_dbapi()
    except ImportError as e:  # postgresql:// needs psycopg (SQLAlchemy 2.1's default), not in the lock
        raise StudyStorageError(f"{shown}: its database driver is not installed ({e}; pip install it, "
                                "requirements.lock holds none)") from e
    except SQLAlchemyError as e:
        raise StudyStorageError(f"{shown}: {e}") from e
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        try:  # as Hydra makes the sweep dir
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StudyStorageError(f"{shown}: cannot make its directory ({e.strerror})") from e
    for attempt in range(1, OPEN_ATTEMPTS + 1):
        try:
            return optuna.storages.RDBStorage(url)
        except (SQLAlchemyError, optuna.exceptions.StorageInternalError) as e:
            if attempt == OPEN_ATTEMPTS:
                raise StudyStorageError(f"{shown}: {str(e).splitlines()[0]}") from e
            time.sleep(random.uniform(0.1, 0.5) * attempt)  # jittered: the racing worker is done by then
    raise AssertionError("unreachable")


def open_study(settings: SweepSettings) -> optuna.Study:
    """The study named study_name in the storage, created by whichever worker comes first."""
    return optuna.create_study(study_name=settings.study_name, storage=open_storage(settings.storage),
                               sampler=make_sampler(settings.sampler), directions=settings.directions,
                               load_if_exists=True)


def ask_trials(study: optuna.Study, n_trials: int, count: int,
               space: dict[str, BaseDistribution]) -> list[Trial]:
    """Up to `count` new trials within the study's budget of `n_trials`; fewer (maybe none) once it is spent."""
    trials: list[Trial] = []
    while len(trials) < count and len(study.get_trials(deepcopy=False)) < n_trials:
        trial = study.ask(fixed_distributions=space)
        if trial.number >= n_trials:  # another worker asked between the count and the ask
            trial.set_user_attr(NEVER_RUN, f"asked after the study held n_trials={n_trials} trials")
            study.tell(trial, state=TrialState.FAIL)
            break
        trials.append(trial)
    return trials


def consecutive_runs(trials: list[Trial]) -> list[list[Trial]]:
    """The trials split where their numbers jump (another worker's trials in between): one launch per run, so each
    job's number is its trial number."""
    runs: list[list[Trial]] = []
    for trial in trials:
        if runs and trial.number == runs[-1][-1].number + 1:
            runs[-1].append(trial)
        else:
            runs.append([trial])
    return runs


def objective_values(ret: JobReturn, n_objectives: int) -> list[float]:
    """The job's return value as the study's objective values; raises the job's own error if it failed."""
    value = ret.return_value
    try:
        values = [float(value)] if n_objectives == 1 else [float(v) for v in value]
    except (TypeError, ValueError) as e:
        raise ValueError(f"the job returned {value!r}, not {n_objectives} number(s) (optimized_metric)") from e
    if len(values) != n_objectives:
        raise ValueError(f"the job returned {len(values)} values for {n_objectives} directions")
    return values


def run_sweep(settings: SweepSettings, sweep_dir: str, launcher: Launcher, arguments: Sequence[str]) -> None:
    """Ask, launch and tell until the study's budget is spent; then write the study's best to the sweep dir."""
    params = [f"{key}={value}" for key, value in (settings.params or {}).items()]
    space, fixed = search_space([*params, *arguments])
    try:
        study = open_study(settings)
    except StudyStorageError as e:  # before any job: one line, exit 2
        exit_config_error(f"config error: hydra.sweeper.storage={e}")
        raise
    log.info(f"Study {study.study_name!r} ({shown_url(settings.storage)}): budget {settings.n_trials} trials, "
             f"{len(study.get_trials(deepcopy=False))} already in it")
    while trials := ask_trials(study, settings.n_trials, settings.n_jobs, space):
        try:
            returns = [ret for run in consecutive_runs(trials)
                       for ret in launcher.launch([trial_overrides(t.params, fixed) for t in run],
                                                  initial_job_idx=run[0].number)]
        except BaseException:  # the launcher itself failed, or Ctrl-C: the trials must not stay RUNNING
            for trial in trials:
                study.tell(trial, state=TrialState.FAIL)
            raise
        failures = []
        for trial, ret in zip(trials, returns, strict=True):
            try:
                values = objective_values(ret, len(settings.directions))
            except Exception as e:  # noqa: BLE001 - a failed trial is data for the study, not the sweep's end
                log.warning(f"Trial {trial.number} failed: {e}")
                study.tell(trial, state=TrialState.FAIL)
                failures.append(e)
            else:
                study.tell(trial, values)
        if len(failures) / len(trials) > settings.max_failure_rate:
            raise failures[0]
    write_results(study, Path(sweep_dir) / RESULTS_FILE)


def write_results(study: optuna.Study, path: Path) -> None:
    """The study's best trial (or Pareto front) so far; every worker writes it when it stops, the last one wins."""
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        log.warning(f"No complete trial in study {study.study_name!r}: {path.name} not written")
        return
    if len(study.directions) == 1:
        best = study.best_trial
        results: dict[str, Any] = {"name": "optuna", "best_params": best.params, "best_value": best.value,
                                   "best_trial": best.number}
        log.info(f"Best trial {best.number}: {best.value} with {best.params}")
    else:
        results = {"name": "optuna", "solutions": [{"params": t.params, "values": t.values, "trial": t.number}
                                                   for t in study.best_trials]}
    atomic_write(path, lambda tmp: OmegaConf.save(OmegaConf.create(results), tmp))


def settings_from(config: Mapping[str, Any]) -> SweepSettings:
    """SweepSettings from the sweeper's keys, as plain containers (the sampler is instantiated per trial)."""
    plain = {k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v for k, v in config.items()}
    return SweepSettings(**{k: v for k, v in plain.items() if k in SweepSettings.__dataclass_fields__})
