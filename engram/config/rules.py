"""Value rules for every config group: each raises `ConfigError` with one line, `config error: <key>=<value> <rule>`.

`engram.config.validate` applies them to a config typed on the schema; `trainer.*` rules live in trainer.py.
Nothing here imports torch or transformers, so a bad value fails in well under a second.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from engram import registry  # a sibling module: lists kind names from file names, imports nothing of engram
from engram.config.trainer import trainer_problem  # a sibling module; it imports nothing from here
from engram.extras import installed, missing_message  # a sibling module: the standard library only
from engram.variants.common import variant_spec  # a sibling layer: the variants' torch-free declarations

INIT_KINDS = ("normal", "zeros", "prepopulate")
PROMPT_FORMATS = ("chat", "plain")
# logger options that need the `trackers` extra: the module each imports
LOGGER_EXTRAS = {"tensorboard": "tensorboard", "mlflow": "mlflow"}
TRACKING_SCHEMES = ("file", "sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks")
DTYPES = ("float32", "bfloat16", "float16", "float64")
LLAMA_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
MAX_SEED = 2**32 - 1  # numpy's range; Lightning's seed_everything silently replaces a seed outside it by 0
MAX_GENERATED = 1_000_000  # generated families: synthetic keys are 6 digits, and the records are built in RAM
FLOAT32_MAX = 3.4e38  # torch optimizers store lr as float32 scalars


class ConfigError(ValueError):
    """A config value is invalid; the message is the single line shown to the user."""

    def __init__(self, key: str, value: Any, rule: str) -> None:
        self.key, self.value, self.rule = key, value, rule
        super().__init__(one_line(f"config error: {key}={value} {rule}"))

    def __reduce__(self) -> tuple[type, tuple[str, Any, str]]:
        # a multirun job's error crosses a process boundary (joblib, submitit): rebuild it from its three parts
        return (type(self), (self.key, self.value, self.rule))


# every character str.splitlines() breaks at, escaped: a value holding one (a path, a typo) keeps the message one line
_LINE_BREAKS = {ord(c): repr(c)[1:-1] for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"}


def one_line(text: str) -> str:
    return text.translate(_LINE_BREAKS)


def first_line(e: BaseException) -> str:
    """An exception as one line (its first), for the one-line errors; the type name when it has no message."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def check(ok: bool, key: str, value: Any, rule: str) -> None:
    if not ok:
        raise ConfigError(key, value, rule)


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def one_of(key: str, value: Any, allowed: tuple[str, ...]) -> None:
    check(value in allowed, key, value, f"is not one of {', '.join(allowed)}")


def known_kind(kind: str, key: str, value: Any) -> None:
    """`value` names a `kind` in engram/registry.py (a built-in module or a registered plugin)."""
    one_of(key, value, registry.names(kind))


