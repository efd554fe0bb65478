"""The schema: a dataclass per Hydra group (and the root keys), the one home of every default.

**One home for defaults: these dataclasses.** `register_configs()` stores each schema's defaults in Hydra's
ConfigStore as `schema/<group>` (option `<group>`; the root keys as `schema/root`, evaluate.py's as
`schema/evaluate`), as plain values, not typed nodes: a wrong type then still reaches `validate` and its one-line
error instead of failing inside Hydra's composition. Every group YAML starts from its schema and sets only what
that option changes:

    defaults:
      - /schema/engram@_here_: engram
      - _self_
    hash: poc            # only the keys that differ from EngramConfig

A YAML value equal to the dataclass default is a second home; tests/test_config.py fails on one. The trainer group
has no schema (its keys go straight to lightning.Trainer; engram/config/trainer.py checks them). Call
`register_configs()` before composing (train.py, evaluate.py and engram.cli do at import).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import OmegaConf

from engram.config.scale import OffloadConfig
from engram.config.sections import compose, declared

# the comparison's rows in order (evaluate.py's default): gated_lora after lora, engram_hybrid after engram
ROW_ORDER = ("baseline", "lora", "gated_lora", "engram", "engram_hybrid", "combined")


@dataclass
class ModelConfig:
    """`model.*`: the base causal LM (engram/models/sources/, one module per `model.name`)."""

    name: str = "smollm"  # smollm (SmolLM2-135M-Instruct) | tiny (random, for tests) | hf (any hub id) | scratch
    path: str | None = None  # explicit local directory (smollm) — skips cache/hub/GGUF lookup
    name_or_path: str | None = None  # hub id or local path (model=hf)
    dtype: str = "float32"  # torch dtype of the weights: float32 | bfloat16 | float16 | float64
    hidden_size: int = 64  # model=tiny / scratch: width of the hidden state
    num_layers: int = 2  # model=tiny / scratch: decoder layers
    num_heads: int = 4  # model=tiny / scratch: attention heads (half as many key/value heads)
    intermediate_size: int = 128  # model=tiny / scratch: width of each decoder layer's MLP
    seed: int = 0  # model=tiny / scratch: seed of the randomly initialised weights
    # model=scratch: sliding-window attention over this many tokens (each position sees itself and the window - 1
    # before it); None = full causal attention
    attention_window: int | None = None
    experts: int = 0  # model=scratch: MoE experts per layer (transformers' Mixtral); 0 = a dense MLP (Mistral)
    experts_per_token: int = 2  # model=scratch with experts: how many experts each token is routed to (top-k)
    router_aux_loss: float = 0.01  # model=scratch with experts: weight of the router's load-balancing loss
    # model=scratch with experts: rho of the allocation study - this share of the idle experts' parameters moves into
    # the memory's table rows at equal total parameters (sets model.experts and engram.table_size:
    # engram/models/allocation.py); null = both as given
    memory_share: float | None = None


@dataclass
class PrepopulateConfig:
    """engram.init=prepopulate: facts written into the zero-initialised table before training
    (engram/training/writing.py)."""

    path: str | None = None  # a JSONL fact file (the documented messages format); null = the run's training facts
    steps: int = 60  # at most this many optimiser steps per batch of facts
    lr: float = 0.3  # learning rate of the Adam that writes the looked-up rows (only those rows move)
    margin: float = 3.0  # logits by which every answer token must lead before a fact counts as written
    shortlist: int = 0  # > 0: steps score the target + this many top rivals, the vocabulary only checks (writing.py)
    batch_size: int = 64  # facts written together in one batch


@dataclass
class EngramKeys:
    """`engram.*`: the memory (engram/memory/): how a position's key is hashed, which looked-up rows count, how
    they enter the model, how the tables are initialised, trained and stored. `add_engram(model, cfg)` takes one;
    every key is listed in the configuration reference (docs/config.md). These are the keys every memory has; a
    hash, gate or address kind's own keys are its section (`EngramConfig` adds them: engram/config/sections.py)."""

    table_size: Any = 5000  # rows per head: an int, or one int per n-gram order (deepseek)
    heads: int = 4  # hash heads; each looks up one row of its own table per position
    max_ngram: int = 3  # the n-gram order: deepseek hashes 2..max_ngram tokens; the context gate's conv dilation
    layers: Any = field(default_factory=lambda: [1])  # decoder layers whose input gets a memory, "final", or "all"
    dim: int = 256  # memory width per position (the heads' rows side by side; poc: one row of this width)
    gate: str = "context"  # how the rows enter the residual: context (the paper's) | mlp | direct (no gate)
    gate_bias: float = 0.0  # fixed offset on the gate logit (0: a half-open gate at the start)
    hash: str = "deepseek"  # what a position's key is: deepseek | poc | answer | span | question
    address: str = "hashed"  # which looked-up rows count: hashed (all) | written | fingerprint | hybrid
    init: str = "normal"  # the tables' start: normal | zeros | prepopulate (zeros, then facts written: prepopulate.*)
    init_std: float = 0.02  # init=normal: standard deviation of the rows
    lr_multiplier: float = 5.0  # the tables train at optim.lr times this (no weight decay, the paper's setting)
    sparse: bool = True  # sparse gradients (SparseAdam steps only the looked-up rows: step time flat in table_size)
    seed: int = 0  # seed of the hash primes and the memory's initial weights (same seed: same memory)
    compress_vocab: bool = True  # deepseek / span: token ids whose text normalises equally share one id
    prepopulate: PrepopulateConfig = field(default_factory=PrepopulateConfig)
    gate_l1: float = 0.0  # training: penalty on the memory entering at positions off the answer (and on replay)
    offload: OffloadConfig = field(default_factory=OffloadConfig)
    shard: str = "none"  # none | rows (split the tables' rows over the DDP processes)


