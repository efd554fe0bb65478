"""Composing and checking the compress config (engram/conf/compress.yaml + compress/): every bad value becomes one
`config error: <key>=<value> <rule>` line before any weights load (torch-free, reads the model's config only)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from engram.conf import CONF_DIR
from engram.config import ConfigError, LoggerConfig, ModelConfig, register_configs, schema_defaults
from engram.config.merge import check_known
from engram.config.rules import check, is_int
from engram.models.loading import model_shape

CONFIG_NAME = "compress"
COMMANDS = ("build", "ask", "eval", "sweep", "train", "info", "delete")
STORE_COMMANDS = ("info", "delete")  # read or edit a store: no model, no documents
POOLINGS = ("mean", "attention", "head")  # identity is for tests (k = document length), not a config choice
PLACEMENTS = ("replace", "prefix")
DOC_KINDS = ("bios", "stdlib")
# the trained compressor's choices (engram/compress/compressor.py and compressor_training.py read them from here)
CARRIER_PLACEMENTS = {"embedding": ("replace", "prefix", "add"), "kv": ("prefix",)}
TRAINED_PLACEMENTS = tuple(dict.fromkeys(p for ps in CARRIER_PLACEMENTS.values() for p in ps))
PRETRAIN_OBJECTIVES = ("autoencode", "continuation")
QA_SOURCES = ("bios", "cloze")  # the QA steps' questions: the training biographies' | spans of any training text


@dataclass
class HeadConfig:
    """The learned compression head (engram/compress/head.py) and its short training."""

    steps: int = 30  # optimiser steps
    batch_size: int = 4  # question-answer pairs per step
    lr: float = 0.003  # Adam's learning rate
    rank: int = 64  # rank of the low-rank correction of each pooled vector


@dataclass
class SweepConfig:
    """`sweep`: every layer x k x pooling; the head only at head_layers (it trains once per layer and k)."""

    layers: list[int] = field(default_factory=lambda: [2, 15, 28])  # the `layer` values swept
    ks: list[int] = field(default_factory=lambda: [1, 4, 16])  # the `k` values swept
    poolings: list[str] = field(default_factory=lambda: ["mean", "attention", "head"])  # the poolings swept
    head_layers: list[int] = field(default_factory=lambda: [15])  # layers where pooling=head is trained and scored
    key_layers: list[int] = field(default_factory=lambda: [0, 2, 8, 15, 28])  # top-1 retrieval hit rate per layer


@dataclass
class TrainedConfig:
    """`train`: the trained compressor (engram/compress/compressor.py), one per k x carrier x placement of the grid
    (a placement a carrier does not take is skipped), scored on the evaluated biographies and on held-out towns."""

    ks: list[int] = field(default_factory=lambda: [16])  # memory tokens per document
    carriers: list[str] = field(default_factory=lambda: ["embedding"])  # embedding | kv
    placements: list[str] = field(default_factory=lambda: ["prefix"])  # replace | prefix | add (kv: prefix only)
    rank: int = 16  # LoRA rank of the encoding pass
    lr: float = 0.001  # Adam, for the LoRA, the memory tokens and the embedding scale
    pretrain: list[str] = field(default_factory=lambda: ["autoencode", "continuation"])  # [] = no pretraining
    pretrain_steps: int = 100  # steps round the pretraining objectives
    qa_steps: int = 300  # question-answering steps after them
    qa_sources: list[str] = field(default_factory=lambda: ["bios"])  # QA steps go round these: bios | cloze
    docs_per_step: int = 4  # documents encoded per step (QA: every question of each)
    train_docs: int = 400  # training biographies (another seed; none shares a name with the evaluated ones)
    passages: int = 2000  # at most this many 60-word prose passages of Python's documentation (it has ~1 050)
    heldout_docs: int = 16  # fictional towns: documents of a kind training never saw


@dataclass
class CompressConfig:
    """The schema (and the one home of the defaults) of the group engram/conf/compress/."""

    layer: int = 15  # hidden states at the input of decoder layer N (0 = the token embeddings); SmolLM2: 0..29
    inject_layer: int | None = None  # decoder layer whose input receives the vectors; None = `layer`
    k: int = 4  # engram vectors per document
    pooling: str = "mean"  # mean | attention | head (trained on num_train_docs biographies)
    placement: str = "replace"  # replace ([ENGRAM] where the document would stand) | prefix (before the chat)
    # retrieval key = mean state of document / question at this layer (None = `layer`); 0 = the mean token
    # embedding: names are in the embeddings, deeper mean states lose them (sweep: retrieval_hit_by_key_layer)
    key_layer: int | None = 0
    num_docs: int = 16  # biographies evaluated (and stored by build docs=bios)
    num_train_docs: int = 48  # further biographies: the head's training set, and distractors in the eval store
    batch_size: int = 16  # questions scored per forward
    max_new_tokens: int = 24  # ask: length of the generated answer
    head: HeadConfig = field(default_factory=HeadConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    trained: TrainedConfig = field(default_factory=TrainedConfig)


@dataclass
class CompressRootConfig:
    """The keys engram/conf/compress.yaml composes, for the unknown-key check only (their defaults live in that YAML
    and in the group schemas)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    compress: CompressConfig = field(default_factory=CompressConfig)
    experiment_name: Any = None
    seed: Any = None
    docs: Any = None
    store: Any = None
    out: Any = None


