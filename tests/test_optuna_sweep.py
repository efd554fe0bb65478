"""The Optuna sweep (engram/training/optuna_sweep.py, search_space.py) in process, with a stand-in launcher: the
override grammar as distributions, the study's shared budget, job numbers = trial numbers, per-trial seeds,
failures, storage errors and the table-creation race of workers starting together. The same sweep through
train.py, two worker processes sharing one SQLite study: tests/test_experiments.py."""

from __future__ import annotations

import importlib.util
import threading
import time

import optuna
import pytest
from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from engram.cli import check_overrides
from engram.training import optuna_sweep
from engram.training.optuna_sweep import (
    NEVER_RUN,
    StudyStorageError,
    SweepSettings,
    ask_trials,
    consecutive_runs,
    open_storage,
    run_sweep,
    trial_seed,
)
from engram.training.search_space import search_space, trial_overrides
from hydra_plugins.engram_optuna_sweeper.optuna_sweeper import OptunaSweeperConf

optuna.logging.set_verbosity(optuna.logging.WARNING)

PARAMS = {"x": "interval(0.0, 1.0)", "n": "choice(1, 2, 3, 4, 5, 6, 7, 8)"}


class FakeLauncher:
    """Runs nothing: each job 'returns' x (or fails when x is in fail_above..1); records job numbers."""

    def __init__(self, fail_above: float = 2.0, pause: float = 0.0) -> None:
        self.jobs: list[tuple[int, list[str]]] = []
        self.fail_above, self.pause = fail_above, pause

    def launch(self, job_overrides, initial_job_idx):  # noqa: ANN001, ANN201 - Hydra's Launcher signature
        returns = []
        for i, overrides in enumerate(job_overrides):
            self.jobs.append((initial_job_idx + i, list(overrides)))
            time.sleep(self.pause)
            x = float(dict(o.split("=", 1) for o in overrides)["x"])
            ret = JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED)
            ret.return_value = x
            if x > self.fail_above:
                ret.status, ret.return_value = JobStatus.FAILED, RuntimeError("diverged")
            returns.append(ret)
        return returns


def settings(storage: str | None = None, n_trials: int = 4, n_jobs: int = 1, seed: int | None = 0,
             max_failure_rate: float = 0.0) -> SweepSettings:
    return SweepSettings(sampler={"_target_": "optuna.samplers.TPESampler", "seed": seed, "n_startup_trials": 2},
                         direction="maximize", storage=storage, study_name="s", n_trials=n_trials, n_jobs=n_jobs,
                         max_failure_rate=max_failure_rate, params=PARAMS)


def test_overrides_become_distributions_and_the_command_line_wins():
    space, fixed = search_space(["lr=tag(log, interval(1e-4, 3e-2))", "size=choice(1000, 5000)", "b=interval(-8, 0)",
                                 "k=range(1, 5)", "f=range(0.1, 0.5, 0.1)", "s=shuffle(range(3))", "+arm=a,b",
                                 "model=tiny", "~logger", "size=5000", "model=choice(tiny, smollm)"])
    assert space["lr"] == FloatDistribution(1e-4, 3e-2, log=True)
    assert space["b"] == FloatDistribution(-8.0, 0.0)
    assert space["k"] == IntDistribution(1, 4)  # Hydra's range stops before its end, as in the basic sweeper
    assert space["f"] == FloatDistribution(0.1, 0.4, step=0.1)
    assert isinstance(space["s"], CategoricalDistribution) and sorted(space["s"].choices) == [0, 1, 2]
    assert space["+arm"].choices == ("a", "b") and space["model"].choices == ("tiny", "smollm")
    assert fixed == {"size": "size=5000", "~logger": "~logger"}  # the later `size=5000` replaced the choice
    assert trial_overrides({"lr": 0.01}, fixed) == ["lr=0.01", "~logger", "size=5000"]