def validate_engram(e: Any) -> None:
    """The `engram.*` keys every memory has, then the chosen hash, gate and address kinds' own rules (their module's
    `check(e)`, which reads the kind's section, e.g. engram.hybrid.*)."""
    for kind in ("hash", "gate", "address"):
        known_kind(kind, f"engram.{kind}", getattr(e, kind))
    per_order = isinstance(e.table_size, list | tuple) or OmegaConf.is_list(e.table_size)
    sizes = list(e.table_size) if per_order else [e.table_size]
    check(len(sizes) > 0, "engram.table_size", list(sizes), "must be a positive integer (or one per n-gram order)")
    for s in sizes:
        check(is_int(s) and s > 0, "engram.table_size", e.table_size, "must be a positive integer")
    check(is_int(e.heads) and e.heads >= 1, "engram.heads", e.heads, "must be an integer >= 1")
    # a hash may allow the capacity-1 control (one row per head: deepseek's table_size=1)
    one_row = min(sizes) == 1 and registry.attribute("hash", e.hash, "one_row_control", False)
    check(one_row or e.heads <= min(sizes), "engram.heads", e.heads, f"must be <= engram.table_size ({min(sizes)})")
    check(is_int(e.dim) and e.dim >= 1, "engram.dim", e.dim, "must be a positive integer")
    check(e.heads <= e.dim, "engram.heads", e.heads,
          f"must be <= engram.dim ({e.dim}): each head's rows are dim // heads wide")
    check(is_int(e.max_ngram) and 2 <= e.max_ngram <= 16, "engram.max_ngram", e.max_ngram,
          "must be an integer in [2, 16]")
    check(len(sizes) == 1 or len(sizes) == e.max_ngram - 1, "engram.table_size", e.table_size,
          f"must be one int or one per n-gram order ({e.max_ngram - 1} for max_ngram={e.max_ngram})")
    one_of("engram.init", e.init, INIT_KINDS)
    check(finite(e.gate_l1) and e.gate_l1 >= 0, "engram.gate_l1", e.gate_l1, "must be a number >= 0")
    p = getattr(e, "prepopulate", None)
    if p is not None:
        check(is_int(p.steps) and p.steps >= 1, "engram.prepopulate.steps", p.steps, "must be an integer >= 1")
        check(is_int(p.batch_size) and p.batch_size >= 1, "engram.prepopulate.batch_size", p.batch_size,
              "must be an integer >= 1")
        check(finite(p.lr) and p.lr > 0, "engram.prepopulate.lr", p.lr, "must be a number > 0")
        check(finite(p.margin) and p.margin >= 0, "engram.prepopulate.margin", p.margin, "must be a number >= 0")
        shortlist = getattr(p, "shortlist", 0)
        check(is_int(shortlist) and shortlist >= 0, "engram.prepopulate.shortlist",
              shortlist, "must be an integer >= 0 (0: score the whole vocabulary every step)")
    check(finite(e.gate_bias), "engram.gate_bias", e.gate_bias, "must be a finite number")
    check(finite(e.lr_multiplier) and e.lr_multiplier > 0, "engram.lr_multiplier", e.lr_multiplier,
          "must be a number > 0")
    check(finite(e.init_std) and e.init_std >= 0, "engram.init_std", e.init_std, "must be a number >= 0")
    check_seed("engram.seed", e.seed)
    layers = e.layers
    is_list = isinstance(layers, list | tuple) or OmegaConf.is_list(layers)
    if not is_list:
        check(layers == "all", "engram.layers", layers, 'must be a list of layer indices or "all"')
    else:
        check(len(layers) > 0, "engram.layers", list(layers), "must name at least one layer")
        for layer in layers:
            check((is_int(layer) and layer >= 0) or layer == FINAL_LAYER, "engram.layers", list(layers),
                  f'must hold integers >= 0 or "{FINAL_LAYER}"')
    for kind in ("hash", "gate", "address"):  # each kind's own rules (its keys, and how it uses the shared ones)
        if (rules := registry.attribute(kind, getattr(e, kind), "check")) is not None:
            rules(e)


FINAL_LAYER = "final"  # engram.layers entry: after the last decoder layer (the final norm's input)


def validate_layers(layers: Any, num_layers: int, key: str = "engram.layers") -> list[int]:
    """Resolve `layers` against the model depth (known from its config, before weights load). Index l < num_layers
    is the input of decoder layer l; "final" (= num_layers) is the input of the final norm, after the last layer."""
    if layers == "all":
        return list(range(num_layers))
    resolved = [num_layers if x == FINAL_LAYER else int(x) for x in layers]
    for given, layer in zip(layers, resolved, strict=True):
        rule = f'is outside the model\'s {num_layers} layers (0..{num_layers - 1}, or "{FINAL_LAYER}")'
        check(0 <= layer < num_layers or given == FINAL_LAYER, key, resolved, rule)
    check(len(set(resolved)) == len(resolved), key, resolved, "names a layer twice")
    return resolved


