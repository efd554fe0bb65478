"""The tables of the fact-memory pages (recall, editing, paraphrase, six_way, experiments), each built from its
files under experiments/results/ (tools/docs_tables.py puts them into the pages)."""

from __future__ import annotations

from pathlib import Path

from tools.docs_tables import by_label, count, csv_rows, fixed, markdown, md_metrics, md_table, pct, read_json, table

R = "experiments/results/"


@table("recall.table_size", R + "recall_table_smollm/results.csv")
def recall_table_size(results: Path) -> str:
    rows = sorted(csv_rows(results), key=lambda r: int(r["table_size"]))
    return markdown(["rows per head", "seen", "unseen", "retention", "trainable params", "wall s"],
                    [[count(r["table_size"]), pct(r["exact_match_seen"]), pct(r["exact_match_unseen"]),
                      pct(r["retention"]), count(r["trainable_params"]), count(r["wall_s"])] for r in rows],
                    "rrrrrr")


@table("experiments.table_sweep", R + "table_sweep_smollm/results.csv")
def experiments_table_sweep(results: Path) -> str:
    rows = []
    for r in csv_rows(results):
        name = "baseline" if r["variant"] == "baseline" else f"engram, {count(r['table_size'])} slots"
        gate = "-" if not r["gate_mean"] else f"{fixed(r['gate_mean'], 2)} ({pct(r['gate_open_frac'])})"
        rows.append([name, f"{pct(r['exact_match'])} ({pct(r['exact_match_seen'])} / {pct(r['exact_match_unseen'])})",
                     fixed(r["eval_loss"], 2), pct(r["retention"]), count(r["trainable_params"]), gate])
    rows.sort(key=lambda row: row[0] != "baseline")
    return markdown(["job", "exact match (seen / unseen)", "eval loss", "retention", "trainable params",
                     "gate mean (open)"], rows)


# ---------------------------------------------------------------- recall: the default run and its references

DEFAULT_ARMS = R + "default_run_arms/"
DEFAULT_ARM_NAMES = {"baseline": "baseline (untrained SmolLM2, `variant=baseline`)", "deepseek": "`engram=deepseek`",
                     "recall": "`engram=recall`"}


def run_time(metrics: dict, info: dict) -> str:
    """`time/total_s` (model load to saved results), then the parts a run has: cache fill, write, training."""
    parts = [f"{name} {count(metrics[key])} s" for name, key in (("cache", "time/prefix_cache_s"),
                                                                 ("write", "time/prepopulate_s"))
             if key in metrics]
    if info["global_step"]:
        parts.append(f"train {count(metrics['time/train_s'])} s")
    return f"{count(metrics['time/total_s'])} s" + (f": {', '.join(parts)}" if parts else "")


@table("recall.default_run", *(DEFAULT_ARMS + f"{arm}/eval.json" for arm in DEFAULT_ARM_NAMES))
def recall_default_run(*evals: Path) -> str:
    rows = []
    for name, path in zip(DEFAULT_ARM_NAMES.values(), evals, strict=True):
        record = read_json(path)
        m, info = record["metrics"], record["info"]
        steps = f" ({info['global_step']} steps)" if info["global_step"] else ""
        rows.append([name + steps, *(pct(m.get(k)) for k in ("eval/exact_match", "eval/exact_match_seen",
                     "eval/exact_match_unseen", "eval/retention", "knockout/exact_match_seen",
                     "paraphrase/exact_match_seen")), run_time(m, info)])
    seen, unseen = count(m["eval/num_seen"]), count(m["eval/num_unseen"])
    return markdown(["", "exact match", f"seen ({seen})", f"unseen ({unseen})", "retention", "knock-out (seen)",
                     "paraphrases (seen)", "time"], rows, "lrrrrrrl")