def test_one_worker_runs_the_budget_with_job_numbers_equal_to_trial_numbers(tmp_path):
    launcher = FakeLauncher()
    run_sweep(settings(n_trials=5, n_jobs=2), str(tmp_path), launcher, ["y=3"])
    assert [n for n, _ in launcher.jobs] == [0, 1, 2, 3, 4]
    assert all("y=3" in overrides for _, overrides in launcher.jobs)
    result = OmegaConf.load(tmp_path / "optimization_results.yaml")
    best = max(float(dict(o.split("=", 1) for o in ov)["x"]) for _, ov in launcher.jobs)
    assert result.name == "optuna" and result.best_value == best and set(result.best_params) == {"x", "n"}


def test_the_budget_belongs_to_the_study(tmp_path):
    """A second run on the same storage runs what is left of n_trials: nothing, then one more when it grows."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    run_sweep(settings(url, n_trials=2), str(tmp_path), FakeLauncher(), [])
    again = FakeLauncher()
    run_sweep(settings(url, n_trials=2), str(tmp_path), again, [])
    assert again.jobs == []
    run_sweep(settings(url, n_trials=3), str(tmp_path), again, [])
    assert [n for n, _ in again.jobs] == [2]
    assert len(optuna.load_study(study_name="s", storage=url).trials) == 3


def test_a_trial_asked_past_the_budget_is_failed_unrun():
    """The race the count cannot see: another worker asks between this worker's count and its ask."""
    study = optuna.create_study()
    real_ask = study.ask

    def other_worker_first(**kwargs):  # noqa: ANN003, ANN202
        real_ask()
        return real_ask(**kwargs)

    study.ask = other_worker_first
    assert ask_trials(study, n_trials=1, count=1, space={"x": FloatDistribution(0, 1)}) == []
    surplus = study.trials[1]
    assert surplus.state == TrialState.FAIL and NEVER_RUN in surplus.user_attrs


def test_per_trial_seeds_repeat_for_one_worker_and_differ_between_trials(tmp_path):
    first, second = FakeLauncher(), FakeLauncher()
    run_sweep(settings(n_trials=3), str(tmp_path), first, [])
    run_sweep(settings(n_trials=3), str(tmp_path), second, [])
    assert first.jobs == second.jobs  # same seed, fresh study: the same parameters
    assert len({tuple(ov) for _, ov in first.jobs}) == 3
    assert trial_seed(0, 1) != trial_seed(0, 2) and trial_seed(0, 1) == trial_seed(0, 1) and trial_seed(None, 1) is None


