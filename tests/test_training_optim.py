"""Optimizer groups: SparseAdam on sparse tables at lr * multiplier without weight decay, AdamW on the rest."""

import math

import pytest
import torch
from torch import nn

from engram.training.optim import (
    CombinedOptimizer,
    build_optimizer,
    build_scheduler,
    split_trainable,
    warmup_cosine,
)


class Toy(nn.Module):
    def __init__(self, sparse: bool = True) -> None:
        super().__init__()
        self.table = nn.Embedding(1000, 8, sparse=sparse)
        self.gate = nn.Linear(8, 8)
        self.head = nn.Linear(8, 1)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.gate(self.table(ids))).sum()


def _opt(model: Toy, sparse: bool = True, **cfg: float) -> torch.optim.Optimizer:
    groups = split_trainable(model, [model.table.weight], [model.gate.weight, model.gate.bias])
    optim_cfg = {"lr": 1e-2, "weight_decay": 0.1, **cfg}
    return build_optimizer(groups, optim_cfg, lr_multiplier=5.0, sparse_tables=sparse)


def test_groups_split_by_role_and_skip_frozen() -> None:
    model = Toy()
    model.head.weight.requires_grad_(False)
    groups = split_trainable(model, [model.table.weight], [model.gate.weight, model.gate.bias])
    assert groups["tables"] == [model.table.weight]
    assert len(groups["engram_dense"]) == 2
    assert groups["dense"] == [model.head.bias]  # frozen head.weight is left out


def test_sparse_tables_use_sparse_adam_at_multiplied_lr_without_decay() -> None:
    model = Toy()
    opt = _opt(model)
    assert isinstance(opt, CombinedOptimizer)
    dense, sparse = opt.optimizers
    assert isinstance(dense, torch.optim.AdamW) and isinstance(sparse, torch.optim.SparseAdam)
    assert sparse.param_groups[0]["lr"] == pytest.approx(5e-2)
    assert "weight_decay" not in sparse.param_groups[0] or sparse.param_groups[0]["weight_decay"] == 0
    assert {g["name"] for g in opt.param_groups} == {"dense", "engram_dense", "tables"}


def test_dense_tables_get_adamw_group_without_weight_decay() -> None:
    model = Toy(sparse=False)
    opt = _opt(model, sparse=False)
    assert isinstance(opt, torch.optim.AdamW)
    tables = next(g for g in opt.param_groups if g["name"] == "tables")
    assert tables["lr"] == pytest.approx(5e-2) and tables["weight_decay"] == 0.0


def test_step_touches_only_looked_up_rows() -> None:
    torch.manual_seed(0)
    model = Toy()
    opt = _opt(model)
    before = model.table.weight.detach().clone()

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = model(torch.tensor([[3, 7]]))
        loss.backward()
        return loss

    opt.step(closure)
    changed = (model.table.weight.detach() != before).any(dim=1).nonzero().flatten().tolist()
    assert changed == [3, 7]
    assert model.table.weight.grad.is_sparse


def test_scheduler_scales_each_group_from_its_own_lr_and_state_round_trips() -> None:
    model = Toy()
    opt = _opt(model, warmup_steps=2)
    sched = build_scheduler(opt, {"warmup_steps": 2, "min_lr_ratio": 0.1}, total_steps=10)
    for _ in range(3):
        opt.zero_grad()
        model(torch.tensor([[1, 2]])).backward()
        opt.step()
        sched.step()
    lrs = {g["name"]: g["lr"] for g in opt.param_groups}
    assert lrs["tables"] == pytest.approx(5 * lrs["dense"])
    # the inner optimizers see the scheduled lr (their groups are the same dicts)
    assert opt.optimizers[1].param_groups[0]["lr"] == lrs["tables"]

    fresh_model = Toy()
    fresh = _opt(fresh_model)
    fresh.load_state_dict(opt.state_dict())
    assert fresh.optimizers[1].state_dict()["state"][0]["step"] == 3


def test_scheduler_still_drives_the_inner_optimizers_after_load_state_dict() -> None:
    """After a resume the combined param_groups must be the inner optimizers' groups, or the lr freezes."""

    def run(opt: torch.optim.Optimizer, sched: torch.optim.lr_scheduler.LRScheduler, model: Toy, n: int) -> None:
        for _ in range(n):
            opt.zero_grad()
            model(torch.tensor([[1, 2]])).backward()
            opt.step()
            sched.step()

    model = Toy()
    opt = _opt(model)
    sched = build_scheduler(opt, {"warmup_steps": 2, "min_lr_ratio": 0.1}, total_steps=10)
    run(opt, sched, model, 3)

    resumed_model = Toy()
    resumed = _opt(resumed_model)
    resumed_sched = build_scheduler(resumed, {"warmup_steps": 2, "min_lr_ratio": 0.1}, total_steps=10)
    resumed.load_state_dict(opt.state_dict())
    resumed_sched.load_state_dict(sched.state_dict())
    inner = [g for o in resumed.optimizers for g in o.param_groups]
    assert len(resumed.param_groups) == len(inner)
    assert all(a is b for a, b in zip(resumed.param_groups, inner, strict=True))

    run(opt, sched, model, 2)
    run(resumed, resumed_sched, resumed_model, 2)
    applied = [g["lr"] for o in resumed.optimizers for g in o.param_groups]  # what the inner optimizers step with
    assert applied == [g["lr"] for o in opt.optimizers for g in o.param_groups]
    assert applied == [g["lr"] for g in resumed.param_groups]


def test_warmup_then_cosine() -> None:
    f = warmup_cosine(total_steps=100, warmup_steps=10, min_ratio=0.1)
    assert f(0) < f(5) < f(9) <= 1.0
    assert f(10) == pytest.approx(1.0)
    assert f(55) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert f(100) == pytest.approx(0.1)


def test_nothing_trainable_gives_no_optimizer() -> None:
    assert build_optimizer({"tables": [], "engram_dense": [], "dense": []}, {"lr": 1e-3}) is None


@pytest.mark.parametrize("variant", ["lora", "engram"])
def test_module_loss_equals_the_hf_causal_lm_loss(variant: str) -> None:
    """The answer-only logits shortcut gives the same loss (and gradients flow) as the full HF forward."""
    from omegaconf import OmegaConf

    from engram.config import DataConfig
    from engram.data.datamodule import EngramDataModule
    from engram.models.loading import load_model
    from engram.training.module import EngramLitModule
    from engram.training.variants import apply_variant

    model, tok = load_model("tiny")
    cfg = OmegaConf.create({"variant": {"name": variant, "finetune": "none"},
                            "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]},
                            "engram": {"table_size": 257, "dim": 32, "layers": [1], "init_std": 0.5}})
    model = apply_variant(model, cfg, tok).eval()
    data = DataConfig(num_train=8, num_eval=4, batch_size=8)
    batch = next(iter(EngramDataModule(OmegaConf.structured(data), tok).train_dataloader()))
    module = EngramLitModule(model, variant, {"lr": 1e-3}, cfg.engram)
    ours = module(batch)
    extra = {"prompt_lengths": batch["prompt_lengths"]} if variant == "engram" else {}
    reference = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"],
                      **extra).loss
    assert ours.item() == pytest.approx(reference.item(), rel=1e-5)
    ours.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
