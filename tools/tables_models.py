"""The tables of the model pages (long_recall, language_modelling, compression, performance), each built from its
files under experiments/results/ (tools/docs_tables.py puts them into the pages)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tools.docs_tables import by_label, change, count, csv_rows, fixed, markdown, pct, read_json, sig, table

R = "experiments/results/"


@table("long_recall.arms", R + "long_recall/results.csv")
def long_recall_arms(results: Path) -> str:
    names = {"arm=windowed": "windowed (128)", "arm=windowed_engram": "windowed (128) + Engram",
             "arm=full": "full attention", "arm=windowed, fixed_facts=False": "control (fresh facts): windowed",
             "arm=windowed_engram, fixed_facts=False": "control: windowed + Engram",
             "arm=full, fixed_facts=False": "control: full attention"}
    return recall_by_distance(results, names)


@table("long_recall.induction", R + "long_recall_induction/results.csv")
def long_recall_induction(results: Path) -> str:
    return recall_by_distance(results, {"arm=windowed_engram": "fresh facts, long warm-up: windowed (128) + Engram",
                                        "arm=full": "fresh facts, long warm-up: full attention"})


@table("long_recall.in_context", R + "long_recall_in_context/results.csv")
def long_recall_in_context(results: Path) -> str:
    return recall_by_distance(results, {"arm=windowed": "windowed (128)",
                                        "arm=windowed_engram": "windowed (128) + Engram", "arm=full": "full attention"})


def recall_by_distance(results: Path, names: dict[str, str]) -> str:
    """Recall per distraction length of each arm (in the order of `names`), its knock-out, eval loss and time."""
    rows = sorted(csv_rows(results), key=lambda r: list(names).index(r["label"]))
    lengths = sorted((c for c in rows[0] if c.startswith("cat/distraction_")), key=lambda c: int(c.rsplit("_", 1)[1]))
    body = [[names[r["label"]], *(pct(r[c]) for c in lengths), pct(r.get("knockout_seen")), sig(r["eval_loss"]),
             count(r["wall_s"])] for r in rows]
    return markdown(["arm", *(c.rsplit("_", 1)[1] for c in lengths), "knock-out", "eval loss", "wall s"], body)


# ---------------------------------------------------------------- language modelling

LM_ARMS = {"arm=lm_base": "frozen base", "arm=lm_lora": "LoRA, equal size", "arm=lm_engram": "paper's memory",
           "arm=lm_capacity1": "control: one row per head", "arm=lm_shuffled": "control: shuffled keys"}


@table("language_modelling.frozen", R + "lm_frozen/results.csv")
def lm_frozen(results: Path) -> str:
    rows = []
    for r in csv_rows(results):
        base = r["variant"] == "baseline"
        rows.append([LM_ARMS[r["label"]], fixed(r["lm_ppl"], 3), fixed(r["lm_bpb"], 4),
                     "-" if base else change(r["lm_ppl_change"]), fixed(r["lm_ppl_knockout"], 3),
                     count(r["trainable_params"]), count(r["wall_s"])])
    return markdown(["arm", "test ppl", "bits/byte", "vs base", "memory off", "trainable params", "wall s"], rows,
                    "lrrrrrr")


LEVERS = {"arm=lm_engram": "paper's memory, tables lr 1.5e-2 (the study's)",
          "arm=lm_capacity1": "control: one row per head",
          "arm=lm_engram, lr_multiplier=50": "paper's memory, tables lr 0.15",
          "arm=lm_engram, layers=[1,15]": "paper's memory",
          "arm=lm_capacity1, layers=[1,15], num_tokens=98304": "control: one row per head",
          "arm=lm_engram, layers=[1,15], num_tokens=196608": "paper's memory",
          "arm=lm_capacity1, layers=[1,15], num_tokens=196608": "control: one row per head",
          "arm=lm_engram, layers=[1,15], num_tokens=393216": "paper's memory",
          "arm=lm_capacity1, layers=[1,15], num_tokens=393216": "control: one row per head",
          "arm=lm_lora, r=71": "LoRA of the two-layer memory's size (r = 71)"}


@table("language_modelling.levers", R + "lm_frozen/results.csv", R + "lm_frozen_levers/results.csv")
def lm_levers(frozen: Path, levers: Path) -> str:
    """The study's layer-1 arms at 1x beside the levers tried on them (another tables' lr, a second layer)."""
    rows = [r for r in csv_rows(frozen) if r["label"] in LEVERS] + csv_rows(levers)
    lora = [r for r in rows if r["variant"] == "lora"]  # last, beside the memories: it has no memory layers
    rows = sorted((r for r in rows if r["variant"] != "lora"),
                  key=lambda r: (r["layers"].count(","), int(r["num_tokens"]), list(LEVERS).index(r["label"])))
    body = [[LEVERS[r["label"]], "every linear" if r["variant"] == "lora" else r["layers"], count(r["num_tokens"]),
             ppl_and_change(r), "-" if r["variant"] == "lora" else fixed(r["lm_ppl_knockout"], 3),
             count(r["trainable_params"]), count(r["wall_s"])] for r in rows + lora]
    return markdown(["arm", "layers", "training tokens", "test ppl (vs base)", "memory off", "trainable params",
                     "wall s"], body, "lllrrrr")


UNSEEN = {"arm=lm_base": "frozen base", "arm=lm_lora": "LoRA, equal size (r = 35)",
          "arm=lm_engram": "paper's memory, layer 1", "arm=lm_engram, layers=[1,15]": "paper's memory, layers [1, 15]",
          "arm=lm_capacity1": "control: one row per head", "arm=lm_shuffled": "control: shuffled keys"}


@table("language_modelling.unseen", R + "lm_frozen_de/results.csv", R + "lm_frozen_de_2x/results.csv")
def lm_unseen(*records: Path) -> str:
    """The study's arms on a corpus through data.path that the base model has hardly seen (German), one record per
    amount of text."""
    rows = [r for record in records for r in sorted(csv_rows(record), key=lambda r: list(UNSEEN).index(r["label"]))]
    body = [[UNSEEN[r["label"]], count(r["num_tokens"]), fixed(r["lm_ppl"], 3), fixed(r["lm_bpb"], 4),
             "-" if r["variant"] == "baseline" else change(r["lm_ppl_change"]),
             fixed(r["lm_ppl_knockout"], 3) if r["variant"] == "engram" else "-", count(r["trainable_params"]),
             count(r["wall_s"])] for r in rows]
    return markdown(["arm", "training tokens", "test ppl", "bits/byte", "vs base", "memory off", "trainable params",
                     "wall s"], body, "lrrrrrrr")


def ppl_and_change(row: dict[str, str]) -> str:
    return f"{fixed(row['lm_ppl'], 3)} ({change(row['lm_ppl_change'])})"


@table("language_modelling.data_scale", R + "lm_slots/results.csv", R + "lm_frozen/results.csv",
       R + "lm_frozen_196k/results.csv", R + "lm_frozen_393k/results.csv", R + "lm_frozen_393k_controls/results.csv")
def lm_data_scale(slots: Path, frozen: Path, frozen_196k: Path, frozen_393k: Path, controls_393k: Path) -> str:
    small = by_label(csv_rows(slots))["table_size=10000"]
    rows = [[f"{count(small['num_tokens'])} (lm_slots, 10^4 rows)", ppl_and_change(small), "-", "-", "-"]]
    for paths in ((frozen,), (frozen_196k,), (frozen_393k, controls_393k)):  # the 4x arms ran as two sweeps
        arms = {label: row for path in paths for label, row in by_label(csv_rows(path)).items()}
        memory, control, lora = arms["arm=lm_engram"], arms.get("arm=lm_capacity1"), arms.get("arm=lm_lora")
        gap = "-"
        if control is not None:
            points = (float(memory["lm_ppl_change"]) - float(control["lm_ppl_change"])) * 100
            gap = f"{abs(points):.1f} points for {'the control' if points > 0 else 'the memory'}"
        rows.append([count(memory["num_tokens"]), ppl_and_change(memory),
                     "not run" if control is None else ppl_and_change(control), gap,
                     "not run" if lora is None else ppl_and_change(lora)])
    return markdown(["training tokens", "paper's memory (20 000 rows per head)", "one row per head", "difference",
                     "LoRA, equal size"], rows, "rrrrr")


@table("language_modelling.slots", R + "lm_slots_24k/results.csv", R + "lm_slots/results.csv",
       R + "lm_slots_98k/results.csv", R + "lm_slots_393k/results.csv", R + "lm_slots_393k_10k/results.csv",
       R + "lm_slots_393k_100k/results.csv")
def lm_slots(*records: Path) -> str:
    """One row per table size, a test-ppl column per data scale (the records of one scale merged)."""
    by_scale: dict[int, dict[int, dict[str, str]]] = {}
    for record in records:
        for r in csv_rows(record):
            by_scale.setdefault(int(r["num_tokens"]), {})[int(r["table_size"])] = r
    scales = [by_scale[tokens] for tokens in sorted(by_scale)]
    sizes = sorted(set().union(*scales))
    base = fixed(scales[0][sizes[0]]["lm_ppl_base"], 3)
    body = [[decades(size), f"{float(next(s[size] for s in scales if size in s)['trainable_params']) / 1e6:.1f} M",
             *(f"{fixed(scale[size]['lm_ppl'], 3)} ({change(scale[size]['lm_ppl_change'], 2)})" if size in scale
               else "not run" for scale in scales)] for size in sizes]
    heads = [f"test ppl, {count(tokens)} tokens (vs base {base})" for tokens in sorted(by_scale)]
    return markdown(["rows per head", "trainable params", *heads], body, "r" * (2 + len(scales)))


@table("language_modelling.slots_repeat", R + "lm_slots_393k/results.csv", R + "lm_slots_393k_repeat/results.csv")
def lm_slots_repeat(*records: Path) -> str:
    """The slots sweep's two ends at one data scale, a row per run of the same config (one record each), with the
    slope between them."""
    body = []
    for name, record in zip(("first", "repeat"), records, strict=True):
        by_size = {int(r["table_size"]): r for r in csv_rows(record)}
        fewest, most = min(by_size), max(by_size)
        slope = (float(by_size[most]["lm_loss"]) - float(by_size[fewest]["lm_loss"])) / math.log10(most / fewest)
        body.append([name, ppl_and_change(by_size[fewest]), ppl_and_change(by_size[most]), f"{slope:+.4f}"])
    return markdown(["run", f"{decades(fewest)} rows per head: test ppl", f"{decades(most)} rows per head: test ppl",
                     "slope (nats per 10x slots)"], body, "lrrr")


@table("language_modelling.lora_sizes", R + "lm_slots_98k/results.csv", R + "lm_slots_lora_small/results.csv",
       R + "lm_slots_393k/results.csv")
def lm_lora_sizes(memories: Path, loras: Path, memories_4x: Path) -> str:
    """The slots sweep's memories beside LoRA of about the smallest one's size, by trainable parameters: the same
    recipe (lm_slots) and text; the memories at 4x that text below them."""
    rows = sorted(csv_rows(memories) + csv_rows(loras), key=lambda r: float(r["trainable_params"]))
    rows += sorted(csv_rows(memories_4x), key=lambda r: float(r["trainable_params"]))
    body = [[f"LoRA r = {override(r, 'lora.r')}, every linear" if r["variant"] == "lora"
             else f"paper's memory, {decades(int(r['table_size']))} rows per head", count(r["trainable_params"]),
             count(r["num_tokens"]), ppl_and_change(r), fixed(r["lm_bpb"], 4), count(r["wall_s"])] for r in rows]
    return markdown(["arm", "trainable params", "training tokens", "test ppl (vs base)", "bits/byte", "wall s"], body,
                    "lrrrrr")


def override(row: dict[str, str], key: str) -> str:
    """The value a results row's job set `key` to on its command line (`+arm`, `lora.r`)."""
    return next(o.split("=", 1)[1] for o in row["overrides"].split() if o.split("=", 1)[0] == key)


