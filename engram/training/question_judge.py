"""Train the question judge of `engram.question.judge=model` (engram/models/question_judge.py) on fact files.

    python -m engram.training.question_judge [--jsonl FILE ...] [--model smollm] [--out FILE]

Each fact of a file in the documented JSONL format gives pairs of questions: its question with each of its
"paraphrases" (the same question: 1), with each of its "neighbors" (another question about the same entity: 0) and
with two that ask something else entirely (another fact's question, a generated general prompt: 0), names replaced
by "X" as the memory's reader finds them. A seeded share of the facts is held back; the threshold is
the lowest probability at which at most `--max-firing` of their neighbours would fire, and is saved in the adapter
with the held-back facts' shares and the base model's fingerprint. Default data: engram/data/question_pairs/ (fact
files written by hand for this, none of them a file the docs evaluate on).
"""

from __future__ import annotations

import argparse
import hashlib
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import torch
from tqdm import tqdm

from engram.data.families.jsonl import read_jsonl
from engram.data.replay import replay_prompts
from engram.memory.hashes._question import QuestionReader
from engram.memory.judged import masked_text
from engram.models.engram_model import format_templates
from engram.models.loading import load_model
from engram.models.question_judge import SHIPPED, QuestionJudge, base_fingerprint

CORPUS = Path(__file__).resolve().parent.parent / "data" / "question_pairs"
GENERAL_SEED = 1000  # data seed of the general prompts trained on as "not the same" (the docs' runs use others)


class Pair(NamedTuple):
    taught: str  # the taught question, names masked
    other: str  # another question, names masked
    same: int  # 1: it asks the same thing
    kind: str  # rewording | neighbour | unrelated (another fact's question, or a general prompt)


def masker(reader: QuestionReader) -> Callable[[str], str]:
    """A question's text with its names replaced by X, as the memory's reader finds them."""
    return lambda text: masked_text(text, reader(reader.tokenizer.encode(text, add_special_tokens=False)))


def fact_pairs(records: list[dict[str, Any]], reader: QuestionReader) -> list[list[Pair]]:
    """Per fact: its (taught, rewording, same) and (taught, neighbour, not) pairs, names masked."""
    masked = masker(reader)
    out = []
    for r in records:
        taught = masked(str(r["prompt"]))
        out.append([Pair(taught, masked(p), 1, "rewording") for p in r.get("paraphrases") or []]
                   + [Pair(taught, masked(n), 0, "neighbour") for n in r.get("neighbors") or []])
    return [pairs for pairs in out if pairs]


def with_unrelated(facts: list[list[Pair]], reader: QuestionReader, rng: random.Random) -> list[list[Pair]]:
    """Each fact's pairs plus two that ask something else entirely: another fact's question, and a generated general
    prompt (engram/data/replay.py, never a retention prompt: "What is 15 plus 27?" is no "Which element has atomic
    number 15?" though it names 15)."""
    masked = masker(reader)
    general = [masked(p) for p in replay_prompts(len(facts), GENERAL_SEED)]
    out = []
    for i, pairs in enumerate(facts):
        other = facts[(i + 1 + rng.randrange(len(facts) - 1)) % len(facts)][0].taught if len(facts) > 1 else None
        extra = [Pair(pairs[0].taught, general[i], 0, "unrelated")]
        extra += [Pair(pairs[0].taught, other, 0, "unrelated")] if other is not None else []
        out.append(pairs + extra)
    return out


def calibrate(judge: QuestionJudge, pairs: list[Pair], max_firing: float) -> dict[str, float]:
    """The lowest threshold at which at most `max_firing` of the held-back neighbours fire (at least 0.5), and the
    shares it gives."""
    probs = judge([(p.taught, p.other) for p in pairs])
    scores: dict[str, list[float]] = {"rewording": [], "neighbour": [], "unrelated": []}
    for prob, pair in zip(probs, pairs, strict=True):
        scores[pair.kind].append(prob)

    def firing(kind: str) -> float:
        return sum(s >= threshold for s in scores[kind]) / max(1, len(scores[kind]))

    other = sorted(scores["neighbour"], reverse=True)
    allowed = int(max_firing * len(other))
    threshold = max(0.5, min(0.99, other[allowed] + 1e-6)) if len(other) > allowed else 0.5
    return {"threshold": threshold, "held_back_rewordings_read": firing("rewording"),
            "held_back_neighbours_firing": firing("neighbour"), "held_back_unrelated_firing": firing("unrelated")}


def family_facts(family: str, n: int, seed: int) -> list[dict[str, Any]]:
    """`n` facts of a generated data family with their rewordings and neighbour questions (its eval split, all
    taught; `seed` picks them: not the seed the docs' runs use)."""
    from omegaconf import OmegaConf

    from engram.config.schema import DataConfig
    from engram.data import build_splits

    cfg = {"family": family, "num_train": n, "num_eval": n, "eval_seen_fraction": 1.0, "seed": seed}
    return build_splits(OmegaConf.merge(OmegaConf.structured(DataConfig), cfg))["eval"]


