"""Experiment records and sweep configs: every experiments/*.yaml composes, validates and expands to the jobs it
promises; a real optuna sweep runs two trials, two optuna workers share one study, and the real SLURM launcher
submits to a stub sbatch."""

from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf
from optuna.trial import TrialState

from engram.config import validate
from engram.training.optuna_sweep import NEVER_RUN

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "engram" / "conf"
# records of another root config say so in their header ("# Root: engram/conf/compress.yaml"; tested with that root)
EXPERIMENTS = sorted(p.stem for p in (ROOT / "experiments").glob("*.yaml")
                     if "\n# Root: engram/conf/" not in p.read_text())
REQUIRED = {"exact500", "exact5k", "table_sweep", "data_scale", "gate_bias", "hash_compare", "layer_placement",
            "smoke"}
ALL_VARIANTS = ["baseline", "lora", "engram", "combined"]


def composed(*overrides: str, root: str = "train", hydra_cfg: bool = False):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name=root, overrides=list(overrides), return_hydra_config=hydra_cfg)


def sweep_jobs(cfg) -> list[list[str]]:
    """The job overrides the basic sweeper would launch for `-m` with no extra command-line arguments."""
    params = cfg.hydra.sweeper.get("params") or {}
    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    return BasicSweeper.split_arguments(parsed, None)[0]


def test_required_experiments_exist():
    assert REQUIRED <= set(EXPERIMENTS), f"missing: {REQUIRED - set(EXPERIMENTS)}"


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_composes_and_documents_itself(name):
    text = (ROOT / "experiments" / f"{name}.yaml").read_text()
    assert text.startswith("# @package _global_"), "experiment configs must be global packages"
    header = text.split("defaults:")[0]
    assert "Question" in header and "Runtime" in header and "python " in header, "header: question, runtime, command"
    assert f"experiment={name}" in header

    full = composed(f"experiment={name}", hydra_cfg=True)
    cfg = validate(OmegaConf.masked_copy(full, [k for k in full if k != "hydra"]))
    assert cfg.experiment_name == name  # the W&B group and the multirun folder

    # every job of the experiment's sweep is a valid config on its own
    jobs = sweep_jobs(full)
    assert jobs, "every experiment defines its multirun in hydra.sweeper.params"
    for job in jobs:
        validate(composed(f"experiment={name}", *job))


@pytest.mark.parametrize(
    ("name", "key", "values"),
    [
        ("exact500", "variant", ALL_VARIANTS),
        ("exact5k", "variant", ALL_VARIANTS),
        ("smoke", "variant", ALL_VARIANTS),
        ("table_sweep", "engram.table_size", ["1000", "10000", "100000", "1000000"]),
        ("hash_compare", "engram.hash", ["poc", "deepseek", "span"]),
        ("lm_frozen", "+arm", ["lm_base", "lm_engram", "lm_lora", "lm_capacity1", "lm_shuffled"]),
        ("write_facts", "+arm", ["write_question", "write_recall", "write_lora"]),
    ],
)
def test_sweep_values(name, key, values):
    jobs = sweep_jobs(composed(f"experiment={name}", hydra_cfg=True))
    assert [j[0] for j in jobs] == [f"{key}={v}" for v in values]


def test_write_facts_arms_are_the_memory_the_exact_key_memory_and_lora():
    jobs = sweep_jobs(composed("experiment=write_facts", hydra_cfg=True))
    arms = {job[0].split("=")[1]: validate(composed("experiment=write_facts", *job)) for job in jobs}
    assert [(c.variant.name, c.engram.hash) for c in arms.values()] == [("engram", "question"), ("engram", "answer"),
                                                                         ("lora", "question")]
    assert all(c.sequential.batch == 100 and c.data.num_train == 1000 for c in arms.values())


def test_language_model_records_run_every_arm_without_dash_m():
    """`python train.py experiment=lm_frozen` (no -m) runs the arms: the record sets hydra.mode=MULTIRUN."""
    for name in ("lm_frozen", "lm_slots"):
        full = composed(f"experiment={name}", hydra_cfg=True)
        assert str(full.hydra.mode) == "RunMode.MULTIRUN"
    slots = sweep_jobs(composed("experiment=lm_slots", hydra_cfg=True))
    assert len(slots) == 8 and {j[1] for j in slots} == {f"engram.table_size={n}" for n in (1000, 10000, 100000,
                                                                                            1000000)}


def test_seed_study_settings():
    for name, n in (("exact500", 500), ("exact5k", 5000)):
        cfg = composed(f"experiment={name}")
        assert (cfg.data.family, cfg.data.num_train, cfg.engram.table_size, cfg.trainer.max_epochs) == (
            "exact_match", n, 5000, 10)
        assert cfg.model.name == "smollm"


