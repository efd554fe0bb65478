"""A run loaded for the demo: its EngramModel (base + LoRA + memory, one load: the base answer is the same model
inside `memories_off()`), the facts it was trained on, a few general prompts and a summary of its config."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from engram.data import build_splits
from engram.demo.gates import Comparison, compare, layer_name
from engram.evaluation.retention import load_general_prompts
from engram.models.engram_model import EngramModel, run_model_config
from engram.models.loading import load_model
from engram.tracking.run_dirs import metric_columns, read_run

# config key -> label in the summary (what a viewer needs to read the comparison)
SUMMARY_KEYS = {
    "model": "model.name", "variant": "variant.name", "hash": "engram.hash", "address": "engram.address",
    "gate": "engram.gate", "layers": "engram.layers", "rows per head": "engram.table_size",
    "data": "data.family", "facts trained": "data.num_train",
}
SUMMARY_METRICS = {"exact_match_seen": "recall of trained facts (eval)", "retention": "retention (eval)",
                   "knockout_seen": "recall with memories off"}


@dataclass
class DemoRun:
    model: EngramModel
    tokenizer: Any
    source: Path  # the run dir (or engram.safetensors) given
    prompt_format: str = "chat"
    max_new_tokens: int = 24
    facts: list[dict[str, Any]] = field(default_factory=list)  # the trained (prompt, answer) records
    summary: dict[str, str] = field(default_factory=dict)

    @property
    def layers(self) -> list[int]:
        return self.model.layers

    @property
    def depth(self) -> int:
        return len(self.model.lm.model.layers)

    def layer_names(self) -> dict[int, str]:
        return {layer: layer_name(layer, self.depth) for layer in self.layers}

    def find_layer(self, choice: str) -> int | None:
        """The memory layer named `choice` ("3", "layer 3" or "final"), None when there is no memory there."""
        names = {name.removeprefix("layer "): layer for layer, name in self.layer_names().items()}
        return names.get(choice.strip().removeprefix("layer ").strip())

    def ask(self, prompt: str, label: str = "typed") -> Comparison:
        return compare(self.model, self.tokenizer, prompt, self.prompt_format, self.max_new_tokens, label)


def load_demo(source: Path, max_new_tokens: int | None = None) -> DemoRun:
    """The run dir (or engram.safetensors inside one) with its base model, adapter and memory loaded."""
    source = Path(source)
    run_dir = source if source.is_dir() else source.parent
    base, tokenizer = load_model(run_model_config(run_dir))
    model = EngramModel.from_pretrained(source, base, tokenizer)
    run = read_run(run_dir)
    cfg = run.cfg if run.cfg is not None else OmegaConf.create({})
    data = OmegaConf.select(cfg, "data")
    facts = _trained_facts(data)
    summary = {label: _show(OmegaConf.select(cfg, key, default=None)) for label, key in SUMMARY_KEYS.items()}
    summary = {k: v for k, v in summary.items() if v}
    for col, label in SUMMARY_METRICS.items():
        value = metric_columns(run.metrics).get(col)
        if value is not None:
            summary[label] = f"{100 * float(value):.0f}%"
    new_tokens = max_new_tokens or int(OmegaConf.select(cfg, "eval_max_new_tokens", default=24) or 24)
    return DemoRun(model, tokenizer, source, str(OmegaConf.select(cfg, "data.prompt_format", default="chat")),
                   new_tokens, facts, summary)


def general_prompts(n: int) -> list[str]:
    """The first `n` single-turn general prompts (engram/evaluation/general_prompts.yaml)."""
    single = [p["messages"][0]["content"] for p in load_general_prompts() if len(p["messages"]) == 1]
    return single[:n]


def example_prompts(run: DemoRun, n_facts: int = 3, n_general: int = 2) -> list[tuple[str, str]]:
    """(prompt, label): a few trained facts and a few general prompts that are not trained facts (where the
    memory should stay shut); the default set of a recording and of report.py's gallery."""
    taught = {str(f["prompt"]).strip() for f in run.facts}
    general = [p for p in general_prompts(n_general + len(taught)) if p.strip() not in taught][:n_general]
    return [(str(f["prompt"]), "trained fact") for f in run.facts[:n_facts]] + [(p, "general") for p in general]


def _trained_facts(data: Any) -> list[dict[str, Any]]:
    """The run's training records, rebuilt from its data config (deterministic in data.seed); [] when the data
    cannot be rebuilt here (e.g. a JSONL file that is not on this machine)."""
    if data is None:
        return []
    try:
        return [dict(r) for r in build_splits(data)["train"]]
    except (OSError, ValueError):
        return []


def _show(value: Any) -> str:
    if value is None:
        return ""
    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value)
    return str(value).replace(" ", "") if isinstance(value, list) else str(value)