@dataclass
class VariantConfig:
    """`variant.*`: what trains (engram/variants/, one module per name)."""

    name: str = "engram"  # baseline | lora | gated_lora | engram | engram_hybrid | combined (engram + LoRA)
    finetune: str = "none"  # baseline only: "none" (frozen) or "full"
    # gated_lora only (engram/models/gated_lora.py): the gate MLP's width
    gate_width: int = 64
    gate_init_bias: float = -4.0  # gated_lora: the gate's output bias at init (-4: sigmoid = 0.018, mostly closed)


@dataclass
class LoraConfig:
    """`lora.*`: the peft LoRA adapters of the lora, gated_lora and combined variants."""

    r: int = 8  # rank of each adapter
    alpha: int = 16  # scaling: the adapter's update is multiplied by alpha / r
    dropout: float = 0.05  # dropout on the adapter's input while training
    # the linear layers (by module name) of each decoder layer that get an adapter
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    layers: list[int] | None = None  # decoder layers that get adapters (None: all; -2 = second from the top)


@dataclass
class DataKeys:
    """`data.*`: the facts or text a run trains and is scored on (engram/data/families/, one module per family).
    These are the keys every family reads; a family's own keys are its section (`DataConfig` adds them)."""

    family: str = "exact_match"  # exact_match | entity | user_prefs | jsonl | long_recall | patterns | text
    num_train: int = 500  # training facts (examples)
    num_eval: int = 100  # eval facts (examples)
    categories: list[str] | None = None  # None = every category of the family
    seed: int = 0  # picks and orders the facts (and the replay prompts)
    prompt_format: str = "chat"  # chat (the tokenizer's chat template) | plain ("Q: ...\nA:")
    eval_seen_fraction: float = 0.5  # share of the eval facts that are also trained (seen); the rest are unseen
    path: str | None = None  # jsonl: the messages-format file
    valid_path: str | None = None  # jsonl: an eval file (else a split of data.path)
    test_path: str | None = None  # jsonl: a test file scored beside the eval split (then all of data.path trains)
    split_fraction: float = 0.1  # jsonl: share of data.path held out for eval; text: for validation and for test
    batch_size: int = 16  # training examples per step
    shuffle: bool = True  # training batches in a new order each epoch; false: the records' order (a curriculum)
    eval_batch_size: int = 64  # prompts per batch when scoring (on CPU each decoding step has a fixed overhead)
    max_length: int = 256  # tokens per example (a longer prompt loses its start)
    num_workers: int = 0  # DataLoader worker processes
    facts_per_id: int = 3  # entity, user_prefs: facts (attributes) per ID
    # text (language modelling, engram/data/families/text.py): the built-in corpus when data.path is not given
    corpus: str = "python_stdlib"
    block_size: int = 256  # text: tokens per packed block
    num_tokens: int | None = None  # text: training tokens (None = the whole training split)
    eval_tokens: int = 32768  # text: tokens scored per eval split


@dataclass
class LoggerConfig:
    """`logger.*`: where a run's metrics go (engram/tracking/loggers/, one module per name)."""

    name: str = "wandb"  # wandb | csv | tensorboard | mlflow | many | none
    project: str = "engram-lab"  # wandb: the project
    mode: str = "offline"  # wandb: offline (files in the run dir, `wandb sync` uploads) | online
    group: str | None = None  # wandb: the run group; mlflow: the experiment (None: experiment_name)
    tags: list[str] = field(default_factory=list)  # beside the root `tags`, on this logger only
    tracking_uri: str | None = None  # mlflow: a shared store or server; None = <run dir>/mlflow.db
    loggers: list[str] = field(default_factory=list)  # many: the loggers it runs (any of the others)