def test_data_scale_and_gate_bias_ranges():
    scale = [int(j[0].split("=")[1]) for j in sweep_jobs(composed("experiment=data_scale", hydra_cfg=True))]
    assert min(scale) == 100 and max(scale) == 20000
    bias = [float(j[0].split("=")[1]) for j in sweep_jobs(composed("experiment=gate_bias", hydra_cfg=True))]
    assert min(bias) == -8.0 and max(bias) == 0.0


def test_layer_placement_sweeps_lists():
    jobs = sweep_jobs(composed("experiment=layer_placement", hydra_cfg=True))
    layers = [validate(composed("experiment=layer_placement", *j)).engram.layers for j in jobs]
    assert [1] in layers and "all" in layers and any(len(x) == 2 for x in layers if x != "all")


def test_smoke_is_tiny():
    cfg = composed("experiment=smoke")
    assert cfg.model.name == "tiny" and cfg.trainer.max_steps <= 5 and cfg.data.num_train <= 32
    assert cfg.logger.name == "none"


def test_command_line_beats_experiment_sweep():
    """`-m experiment=exact500 variant=engram` runs one variant: the command line overrides the config's sweep."""
    cfg = composed("experiment=exact500", hydra_cfg=True)
    params = [f"{k}={v}" for k, v in cfg.hydra.sweeper.params.items()] + ["variant=engram"]
    jobs = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(params), None)[0]
    assert jobs == [["variant=engram"]]


@pytest.mark.parametrize(
    ("name", "arm", "drawn"),
    [("lm_frozen", "lm_engram", ["engram.seed"]), ("lm_slots", "lm_engram", ["engram.seed"]),
     ("long_recall", "windowed_engram", ["model.seed", "engram.seed"]),
     ("long_recall_in_context", "windowed_engram", ["model.seed", "engram.seed"]),
     ("lm_allocation", "alloc_rho25", ["model.seed", "engram.seed"])],
)
def test_a_seed_draws_another_model_and_memory(name, arm, drawn):
    """seed=1 is a second seed for what the study draws (a scratch model's weights, the memory's hash and projections:
    keys of their own, which Lightning's seed does not touch)."""
    for seed in (0, 1):
        cfg = composed(f"experiment={name}", f"+arm={arm}", f"seed={seed}")
        assert [OmegaConf.select(cfg, key) for key in drawn] == [seed] * len(drawn)


def tiny_sweep(*args: str, env: dict[str, str] | None = None, **popen: object) -> subprocess.Popen:
    """`python train.py -m <args>` on the tiny model, small enough for seconds per job."""
    fast = ["model=tiny", "trainer=debug", "data.num_train=16", "data.num_eval=8", "data.batch_size=8",
            "engram.dim=32", "eval_max_new_tokens=4"]
    return subprocess.Popen([sys.executable, "train.py", "-m", *fast, *args], cwd=ROOT, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}, **popen)


def test_optuna_sweep_runs_two_real_trials(tmp_path):
    """hparams_search=optuna end to end: the sweeper samples from engram/conf/hparams_search/optuna.yaml, train.py's
    return value (eval/exact_match) is the objective, and the study's result file is written."""
    sweep = tmp_path / "sweep"
    proc = tiny_sweep("hparams_search=optuna", "hydra.sweeper.n_trials=2", f"hydra.sweep.dir={sweep}",
                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]
    trials = sorted(p.parent for p in sweep.glob("*/eval.json"))
    assert [t.name for t in trials] == ["0", "1"]
    for trial in trials:
        overrides = dict(o.split("=", 1) for o in OmegaConf.load(trial / ".hydra" / "overrides.yaml"))
        assert 1e-4 <= float(overrides["optim.lr"]) <= 3e-2
        assert int(overrides["engram.table_size"]) in (1000, 5000, 20000, 100000)
        assert -8.0 <= float(overrides["engram.gate_bias"]) <= 0.0
    result = OmegaConf.load(sweep / "optimization_results.yaml")
    assert result.name == "optuna" and set(result.best_params) == {"optim.lr", "engram.table_size",
                                                                   "engram.gate_bias"}
    best = max(json.loads((t / "eval.json").read_text())["metrics"]["eval/exact_match"] for t in trials)
    assert result.best_value == best


