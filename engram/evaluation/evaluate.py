"""The comparison (up to six rows on the same eval split: baseline, LoRA, gated LoRA, Engram, hybrid Engram,
combined; `ROW_ORDER`) and re-evaluation of trained weights: a run dir, or a saved memory (`engram_path=`) put onto
a fresh base model and scored on any data family.

Every mode ends in the same files: comparison.json + comparison.md (comparison) or eval.json + eval.md (one model).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import wandb
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from peft import PeftModel

from engram import registry
from engram.config import ROW_ORDER, validate, validate_evaluate_keys
from engram.config.rules import evaluate_mode, from_scratch
from engram.data import is_language_model
from engram.data.datamodule import EngramDataModule
from engram.data.text_blocks import TextDataModule
from engram.evaluation.lm_eval import evaluate_text
from engram.evaluation.metrics import consistency_from_rows
from engram.evaluation.perplexity import score_blocks
from engram.evaluation.retention import base_answers
from engram.evaluation.scoring import RETENTION_BATCH, evaluate_and_save, neighbor_references
from engram.models.engram_model import EngramModel, run_model_config
from engram.models.gated_lora import GatedLoRAModel
from engram.models.loading import load_model
from engram.models.params import count_parameters
from engram.tracking.run_dirs import RunDir, find_job_dirs, metric_columns, read_config, read_run
from engram.tracking.wandb import prepare_wandb_env
from engram.variants.common import variant_spec

log = logging.getLogger(__name__)

# evaluate.py passes engram.training.comparison.train_variants here (evaluation never imports training)
TrainVariants = Callable[[DictConfig, Path, list[str]], list[RunDir]]


class EvaluateError(ValueError):
    """A comparison that would mislead (e.g. different eval splits) or has nothing to compare; one line."""


# ---------------------------------------------------------------- collecting trained runs


def runs_from(run_dirs: list[str] | None, multirun_dir: str | None) -> list[RunDir]:
    dirs = [Path(d) for d in run_dirs or []]
    if multirun_dir:
        dirs += find_job_dirs([multirun_dir])
    if not dirs:
        raise EvaluateError("evaluate: no run dirs (give run_dirs=[...] or multirun_dir=..., or train_variants=true)")
    missing = [str(d) for d in dirs if not d.is_dir()]
    if missing:
        raise EvaluateError(f"evaluate: run dir(s) not found: {', '.join(missing)}")
    return [read_run(d) for d in dirs]


def split_signature(result: dict[str, Any]) -> tuple[tuple[str, str, bool], ...]:
    return tuple(sorted((str(r["prompt"]), str(r["expected"]), bool(r.get("seen"))) for r in result["examples"]))


def check_same_split(runs: list[RunDir]) -> int:
    """All finished runs were scored on the same eval prompts (else the comparison is meaningless); their count."""
    done = [r for r in runs if r.result]
    signatures = {split_signature(r.result) for r in done}
    if len(signatures) > 1:
        sizes = ", ".join(f"{r.variant}={len(r.result['examples'])}" for r in done)
        raise EvaluateError(f"evaluate: the runs were scored on different eval splits ({sizes} examples); "
                            "use the same data config for every variant")
    return len(done[0].result["examples"]) if done else 0


# ---------------------------------------------------------------- the comparison table


def comparison_row(run: RunDir) -> dict[str, Any]:
    row: dict[str, Any] = {"variant": run.variant, "run_dir": str(run.run_dir), "status": "ok" if run.result else
                           "failed", "error": run.error}
    if not run.result:
        return row
    m = run.metrics
    row.update(metric_columns(m, keep_missing=True))
    row["per_category"] = {c: v.get("exact_match") for c, v in (run.result.get("per_category") or {}).items()}
    family = run.result.get("info", {}).get("data")
    consistency = m.get("eval/consistency")
    if consistency is None and family in registry.names("family") and registry.attribute(
            "family", family, "paraphrased", False):
        consistency = consistency_from_rows(run.result.get("examples", []))
    row["consistency"] = consistency
    return row


# editing-metric columns of the comparison table (shown when any row has them)
EDIT_HEADERS = (("efficacy_tf", "Efficacy tf"), ("generalization", "Paraphrase"),
                ("generalization_tf", "Paraphrase tf"), ("neighbors", "Neighbours"), ("neighbors_tf", "Neighbours tf"),
                ("locality_tf", "Locality tf"))


def _pct(v: Any) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * float(v):.1f}%"


def comparison_markdown(rows: list[dict[str, Any]], title: str, n_examples: int) -> str:
    cats = sorted({c for r in rows for c in (r.get("per_category") or {})})
    show_consistency = any(r.get("consistency") is not None for r in rows)
    edits = [(col, name) for col, name in EDIT_HEADERS if any(r.get(col) is not None for r in rows)]
    head = ["Variant", "Exact match", "Seen", "Unseen", *cats, "Retention", *(name for _, name in edits)]
    head += ["Consistency"] if show_consistency else []
    head += ["ms/answer", "Trainable params"]
    lines = [f"# {title}", "", f"All variants scored on the same {n_examples} eval prompts (greedy decoding, exact "
             "match after stripping whitespace). Retention: share of ~50 general prompts answered as the untrained "
             "base model did. Editing metrics (engram/evaluation/editing.py): tf = teacher-forced token accuracy; "
             "paraphrase = trained facts asked in other words; neighbours = untaught questions about the taught "
             "entities answered as the base model answers them; locality tf = the base model's general answers, "
             "token by token.", "", "| " + " | ".join(head) + " |",
             "|---|" + "|".join("---:" for _ in head[1:]) + "|"]
    for r in rows:
        if r["status"] != "ok":
            lines.append("| " + " | ".join([r["variant"], "failed", *["-"] * (len(head) - 2)]) + " |")
            continue
        cells = [r["variant"], _pct(r["exact_match"]), _pct(r["exact_match_seen"]), _pct(r["exact_match_unseen"])]
        cells += [_pct(r["per_category"].get(c)) for c in cats] + [_pct(r["retention"])]
        cells += [_pct(r.get(col)) for col, _ in edits]
        cells += [_pct(r["consistency"])] if show_consistency else []
        cells += [f"{r['latency_ms']:.1f}" if r.get("latency_ms") is not None else "-",
                  f"{int(r['trainable_params']):,}" if r.get("trainable_params") is not None else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    failed = [r for r in rows if r["status"] != "ok"]
    if failed:
        lines += ["", "Failed:", ""] + [f"- {r['variant']} (`{r['run_dir']}`): {r['error']}" for r in failed]
    return "\n".join(lines) + "\n"


def write_comparison(runs: list[RunDir], out_dir: Path, title: str = "Comparison",
                     check_split: bool = True) -> dict[str, Any]:
    """comparison.json + comparison.md in out_dir, rows in ROW_ORDER (baseline, lora, gated_lora, engram,
    engram_hybrid, combined; other variants after them)."""
    order = {v: i for i, v in enumerate(ROW_ORDER)}
    runs = sorted(runs, key=lambda r: order.get(r.variant, len(order)))
    n = check_same_split(runs) if check_split else 0
    rows = [comparison_row(r) for r in runs]
    names = [r["variant"] for r in rows]
    for r in rows:  # e.g. a multirun over variant x table_size: tell the rows apart
        if names.count(r["variant"]) > 1:
            r["variant"] = f"{r['variant']} ({Path(r['run_dir']).name})"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "comparison.json").write_text(json.dumps({"title": title, "num_examples": n, "rows": rows},
                                                        indent=1, default=str))
    (out_dir / "comparison.md").write_text(comparison_markdown(rows, title, n))
    return {"rows": rows, "json": out_dir / "comparison.json", "markdown": out_dir / "comparison.md"}


def log_comparison_table(cfg: Any, rows: list[dict[str, Any]], out_dir: Path) -> None:
    """The comparison as a `wandb.Table` in its own run of the experiment's group (job_type and table key keep the
    name `four_way`, which W&B dashboards already read)."""
    if OmegaConf.select(cfg, "logger.name") != "wandb":
        return
    mode = str(cfg.logger.get("mode") or "offline")
    prepare_wandb_env(mode, out_dir)
    cols = ["variant", "exact_match", "exact_match_seen", "exact_match_unseen", "retention", "efficacy_tf",
            "generalization", "generalization_tf", "neighbors", "neighbors_tf", "locality_tf", "consistency",
            "latency_ms", "trainable_params", "status"]
    run = wandb.init(project=cfg.logger.get("project") or "engram-lab", group=cfg.experiment_name, mode=mode,
                     job_type="four_way", name=f"four_way-{cfg.experiment_name}", dir=str(out_dir),
                     tags=["four_way", f"model:{cfg.model.name}", f"data:{cfg.data.family}"])
    run.log({"four_way/comparison": wandb.Table(columns=cols, data=[[r.get(c) for c in cols] for r in rows])})
    run.finish()


# ---------------------------------------------------------------- re-evaluating saved weights


def load_weights(model: Any, tokenizer: Any, run_dir: Path | None, variant: str, engram_path: Path | None) -> Any:
    """The trained pieces onto a freshly loaded base: LoRA adapter (peft) first, then the memory, as in training."""
    wrappers = variant_spec(variant).wrappers() if run_dir is not None else ()
    if "gate" in wrappers:
        return GatedLoRAModel.from_pretrained(run_dir, model)  # adapter + gate, eval mode
    if "lora" in wrappers:
        model = PeftModel.from_pretrained(model, str(run_dir / "lora_adapter"))
    if "engram" in wrappers:
        engram_path = engram_path or run_dir / "engram.safetensors"
    if engram_path is not None:
        model = EngramModel.from_pretrained(engram_path, model, tokenizer, adapter=False)  # LoRA, if any, is on
    model.eval()
    return model


def evaluate_model(cfg: Any, out_dir: Path, run_dir: Path | None = None, variant: str = "baseline",
                   engram_path: Path | None = None) -> dict[str, float]:
    """Load the base model of cfg.model, add the saved weights, score it on cfg.data; eval.json + eval.md. A model
    trained from scratch is the run's own (its trained weights, on its training data's vocabulary)."""
    scratch = run_dir is not None and from_scratch(str(cfg.model.name))
    model, tokenizer = load_model(run_model_config(run_dir) if scratch else cfg.model)
    if is_language_model(cfg.data.family):
        return evaluate_text_model(cfg, out_dir, model, tokenizer, run_dir, variant, engram_path)
    dm = EngramDataModule(cfg.data, tokenizer)
    base = base_answers(model, tokenizer, int(cfg.eval_max_new_tokens), RETENTION_BATCH)
    base_neighbors = neighbor_references(model, tokenizer, dm, cfg)  # the base's own replies, before the weights
    base_params = count_parameters(model)["total"]  # params/trainable: what training added (nothing trains here)
    model = load_weights(model, tokenizer, run_dir, variant, engram_path)
    info = {"variant": variant, "model": cfg.model.name, "data": cfg.data.family,
            "num_train": len(dm.train_records),  # the split seen/unseen is decided against
            "experiment": cfg.experiment_name, "evaluated_from": str(run_dir or engram_path)}
    outcome = evaluate_and_save(model, tokenizer, dm, cfg, out_dir, info, base, base_params=base_params,
                                title=f"{variant} from {run_dir or engram_path} on {cfg.data.family}",
                                base_neighbors=base_neighbors)
    return outcome.metrics


def evaluate_text_model(cfg: Any, out_dir: Path, model: Any, tokenizer: Any, run_dir: Path | None, variant: str,
                        engram_path: Path | None) -> dict[str, float]:
    """evaluate_model for data=text: perplexity of the base, then of the saved weights, on cfg.data's test split."""
    dm = TextDataModule(cfg.data, tokenizer)
    base = score_blocks(model, dm.loader("test"), desc="perplexity (base)")
    model = load_weights(model, tokenizer, run_dir, variant, engram_path)
    info = {"variant": variant, "model": cfg.model.name, "data": cfg.data.family, "num_train": dm.num_train_tokens,
            "experiment": cfg.experiment_name, "evaluated_from": str(run_dir or engram_path)}
    title = f"{variant} from {run_dir or engram_path} on {cfg.data.path or cfg.data.corpus}"
    return evaluate_text(model, dm, cfg, out_dir, info, base, title=title, unchanged=variant == "baseline").metrics