@dataclass
class CheckpointConfig:
    """<run dir>/checkpoints/last.ckpt holds the trainable weights, optimizer, LR schedule and position in the data
    order. It is rewritten (atomically) every `every_n_steps` optimizer steps and at each epoch end, so a crash loses
    fewer than every_n_steps steps (16 = a quarter of the default 64-step run). 0 = epoch ends only;
    trainer.enable_checkpointing=false = no checkpoints."""

    every_n_steps: int = 16  # optimizer steps between rewrites of last.ckpt (0 = only at epoch ends)


@dataclass
class OptimConfig:
    """`optim.*`: AdamW on the dense weights, SparseAdam on sparse tables, warmup then cosine decay
    (engram/training/optim.py)."""

    lr: float = 3.0e-3  # peak learning rate (the tables: times engram.lr_multiplier)
    weight_decay: float = 0.0  # AdamW weight decay of the dense weights (the tables get none)
    warmup_steps: int = 5  # steps of linear warmup from 0 to lr
    min_lr_ratio: float = 0.1  # the cosine decay ends at lr times this
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # Adam's moment decay rates
    eps: float = 1.0e-8  # Adam's epsilon


@dataclass
class RetentionTrainingConfig:
    """`train.*`: retention-aware training (engram/training/replay.py) and the frozen-prefix activation cache."""

    # replay prompts per fact example in every step (0 = off): generated general prompts (never the retention
    # prompts), scored by KL from the frozen base model's next-token distribution with the memories switched off
    replay_ratio: float = 0.0
    replay_weight: float = 1.0  # weight of that KL in the loss
    replay_prompts: int = 512  # how many replay prompts are generated (data.seed picks them)
    prefix_cache: bool = True  # frozen layers below the lowest trainable one run once per example (prefix_cache.py)
    prefix_cache_gb: float = 4.0  # RAM for cached activations; examples beyond it run the frozen layers every step


@dataclass
class SequentialConfig:
    """`sequential.*`: teach the training facts in batches and record a forgetting curve
    (engram/training/sequential.py). It replaces prepopulation and the fit: trainer.max_epochs is not used. A killed
    run resumes after its last finished batch with `ckpt_path=<its run dir>`."""

    batch: int = 0  # facts per batch; 0 = off (a normal run)
    epochs: int = 10  # LoRA variants: epochs of fine-tuning on each batch (a memory writes rows: engram.prepopulate.*)


