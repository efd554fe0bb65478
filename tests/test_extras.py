"""Every optional feature without its extra: one line naming the extra to install and exit 2, never a traceback.
A missing package is simulated as sys.modules[name] = None, which makes both find_spec and `import` fail."""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from packaging.requirements import Requirement

from engram.cli import PLUGIN_OPTIONS, check_overrides
from engram.compress.__main__ import main as compress_main
from engram.config import ConfigError
from engram.extras import EXTRAS, installed, missing_message
from engram.tracking.dashboard import build_spec, to_report

ROOT = Path(__file__).resolve().parent.parent
TINY_COMPRESS = ["model=tiny", "compress.layer=1", "compress.num_docs=3", "compress.num_train_docs=3", "logger=none"]


def one_line_exit_2(capsys: pytest.CaptureFixture[str], call: Callable[[], object]) -> str:
    with pytest.raises(SystemExit) as exited:
        call()
    assert exited.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


def test_every_extra_named_is_declared_with_its_distribution() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for module, (dist, extra) in EXTRAS.items():
        assert dist in [Requirement(r).name for r in extras[extra]], f"{module}: {dist} is not in [{extra}]"
        assert installed(module), f"{module}: make install installs every extra but docs"


def test_the_core_imports_none_of_them() -> None:
    core = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {Requirement(r).name for r in core}
    assert not names & {dist for dist, _ in EXTRAS.values()}, "an optional package is a core dependency"


def test_hidden_module_counts_as_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "lancedb", None)
    assert not installed("lancedb")
    assert missing_message("lancedb") == "lancedb is not installed: pip install 'engram-lab[compress]'"


@pytest.mark.parametrize("command", [["build", "docs=bios"], ["eval"], ["ask", "Where?"]])
def test_compress_without_lancedb(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                  tmp_path: Path, command: list[str]) -> None:
    store = tmp_path / "store"
    (store / "engrams.lance").mkdir(parents=True)  # `ask` checks the store exists before it needs lancedb
    monkeypatch.setitem(sys.modules, "lancedb", None)
    line = one_line_exit_2(capsys, lambda: compress_main([*command, *TINY_COMPRESS, f"store={store}"]))
    assert line == "lancedb is not installed: pip install 'engram-lab[compress]'"


@pytest.fixture
def no_launcher_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if the [launchers] extra were not installed: the plugins' modules and the options they register gone."""
    Plugins.instance()  # scanned now: a later scan would register the options again
    for option, module in PLUGIN_OPTIONS.items():
        _, group, name = option.split("/")
        monkeypatch.delitem(ConfigStore.instance().repo["hydra"][group], f"{name}.yaml", raising=False)
        monkeypatch.setitem(sys.modules, module, None)


@pytest.mark.parametrize(("args", "dist"), [
    (["-m", "hydra/launcher=joblib", "seed=1,2"], "hydra-joblib-launcher"),
    (["-m", "hydra/launcher=slurm", "seed=1,2"], "hydra-submitit-launcher"),  # our YAML extends submitit_slurm
    (["-m", "hydra/launcher=submitit_local", "seed=1,2"], "hydra-submitit-launcher"),
])
def test_launcher_without_its_plugin(no_launcher_plugins: None, capsys: pytest.CaptureFixture[str],
                                     args: list[str], dist: str) -> None:
    line = one_line_exit_2(capsys, lambda: check_overrides(["model=tiny", *args], "train"))
    assert line == f"{dist} is not installed: pip install 'engram-lab[launchers]'"


@pytest.mark.parametrize("args", [["hparams_search=optuna"], ["-m", "hydra/sweeper=optuna", "seed=1,2"]])
def test_optuna_sweep_without_optuna(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                     args: list[str]) -> None:
    """The project's own sweeper is always installed (its config composes); the sweep it runs needs optuna."""
    monkeypatch.setitem(sys.modules, "optuna", None)
    line = one_line_exit_2(capsys, lambda: check_overrides(["model=tiny", *args], "train"))
    assert line == "optuna is not installed: pip install 'engram-lab[launchers]'"


def test_an_unknown_launcher_is_still_hydras_error(no_launcher_plugins: None,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    line = one_line_exit_2(capsys, lambda: check_overrides(["model=tiny", "hydra/launcher=jobib"], "train"))
    assert line.startswith("config error: the command line does not compose") and "jobib" in line


def test_with_the_plugins_the_same_command_composes() -> None:
    check_overrides(["model=tiny", "-m", "hydra/launcher=joblib", "seed=1,2"], "train")  # no exit


def test_dashboard_without_wandb_workspaces(monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "wandb_workspaces", None)
    line = one_line_exit_2(capsys, lambda: to_report(build_spec("engram-lab", "someone", None)))
    assert line == "wandb-workspaces is not installed: pip install 'engram-lab[dashboard]'"


@pytest.mark.parametrize(("logger", "dist"), [("tensorboard", "tensorboard"), ("mlflow", "mlflow")])
def test_tracker_without_the_trackers_extra(monkeypatch: pytest.MonkeyPatch, logger: str, dist: str) -> None:
    from _training_utils import tiny_cfg

    monkeypatch.setitem(sys.modules, logger, None)
    with pytest.raises(ConfigError) as refused:
        tiny_cfg(Path("unused"), f"logger={logger}")
    assert str(refused.value) == (f"config error: logger.name={logger} needs an extra: {dist} is not installed: "
                                  "pip install 'engram-lab[trackers]'")