def compose_config(overrides: list[str]) -> DictConfig:
    register_configs()  # the model / logger group YAMLs extend the schemas stored there
    ConfigStore.instance().store(group="schema/compress", name="compress", node=schema_defaults(CompressConfig))
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(CONFIG_NAME, overrides=overrides)


def _positive(cfg: DictConfig, key: str) -> None:
    value = OmegaConf.select(cfg, key)
    check(is_int(value) and value >= 1, key, value, "must be an integer >= 1")


def _layer(value: Any, key: str, depth: int, top: int) -> None:
    check(is_int(value) and 0 <= value <= top, key, value, f"must be a layer in 0..{top} (the model has {depth} "
          "decoder layers; layer N = the input of decoder layer N)")


def check_config(cfg: DictConfig, command: str) -> DictConfig:
    """The config, or ConfigError naming the first bad key."""
    check_known(OmegaConf.to_container(cfg, resolve=False), CompressRootConfig)  # `+compress.nosuch=1` too
    c = cfg.compress
    check(command in COMMANDS, "command", command, f"is not a command (one of: {', '.join(COMMANDS)})")
    if command in STORE_COMMANDS:
        check((Path(str(cfg.store)) / "engrams.lance").is_dir(), "store", cfg.store,
              "holds no engrams; build it first: python -m engram.compress build docs=bios store=<dir>")
        return cfg
    for key in ("compress.k", "compress.num_docs", "compress.num_train_docs", "compress.batch_size",
                "compress.max_new_tokens", "compress.head.steps", "compress.head.batch_size", "compress.head.rank"):
        _positive(cfg, key)
    check(isinstance(c.head.lr, int | float) and c.head.lr > 0, "compress.head.lr", c.head.lr, "must be > 0")
    check(c.pooling in POOLINGS, "compress.pooling", c.pooling, f"is not a pooling (one of: {', '.join(POOLINGS)})")
    check(c.placement in PLACEMENTS, "compress.placement", c.placement,
          f"is not a placement (one of: {', '.join(PLACEMENTS)})")
    depth, _ = model_shape(cfg.model)  # ModelUnavailableError is a ConfigError
    if command not in ("ask", "train"):  # ask takes the layers from the store it reads; train reads layer 0
        _layer(c.layer, "compress.layer", depth, depth - 1)
    for key in ("inject_layer", "key_layer"):
        if c[key] is not None:
            _layer(c[key], f"compress.{key}", depth, depth - 1 if key == "inject_layer" else depth)
    if command == "train":
        check_trained(c.trained)
        check(str(cfg.docs) == "bios", "docs", cfg.docs, "is not bios: train fits and scores on the generated "
              "biographies (held out: the towns)")
    if command == "sweep":
        for layer in c.sweep.layers:
            _layer(layer, "compress.sweep.layers", depth, depth - 1)
        for layer in c.sweep.head_layers:
            _layer(layer, "compress.sweep.head_layers", depth, depth - 1)
        for layer in c.sweep.key_layers:
            _layer(layer, "compress.sweep.key_layers", depth, depth)
        for k in c.sweep.ks:
            check(is_int(k) and k >= 1, "compress.sweep.ks", k, "must hold integers >= 1")
        for p in c.sweep.poolings:
            check(p in POOLINGS, "compress.sweep.poolings", p, f"is not a pooling (one of: {', '.join(POOLINGS)})")
    docs = str(cfg.docs)
    if docs not in DOC_KINDS:
        check(Path(docs).is_file(), "docs", docs, f"is neither {' nor '.join(DOC_KINDS)} nor an existing JSONL file")
    if command in ("eval", "sweep"):
        check(docs != "stdlib", "docs", docs, "has no questions; eval and sweep need docs=bios or a JSONL with qa")
    if command == "ask":
        store = Path(str(cfg.store))
        check((store / "engrams.lance").is_dir(), "store", cfg.store,
              "holds no engrams; build it first: python -m engram.compress build docs=bios store=<dir>")
    return cfg


