"""Experiment records and sweep configs: every experiments/*.yaml composes, validates and expands to the jobs it
promises; the optuna sweeper and the SLURM launcher configs compose into something their plugins accept."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from engram.config import validate

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"
EXPERIMENTS = sorted(p.stem for p in (ROOT / "experiments").glob("*.yaml"))
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
    ],
)
def test_sweep_values(name, key, values):
    jobs = sweep_jobs(composed(f"experiment={name}", hydra_cfg=True))
    assert [j[0] for j in jobs] == [f"{key}={v}" for v in values]


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


def test_optuna_search_composes():
    cfg = composed("hparams_search=optuna", "experiment=exact500", hydra_cfg=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.direction == "maximize"
    assert {"optim.lr", "engram.table_size", "engram.gate_bias"} <= set(sweeper.params)
    assert cfg.optimized_metric == "eval/exact_match"
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    # the sweeper plugin turns these strings into optuna distributions
    from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides

    args = [f"{k}={v}" for k, v in sweeper.params.items() if k != "variant"]
    space, _fixed = create_params_from_overrides(args)
    assert type(space["optim.lr"]).__name__ == "LogUniformDistribution"
    assert list(space["engram.table_size"].choices) == [1000, 5000, 20000, 100000]
    assert (space["engram.gate_bias"].low, space["engram.gate_bias"].high) == (-8.0, 0.0)


@pytest.mark.parametrize("launcher", ["submitit_slurm", "slurm"])
def test_slurm_launcher_composes_into_sbatch(launcher, tmp_path, monkeypatch):
    """No cluster here: compose the launcher, hand its parameters to submitit and read the sbatch script it makes."""
    import submitit

    stub = tmp_path / "bin"  # submitit only checks that `srun` exists before it writes a script
    stub.mkdir()
    (stub / "srun").write_text("#!/bin/sh\nexit 0\n")
    (stub / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{stub}:{os.environ['PATH']}")

    cfg = composed("experiment=table_sweep", f"hydra/launcher={launcher}", "hydra.launcher.partition=gpu",
                   "hydra.launcher.gpus_per_node=2", "hydra.launcher.timeout_min=90", hydra_cfg=True)
    params = OmegaConf.to_container(cfg.hydra.launcher, resolve=False)
    assert params.pop("_target_").endswith("SlurmLauncher")
    base = {"timeout_min", "cpus_per_task", "gpus_per_node", "tasks_per_node", "mem_gb", "nodes", "name",
            "stderr_to_stdout"}
    params.pop("submitit_folder")
    params["name"] = "engram"
    executor = submitit.AutoExecutor(cluster="slurm", folder=str(tmp_path / "jobs"),
                                     slurm_max_num_timeout=params.pop("max_num_timeout"))
    resolved = {k: (None if isinstance(v, str) and v.startswith("${oc.env") else v) for k, v in params.items()}
    executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in resolved.items()})
    script = executor._executor._make_submission_file_text("python train.py", "uid")
    assert "#SBATCH --partition=gpu" in script
    assert "#SBATCH --gpus-per-node=2" in script
    assert "#SBATCH --time=90" in script


def test_joblib_launcher_composes():
    cfg = composed("experiment=smoke", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", hydra_cfg=True)
    assert cfg.hydra.launcher._target_.endswith("JoblibLauncher") and cfg.hydra.launcher.n_jobs == 2
