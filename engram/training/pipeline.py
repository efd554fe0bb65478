"""train(cfg): seed -> model + data -> variant -> callbacks -> loggers -> trainer -> fit -> evaluate -> save.

`run_task(cfg)` wraps it for train.py: a failing job is logged (and noted in its run dir) and re-raised, so in a
multirun Hydra still runs the other jobs and reports the failure at the end.
"""

from __future__ import annotations

import logging
import time
import traceback
from datetime import datetime
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.callbacks import Callback, RichProgressBar
from omegaconf import DictConfig, OmegaConf

from engram.atomic import atomic_write_dir
from engram.config.rules import from_scratch
from engram.data import is_language_model
from engram.data.datamodule import EngramDataModule
from engram.data.families.jsonl import read_jsonl
from engram.data.text_blocks import TextDataModule
from engram.evaluation.lm_eval import evaluate_text
from engram.evaluation.perplexity import LMScore, score_blocks
from engram.evaluation.retention import base_answers
from engram.evaluation.scoring import RETENTION_BATCH, evaluate_and_save, neighbor_references
from engram.inputs import resolve_ckpt_path
from engram.models.accounting import account, sequence_length
from engram.models.allocation import allocate
from engram.models.engram_model import BASE_WEIGHTS_DIR
from engram.models.loading import load_model
from engram.tracking.loggers._common import run_tags
from engram.tracking.run_log import build_loggers, close_wandb, finish, log_final
from engram.training.callbacks import GateStats, LoRAGateStats, StepStats
from engram.training.checkpointing import AtomicCheckpointIO, LastCheckpoint
from engram.training.module import EngramLitModule
from engram.training.prefix_cache import PrefixCache, build_prefix_cache, train_sequences
from engram.training.replay import ReplaySource
from engram.training.sequential import teach_sequentially
from engram.training.variants import apply_variant
from engram.training.writing import WriteSummary, write_facts
from engram.variants.common import variant_spec

log = logging.getLogger(__name__)


def resolve_run_dir(cfg: DictConfig) -> Path:
    """`paths.output_dir` when given, else Hydra's run dir, else outputs/<experiment>/<time>."""
    explicit = (cfg.get("paths") or {}).get("output_dir")
    if explicit:
        return Path(explicit)
    if HydraConfig.initialized():
        out = HydraConfig.get().runtime.get("output_dir")
        if out:
            return Path(out)
    return Path("outputs") / cfg.experiment_name / datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")


def build_callbacks(cfg: DictConfig, run_dir: Path, tokenizer: Any = None) -> list[Callback]:
    """`tokenizer`: given for language-model runs, whose gate statistics are also logged per token class."""
    callbacks: list[Callback] = [RichProgressBar(leave=True), StepStats()]
    variant = variant_spec(cfg.variant.name)
    if variant.engram:
        callbacks.append(GateStats(every_n_steps=int(cfg.trainer.get("log_every_n_steps", 5)), tokenizer=tokenizer))
    if variant.gated:
        callbacks.append(LoRAGateStats())
    if cfg.trainer.get("enable_checkpointing", True):
        every = int((cfg.get("checkpoint") or {}).get("every_n_steps", 0))
        callbacks.append(LastCheckpoint(run_dir / "checkpoints", every_n_steps=every))
    return callbacks


