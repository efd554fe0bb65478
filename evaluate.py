"""`python evaluate.py ...` = `engram-eval ...` (engram/entry/evaluate.py): compare trained variants on one eval split,
or score saved weights on any family.

    python evaluate.py experiment=smoke four_way=true                 # train the six, then comparison.md
    python evaluate.py multirun_dir=multirun/exact500/<date>          # compare finished runs
    python evaluate.py run_dir=outputs/default/<date>                 # score one run again from its weights
    python evaluate.py engram_path=outputs/default/<date>/engram.safetensors data=patterns
"""

from engram.entry.evaluate import cli

if __name__ == "__main__":
    cli()
