"""`python train.py ...` = `engram-train ...` (engram/entry/train.py): train one variant and evaluate it.

    python train.py                                   # SmolLM2 + Engram on 500 exact-match facts
    python train.py model=tiny variant=lora trainer=debug
    python train.py -m engram.table_size=1000,5000,50000 data.num_train=500,5000
"""

from engram.entry.train import cli

if __name__ == "__main__":
    cli()