@table("recall.mechanisms", R + "recall_retention/results.csv")
def recall_mechanisms(results: Path) -> str:
    hashes, addresses = ("answer", "span"), ("fingerprint", "written", "hashed")
    jobs = sorted(csv_rows(results), key=lambda r: (hashes.index(r["hash"]), addresses.index(r["address"])))
    rows = [[r["hash"], r["address"], pct(r["exact_match_seen"]), pct(r["exact_match_unseen"]), pct(r["retention"]),
             pct(r["knockout_seen"]), f"{fixed(r['entering_facts'], 2)} / {fixed(r['entering_general'], 3)}",
             pct(r["lost_rows"]), f"{count(r['write_s'])} s", f"{count(r['wall_s'])} s"] for r in jobs]
    return markdown(["hash", "address", "seen", "unseen", "retention", "knock-out (seen)",
                     "memory entering: facts / general", "facts with a lost row", "write", "total"], rows,
                    "llrrrrrrrr")


# ---------------------------------------------------------------- editing: writing facts batch after batch

WRITE = R + "write_facts_1000/"
WRITE_ARMS = {"question": "memory (`engram=question`, the judge)",
              "question_words": "memory, the words deciding (`engram.question.judge=words`)",
              "recall": "GRACE-like (`engram=recall`)", "lora": "LoRA (10 epochs per batch)"}


@table("editing.sequential", *(WRITE + f"{arm}/sequential.json" for arm in WRITE_ARMS))
def editing_sequential(*curves: Path) -> str:
    """One row per batch and arm; an arm that stopped early has fewer rows."""
    rows = []
    arms = {name: read_json(path)["points"] for name, path in zip(WRITE_ARMS.values(), curves, strict=True)}
    for batch in range(max(len(points) for points in arms.values())):
        for name, points in arms.items():
            if batch < len(points):
                p = points[batch]
                rows.append([count(p["facts"]), name, f"{pct(p['recall_all'])} / {pct(p['recall_first'])}",
                             f"{pct(p['rewordings'])} (of {p['rewordings_n']})",
                             f"{pct(p['neighbors'])} (of {p['neighbors_n']})", pct(p["locality_tf"]),
                             f"{fixed(p['teach_s'], 0)} s"])
    return markdown(["facts taught", "arm", "recall: all so far / first batch", "rewordings", "neighbours as the base",
                     "locality tf", "teaching"], rows, "llrrrrr")


FINISHED = ("question", "question_words", "recall", "lora")  # the arms that ran to their final evaluation


@table("editing.final", *(WRITE + f"{arm}/eval.json" for arm in FINISHED))
def editing_final(*evals: Path) -> str:
    """The final evaluation of each arm that finished."""
    rows = []
    for name, path in zip((WRITE_ARMS[arm] for arm in FINISHED), evals, strict=True):
        m = read_json(path)["metrics"]
        rows.append([name, pct(m["edit/efficacy"]),
                     *(f"{pct(m[f'edit/{k}'])} ({pct(m[f'edit/{k}_tf'])})"
                       for k in ("generalization", "neighbors", "locality")),
                     pct(m["eval/retention"]), pct(m["eval/exact_match_unseen"]),
                     pct(m["knockout/exact_match_seen"]) if "knockout/exact_match_seen" in m else "-"])
    return markdown(["", "efficacy", "generalisation (tf)", "neighbours (tf)", "locality (tf)", "retention",
                     "unseen facts", "knock-out"], rows)


GATED = R + "gated_lora/"
GATED_ARMS = {"lora": "lora (`variant=lora`)", "gated_lora": "gated_lora",
              "gated_lora_replay": "gated_lora + `train.replay_ratio=0.5`"}