def check_trained(t: DictConfig) -> None:
    for key in ("rank", "pretrain_steps", "qa_steps", "docs_per_step", "train_docs", "passages", "heldout_docs"):
        value = t[key]
        floor = 0 if key in ("pretrain_steps", "qa_steps", "passages") else 1
        check(is_int(value) and value >= floor, f"compress.trained.{key}", value, f"must be an integer >= {floor}")
    check(isinstance(t.lr, int | float) and t.lr > 0, "compress.trained.lr", t.lr, "must be > 0")
    for k in t.ks:
        check(is_int(k) and k >= 1, "compress.trained.ks", k, "must hold integers >= 1")
    for carrier in t.carriers:
        check(carrier in CARRIER_PLACEMENTS, "compress.trained.carriers", carrier,
              f"is not a carrier (one of: {', '.join(CARRIER_PLACEMENTS)})")
    for placement in t.placements:
        check(placement in TRAINED_PLACEMENTS, "compress.trained.placements", placement,
              f"is not a placement (one of: {', '.join(TRAINED_PLACEMENTS)})")
    for objective in t.pretrain:
        check(objective in PRETRAIN_OBJECTIVES, "compress.trained.pretrain", objective,
              f"is not a pretraining objective (one of: {', '.join(PRETRAIN_OBJECTIVES)})")
    check(bool(trained_grid(t)), "compress.trained.placements", list(t.placements),
          f"go with none of the carriers {list(t.carriers)} (kv takes prefix only)")
    check(t.pretrain_steps == 0 or bool(t.pretrain), "compress.trained.pretrain", list(t.pretrain),
          "is empty but compress.trained.pretrain_steps is not 0")
    for source in t.qa_sources:
        check(source in QA_SOURCES, "compress.trained.qa_sources", source,
              f"is not a source of questions (one of: {', '.join(QA_SOURCES)})")
    check(t.qa_steps == 0 or bool(t.qa_sources), "compress.trained.qa_sources", list(t.qa_sources),
          "is empty but compress.trained.qa_steps is not 0")


def trained_grid(t: Any) -> list[tuple[int, str, str]]:
    """(k, carrier, placement) of every compressor `train` fits, in order."""
    return [(int(k), str(c), str(p)) for c in t.carriers for p in t.placements for k in t.ks
            if p in CARRIER_PLACEMENTS.get(str(c), ())]


def validated(overrides: list[str], command: str) -> DictConfig:
    try:
        cfg = compose_config(overrides)
    except Exception as e:  # noqa: BLE001 - whatever Hydra refuses, in one line
        message = " ".join(line.strip() for line in str(e).splitlines()[:2]) or type(e).__name__
        raise ConfigError("overrides", " ".join(overrides), f"do not compose: {message}") from None
    return check_config(cfg, command)