def decades(rows: int) -> str:
    """A table size as a power of ten: 10^3."""
    return f"10^{round(math.log10(rows))}"


# ---------------------------------------------------------------- semantic compression


def per_k(values: list[float], unit: str, digits: int = 1) -> str:
    """One cell for the k values of a setting: 0.0 / 0.0 / 19.8%."""
    return " / ".join(f"{v:.{digits}f}" for v in values) + unit


@table("compression.sweep", R + "compress_sweep/compress.json")
def compression_sweep(record: Path) -> str:
    data = read_json(record)
    rows = data["rows"]
    out = []
    bounds = {"full": "full document in context (upper bound)", "none": "no document (lower bound)"}
    for r in rows:
        if r["condition"] in bounds:
            ratio = "-" if r["compression_ratio"] is None else f"{r['compression_ratio']:.0f}x"
            out.append([bounds[r["condition"]], "-", "-", "-", f"{r['exact_match'] * 100:.1f}%",
                        f"{r['token_accuracy'] * 100:.1f}%", ratio, f"{r['tokens_per_answer']:.1f}"])
    settings = list(dict.fromkeys((r["layer"], r["pooling"]) for r in rows if r["condition"] == "engram"))
    for layer, pooling in settings:
        group = sorted((r for r in rows if r["condition"] == "engram" and (r["layer"], r["pooling"]) ==
                        (layer, pooling)), key=lambda r: r["k"])
        out.append(["engram", str(layer), " / ".join(str(r["k"]) for r in group),
                    "learned head" if pooling == "head" else pooling,
                    per_k([r["exact_match"] * 100 for r in group], "%"),
                    per_k([r["token_accuracy"] * 100 for r in group], "%"),
                    " / ".join(f"{r['compression_ratio']:.1f}x" for r in group),
                    per_k([r["tokens_per_answer"] for r in group], "")])
    for r in rows:
        if r["condition"] == "retrieval":
            out.append([f"retrieval from the store ({data['info']['store_size']} engrams), then answer",
                        str(r["layer"]), str(r["k"]), r["pooling"], f"{r['exact_match'] * 100:.1f}%",
                        f"{r['token_accuracy'] * 100:.1f}%", f"{r['compression_ratio']:.1f}x",
                        f"{r['tokens_per_answer']:.1f}"])
    return markdown(["condition", "layer", "k", "pooling", "exact match", "token accuracy", "compression",
                     "tokens/answer"], out)