@dataclass
class TrainKeys:
    """Root schema for engram/conf/train.yaml. Trainer kwargs stay open (they go straight to lightning.Trainer) and are
    checked key by key in engram/config/trainer.py."""

    model: ModelConfig = field(default_factory=ModelConfig)
    engram: EngramKeys = field(default_factory=EngramKeys)
    variant: VariantConfig = field(default_factory=VariantConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    data: DataKeys = field(default_factory=DataKeys)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    trainer: Any = field(default_factory=dict)  # lightning.Trainer keyword arguments (engram/conf/trainer/; no schema)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: RetentionTrainingConfig = field(default_factory=RetentionTrainingConfig)
    sequential: SequentialConfig = field(default_factory=SequentialConfig)
    plugins: list[str] = field(default_factory=list)  # modules imported before validation (they register kinds)
    experiment_name: str = "default"  # names the run dir: outputs/<experiment_name>/<date> (multirun/... for -m)
    seed: int = 0  # Lightning's seed_everything: weight init, data order, dropout
    tags: list[str] = field(default_factory=list)  # recorded by every logger and in eval.json
    optimized_metric: str = "eval/exact_match"  # what `main` returns, so the optuna sweeper can maximise it
    ckpt_path: str | None = None  # resume from a crashed run's dir (its checkpoints/last.ckpt) or a .ckpt; None: fresh
    eval_max_new_tokens: int = 24  # tokens generated per prompt when scoring (greedy)
    task_name: str = "train"  # train | evaluate (evaluate.yaml sets it); the W&B job type
    paths: Any = field(default_factory=dict)  # set by the pipeline (paths.output_dir: the run dir), not by hand


@dataclass
class EvaluateConfig:
    """The keys engram/conf/evaluate.yaml adds to train.yaml (what evaluate.py evaluates). Exactly one mode
    (evaluate_mode):
    train_variants=true                train each of `variants` (default: the six of ROW_ORDER) on one split, compare
    multirun_dir=... / run_dirs=[...]  compare finished runs (e.g. `train.py -m experiment=exact500`)
    run_dir=...                        score one trained run again from its saved weights
    engram_path=...                    a saved memory on a fresh base model (cfg.model), on any data family"""

    train_variants: bool = False  # train each of `variants` on one split and compare them
    variants: list[str] = field(default_factory=lambda: list(ROW_ORDER))  # train_variants: the rows, in this order
    run_dirs: list[str] = field(default_factory=list)  # finished run dirs to compare
    multirun_dir: str | None = None  # a sweep's dir (multirun/<experiment>/<date>): compare its runs
    run_dir: str | None = None  # one trained run to score again from its saved weights
    engram_path: str | None = None  # a saved memory (engram.safetensors) to score on a fresh base model
    # comparing finished runs: score every run again from its weights in this process (same machine load, fair
    # latency) instead of reading each run's eval.json
    reevaluate: bool = False
    check_split: bool = True  # refuse to compare runs scored on different eval prompts
    output_dir: str | None = None  # where the comparison goes; None = outputs/<experiment_name>/evaluate


EVALUATE_KEYS = tuple(EvaluateConfig.__dataclass_fields__)  # evaluate.yaml's root keys beside train.yaml's
ROOT_GROUPS = ("model", "engram", "variant", "lora", "data", "logger", "optim", "trainer")  # chosen in train.yaml
FIXED = {"model": ModelConfig, "variant": VariantConfig, "lora": LoraConfig, "logger": LoggerConfig,
         "optim": OptimConfig}  # the groups whose schema is written out here (no kind adds a section)
COMPOSED_GROUPS = {"engram": EngramKeys, "data": DataKeys}  # each kind of theirs may add a section
PUBLIC = {"engram": "EngramConfig", "data": "DataConfig", "train": "TrainConfig"}  # their composed schemas' names


def schema_of(group: str, builtin: bool = False) -> type:
    """The schema of `group` (a config group, or "train" for the root): for engram and data, their keys plus one
    section per kind that declares Params, of every kind registered now (plugins too; `builtin`: the built-in
    ones only: the public EngramConfig / DataConfig / TrainConfig); for the root, TrainKeys with those two. Composed
    on first use and cached: composing imports the kinds' declarations (torch-free), so `import engram.config` stays
    light and a kind module that imports `engram.config.rules` is not a cycle."""
    if group == "train":
        return compose(TrainKeys, {g: schema_of(g, builtin) for g in COMPOSED_GROUPS}, PUBLIC[group], override=True)
    if group in FIXED:
        return FIXED[group]
    own = compose(COMPOSED_GROUPS[group], declared(group, builtin=True), PUBLIC[group])
    if builtin:
        return own
    return compose(own, {k: v for k, v in declared(group).items() if k not in declared(group, builtin=True)})


def schemas() -> dict[str, type]:
    """{group: its schema now} for every group with one (what `register_configs` stores)."""
    return {group: schema_of(group) for group in ("model", "engram", "variant", "lora", "data", "logger", "optim")}




def __getattr__(name: str) -> Any:
    """`EngramConfig`, `DataConfig`, `TrainConfig` (the built-in kinds' sections added) and `SCHEMAS`, composed on
    first use (see `schema_of`)."""
    groups = {public: group for group, public in PUBLIC.items()}
    if name in groups:
        value: Any = schema_of(groups[name], builtin=True)
    elif name == "SCHEMAS":
        value = {group: schema_of(group, builtin=True) for group in schemas()}
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def schema_defaults(schema_cls: type, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The defaults of a schema as plain values (what the group YAMLs start from)."""
    plain = OmegaConf.to_container(OmegaConf.structured(schema_cls))
    return {k: v for k, v in plain.items() if k not in skip}


def register_configs() -> None:
    """Store the schemas' defaults in Hydra's ConfigStore (group `schema/<name>`, option `<name>`); the group YAMLs
    extend them (see the module docstring). Idempotent."""
    from hydra.core.config_store import ConfigStore  # lazy: hydra costs ~0.2 s; `import engram.config` stays light

    cs = ConfigStore.instance()
    for group, schema_cls in schemas().items():  # with the sections of the plugins imported so far
        cs.store(group=f"schema/{group}", name=group, node=schema_defaults(schema_cls))
    # root keys of train.yaml: everything but the groups it chooses (and `paths`, set by the pipeline)
    cs.store(group="schema/root", name="root", node=schema_defaults(TrainKeys, (*ROOT_GROUPS, "paths")))
    cs.store(group="schema/evaluate", name="evaluate", node=schema_defaults(EvaluateConfig))