def test_two_optuna_workers_share_one_study(tmp_path):
    """Two train.py processes started together on one SQLite study (the cluster pattern, docs/experiments.md):
    together they run the study's n_trials=4 once each, in one sweep dir whose job dirs are the trial numbers."""
    sweep, url = tmp_path / "sweep", f"sqlite:///{tmp_path / 'study.db'}"
    args = ("hparams_search=optuna", "hydra.sweeper.n_trials=4", f"hydra.sweeper.storage={url}",
            "hydra.sweeper.study_name=shared", f"hydra.sweep.dir={sweep}")
    workers = [tiny_sweep(*args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(2)]
    outs = [w.communicate(timeout=300)[0] for w in workers]
    for worker, out in zip(workers, outs, strict=True):
        assert worker.returncode == 0, out[-3000:]
    launched = [sorted(int(n) for n in re.findall(r"\t#(\d+) : ", out)) for out in outs]
    assert all(launched) and sorted(launched[0] + launched[1]) == [0, 1, 2, 3], launched  # both worked, none twice

    study = optuna.load_study(study_name="shared", storage=url)
    run = [t for t in study.trials if NEVER_RUN not in t.user_attrs]
    assert all(t.number >= 4 and t.state == TrialState.FAIL for t in study.trials if t not in run)
    assert sorted(t.number for t in run) == [0, 1, 2, 3] and all(t.state == TrialState.COMPLETE for t in run)
    assert len({tuple(sorted(t.params.items())) for t in run}) == 4  # same seed, distinct parameters
    assert sorted(p.parent.name for p in sweep.glob("*/eval.json")) == ["0", "1", "2", "3"]
    for trial in run:  # each job dir holds its own trial
        overrides = dict(o.split("=", 1) for o in OmegaConf.load(sweep / str(trial.number) / ".hydra/overrides.yaml"))
        assert float(overrides["optim.lr"]) == trial.params["optim.lr"]
    result = OmegaConf.load(sweep / "optimization_results.yaml")
    assert result.best_value == study.best_value and result.best_trial == study.best_trial.number


def test_slurm_launcher_submits_an_sbatch_array(tmp_path):
    """The real submitit SLURM launcher (engram/conf/hydra/launcher/slurm.yaml) against a stub `sbatch` first on PATH:
    the submission script it hands to sbatch carries the partition/account from the environment, the launcher
    settings, and one array task per sweep job running the pickled train.py job. The jobs never run: once
    submitit polls `sacct` (a stub too), the submission is complete and the sweep is stopped."""
    stub = tmp_path / "bin"
    stub.mkdir()
    log = tmp_path / "calls.log"
    scripts = {
        "sbatch": f'#!/bin/sh\necho "sbatch $@" >> {log}\ncp "$1" {tmp_path}/submitted.sh\n'
                  'echo "Submitted batch job 123"\n',
        "sacct": f'#!/bin/sh\necho "sacct $@" >> {log}\nprintf "JobID|State|NodeList\\n123_0|PENDING|\\n"\n',
        "srun": "#!/bin/sh\nexit 0\n",  # submitit checks that it exists
    }
    for name, text in scripts.items():
        (stub / name).write_text(text)
        (stub / name).chmod(0o755)
    sweep = tmp_path / "sweep"
    env = {"PATH": f"{stub}{os.pathsep}{os.environ['PATH']}", "SLURM_PARTITION": "gpu-test", "SLURM_ACCOUNT": "lab"}
    proc = tiny_sweep("variant=engram,lora", "hydra/launcher=slurm", "hydra.launcher.timeout_min=90",
                      "hydra.launcher.gpus_per_node=2", f"hydra.sweep.dir={sweep}", env=env,
                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while "sacct" not in (log.read_text() if log.is_file() else "") and proc.poll() is None:
            assert time.monotonic() < deadline, "sbatch was never called"
            time.sleep(0.2)
    finally:
        proc.kill()
        _, err = proc.communicate(timeout=30)
    calls = log.read_text() if log.is_file() else ""
    assert calls.startswith("sbatch "), err[-3000:]
    script = (tmp_path / "submitted.sh").read_text()
    for line in ("#SBATCH --partition=gpu-test", "#SBATCH --account=lab", "#SBATCH --gpus-per-node=2",
                 "#SBATCH --time=90", "#SBATCH --array=0-1%2", "#SBATCH --cpus-per-task=8", "#SBATCH --mem=32GB",
                 "#SBATCH --job-name=train"):
        assert line in script.splitlines(), f"{line} missing from:\n{script}"
    assert "srun " in script and "-m submitit.core._submit" in script
    # the pickled Hydra jobs, one per array task (written by this test's own run, so unpickling them is safe)
    jobs = [pickle.loads(p.read_bytes()) for p in sorted((sweep / ".submitit").glob("123_*/*_submitted.pkl"))]
    assert [[o for o in job.args[0] if o.startswith("variant=")] for job in jobs] == [["variant=engram"],
                                                                                     ["variant=lora"]]
    for job in jobs:  # each runs train.py's main (cloudpickle ships it by value: known by what it calls)
        code = job.function.task_function.__code__
        assert code.co_name == "main" and {"validated_or_exit", "run_task"} <= set(code.co_names)


def test_joblib_launcher_composes():
    cfg = composed("experiment=smoke", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", hydra_cfg=True)
    assert cfg.hydra.launcher._target_.endswith("JoblibLauncher") and cfg.hydra.launcher.n_jobs == 2