TRAINED = R + "compress_trained/"


@table("compression.trained", TRAINED + "kv_k16/compressor.json", TRAINED + "kv_k4/compressor.json",
       TRAINED + "kv_k1/compressor.json", TRAINED + "kv_k16_rerun/compressor.json",
       TRAINED + "kv_k16_pretrain/compressor.json",
       TRAINED + "kv_k16_autoencode/compressor.json", TRAINED + "kv_k16_autoencode_seed1/compressor.json",
       TRAINED + "kv_k4_autoencode/compressor.json",
       TRAINED + "kv_k16_autoencode_cloze/compressor.json", TRAINED + "kv_k64_autoencode/compressor.json",
       TRAINED + "embedding_k16_placements/compressor.json", TRAINED + "kv_k16_continuation/compressor.json")
def compression_trained(*records: Path) -> str:
    """Each trained compressor: its recipe (from its per-step losses), both document sets, retrieval."""
    rows = [dict(r, run=i) for i, record in enumerate(records) for r in read_json(record)]
    losses = [read_json(record.parent / "compressor_losses.json") for record in records]
    full = {r["docs"]: r for r in rows if r["condition"] == "full" and r["run"] == 0}
    none = {r["docs"]: r for r in rows if r["condition"] == "none" and r["run"] == 0}
    out = [[f"full document in context (bios / towns: {full['bios']['doc_tokens']:.0f} / "
            f"{full['towns']['doc_tokens']:.0f} tokens)", "-", "1x", pct(full["bios"]["exact_match"]), "100%",
            pct(full["towns"]["exact_match"]), "100%", "-", "-"],
           ["no document", "-", "-", pct(none["bios"]["exact_match"]), pct(none["bios"]["share_of_full"]),
            pct(none["towns"]["exact_match"]), pct(none["towns"]["share_of_full"]), "-", "-"]]
    for r in (r for r in rows if r["condition"] == "compressor" and r["docs"] == "bios"):
        setting = (r["run"], r["k"], r["carrier"], r["placement"])
        towns = next(x for x in rows if x["docs"] == "towns" and x["condition"] == "compressor" and
                     (x["run"], x["k"], x["carrier"], x["placement"]) == setting)
        found = next((x for x in rows if x["condition"] == "retrieval" and
                      (x["run"], x["k"], x["carrier"], x["placement"]) == setting), None)
        steps = losses[r["run"]][f"k{r['k']}/{r['carrier']}/{r['placement']}"]
        recipe = ", ".join(f"{name} {len(v)}" for name, v in steps.items() if v)
        seed = f", seed {r['seed']}" if r.get("seed") else ""  # the evaluated documents are the seed's own
        out.append([f"k = {r['k']}, {r['carrier']}, {r['placement']}{seed}", recipe,
                    f"{r['compression_ratio']:.1f}x / {towns['compression_ratio']:.1f}x",
                    pct(r["exact_match"]), pct(r["share_of_full"]), pct(towns["exact_match"]),
                    pct(towns["share_of_full"]),
                    "-" if found is None else f"{pct(found['exact_match'])} (hit {pct(found['retrieval_hit'])})",
                    f"{r['train_s'] / 60:.0f} min"])
    return markdown(["compressor", "steps", "compression (bios / towns)", "bios exact match", "share of full",
                     "towns exact match", "share of full", "retrieved (bios)", "training"], out)