def validate_data(d: Any) -> None:
    known_kind("family", "data.family", d.family)
    one_of("data.prompt_format", d.prompt_format, PROMPT_FORMATS)
    check(d.num_train >= 1, "data.num_train", d.num_train, "must be >= 1")
    check(d.num_eval >= 0, "data.num_eval", d.num_eval, "must be >= 0")
    if registry.attribute("family", d.family, "generated", True):  # a file family: the counts only cap its records
        check(d.num_train + d.num_eval <= MAX_GENERATED, "data.num_train", d.num_train,
               f"+ data.num_eval must be <= {MAX_GENERATED:,} for a generated family")
    check_seed("data.seed", d.seed)
    check(d.num_workers >= 0, "data.num_workers", d.num_workers, "must be >= 0")
    check(0.0 <= d.eval_seen_fraction <= 1.0, "data.eval_seen_fraction", d.eval_seen_fraction, "must be in [0, 1]")
    check(d.batch_size >= 1, "data.batch_size", d.batch_size, "must be >= 1")
    check(d.eval_batch_size >= 1, "data.eval_batch_size", d.eval_batch_size, "must be >= 1")
    check(d.max_length >= 2, "data.max_length", d.max_length, "must be >= 2")
    check(0.0 <= d.split_fraction < 1.0, "data.split_fraction", d.split_fraction, "must be in [0, 1)")
    family_rules = registry.attribute("family", d.family, "check")  # the family's own rules (torch-free)
    if family_rules is not None:
        family_rules(d)
    own_paths = registry.attribute("family", d.family, "checks_own_paths", False)  # text: a directory or a glob
    for key in ("valid_path", "test_path") if own_paths else ("path", "valid_path", "test_path"):
        p = getattr(d, key)
        if p:
            check(Path(os.path.expanduser(p)).is_file(), f"data.{key}", p, "does not exist or is not a file")


def validate_model(m: Any) -> None:
    known_kind("model", "model.name", m.name)
    source_rules = registry.attribute("model", m.name, "check")  # the source's own rules (torch-free)
    if source_rules is not None:
        source_rules(m)
    one_of("model.dtype", m.dtype, DTYPES)
    check(m.attention_window is None or from_scratch(m.name), "model.attention_window", m.attention_window,
          f"is only built into model=scratch (model={m.name} keeps its own attention)")
    check(not m.experts or from_scratch(m.name), "model.experts", m.experts,
          f"is only built into model=scratch (model={m.name} keeps its own MLP)")


def check_decoder_shape(m: Any, source: str) -> None:
    """The shape keys of a model built from config (model=tiny, model=scratch) and its seed."""
    for key, low, high in (("hidden_size", 2, 4096), ("num_layers", 2, 128), ("num_heads", 1, 64),
                           ("intermediate_size", 1, 16384)):
        value = getattr(m, key)
        check(low <= value <= high, f"model.{key}", value, f"must be in [{low}, {high}] for model={source}")
    head_dim, rest = divmod(m.hidden_size, m.num_heads)
    check(rest == 0 and head_dim % 2 == 0, "model.num_heads", m.num_heads,
          f"must divide model.hidden_size ({m.hidden_size}) into an even head size")
    check_seed("model.seed", m.seed)


def from_scratch(model_name: str) -> bool:
    """The model source builds a fresh model (model=scratch): every base weight trains, in every variant."""
    return bool(registry.attribute("model", model_name, "from_scratch", False))


def validate_scratch(cfg: Any) -> None:
    """A model trained from scratch needs its data family's tokenizer, and has nothing for LoRA to adapt."""
    if not from_scratch(cfg.model.name):
        check(cfg.model.get("memory_share") is None, "model.memory_share", cfg.model.get("memory_share"),
              f"splits a model=scratch MoE's parameters, not model={cfg.model.name}'s (leave it null)")
        return
    check(registry.attribute("family", cfg.data.family, "tokenizer") is not None, "data.family", cfg.data.family,
          f"has no tokenizer of its own, which model={cfg.model.name} builds its vocabulary from "
          "(data=long_recall or data=text)")
    check(not variant_spec(cfg.variant.name).lora, "variant.name", cfg.variant.name,
          f"adds LoRA, but model={cfg.model.name} trains every weight from scratch (use baseline or engram)")
    share, memory = cfg.model.get("memory_share"), variant_spec(cfg.variant.name).engram
    check(share is None or (share > 0) == memory, "model.memory_share", share,
          f"needs a memory to move experts into (variant=engram), not variant={cfg.variant.name}" if not memory
          else "= 0 is the MoE alone: run it without a memory (variant=baseline)")


