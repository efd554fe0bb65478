"""Sequential writing: teach the training facts in batches of `sequential.batch` and, after every batch, measure
what is still known (a forgetting curve) and what is still unchanged (locality).

How a batch is taught depends on the variant:
- a memory (engram, combined) writes the batch into its rows (engram/training/writing.py with the
  `engram.prepopulate.*` settings); nothing else moves, so earlier facts can only be lost to a row collision;
- LoRA fine-tunes its adapter on the batch alone for `sequential.epochs` epochs with a fresh optimiser, as sequential
  fine-tuning is usually done; nothing replays earlier batches.
After each batch, teacher-forced (engram/evaluation/editing.py): recall of every fact taught so far (a fact counts
when every answer token is the argmax, i.e. greedy generation reproduces it), of the first batch, of the batch just
taught, and token-level locality on the general prompts; and, when the data has them, the taught facts asked in other
words (`rewordings`: the "paraphrase" split's records whose fact, key and answer, is taught so far) and the untaught
questions about the taught entities (`neighbors`: the "neighbor" split's prompts of taught keys, counted when the
base model's own greedy reply, decoded once from the untouched base before any batch, is still every argmax). Both
are teacher-forced exact shares, so they read as greedy recall; `*_n` says how many were scored. The same probes
are scored once before the first batch (`before`: what the untouched variant does). The curve goes to
`sequential.json` in the run dir and to the loggers (x axis: facts taught); report.py plots it. A killed run
resumes after its last recorded batch: `ckpt_path=<its run dir>` (engram/training/sequential_state.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
from omegaconf import DictConfig
from tqdm.auto import tqdm

from engram.atomic import atomic_write_text
from engram.data.formatting import pad_id
from engram.data.records import Record
from engram.evaluation.editing import fact_scores, locality_scores, token_scores
from engram.evaluation.neighbors import BaseReplies, neighbor_records, prompt_ids
from engram.training.module import EngramLitModule
from engram.training.sequential_state import load_state, save_state
from engram.training.writing import write_facts
from engram.variants.common import variant_spec

log = logging.getLogger(__name__)

CURVE_FILE = "sequential.json"


@dataclass
class CurvePoint:
    batch: int  # 1-based
    facts: int  # facts taught so far
    recall_all: float  # share of every fact taught so far that is recalled exactly
    recall_first: float  # share of the first batch's facts
    recall_latest: float  # share of the batch just taught
    locality_tf: float  # teacher-forced agreement with the base model's answers to the general prompts
    teach_s: float  # seconds spent teaching this batch
    # None (left out of sequential.json) when the data has no such probes, or none of a taught fact yet
    rewordings: float | None = None  # share of the taught facts' other wordings recalled exactly
    rewordings_n: int | None = None
    neighbors: float | None = None  # share of the taught entities' neighbour questions still answered as the base
    neighbors_n: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class Probes:
    """What is scored beside the taught facts: rewordings and neighbour questions, each with the fact it belongs to
    (rewordings: (key, answer), so two facts of one entity are told apart; neighbours: the entity's key)."""

    rewordings: list[Record] = field(default_factory=list)
    neighbor_prompts: list[list[int]] = field(default_factory=list)
    neighbor_replies: list[list[int]] = field(default_factory=list)  # the base model's reply ids (eos included)
    neighbor_keys: list[str] = field(default_factory=list)


def teach_sequentially(cfg: DictConfig, model: Any, tokenizer: Any, datamodule: Any, base_general: list[str],
                       run_dir: Path, loggers: list[Any] | None = None,
                       base_neighbors: BaseReplies | None = None) -> list[CurvePoint]:
    """Teach `datamodule.train_records` batch by batch, measuring after each one; writes run_dir/sequential.json.
    `base_neighbors`: the untouched base model's replies to the neighbour split (none: no `neighbors` curve)."""
    facts = list(datamodule.train_records)
    size = int(cfg.sequential.batch)
    batches = [facts[i : i + size] for i in range(0, len(facts), size)]
    taught_prompts = {str(f["prompt"]) for f in facts}
    fmt, max_length = cfg.data.prompt_format, int(cfg.data.max_length)
    probes = taught_probes(datamodule, facts, base_neighbors)
    teach = _memory_writer(cfg, model, tokenizer) if variant_spec(cfg.variant.name).engram else _lora_fitter(
        cfg, model, datamodule)

    def locality() -> float:
        return locality_scores(model, tokenizer, base_general, max_length, taught_prompts).mean_accuracy

    digest = facts_digest(facts)
    if cfg.get("ckpt_path"):  # resume: the batches recorded there are taught already
        resumed = load_state(model, cfg.ckpt_path, digest)
        before, points = resumed["before"], [CurvePoint(**p) for p in resumed["points"]]
        log.info("sequential: resumed from %s after batch %d of %d", cfg.ckpt_path, len(points), len(batches))
    else:
        before = {"locality_tf": locality(), **_probe_scores(model, tokenizer, probes, facts, fmt, max_length)}
        points = []
    for i in tqdm(range(len(points) + 1, len(batches) + 1), desc="sequential writing", unit="batch",
                  initial=len(points), total=len(batches)):
        batch = batches[i - 1]
        L.seed_everything(int(cfg.seed) + i, verbose=False)  # each batch from its own seed: resuming ends the same
        t0 = time.perf_counter()
        teach(batch, i)
        seconds = time.perf_counter() - t0
        so_far = facts[: sum(len(b) for b in batches[:i])]
        exact = fact_scores(model, tokenizer, so_far, fmt, max_length).exact  # batches are prefixes of so_far
        point = CurvePoint(i, len(so_far), _share(exact), _share(exact[: len(batches[0])]),
                           _share(exact[-len(batch):]), locality(), round(seconds, 2),
                           **_probe_scores(model, tokenizer, probes, so_far, fmt, max_length))
        points.append(point)
        log.info("sequential batch %d: %d facts, recall %.3f (first batch %.3f), rewordings %s, neighbours %s, "
                 "locality_tf %.3f, %.1f s", i, point.facts, point.recall_all, point.recall_first,
                 _shown(point.rewordings, point.rewordings_n), _shown(point.neighbors, point.neighbors_n),
                 point.locality_tf, seconds)
        for logger in loggers or []:
            logger.log_metrics({f"sequential/{k}": float(v) for k, v in point.as_dict().items() if k != "facts"},
                               step=point.facts)
        # rewritten after every batch: a long run shows its curve so far, and a crash keeps it
        payload = {"variant": cfg.variant.name, "batch": size, "epochs": int(cfg.sequential.epochs),
                   "batches": len(batches), "rewordings_total": len(probes.rewordings),
                   "neighbors_total": len(probes.neighbor_keys), "facts_digest": digest, "before": before,
                   "points": [p.as_dict() for p in points]}
        save_state(model, run_dir, payload)  # the taught state and this curve, together
        atomic_write_text(run_dir / CURVE_FILE, json.dumps(payload, indent=1))
    return points


def facts_digest(facts: list[Record]) -> str:
    """Which facts, in which order (a resumed run must teach the same ones)."""
    text = json.dumps([[str(f["prompt"]), str(f["answer"])] for f in facts])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def taught_probes(datamodule: Any, facts: list[Record], base: BaseReplies | None) -> Probes:
    """The rewordings and neighbour questions of `facts` that the data carries (the "paraphrase" and "neighbor"
    splits; neighbours only with the base replies, and only those where the base replied at least one token)."""
    keys = {str(f["key"]) for f in facts}
    pairs = {(str(f["key"]), str(f["answer"])) for f in facts}
    probes = Probes([r for r in (datamodule.splits or {}).get("paraphrase") or []
                     if (str(r["key"]), str(r["answer"])) in pairs])
    records = neighbor_records(datamodule) if base is not None else []
    if records:
        if len(base.ids) != len(records):
            raise ValueError(f"{len(base.ids)} base replies for {len(records)} neighbour prompts: they were decoded "
                             "on other data")
        for r, ids, reply in zip(records, prompt_ids(datamodule), base.ids, strict=True):
            if str(r["key"]) in keys and reply:
                probes.neighbor_prompts.append(ids)
                probes.neighbor_replies.append(list(reply))
                probes.neighbor_keys.append(str(r["key"]))
    return probes


def _probe_scores(model: Any, tokenizer: Any, probes: Probes, taught: list[Record], prompt_format: str,
                  max_length: int) -> dict[str, Any]:
    """{rewordings, rewordings_n, neighbors, neighbors_n} of the probes that belong to `taught` (a key is left
    out when none does)."""
    out: dict[str, Any] = {}
    pairs = {(str(f["key"]), str(f["answer"])) for f in taught}
    rewordings = [r for r in probes.rewordings if (str(r["key"]), str(r["answer"])) in pairs]
    if rewordings:
        exact = fact_scores(model, tokenizer, rewordings, prompt_format, max_length).exact
        out.update(rewordings=_share(exact), rewordings_n=len(exact))
    keys = {str(f["key"]) for f in taught}
    chosen = [i for i, k in enumerate(probes.neighbor_keys) if k in keys]
    if chosen:
        exact = token_scores(model, [probes.neighbor_prompts[i] for i in chosen],
                             [probes.neighbor_replies[i] for i in chosen], max_length=max_length,
                             pad_token_id=pad_id(tokenizer)).exact
        out.update(neighbors=_share(exact), neighbors_n=len(exact))
    return out


def _shown(share: float | None, n: int | None) -> str:
    return "-" if share is None else f"{share:.3f} ({n})"


def _share(flags: list[bool]) -> float:
    return sum(flags) / len(flags) if flags else float("nan")


def _memory_writer(cfg: DictConfig, model: Any, tokenizer: Any) -> Any:
    p = cfg.engram.prepopulate

    def teach(batch: list[Record], index: int) -> None:
        write_facts(model, tokenizer, batch, prompt_format=cfg.data.prompt_format, steps=int(p.steps),
                    lr=float(p.lr), margin=float(p.margin), batch_size=int(p.batch_size),
                    max_length=int(cfg.data.max_length), progress=False)

    return teach


def _lora_fitter(cfg: DictConfig, model: Any, datamodule: Any) -> Any:
    def teach(batch: list[Record], index: int) -> None:
        module = EngramLitModule(model, cfg.variant.name, cfg.optim)
        with _quiet_lightning():  # one short fit per batch: its banner lines would bury the curve in the log
            trainer = L.Trainer(max_epochs=int(cfg.sequential.epochs), devices=1,
                                accelerator=cfg.trainer.get("accelerator", "cpu"),
                                precision=cfg.trainer.get("precision", "32-true"),
                                gradient_clip_val=cfg.trainer.get("gradient_clip_val"), logger=False,
                                enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                                limit_val_batches=0)
            trainer.fit(module, train_dataloaders=datamodule.loader_of(batch, int(cfg.seed) + index,
                                                                        f"batch{index}"))
        model.eval()

    return teach


@contextmanager
def _quiet_lightning() -> Iterator[None]:
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    level = rank_zero.level
    rank_zero.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*val_dataloader.*")
            yield
    finally:
        rank_zero.setLevel(level)