# ---------------------------------------------------------------- performance


@table("performance.exact5k", R + "exact5k_fast/results.csv")
def performance_exact5k(results: Path) -> str:
    rows = sorted(csv_rows(results), key=lambda r: -float(r["wall_s"]))  # longest first, as the sweep runs them
    body = [[r["label"], "-" if not r["write_s"] else f"{count(r['write_s'])} s", f"{count(r['wall_s'])} s",
             pct(r["exact_match_seen"]), pct(r["exact_match_unseen"]), pct(r["retention"]),
             pct(r["knockout_seen"]), pct(r["lost_rows"])] for r in rows]
    return markdown(["variant", "write", "whole job", "seen", "unseen", "retention", "knock-out (seen)",
                     "facts with a lost row"], body)


def ratio(value: float | None) -> str:
    """A benchmark's ratio: 4 decimals below 10 (a ratio at its limit shows which side it is on), 1 decimal below
    100, whole numbers from 100 on, powers of ten below 0.001."""
    if value is None:
        return ""
    if value < 1e-3:
        return f"{value:.1e}"
    return f"{value:.4f}" if value < 10 else f"{value:.1f}" if value < 100 else f"{value:.0f}"


# targets whose label in an older record named the tracker; benchmarks/ prints the new label now
RENAMED = {"3 issue 8: same poc table, sparse, no cache / seed":
           "3 first comparison: same poc table, sparse, no cache / seed"}