def run_config(run_dir: Path) -> DictConfig:
    cfg = read_config(run_dir)
    if cfg is None:
        raise EvaluateError(f"evaluate: {run_dir} is not a run dir (no .hydra/config.yaml)")
    return cfg


def reevaluate_run(run_dir: Path, out_dir: Path, data: Any = None) -> RunDir:
    """A trained run dir scored again from its saved weights (on its own data config unless `data` is given)."""
    cfg = validate(run_config(run_dir))
    if data is not None:
        cfg.data = data
    evaluate_model(cfg, out_dir, run_dir=run_dir, variant=cfg.variant.name)
    return read_run(out_dir)


# ---------------------------------------------------------------- evaluate.py


def output_dir(cfg: DictConfig) -> Path:
    if cfg.get("output_dir"):
        return Path(cfg.output_dir)
    if HydraConfig.initialized() and HydraConfig.get().runtime.get("output_dir"):
        return Path(HydraConfig.get().runtime.output_dir)
    return Path("outputs") / str(cfg.get("experiment_name", "default")) / "evaluate"


def user_overrode(*groups: str) -> bool:
    """Did the command line set this group (or an experiment, which sets groups)? False outside Hydra."""
    if not HydraConfig.initialized():
        return False
    keys = [o.split("=", 1)[0].lstrip("+~") for o in HydraConfig.get().overrides.task]
    wanted = (*groups, "experiment")
    return any(k == g or k.startswith(g + ".") for k in keys for g in wanted)


