"""A run loaded for the demo: its EngramModel (base + LoRA + memory, one load: the base answer is the same model
inside `memories_off()`), the facts it was trained on, a few general prompts and a summary of its config.

A language-model run (its data family declares `language_model = True`, e.g. data=text) has no facts: its examples
are the openings of held-out (test-split) documents, continued as raw text (no chat template)."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from engram.data import build_splits, is_language_model
from engram.demo.gates import RAW_TEXT, Comparison, compare, layer_name
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
# a text run: "facts trained" (data.num_train) means nothing there; eval.json's info says what was trained on
TEXT_SKIPPED = ("facts trained",)
TEXT_METRICS = {"lm/ppl": "perplexity (test)", "lm/ppl_base": "base model perplexity",
                "lm/ppl_knockout": "perplexity with memories off"}
FACT_LABEL, TEXT_LABEL = "trained fact", "held-out text"
OPENING_TOKENS = (30, 60)  # a held-out opening: up to 60 tokens, cut at the last whitespace after the 30th
N_OPENINGS = 8


@dataclass
class DemoRun:
    model: EngramModel
    tokenizer: Any
    source: Path  # the run dir (or engram.safetensors) given
    prompt_format: str = "chat"
    max_new_tokens: int = 24
    facts: list[dict[str, Any]] = field(default_factory=list)  # the trained (prompt, answer) records
    summary: dict[str, str] = field(default_factory=dict)
    language_model: bool = False  # trained on raw text (data=text): no facts, prompts continued as written
    held_out: list[dict[str, Any]] = field(default_factory=list)  # text runs: test documents' openings + their rest

    @property
    def examples(self) -> list[dict[str, Any]]:
        """The numbered examples (each a "prompt" and what should follow it, "answer"): trained facts, or the
        openings of held-out documents for a language-model run."""
        return self.held_out if self.language_model else self.facts

    @property
    def example_label(self) -> str:
        return TEXT_LABEL if self.language_model else FACT_LABEL

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
    text = is_language_model(OmegaConf.select(cfg, "data.family", default=None))
    splits = _splits(data)
    summary = {label: _show(OmegaConf.select(cfg, key, default=None)) for label, key in SUMMARY_KEYS.items()}
    summary = {k: v for k, v in summary.items() if v and not (text and k in TEXT_SKIPPED)}
    if text:
        summary.update(text_summary(cfg, (run.result or {}).get("info", {})))
        summary.update({label: f"{float(run.metrics[key]):.2f}" for key, label in TEXT_METRICS.items()
                        if run.metrics.get(key) is not None})
    for col, label in SUMMARY_METRICS.items():
        value = metric_columns(run.metrics).get(col)
        if value is not None:
            summary[label] = f"{100 * float(value):.0f}%"
    new_tokens = max_new_tokens or int(OmegaConf.select(cfg, "eval_max_new_tokens", default=24) or 24)
    prompt_format = RAW_TEXT if text else str(OmegaConf.select(cfg, "data.prompt_format", default="chat"))
    facts = [] if text else [dict(r) for r in splits.get("train", [])]  # a text run's documents are not facts
    held_out = openings(tokenizer, splits.get("test", [])) if text else []
    return DemoRun(model, tokenizer, source, prompt_format, new_tokens, facts, summary, text, held_out)


def text_summary(cfg: Any, info: dict[str, Any]) -> dict[str, str]:
    """What a text run was trained on: the corpus (eval.json's, else the config's) and its training tokens."""
    corpus = info.get("corpus") or {}
    source = corpus.get("source") or OmegaConf.select(cfg, "data.path", default=None) \
        or OmegaConf.select(cfg, "data.corpus", default=None)
    out = {"corpus": str(source)} if source else {}
    if info.get("num_train") is not None:  # a text run's num_train counts tokens
        out["tokens trained"] = f"{int(info['num_train']):,}"
    return out


def openings(tokenizer: Any, records: list[dict[str, Any]], n: int = N_OPENINGS) -> list[dict[str, Any]]:
    """The openings of the first `n` documents of `records` (the test split: never trained on), the sources taken in
    turn (stdlib: prose and code), each cut at a whitespace so the models continue from a word's end; "answer" is
    how the document really goes on."""
    by_source: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_source.setdefault(str(r.get("category", "")), []).append(r)
    mixed = [r for turn in zip_longest(*by_source.values()) for r in turn if r is not None]
    out = []
    for r in mixed[:n]:
        text = str(r["answer"])  # a text record's document is its answer (its prompt is "")
        ids = tokenizer(text[: 20 * OPENING_TOKENS[1]], add_special_tokens=False)["input_ids"]
        shortest = len(tokenizer.decode(ids[: OPENING_TOKENS[0]]))
        head = tokenizer.decode(ids[: OPENING_TOKENS[1]])
        if not text.startswith(head):  # a tokenizer that does not decode to the exact text: cut by characters
            head, shortest = text[: 4 * OPENING_TOKENS[1]], 4 * OPENING_TOKENS[0]
        cut = max((i for i, ch in enumerate(head) if ch.isspace() and i >= shortest), default=len(head))
        opening = head[:cut].rstrip()
        if opening.strip():
            out.append({"prompt": opening, "answer": text[len(opening):][:200], "key": r.get("key", "")})
    return out


def general_prompts(n: int) -> list[str]:
    """The first `n` single-turn general prompts (engram/evaluation/general_prompts.yaml)."""
    single = [p["messages"][0]["content"] for p in load_general_prompts() if len(p["messages"]) == 1]
    return single[:n]


def example_prompts(run: DemoRun, n_facts: int = 3, n_general: int = 2) -> list[tuple[str, str]]:
    """(prompt, label): a few trained facts and a few general prompts that are not trained facts (where the
    memory should stay shut); the default set of a recording and of report.py's gallery."""
    taught = {str(f["prompt"]).strip() for f in run.facts}
    general = [p for p in general_prompts(n_general + len(taught)) if p.strip() not in taught][:n_general]
    return ([(str(f["prompt"]), run.example_label) for f in run.examples[:n_facts]]
            + [(p, "general") for p in general])


def _splits(data: Any) -> dict[str, list[Any]]:
    """The run's records by split, rebuilt from its data config (deterministic in data.seed); {} when the data
    cannot be rebuilt here (e.g. a JSONL file or a text corpus that is not on this machine)."""
    if data is None:
        return {}
    try:
        return build_splits(data)
    except (OSError, ValueError):  # ConfigError is a ValueError: a data.path that is gone
        return {}


def _show(value: Any) -> str:
    if value is None:
        return ""
    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value)
    return str(value).replace(" ", "") if isinstance(value, list) else str(value)