def train_judge(model_name: str, sources: dict[str, list[dict[str, Any]]], out: Path, *, epochs: int = 3,
                rank: int = 16, alpha: int = 32, lr: float = 2e-4, batch: int = 16, seed: int = 0,
                held_back: float = 0.15, max_firing: float = 0.04, progress: bool = True) -> dict[str, Any]:
    """Train, calibrate and save a judge for `model_name`'s base model on the facts of `sources` (name -> records);
    returns the info saved with it."""
    model, tokenizer = load_model(model_name)
    reader = QuestionReader(tokenizer, format_templates(tokenizer), synonyms=True)
    rng = random.Random(seed)
    facts = with_unrelated([pairs for records in sources.values() for pairs in fact_pairs(records, reader)], reader,
                           rng)
    rng.shuffle(facts)
    cut = max(1, int(round(held_back * len(facts)))) if held_back > 0 else 0
    train = [p for pairs in facts[cut:] for p in pairs]
    valid = [p for pairs in facts[:cut] for p in pairs]
    judge = QuestionJudge.fresh(model.model, tokenizer, rank, alpha, seed)
    for p in model.parameters():
        p.requires_grad_(False)
    optimizer = torch.optim.AdamW(judge.parameters(), lr=lr)
    judge.body.train()
    bar = tqdm(total=epochs * ((len(train) + batch - 1) // batch), desc="question judge", disable=not progress)
    for _ in range(epochs):
        rng.shuffle(train)
        for i in range(0, len(train), batch):
            chunk = train[i:i + batch]
            target = torch.tensor([float(p.same) for p in chunk], device=judge.head.weight.device)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                judge.logits([(p.taught, p.other) for p in chunk]), target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            bar.update(1)
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
    bar.close()
    judge.body.eval()
    info: dict[str, Any] = calibrate(judge, valid, max_firing) if valid else {"threshold": 0.5}
    info |= {"base": base_fingerprint(model.model), "model": model_name, "lora_rank": rank, "lora_alpha": alpha,
             "epochs": epochs, "lr": lr, "batch": batch, "seed": seed, "held_back": held_back,
             "max_firing": max_firing, "pairs": len(train), "held_back_pairs": len(valid),
             "sources": {name: len(records) for name, records in sources.items()}}
    judge.save(out, info)
    return info


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jsonl", type=Path, action="append", help="a fact file with paraphrases and neighbors; "
                    "repeatable (default: every file of engram/data/question_pairs/)")
    ap.add_argument("--family", action="append", help="a generated data family whose rewordings and neighbour "
                    "questions are trained on too; repeatable (default: exact_match, entity, user_prefs)")
    ap.add_argument("--family-facts", type=int, default=30, help="facts taken from each --family")
    ap.add_argument("--family-seed", type=int, default=1000, help="data.seed of the --family facts")
    ap.add_argument("--model", default="smollm", help="the base model (model.name): smollm, tiny, a path")
    ap.add_argument("--out", type=Path, help="the adapter file (default: the shipped one for smollm)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--rank", type=int, default=16, help="LoRA rank of the adapter")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-firing", type=float, default=0.04,
                    help="share of held-back neighbours allowed to fire at the calibrated threshold")
    args = ap.parse_args(argv)
    files = args.jsonl or sorted(CORPUS.glob("*.jsonl"))
    for f in files:
        if not f.is_file():
            ap.error(f"--jsonl {f}: no such file")
    if not 0 <= args.max_firing < 1:
        ap.error(f"--max-firing {args.max_firing}: must be in [0, 1)")
    if args.epochs < 1 or args.rank < 1:
        ap.error("--epochs and --rank must be >= 1")
    out = args.out or SHIPPED / f"{args.model}.safetensors"
    sources = {f"{f.name} ({hashlib.sha256(f.read_bytes()).hexdigest()[:12]})": read_jsonl(f) for f in files}
    for family in ["exact_match", "entity", "user_prefs"] if args.family is None else args.family:
        if family:
            sources[f"data={family} seed {args.family_seed}"] = family_facts(family, args.family_facts,
                                                                            args.family_seed)
    info = train_judge(args.model, sources, out, epochs=args.epochs, rank=args.rank, alpha=2 * args.rank,
                       seed=args.seed, max_firing=args.max_firing)
    print(f"{out}: threshold {info['threshold']:.3f}; held back: "
          f"{info.get('held_back_rewordings_read', float('nan')):.1%} of rewordings read, "
          f"{info.get('held_back_neighbours_firing', float('nan')):.1%} of neighbours firing")
    return info


if __name__ == "__main__":
    main()
