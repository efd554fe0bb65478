"""engram-lab's Optuna sweeper for Hydra (`hydra/sweeper: optuna`); Hydra finds it under the hydra_plugins
namespace (this directory has no hydra_plugins/__init__.py on purpose: other plugins share the namespace)."""