def train(cfg: DictConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """Train and evaluate one variant; returns (metrics, objects)."""
    t_start = time.perf_counter()
    run_dir = resolve_run_dir(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    allocate(cfg)  # model.memory_share: the experts and table rows it sets

    model, tokenizer = load_model(cfg.model, data=cfg.data)  # model=scratch builds its vocabulary from the data
    text = is_language_model(cfg.data.family)
    datamodule = TextDataModule(cfg.data, tokenizer) if text else EngramDataModule(cfg.data, tokenizer)
    # Before the variant: the untouched base model's answers to the general prompts and the neighbour questions
    # (cached per base model), or for a language model its perplexity on the test split.
    base_general = [] if text else base_answers(model, tokenizer, int(cfg.eval_max_new_tokens), RETENTION_BATCH)
    base_neighbors = None if text else neighbor_references(model, tokenizer, datamodule, cfg)
    base_score = frozen_base_score(cfg, model, datamodule) if text else None
    model = apply_variant(model, cfg, tokenizer)
    log.info("model=%s variant=%s: %s", cfg.model.name, cfg.variant.name,
             account(model, sequence_length(cfg.data)).line())
    sequential = int(cfg.sequential.batch) > 0  # facts taught batch by batch instead of prepopulation + fit
    prefix = None if sequential or text else prefix_cache(cfg, model, datamodule)
    prepopulated = None if sequential else prepopulate(cfg, model, tokenizer, datamodule, prefix)
    memory = variant_spec(cfg.variant.name).engram
    module = EngramLitModule(model, cfg.variant.name, cfg.optim, cfg.engram if memory else None,
                             replay=replay_source(cfg, tokenizer), replay_weight=float(cfg.train.replay_weight),
                             prefix_cache=prefix)

    if memory and cfg.engram.offload.to == "host":  # gather the next batch's rows meanwhile
        datamodule.lookahead = model.prefetch
    callbacks = build_callbacks(cfg, run_dir, tokenizer if text else None)
    loggers = build_loggers(cfg, run_dir, config=OmegaConf.to_container(cfg, resolve=True))
    trainer = L.Trainer(**OmegaConf.to_container(cfg.trainer, resolve=True), callbacks=callbacks,
                        logger=loggers or False, default_root_dir=str(run_dir), plugins=[AtomicCheckpointIO()])
    objects = {"cfg": cfg, "model": model, "base_score": base_score, "base_neighbors": base_neighbors,
               "prepopulated": prepopulated,
               "prefix_cache": prefix, "tokenizer": tokenizer,
               "datamodule": datamodule, "module": module,
               "trainer": trainer, "callbacks": callbacks, "loggers": loggers, "run_dir": run_dir}

    t_fit = time.perf_counter()
    if sequential:
        teach_sequentially(cfg, model, tokenizer, datamodule, base_general, run_dir, loggers, base_neighbors)
    elif module.has_trainable:
        one_thread_before_fork(cfg)
        trainer.fit(module, datamodule=datamodule, ckpt_path=resolve_ckpt_path(cfg.ckpt_path))
    else:  # frozen baseline: nothing to fit, the eval loss still tells where it starts
        log.info("variant %s trains nothing; evaluating the frozen model", cfg.variant.name)
        if not text:  # a language model's frozen base is scored on the test split already
            trainer.validate(module, datamodule=datamodule, verbose=False)
    train_seconds = time.perf_counter() - t_fit
    module.prefix_cache = None  # evaluation runs the full model; free the cached activations
    if prefix is not None:
        prefix.entries.clear()

    metrics: dict[str, float] = {}
    if trainer.is_global_zero:  # under strategy=ddp every rank runs this far; one evaluates and saves
        metrics = evaluate_and_log(cfg, objects, base_general, train_seconds, t_start)
    return metrics, objects


def one_thread_before_fork(cfg: DictConfig) -> None:
    """A forked DDP process (strategy ddp_fork / ddp_notebook) inherits the parent's OpenMP state: once the parent
    ran a multi-threaded op, the child's first one waits forever for pool threads that were not forked. One thread
    per process avoids it (the processes share the cores anyway)."""
    strategy = str(cfg.trainer.get("strategy", ""))
    if strategy.startswith(("ddp_fork", "ddp_notebook")) and torch.get_num_threads() > 1:
        log.info("%s: one torch thread per process (a forked process cannot use the parent's thread pool)", strategy)
        torch.set_num_threads(1)


def frozen_base_score(cfg: DictConfig, model: Any, datamodule: TextDataModule) -> LMScore | None:
    """The untouched base model's LM score on the test split (lm/ppl_base); None for a model built from scratch,
    whose base is random."""
    if from_scratch(cfg.model.name):
        return None
    return score_blocks(model, datamodule.loader("test"), desc="perplexity (base)")


def prefix_cache(cfg: DictConfig, model: Any, datamodule: EngramDataModule) -> PrefixCache | None:
    """train.prefix_cache: when the layers below the lowest trainable one are frozen and something will train,
    their activations for the training split are computed once here (shortest first) and reused every epoch."""
    trains = any(p.requires_grad for p in model.parameters()) and cfg.trainer.get("max_epochs") != 0
    writes = variant_spec(cfg.variant.name).engram and cfg.engram.init == "prepopulate"
    if not (trains or writes):
        return None
    cache = build_prefix_cache(model, bool(cfg.train.prefix_cache), float(cfg.train.prefix_cache_gb))
    if cache is not None:
        cache.fill(train_sequences(datamodule), batch_size=int(cfg.data.eval_batch_size))
        log.info("prefix cache filled in %.0f s", cache.fill_seconds)
    return cache


def prepopulate(cfg: DictConfig, model: Any, tokenizer: Any, datamodule: EngramDataModule,
                prefix: PrefixCache | None = None) -> WriteSummary | None:
    """engram.init=prepopulate: write the facts of engram.prepopulate.path (default: this run's training facts)
    into the zero-initialised table before the first epoch (the base's states from `prefix` when given)."""
    if not (variant_spec(cfg.variant.name).engram and cfg.engram.init == "prepopulate"):
        return None
    p = cfg.engram.prepopulate
    if p.path:
        facts = read_jsonl(p.path)
    else:
        datamodule.setup("fit")
        facts = datamodule.train_records
    summary = write_facts(model, tokenizer, facts, prompt_format=cfg.data.prompt_format, steps=int(p.steps),
                          lr=float(p.lr), margin=float(p.margin), batch_size=int(p.batch_size),
                          max_length=int(cfg.data.max_length), prefix=prefix,
                          shortlist=int(p.get("shortlist", 0)))
    log.info("prepopulated %d/%d facts in %.0f s", summary.written, summary.facts, summary.seconds)
    return summary


def replay_source(cfg: DictConfig, tokenizer: Any) -> ReplaySource | None:
    """train.replay_ratio > 0 with a memory or a gated LoRA: round(ratio x data.batch_size) replay prompts per step."""
    ratio = float(cfg.train.replay_ratio)
    variant = variant_spec(cfg.variant.name)
    if ratio <= 0 or not (variant.engram or variant.gated):
        return None
    per_step = max(1, round(ratio * int(cfg.data.batch_size)))
    return ReplaySource(tokenizer, int(cfg.train.replay_prompts), per_step, int(cfg.data.seed), cfg.data.prompt_format)


def trainer_metrics(trainer: L.Trainer) -> dict[str, float]:
    """The trainer's last scalar metrics, train/loss named as in eval.json."""
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    metrics.pop("train/loss_step", None)
    if "train/loss_epoch" in metrics:
        metrics["train/loss"] = metrics.pop("train/loss_epoch")
    return metrics


def evaluate_and_log(cfg: DictConfig, objects: dict[str, Any], base_general: list[str], train_seconds: float,
                     t_start: float) -> dict[str, float]:
    """The shared evaluate-and-save path (eval.json + eval.md), with the weights saved and the timings added before
    the files are written; then the final metrics go to the loggers."""
    model, trainer, run_dir = objects["model"], objects["trainer"], objects["run_dir"]
    text = is_language_model(cfg.data.family)
    # what was trained on (data.num_train may be a cap): facts, or tokens of text
    num_train = objects["datamodule"].num_train_tokens if text else len(objects["datamodule"].train_records)
    info = {
        "variant": cfg.variant.name, "model": cfg.model.name, "data": cfg.data.family,
        "num_train": num_train, "table_size": cfg.engram.table_size if variant_spec(cfg.variant.name).engram else None,
        "global_step": trainer.global_step, "experiment": cfg.experiment_name, "seed": cfg.seed,
        "tags": run_tags(cfg), "artifacts": {},
    }
    if cfg.model.get("experts"):  # as built: model.memory_share may have changed the configured number
        info["experts"] = int(cfg.model.experts)

    def save_and_time(metrics: dict[str, float], info: dict[str, Any]) -> None:
        info["artifacts"] = objects["artifacts"] = save_weights(cfg, model, run_dir)
        metrics["time/train_s"] = train_seconds
        if objects.get("prefix_cache") is not None:
            metrics["time/prefix_cache_s"] = objects["prefix_cache"].fill_seconds
        if objects.get("prepopulated") is not None:
            written = objects["prepopulated"]
            metrics["time/prepopulate_s"] = written.seconds
            metrics["prepopulate/recall"] = written.recall
        metrics["time/total_s"] = time.perf_counter() - t_start

    unit = "tokens" if text else "train"
    title = f"{cfg.variant.name} · {cfg.model.name} · {cfg.data.family} ({num_train} {unit})"
    if text:
        outcome = evaluate_text(model, objects["datamodule"], cfg, run_dir, info, objects["base_score"], title=title,
                                metrics=trainer_metrics(trainer), unchanged=not objects["module"].has_trainable,
                                before_write=save_and_time)
    else:
        outcome = evaluate_and_save(model, objects["tokenizer"], objects["datamodule"], cfg, run_dir, info,
                                    base_general, title=title, metrics=trainer_metrics(trainer),
                                    before_write=save_and_time, base_neighbors=objects.get("base_neighbors"))
    objects["rows"], objects["retention_rows"], objects["test_rows"] = (
        outcome.rows, outcome.retention_rows, outcome.test_rows)
    log_final(objects["loggers"], outcome.metrics, outcome.rows, trainer.global_step, outcome.retention_rows)
    finish(objects["loggers"])
    return outcome.metrics


def save_weights(cfg: DictConfig, model: Any, run_dir: Path) -> dict[str, str]:
    """engram.safetensors for the memory, lora_adapter/ (peft) for LoRA (+ lora_gate.safetensors for gated_lora);
    the frozen base is never copied.

    Every one is written to a temp name and renamed into place, so a failed save keeps the previous version.
    """
    saved: dict[str, str] = {}
    variant = variant_spec(cfg.variant.name)
    # the outermost wrapper saves what it wraps: an EngramModel its memory (+ lora_adapter/ for combined), a
    # GatedLoRAModel lora_adapter/ + lora_gate.safetensors; peft alone its adapter dir
    if variant.outer() in ("engram", "gate"):
        saved.update({k: str(v) for k, v in model.save_pretrained(run_dir).items()})
    elif variant.outer() == "lora":
        path = run_dir / "lora_adapter"
        atomic_write_dir(path, lambda tmp: model.save_pretrained(str(tmp)))
        saved["lora"] = str(path)
    full = variant.full_finetune and cfg.variant.get("finetune") == "full"
    if full or from_scratch(cfg.model.name):  # trained base weights (a scratch model's beside its memory)
        base = model.lm if variant.engram else model
        path = run_dir / BASE_WEIGHTS_DIR
        atomic_write_dir(path, lambda tmp: base.save_pretrained(str(tmp)))
        saved["model"] = str(path)
    return saved


def run_task(cfg: DictConfig) -> dict[str, float]:
    """train() for one (multirun) job: on failure log it, note it in the run dir, close W&B, re-raise."""
    run_dir = resolve_run_dir(cfg)
    cfg.paths = {**(cfg.get("paths") or {}), "output_dir": str(run_dir)}  # one dir for the run and its failure note
    try:
        metrics, _ = train(cfg)
        return metrics
    except BaseException as e:
        log.error("job failed (%s: %s); run dir %s", type(e).__name__, e, run_dir)
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "FAILED.txt").write_text(traceback.format_exc())
        except OSError as note_error:  # e.g. the disk that just filled up: the original error matters more
            log.error("could not write FAILED.txt in %s: %s", run_dir, note_error)
        finally:
            close_wandb(exit_code=1)
        raise