@table("editing.gated_lora", *(GATED + f"{arm}/eval.json" for arm in GATED_ARMS))
def editing_gated_lora(*evals: Path) -> str:
    rows = []
    for name, path in zip(GATED_ARMS.values(), evals, strict=True):
        m = read_json(path)["metrics"]
        gate = "-" if "gate/general" not in m else \
            f"{fixed(m['gate/answer_seen'], 3)} / {fixed(m['gate/prompt_seen'], 3)}, {fixed(m['gate/general'], 3)}"
        rows.append([name, *(pct(m[k]) for k in ("eval/exact_match", "eval/exact_match_seen", "eval/exact_match_unseen",
                                                 "eval/retention", "paraphrase/exact_match_seen", "edit/efficacy_tf",
                                                 "edit/locality_tf")),
                     count(m["eval/latency_ms"]), gate, f"{count(m['time/train_s'])} s / {count(m['time/total_s'])} s"])
    seen, unseen = count(m["eval/num_seen"]), count(m["eval/num_unseen"])
    return markdown(["variant", "exact match", f"seen ({seen})", f"unseen ({unseen})", "retention", "paraphrase (seen)",
                     "efficacy tf", "locality tf", "ms/answer", "gate: answers / prompts (seen), general",
                     "training / total"], rows, "lrrrrrrrrrr")


# ---------------------------------------------------------------- paraphrase: keys that survive rewording

DEFAULT_RUN = R + "default_run/eval.md"


def metric(metrics: dict[str, str], prefix: str) -> tuple[str, str]:
    """(value, the count in brackets) of the eval.md metric named `prefix (n)`."""
    for name, value in metrics.items():
        if name.startswith(prefix + " ("):
            return value, name[len(prefix) + 2:-1]
    raise KeyError(prefix)


@table("paraphrase.default", DEFAULT_RUN)
def paraphrase_default(eval_md: Path) -> str:
    m = md_metrics(eval_md)
    seen, unseen = metric(m, "seen"), metric(m, "unseen")
    rewordings = metric(m, "paraphrases of seen facts")
    neighbours = metric(m, "neighbour questions answered as the base")
    return markdown(["metric", "`engram=question` (default)"], [
        [f"taught facts (seen, {seen[1]})", seen[0]],
        [f"facts never taught (unseen, {unseen[1]})", unseen[0]],
        [f"rewordings of taught facts ({rewordings[1]}, two per fact, never trained)", rewordings[0]],
        [f"neighbour questions answered as the base model ({neighbours[1]})", neighbours[0]],
        ["general prompts answered as the base model (retention)", m["retention (general prompts)"]],
    ], "lr")


FAMILY_RUNS = {
    "`exact_match` (the default run above)": DEFAULT_RUN,
    "`entity` (fictional people, 3 facts each)": R + "question_families/entity_eval.md",
    "`user_prefs` (preferences of fictional users, 3 each)": R + "question_families/user_prefs_eval.md",
    "a hand-written JSONL file (`experiments/results/paraphrase_jsonl/`)": R + "paraphrase_jsonl/eval.md",
}


@table("paraphrase.families", *FAMILY_RUNS.values())
def paraphrase_families(*eval_mds: Path) -> str:
    rows = []
    for name, path in zip(FAMILY_RUNS, eval_mds, strict=True):
        m = md_metrics(path)
        seen, rewordings = metric(m, "seen"), metric(m, "paraphrases of seen facts")
        neighbours = metric(m, "neighbour questions answered as the base")
        rows.append([name, f"{seen[0]} (of {seen[1]})", f"{rewordings[0]} (of {rewordings[1]})",
                     f"{neighbours[0]} (of {neighbours[1]})", m["retention (general prompts)"]])
    return markdown(["data", "taught (seen)", "rewordings", "neighbour questions as the base", "retention"], rows,
                    "lrrrr")


JUDGE = R + "question_judge/"


def judge_readings(paths: tuple[Path, ...], total: str) -> str:
    """Per fact file: rewordings read and neighbours firing, the words against the judge without and with aliases."""
    readings = [read_json(path)["sets"] for path in paths]

    def cells(r: dict) -> list[str]:
        return [f"{pct(r['rewordings_read'] / r['rewordings'])} ({r['rewordings_read']}/{r['rewordings']})",
                f"{pct(r['neighbors_fired'] / r['neighbors'])} ({r['neighbors_fired']}/{r['neighbors']})"]

    rows, totals = [], [dict.fromkeys(("rewordings", "rewordings_read", "neighbors", "neighbors_fired"), 0)
                        for _ in readings]
    for name in readings[-1]:
        rows.append([f"`{Path(name).stem}`", *(c for reading in readings for c in cells(reading[name]))])
        for sums, reading in zip(totals, readings, strict=True):
            for k in sums:
                sums[k] += reading[name][k]
    rows.append([f"**{total}**", *(c for sums in totals for c in cells(sums))])
    header = [f"{arm}: {what}" for arm in ("words", "judge, every name word", "judge (shipped)")
              for what in ("rewordings read", "neighbours firing")]
    return markdown(["fact file", *header], rows, "l" + "r" * len(header))