def run(cfg: DictConfig, typed: DictConfig, train_variants: TrainVariants | None = None) -> dict[str, Any]:
    """What evaluate.py does with its config (`cfg`: raw, for the evaluate keys; `typed`: validated).
    `train_variants` trains the variants for train_variants=true (the training layer's, given by evaluate.py).
    The mode is engram.config.rules.evaluate_mode's: exactly one, else ConfigError (one line) before anything loads."""
    out = output_dir(cfg)
    ev = validate_evaluate_keys(cfg)  # evaluate.py checked them already; a direct caller gets the same rules
    mode = evaluate_mode(ev)
    if mode == "runs":
        runs = runs_from(list(ev.run_dirs), ev.multirun_dir)
        if ev.reevaluate:
            data = typed.data if user_overrode("data") else None
            runs = [reevaluate_run(r.run_dir, out / f"{i}-{r.variant}", data) if r.result else r
                    for i, r in enumerate(runs)]
    elif mode == "train_variants":
        if train_variants is None:
            raise EvaluateError("evaluate: train_variants=true needs a train_variants function (evaluate.py passes "
                                "training's)")
        runs = train_variants(typed, out / "runs", [str(v) for v in ev.variants])
    elif mode == "engram_path":
        path = Path(ev.engram_path)
        if not path.exists():
            raise EvaluateError(f"evaluate: engram_path={path} does not exist")
        if not user_overrode("model") and (path if path.is_dir() else path.parent).joinpath(".hydra").is_dir():
            typed.model = validate(run_config(path if path.is_dir() else path.parent)).model  # its base model
        return {"metrics": evaluate_model(typed, out, variant="engram", engram_path=path), "dir": out}
    else:  # run_dir
        again = reevaluate_run(Path(ev.run_dir), out, typed.data if user_overrode("data") else None)
        return {"metrics": again.result["metrics"] if again.result else {}, "dir": out}
    info = next((r.result["info"] for r in runs if r.result), {})
    title = (f"Comparison of {len(runs)} variants: {info.get('experiment', typed.experiment_name)} · "
             f"{info.get('model', '?')} · {info.get('data', '?')} ({info.get('num_train', '?')} train)")
    result = write_comparison(runs, out, title, check_split=bool(ev.check_split))
    log_comparison_table(typed, result["rows"], out)
    print(result["markdown"].read_text())
    print(f"comparison: {result['markdown']}")
    return {**result, "dir": out}