def validate_lora(lora: Any, model_name: str) -> None:
    check(lora.r >= 1, "lora.r", lora.r, "must be >= 1")
    check(lora.alpha >= 1, "lora.alpha", lora.alpha, "must be >= 1 (0 would switch the adapter off)")
    check(0.0 <= lora.dropout < 1.0, "lora.dropout", lora.dropout, "must be in [0, 1)")
    modules = list(lora.target_modules)
    check(len(modules) > 0, "lora.target_modules", modules, "must name at least one module")
    if registry.attribute("model", model_name, "llama", False):  # any other is checked by peft when it loads
        bad = [m for m in modules if m not in LLAMA_MODULES]
        check(not bad, "lora.target_modules", modules, f"has {bad[0] if bad else ''!r}, not a Llama module "
               f"({', '.join(LLAMA_MODULES)})")


def check_seed(key: str, value: Any) -> None:
    check(is_int(value) and 0 <= value <= MAX_SEED, key, value, f"must be an integer in [0, {MAX_SEED}]")


def validate_optim(o: Any) -> None:
    check(finite(o.lr) and o.lr > 0, "optim.lr", o.lr, "must be a number > 0")
    check(finite(o.weight_decay) and o.weight_decay >= 0, "optim.weight_decay", o.weight_decay, "must be >= 0")
    betas = list(o.betas)
    check(len(betas) == 2, "optim.betas", betas, "must be two numbers [beta1, beta2]")
    for b in betas:
        check(finite(b) and 0.0 <= b < 1.0, "optim.betas", betas, "must each be in [0, 1)")
    check(finite(o.eps) and o.eps > 0, "optim.eps", o.eps, "must be a number > 0")
    check(is_int(o.warmup_steps) and o.warmup_steps >= 0, "optim.warmup_steps", o.warmup_steps,
           "must be an integer >= 0")
    check(finite(o.min_lr_ratio) and 0.0 <= o.min_lr_ratio <= 1.0, "optim.min_lr_ratio", o.min_lr_ratio,
           "must be in [0, 1]")


def validate_train(t: Any) -> None:
    """`train.*`: replay (retention-aware training) and the frozen-prefix cache."""
    check(finite(t.replay_ratio) and 0 <= t.replay_ratio <= 16, "train.replay_ratio", t.replay_ratio,
          "must be a number in [0, 16] (replay prompts per fact example)")
    check(finite(t.replay_weight) and t.replay_weight >= 0, "train.replay_weight", t.replay_weight,
          "must be a number >= 0")
    check(is_int(t.replay_prompts) and t.replay_prompts >= 1, "train.replay_prompts", t.replay_prompts,
          "must be an integer >= 1")
    check(finite(t.prefix_cache_gb) and t.prefix_cache_gb >= 0, "train.prefix_cache_gb", t.prefix_cache_gb,
          "must be a number >= 0")


def validate_sequential(cfg: Any) -> None:
    s = cfg.sequential
    check(is_int(s.batch) and s.batch >= 0, "sequential.batch", s.batch, "must be an integer >= 0 (0 = off)")
    check(is_int(s.epochs) and s.epochs >= 1, "sequential.epochs", s.epochs, "must be an integer >= 1")
    variant = variant_spec(cfg.variant.name)
    check(s.batch == 0 or variant.lora or variant.engram, "sequential.batch", s.batch,
          f"needs a variant that learns facts (a memory or LoRA), not variant={cfg.variant.name}")