@table("paraphrase.judge_heldout", JUDGE + "heldout_words.json", JUDGE + "heldout_judge_every_name.json",
       JUDGE + "heldout_judge.json")
def paraphrase_judge_heldout(words: Path, every_name: Path, judge: Path) -> str:
    """The six held-out fact files."""
    return judge_readings((words, every_name, judge), "all six")


@table("paraphrase.judge_readonce", JUDGE + "readonce_words.json", JUDGE + "readonce_judge_every_name.json",
       JUDGE + "readonce_judge.json")
def paraphrase_judge_readonce(words: Path, every_name: Path, judge: Path) -> str:
    """The six fact files written after the judge was trained."""
    return judge_readings((words, every_name, judge), "all six written after")


# ---------------------------------------------------------------- six-way comparison

SIX_WAY = R + "six_way/"
COMPARED = ("Seen", "Unseen", "Paraphrase", "Retention", "Efficacy tf", "Locality tf")
COMPARED_HEADER = ["seen (10)", "unseen (10)", "paraphrase (seen)", "retention", "efficacy tf", "locality tf"]


def six_way(comparison: Path, results: Path) -> str:
    wall = by_label(csv_rows(results))
    rows = [[r["Variant"], *(r[k] for k in COMPARED), r["Trainable params"], count(wall[r["Variant"]]["wall_s"])]
            for r in md_table(comparison, "Variant")]
    return markdown(["row", *COMPARED_HEADER, "trainable", "total s"], rows, "lrrrrrrrr")


@table("six_way.entity", SIX_WAY + "comparison_entity.md", SIX_WAY + "entity/results.csv")
def six_way_entity(comparison: Path, results: Path) -> str:
    return six_way(comparison, results)


@table("six_way.user_prefs", SIX_WAY + "comparison_user_prefs.md", SIX_WAY + "user_prefs/results.csv")
def six_way_user_prefs(comparison: Path, results: Path) -> str:
    return six_way(comparison, results)


@table("six_way.hybrid_gain1", SIX_WAY + "comparison_hybrid_gain1_entity.md",
       SIX_WAY + "comparison_hybrid_gain1_user_prefs.md")
def six_way_hybrid_gain1(entity: Path, user_prefs: Path) -> str:
    rows = []
    for family, path in (("entity", entity), ("user_prefs", user_prefs)):
        (row,) = md_table(path, "Variant")
        rows.append([f"data={family}", *(row[k] for k in COMPARED)])
    return markdown(["engram_hybrid, gain 1", *COMPARED_HEADER], rows, "lrrrrrr")


# ---------------------------------------------------------------- editing: keys that survive rewording

FIRING = ("neighbors", "general", "unseen")


@table("editing.key_routes", R + "key_routes/key_routes.json")
def editing_key_routes(record: Path) -> str:
    data = read_json(record)
    rows = []
    for name, r in data["routes"].items():
        at_limit, best = r["at_limit"], r["best"]
        label = f"**{name}**" if name == data["winner"] else name
        threshold = "none fires" if at_limit["threshold"] is None else fixed(at_limit["threshold"], 3)
        gain = ("abstains" if best["threshold"] is None
                else f"{pct(best['rewordings'])} / {pct(best['neighbors'])}")
        rows.append([label, pct(r["top1"]), threshold, pct(at_limit["rewordings"]),
                     " / ".join(pct(at_limit[k]) for k in FIRING), gain])
    return markdown(["route", "top-1", "(i) threshold", "(i) rewordings", "(i) neighbours / general / unseen firing",
                     "(ii) rewordings / neighbours firing"], rows, "lrrrrr")
