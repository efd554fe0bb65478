"""How the question key reads a fact set, without the model: for each data set, the share of the taught facts'
rewordings that read their own fact and the share of neighbour questions (untaught questions about taught entities)
that fire, exactly as engram.hash=question decides at engram.question.threshold. The key reads words only
(engram/memory/questions.py), so this takes seconds where a training run takes minutes: the loop for changing how
questions are read. Only the tokenizer is loaded (its vocabulary says which words are common).

    python benchmarks/question_reading.py                                  # the generated families, SmolLM2's tokenizer
    python benchmarks/question_reading.py --jsonl my_facts.jsonl --show    # a fact file, with every miss listed
    python benchmarks/question_reading.py --num-train 1000 --num-eval 250 --seen 0.8   # the write_facts record's data
    python benchmarks/question_reading.py --judge model --families '' --jsonl my_facts.jsonl   # the model judges

A rewording counts when its best match is its own fact and scores at least the threshold; a neighbour fires when
its best match scores at least the threshold. Writes question_reading.json beside the printed table with --out.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/question_reading.py` from anywhere

FAMILIES = ("exact_match", "entity", "user_prefs")


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm", help="whose tokenizer reads the prompts (default smollm)")
    ap.add_argument("--families", default=",".join(FAMILIES), help="generated families, comma-separated ('' = none)")
    ap.add_argument("--jsonl", type=Path, action="append", default=[], help="a fact file (JSONL); repeatable")
    ap.add_argument("--num-train", type=int, default=500, help="taught facts per family (default 500)")
    ap.add_argument("--num-eval", type=int, default=100, help="eval facts per family (default 100)")
    ap.add_argument("--seen", type=float, default=0.5, help="share of the eval facts that are taught (default 0.5)")
    ap.add_argument("--seed", type=int, default=0, help="data seed")
    ap.add_argument("--threshold", type=float, default=0.45, help="engram.question.threshold (default 0.45)")
    ap.add_argument("--judge", choices=("words", "model"), default="words",
                    help="engram.question.judge: model loads the base model and its shipped judge (minutes)")
    ap.add_argument("--judge-path", type=Path, help="engram.question.judge_path (default: the shipped adapter)")
    ap.add_argument("--judge-threshold", type=float, help="engram.question.judge_threshold (default: calibrated)")
    ap.add_argument("--no-aliases", action="store_true", help="engram.question.aliases=false (judge=model)")
    ap.add_argument("--no-synonyms", action="store_true", help="engram.question.synonyms=false")
    ap.add_argument("--show", action="store_true", help="list every missed rewording and firing neighbour")
    ap.add_argument("--out", type=Path, help="write question_reading.json into this dir")
    return ap.parse_args(argv)


def data_sets(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """name -> the data config of each set to read."""
    sets: dict[str, dict[str, Any]] = {}
    for family in filter(None, args.families.split(",")):
        sets[f"{family} {args.num_train}/{args.num_eval} seed {args.seed}"] = {
            "family": family, "num_train": args.num_train, "num_eval": args.num_eval, "seed": args.seed,
            "eval_seen_fraction": args.seen}
    for path in args.jsonl:  # every fact taught: the file is its own test file
        sets[str(path)] = {"family": "jsonl", "path": str(path), "test_path": str(path)}
    return sets


@dataclass
class FactQueries:
    """What a fact set asks of a key: its taught records, the rewordings of taught facts (each with the position of
    its own fact among the taught records, None when it has none) and the neighbour questions not themselves taught."""

    train: list[dict]
    rewordings: list[dict]
    own_facts: list[int | None]
    neighbours: list[dict]


def fact_queries(splits: dict[str, list[dict]]) -> FactQueries:
    train = splits["train"]
    own = {(str(r["key"]), str(r["answer"])): i for i, r in enumerate(train)}
    rewordings = [r for r in splits.get("paraphrase", []) if r.get("seen")]
    taught = {str(r["prompt"]) for r in train}
    return FactQueries(train, rewordings, [own.get((str(r["key"]), str(r["answer"]))) for r in rewordings],
                       [r for r in splits.get("neighbor", []) if str(r["prompt"]) not in taught])


def read_set(splits: dict[str, list[dict]], read: Any, threshold: float, judge: Any = None,
             aliases: bool = True) -> dict[str, Any]:
    """Rewordings that read their own fact and neighbours that fire, with the prompts of every miss / firing.
    `judge`: engram.question.judge=model's judge (then `threshold` is its min probability); None: the words.
    `aliases`: engram.question.aliases (with a judge)."""
    from engram.memory.judged import JudgedIndex
    from engram.memory.questions import QuestionIndex

    asked = fact_queries(splits)
    train, rewordings, neighbours = asked.train, asked.rewordings, asked.neighbours
    index = QuestionIndex(threshold) if judge is None else JudgedIndex(threshold, judge, aliases)
    for key, (r, question) in enumerate(zip(train, read([str(r["prompt"]) for r in train]), strict=True)):
        index.add(question, key, str(r["prompt"]))

    def matches(records: list[dict]) -> list[int | None]:  # a judge is asked once for the whole set
        prompts = [str(r["prompt"]) for r in records]
        return index.match_many(read(prompts), [-1] * len(prompts), prompts)

    missed = [[str(r["prompt"]), str(train[fact]["prompt"]) if fact is not None else ""]
              for r, fact, key in zip(rewordings, asked.own_facts, matches(rewordings), strict=True) if key != fact]
    fired = [[str(r["prompt"]), str(train[key]["prompt"])]
             for r, key in zip(neighbours, matches(neighbours), strict=True) if key is not None]
    return {"rewordings": len(rewordings), "rewordings_read": len(rewordings) - len(missed), "missed": missed,
            "neighbors": len(neighbours), "neighbors_fired": len(fired), "fired": fired}


def share(part: int, whole: int) -> str:
    return f"{part / whole:.1%} ({part}/{whole})" if whole else "-"


def main(argv: list[str] | None = None) -> dict[str, dict[str, Any]]:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from omegaconf import OmegaConf

    from benchmarks.key_route_scores import LexicalReader
    from engram.config.rules import ConfigError
    from engram.config.schema import DataConfig
    from engram.data import build_splits
    from engram.data.families.jsonl import JsonlFormatError
    from engram.models.loading import load_model

    try:  # every set read before the model loads: a bad family or fact file is one line, at once
        splits_of = {name: build_splits(OmegaConf.merge(OmegaConf.structured(DataConfig), over))
                     for name, over in data_sets(args).items()}
    except (ConfigError, JsonlFormatError) as e:
        sys.exit(f"question_reading.py: {e}")
    model, tokenizer = load_model(args.model)
    reader = LexicalReader(tokenizer, "chat", synonyms=not args.no_synonyms)
    judge, threshold = None, args.threshold
    if args.judge == "model":
        from engram.models.question_judge import load_judge

        judge, info = load_judge(model.model, tokenizer, args.judge_path)
        threshold = info["threshold"] if args.judge_threshold is None else args.judge_threshold
        print(f"judged by the model (threshold {threshold:.3f})\n")

    def read(prompts: list[str]) -> list[Any]:
        return reader.read(prompts) if prompts else []

    results = {}
    print("| data | rewordings read as their fact | neighbours firing |\n|---|---:|---:|")
    for name, splits in splits_of.items():
        results[name] = r = read_set(splits, read, threshold, judge, not args.no_aliases)
        print(f"| {name} | {share(r['rewordings_read'], r['rewordings'])} | "
              f"{share(r['neighbors_fired'], r['neighbors'])} |")
        if args.show:
            for prompt, taught in r["missed"]:
                print(f"    missed: {prompt!r} (taught: {taught!r})")
            for prompt, taught in r["fired"]:
                print(f"    fired:  {prompt!r} -> {taught!r}")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        settings = {k: (str(v) if isinstance(v, Path) else [str(p) for p in v] if k == "jsonl" else v)
                    for k, v in vars(args).items() if k != "out"}
        settings["threshold_used"] = threshold  # the words' threshold, or the judge's probability threshold
        (args.out / "question_reading.json").write_text(json.dumps({"settings": settings, "sets": results},
                                                                   indent=1))
    return results


if __name__ == "__main__":
    main()