def nothing_to_train(cfg: Any) -> bool:
    """The run is meant to train no weights: a frozen base without wrappers, a memory filled before training, or
    facts taught batch by batch (sequential.batch > 0 replaces the fit)."""
    if cfg.sequential.batch > 0:
        return True
    if from_scratch(cfg.model.name):
        return False
    variant = variant_spec(cfg.variant.name)
    if not (variant.lora or variant.engram):
        return cfg.variant.finetune == "none"
    return variant.engram and not variant.lora and cfg.engram.init == "prepopulate"


def validate_trainer(cfg: Any) -> None:
    trainer = OmegaConf.to_container(cfg.trainer) if OmegaConf.is_config(cfg.trainer) else cfg.trainer
    problem = trainer_problem(trainer, nothing_to_train(cfg))
    if problem is not None:
        raise ConfigError(*problem)


def finite(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def validate_logger(lg: Any) -> None:
    """logger.name a registered logger; logger=many's list of them; the extra a logger needs installed."""
    known_kind("logger", "logger.name", lg.name)
    check(lg.mode in ("offline", "online", "disabled"), "logger.mode", lg.mode,
          "is not one of offline, online, disabled")
    chosen = [lg.name]
    if lg.name == "many":
        others = [n for n in registry.names("logger") if n not in ("many", "none")]
        check(len(lg.loggers) > 0 and all(n in others for n in lg.loggers), "logger.loggers", list(lg.loggers),
              f"must be a non-empty list of {', '.join(others)}")
        check(len(set(lg.loggers)) == len(lg.loggers), "logger.loggers", list(lg.loggers), "names a logger twice")
        chosen = list(lg.loggers)
    if lg.tracking_uri is not None:
        scheme = str(lg.tracking_uri).partition(":")[0].split("+")[0]
        check(scheme in TRACKING_SCHEMES and ":" in str(lg.tracking_uri), "logger.tracking_uri", lg.tracking_uri,
              f"must be a URI of {', '.join(TRACKING_SCHEMES)} (e.g. http://127.0.0.1:5000, sqlite:///mlflow.db)")
    for name in chosen:
        module = LOGGER_EXTRAS.get(name)
        if module is not None:
            check(installed(module), "logger.name", name, f"needs an extra: {missing_message(module)}")


EVALUATE_MODES = "train_variants=true, run_dirs=[...] and/or multirun_dir=..., run_dir=... or engram_path=..."
# old spelling -> (new key, what it does): engram.cli refuses the old one in one line naming the new
RENAMED_EVALUATE_KEYS = {"four_way": ("train_variants", "it trains each of variants=[...] on one split, then compares "
                                                        "them")}


def evaluate_mode(ev: Any) -> str:
    """evaluate.py's mode from its keys (EvaluateConfig): "train_variants", "runs" (run_dirs and multirun_dir list
    finished runs to compare, together), "run_dir" or "engram_path". Not exactly one: ConfigError naming the keys
    given, so no mode is silently dropped."""
    given = [(mode, key, value) for mode, key, value in (
        ("train_variants", "train_variants", "true" if ev.train_variants else None),
        ("runs", "run_dirs", list(ev.run_dirs) or None), ("runs", "multirun_dir", ev.multirun_dir or None),
        ("run_dir", "run_dir", ev.run_dir or None), ("engram_path", "engram_path", ev.engram_path or None),
    ) if value is not None]
    modes = list(dict.fromkeys(mode for mode, _, _ in given))
    if not modes:
        raise ConfigError("train_variants", "false", f"and no runs or memory given: nothing to evaluate; give one of "
                          f"{EVALUATE_MODES}")
    if len(modes) > 1:
        (_, key, value), *rest = given
        others = " and ".join(f"{k}={v}" for _, k, v in rest)
        raise ConfigError(key, value, f"and {others} ask for {len(modes)} modes; evaluate.py does one of "
                          f"{EVALUATE_MODES}")
    check(not ev.reevaluate or modes[0] in ("runs", "run_dir"), "reevaluate", "true",
          f"scores finished runs again; it goes with run_dirs=[...] / multirun_dir=..., not with {given[0][1]}")
    return modes[0]