def test_two_workers_share_one_study(tmp_path):
    """Two threads as two workers on one SQLite study, same seed: n_trials run once each, none twice."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    launchers = [FakeLauncher(pause=0.25), FakeLauncher(pause=0.25)]  # long enough for both to join
    workers = [threading.Thread(target=run_sweep, args=(settings(url, n_trials=6), str(tmp_path), la, []))
               for la in launchers]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    numbers = sorted(n for la in launchers for n, _ in la.jobs)
    assert numbers == list(range(6)) and all(la.jobs for la in launchers)
    run = [t for t in optuna.load_study(study_name="s", storage=url).trials if NEVER_RUN not in t.user_attrs]
    assert len(run) == 6 and all(t.state == TrialState.COMPLETE for t in run)
    assert len({tuple(sorted(t.params.items())) for t in run}) == 6


def test_failed_trials_are_recorded_and_the_failure_rate_stops_the_worker(tmp_path):
    study_url = f"sqlite:///{tmp_path / 'study.db'}"
    run_sweep(settings(study_url, n_trials=4, max_failure_rate=1.0), str(tmp_path), FakeLauncher(-1.0), [])
    states = [t.state for t in optuna.load_study(study_name="s", storage=study_url).trials]
    assert states == [TrialState.FAIL] * 4
    assert not (tmp_path / "optimization_results.yaml").exists()  # no complete trial: no best to write
    with pytest.raises(RuntimeError, match="diverged"):
        run_sweep(settings(n_trials=4, max_failure_rate=0.5), str(tmp_path), FakeLauncher(-1.0), [])

    class BrokenLauncher(FakeLauncher):
        def launch(self, job_overrides, initial_job_idx):  # noqa: ANN001, ANN201
            raise KeyboardInterrupt  # Ctrl-C while the jobs run: their trials must not stay RUNNING

    with pytest.raises(KeyboardInterrupt):
        run_sweep(settings(study_url, n_trials=6, n_jobs=2), str(tmp_path), BrokenLauncher(), [])
    states = [t.state for t in optuna.load_study(study_name="s", storage=study_url).trials]
    assert states == [TrialState.FAIL] * 6


def test_storage_errors_are_one_line(monkeypatch, tmp_path):
    with pytest.raises(StudyStorageError, match="not a database URL"):
        open_storage("not a url")
    with pytest.raises(StudyStorageError, match="Can't load plugin"):
        open_storage("nosuchdb://host/db")
    if importlib.util.find_spec("psycopg2") is None:  # not in the lock: the message says so, password hidden
        with pytest.raises(StudyStorageError, match=r"postgresql://me:\*\*\*@host/db: its database driver"):
            open_storage("postgresql://me:secret@host/db")
    with pytest.raises(StudyStorageError, match="cannot make its directory"):
        open_storage("sqlite:////dev/null/study.db")
    monkeypatch.setattr(optuna_sweep, "OPEN_ATTEMPTS", 1)
    with pytest.raises(StudyStorageError, match="unable to open database file"):
        open_storage(f"sqlite:///{tmp_path}")  # a directory


def test_a_bad_storage_stops_the_sweep_before_any_job_in_one_line(tmp_path, capsys):
    launcher = FakeLauncher()
    with pytest.raises(SystemExit) as stop:
        run_sweep(settings("nosuchdb://host/db"), str(tmp_path), launcher, [])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and launcher.jobs == [] and err.count("\n") == 1
    assert err.startswith("config error: hydra.sweeper.storage=nosuchdb://host/db: ")


def test_a_stale_hydra_optuna_sweeper_is_named_before_hydra_starts(capsys):
    """An older venv keeps hydra-optuna-sweeper, whose `hydra/sweeper: optuna` shadows the project's own."""
    Plugins.instance()  # Hydra's plugin scan (which registers ours) has run: the stand-in below stays
    store = ConfigStore.instance()
    store.store(group="hydra/sweeper", name="optuna",
                node={"_target_": "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"})
    try:
        with pytest.raises(SystemExit) as stop:
            check_overrides(["-m", "hparams_search=optuna", "model=tiny"], "train")
    finally:
        store.store(group="hydra/sweeper", name="optuna", node=OptunaSweeperConf)
    assert stop.value.code == 2 and "pip uninstall hydra-optuna-sweeper" in capsys.readouterr().err
    check_overrides(["-m", "hparams_search=optuna", "model=tiny"], "train")  # ours again


def test_workers_starting_together_do_not_trip_over_table_creation(tmp_path):
    """Without retries two RDBStorage() calls on a fresh SQLite file fail about half the time ('table studies
    already exists', 'UNIQUE constraint failed: alembic_version'; optuna#1092, #4621)."""
    for round_ in range(3):
        url, gate, errors = f"sqlite:///{tmp_path / f'{round_}.db'}", threading.Barrier(2), []

        def worker(url: str = url, gate: threading.Barrier = gate, errors: list = errors) -> None:
            gate.wait()
            try:
                open_storage(url)
            except StudyStorageError as e:
                errors.append(e)

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors


def test_consecutive_runs_split_where_another_worker_took_numbers():
    class T:
        def __init__(self, number: int) -> None:
            self.number = number

    runs = consecutive_runs([T(0), T(1), T(3), T(4), T(6)])
    assert [[t.number for t in run] for run in runs] == [[0, 1], [3, 4], [6]]
