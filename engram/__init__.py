"""engram-lab: Engram memory (hash-addressed, gated lookup tables) for pretrained causal LMs.

The peft-like public API is imported lazily so that `import engram` (and config validation) stays fast.

Imports flow one way, down this list (`LAYERS`, top first; tests/test_import_flow.py enforces it). A module may
import its own layer or any layer below, never one above:

    engram.entry                       the console scripts engram-train, -eval, -report, -demo (the root
                                       train.py, evaluate.py, report.py, demo.py only call them): may join
                                       any layers (evaluate hands training's train_variants loop to
                                       evaluation as a callable)
    engram.write                       `python -m engram.write`: facts into a trained memory (entry point)
    engram.compress                    `python -m engram.compress`: semantic-compression engrams (documents ->
                                       k vectors -> LanceDB store -> [ENGRAM] injection); reads models, tracking,
                                       cli and config, nothing imports it
    engram.demo                        demo.py's views (base vs memory, gate per token) and report.py's gate
                                       gallery: reads evaluation, models and tracking, nothing imports it
    engram.reference                   the paper's memory in one file, to read (torch and numpy only; nothing
                                       imports it, tests/test_reference.py holds it to the modular path)
    engram.training                    Lightning module, variants, the train pipeline, training the compared
                                       variants (train_variants=true), the Optuna sweep (hydra_plugins/
                                       engram_optuna_sweeper is its Hydra shell)
    engram.evaluation                  greedy eval, retention, gate stats, the one evaluate-and-save path,
                                       the comparison of variants
    engram.tracking                    W&B loggers, the run-dir reader, the sweep report: used by training and
                                       evaluation, so it sits below both and imports neither
    engram.cli, engram.inputs          command-line and input-file checks before any weights load (they read
                                       model headers and data files, so they sit above models and data);
                                       cli_args: argparse with one-line errors (report.py, demo.py)
    engram.models, engram.data         base models + Engram injection; the data families
    engram.memory                      hashes, addresses, gates (one module per kind), memory tables, the budget
    engram.config, atomic, lazy, registry, protocols, variants, conf, extras
                                       the schema and its rules (engram/config/: schema, merge (typing a config
                                       on its schema), rules, trainer, scale (where the tables live, offload /
                                       shard), validation);
                                       atomic file writes; lazy package attributes; the kind registries (they
                                       import a kind's module by dotted name only on `get`, so a kind package
                                       above, e.g. engram.memory.hashes, is not an import up the flow at
                                       validation); the kinds' interfaces (typing.Protocols, torch only in
                                       annotations); the variants' torch-free declarations;
                                       the Hydra YAMLs (conf: where they are); the optional
                                       extras and the one line naming a missing one
"""

from engram.lazy import lazy_attributes

__version__ = "0.1.0"

# The layer order above, top first; each entry is a set of peers (module prefixes under engram).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("engram.entry",),
    ("engram.write", "engram.demo", "engram.compress", "engram.reference"),
    ("engram.training",),
    ("engram.evaluation",),
    ("engram.tracking",),
    ("engram.cli", "engram.inputs", "engram.cli_args"),
    ("engram.models", "engram.data"),
    ("engram.memory",),
    ("engram.config", "engram.atomic", "engram.lazy", "engram.registry", "engram.protocols", "engram.variants",
     "engram.conf", "engram.extras"),
)

_LAZY = {
    "EngramModel": "engram.models.engram_model",
    "add_engram": "engram.models.inject",
    "remove_engram": "engram.models.inject",
    "engram_memories": "engram.models.inject",
    "memory_tracing": "engram.models.inject",
    "engram_parameters": "engram.models.inject",
    "engram_param_groups": "engram.models.inject",
    "engram_state_dict": "engram.models.inject",
    "save_engram": "engram.models.inject",
    "load_engram": "engram.models.inject",
    "read_engram_config": "engram.models.inject",
    "load_model": "engram.models.loading",
    "MemoryTrace": "engram.memory.trace",
    "EngramConfig": "engram.config",
}

__all__ = sorted(_LAZY)


__getattr__ = lazy_attributes("engram", _LAZY)
