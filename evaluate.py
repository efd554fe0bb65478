"""`python evaluate.py ...` = `engram-eval ...` (engram/entry/evaluate.py): compare trained variants on one eval split,
or score saved weights on any family.

    python evaluate.py experiment=smoke train_variants=true           # train the six, then comparison.md
    python evaluate.py multirun_dir=multirun/exact500/<date>          # compare finished runs
    python evaluate.py run_dir=outputs/default/<date>                 # score one run again from its weights
    python evaluate.py engram_path=outputs/default/<date>/engram.safetensors data=patterns

Exactly one of these modes (run_dirs=[...] lists finished runs like multirun_dir); two are one line, exit 2.
"""

from engram.entry.evaluate import cli

if __name__ == "__main__":
    cli()
