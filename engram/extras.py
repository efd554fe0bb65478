"""The optional extras (pyproject's [project.optional-dependencies]) and the module each feature imports from them.
A feature whose package is missing stops with one line naming the extra, never an ImportError traceback."""

from __future__ import annotations

import importlib.util
import sys

# the module a feature imports -> (the distribution that provides it, the extra that installs it)
EXTRAS: dict[str, tuple[str, str]] = {
    "lancedb": ("lancedb", "compress"),
    "optuna": ("optuna", "launchers"),  # the sweep of hparams_search=optuna (hydra_plugins/engram_optuna_sweeper)
    "hydra_plugins.hydra_joblib_launcher": ("hydra-joblib-launcher", "launchers"),
    "hydra_plugins.hydra_submitit_launcher": ("hydra-submitit-launcher", "launchers"),
    "wandb_workspaces": ("wandb-workspaces", "dashboard"),
    "tensorboard": ("tensorboard", "trackers"),
    "mlflow": ("mlflow", "trackers"),
}


def installed(module: str) -> bool:
    """Importable, without importing it (sys.modules[module] = None, how the tests hide one, counts as missing)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ModuleNotFoundError, ValueError):  # its parent package is missing, or hidden the same way
        return False


def missing_message(module: str) -> str:
    """`lancedb is not installed: pip install 'engram-lab[compress]'`."""
    dist, extra = EXTRAS[module]
    return f"{dist} is not installed: pip install 'engram-lab[{extra}]'"


def require(module: str) -> None:
    """One line on stderr naming the extra and exit 2 when `module` is not installed; nothing when it is."""
    if not installed(module):
        print(missing_message(module), file=sys.stderr)
        sys.exit(2)
