"""Target 3: examples/s of our training recipe vs the seed PoC's, on the same exact-match examples and table.

Seed recipe (reference mode): every example right-padded to 512 tokens, loss on the whole text (HF's causal-LM loss
over all 512 positions and the full vocabulary), poc memory (table 5000 x 576, MLP gate) at every layer with
`sparse: false`, so the tables get dense gradients and AdamW updates every row each step.
Ours: the same memory with sparse tables + SparseAdam, dynamic padding (pad to the longest in the batch) and the
answer-only loss with logits only from the shortest prompt on (the LightningModule's forward).
Both step on the same batches of the same 5 000-example training split, alternating batch by batch.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from benchmarks.common import Row, TrainStep, check, shared_clone

SEED_LENGTH = 512
POC = {"hash": "poc", "table_size": 5000, "heads": 4, "dim": 576, "max_ngram": 2, "gate": "mlp", "gate_bias": -5.0,
       "layers": "all", "lr_multiplier": 1.0, "compress_vocab": False}


class SeedStep:
    """The seed's loop body: padded to 512, labels = the whole text, dense AdamW over everything that trains."""

    def __init__(self, model: Any, pad: int) -> None:
        from engram.models.inject import engram_param_groups
        from engram.training.optim import build_optimizer, split_trainable

        self.model, self.pad = model, pad
        groups = engram_param_groups(model)
        for p in groups["tables"] + groups["dense"]:
            p.requires_grad_(True)
        self.optimizer = build_optimizer(split_trainable(model, groups["tables"], groups["dense"]),
                                         {"lr": 1e-3, "weight_decay": 0.01}, 1.0, sparse_tables=False)
        model.train()

    def __call__(self, batch: dict[str, torch.Tensor]) -> None:
        ids, mask = batch["input_ids"], batch["attention_mask"]
        extra = SEED_LENGTH - ids.shape[1]
        ids = torch.nn.functional.pad(ids, (0, extra), value=self.pad)
        mask = torch.nn.functional.pad(mask, (0, extra), value=0)
        labels = ids.masked_fill(mask == 0, -100)  # every real token is a target, prompt included
        loss = self.model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)


def _batches(tok: Any, num_train: int, batch_size: int, n_batches: int) -> list[dict[str, torch.Tensor]]:
    from engram.data.collate import TrainCollator
    from engram.data.datamodule import EngramDataModule
    from engram.data.formatting import pad_id

    dm = EngramDataModule({"family": "exact_match", "num_train": num_train, "num_eval": 8, "batch_size": batch_size},
                          tok)
    dm.setup()
    ds = dm.datasets["train"].select_columns(["input_ids", "labels", "prompt_length"])
    collate = TrainCollator(pad_id(tok))
    return [collate([ds[i] for i in range(b * batch_size, (b + 1) * batch_size)]) for b in range(n_batches)]


def throughput(base: Any, tok: Any, num_train: int, batch_size: int, n_batches: int) -> list[Row]:
    from engram.data.formatting import pad_id
    from engram.models.inject import add_engram

    batches = _batches(tok, num_train, batch_size, n_batches)
    seed = SeedStep(add_engram(shared_clone(base), {**POC, "sparse": False}, tok), pad_id(tok))
    ours_cfg = {**POC, "sparse": True}
    ours_model = add_engram(shared_clone(base), ours_cfg, tok)
    deepseek_cfg = {"table_size": 5000, "layers": [1]}
    default_model = add_engram(shared_clone(base), deepseek_cfg, tok)
    ours = TrainStep(ours_model, "engram", batches[0], ours_cfg)
    default = TrainStep(default_model, "engram", batches[0], deepseek_cfg)

    # warm-up (optimizer state allocation, first-call costs): the seed on one example, ours on the first batch
    seed({k: v[:1] for k, v in batches[0].items()})
    ours()
    default()
    spent = {"seed": 0.0, "ours": 0.0, "default": 0.0}
    for i, batch in enumerate(batches):  # alternate batch by batch, order flipped every batch
        order = [("seed", seed), ("ours", ours), ("default", default)]
        for name, fn in order if i % 2 == 0 else reversed(order):
            t0 = time.perf_counter()
            fn(batch)
            spent[name] += time.perf_counter() - t0
    n = batch_size * n_batches
    eps = {k: n / v for k, v in spent.items()}
    tokens = sum(int(b["attention_mask"].sum()) for b in batches)
    note = (f"{n} examples in {n_batches} batches of {batch_size} from the {num_train}-example split; "
            f"{tokens / n:.0f} real tokens per example vs {SEED_LENGTH} padded in the seed recipe")
    return [
        Row("3 seed PoC recipe", f"{eps['seed']:.3g} examples/s"),
        check("3 ours (same poc table, sparse) / seed", f"{eps['ours']:.3g} examples/s", eps["ours"] / eps["seed"],
              ">=", 3.0, note),
        Row("3 ours (default deepseek [1]) / seed", f"{eps['default']:.3g} examples/s", eps["default"] / eps["seed"]),
    ]