def benchmark_rows(record: Path, keep: Callable[[dict[str, Any]], bool]) -> str:
    """The rows of a `benchmarks/run.py --json` record that `keep` selects, then the command and the machine."""
    data = read_json(record)
    info = data["info"]
    rows = [[RENAMED.get(r["target"], r["target"]), r["measured"], ratio(r["ratio"]), r["limit"], r["result"]]
            for r in data["rows"] if keep(r)]
    return (markdown(["target", "measured", "ratio", "limit", "result"], rows, "llrll") +
            f"\n\n`{info['command']}` (mode={info['mode']}, code at commit {info['commit']}, {info['total_s']} s, peak "
            f"RSS {info['peak_rss_gib']} GiB): {info['cpu']}, torch {info['torch']}, RAM {info['ram']}, load average "
            f"{info['load average']}.")


WINDOW_LONGEST = 8192


BESIDE_TARGETS = ("all-rows lookup time", "sharded vs unsharded outputs, float32")  # the page compares with these


def small_model_target(row: dict[str, Any]) -> bool:
    """A checked target (it has a limit), of the window part only the longest sequence; and the rows beside them."""
    if row["target"].startswith(BESIDE_TARGETS):
        return True
    if not row["limit"]:
        return False
    return not row["target"].startswith("6 ") or row["target"].endswith(f", {WINDOW_LONGEST} tokens")


@table("performance.small_models", R + "performance/window_hybrid_shard.json")
def performance_small_models(record: Path) -> str:
    return benchmark_rows(record, small_model_target)


def smollm_target(row: dict[str, Any]) -> bool:
    """A checked target, or a comparison beside one (it has a ratio); not the per-configuration timings."""
    return bool(row["limit"]) or row["ratio"] is not None


@table("performance.smollm", R + "performance/smollm_targets.json")
def performance_smollm(record: Path) -> str:
    return benchmark_rows(record, smollm_target)


@table("performance.offload", R + "performance/offload.json")
def performance_offload(record: Path) -> str:
    return benchmark_rows(record, lambda row: True)  # every row: the timings behind the ratios are the finding


# ---------------------------------------------------------------- the allocation study (from scratch)

ALLOCATION_ARMS = ("alloc_dense", "alloc_rho0", "alloc_rho10", "alloc_rho25", "alloc_rho50", "alloc_rho75",
                   "alloc_rho100")


@table("language_modelling.allocation", R + "lm_allocation/results.csv")
def lm_allocation(results: Path) -> str:
    """One row per arm: its accounting, and the test loss over its seeds (mean, lowest-highest)."""
    runs: dict[str, list[dict[str, str]]] = {}
    for r in csv_rows(results):
        arm = override(r, "+arm")
        runs.setdefault(arm, []).append(r)
    body = []
    for arm in (a for a in ALLOCATION_ARMS if a in runs):
        rows, first = runs[arm], runs[arm][0]
        table, idle = float(first["table_params"] or 0), float(first["idle_expert_params"] or 0)
        rho = "dense" if table + idle == 0 else f"{table / (table + idle):.2f}"
        losses = [float(r["lm_loss"]) for r in rows]
        spread = f"{min(losses):.4f}-{max(losses):.4f}" if len(losses) > 1 else "-"
        body.append([rho, first["experts"] or "0", f"{float(first['total_params']) / 1e6:.2f} M",
                     f"{float(first['active_params']) / 1e6:.3f} M", f"{float(first['flops_per_token']) / 1e6:.2f} M",
                     f"{sum(losses) / len(losses):.4f}", spread, str(len(losses))])
    return markdown(["rho", "experts", "total params", "active per token", "FLOPs per token", "test loss (mean)",
                     "seeds' range", "seeds"], body, "rrrrrrrr")
