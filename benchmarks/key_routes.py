"""Which key survives rewording: each key route's firing curve over its threshold, on SmolLM2 and
the project's own generated facts.

    OMP_NUM_THREADS=1 python benchmarks/key_routes.py                    # SmolLM2, ~5 min on one CPU thread
    python benchmarks/key_routes.py --model tiny --num-train 12 --out outputs/key_routes   # seconds

Taught: the train prompts of data families exact_match, entity and user_prefs (one shared memory). Queries:
  - rewordings: the "paraphrase" split of the seen eval facts; one counts when it fires on its own taught fact;
  - neighbours: the "neighbor" split (untaught questions about taught entities); must not fire;
  - general: generated general prompts (engram/data/replay.py, never the retention prompts); must not fire;
  - unseen: the unseen eval prompts (a taught template, an untaught entity); must not fire.
Other generated general prompts (another seed) calibrate: the per-dimension mean / std that standardise hidden
states, MEMOIR's background mean, the token IDF. Routes (benchmarks/key_route_scores.py):
  (c)  content keys with an abstain radius (GRACE, eps > 0): standardised cosine of the last prompt token's hidden
       state at a late layer, and of the question tokens' mean at a mid layer;
  (b)  MEMOIR: overlap of top-k masks of the decentred mean down-projection input of one decoder layer;
  (b') token alignment: BERTScore-like IDF-weighted recall over the question tokens' hidden states;
  (a)  lexical question keys, as engram.hash=question reads a prompt (engram/memory/questions.py), with and without
       the relation words' WordNet senses (engram.question.synonyms);
  (a)+(c) the lexical entity check, then the best cosine among the taught prompts that pass it.
Reported per route: (i) rewording recall at the lowest threshold where neighbours, general and unseen prompts each
fire on at most 5%; (ii) the threshold maximising rewording recall - neighbour firing. Thresholds are chosen on the
same prompts they are measured on, for every route alike. Also: per layer, how close rewordings and neighbours are
to their taught prompt. Writes key_routes.json, key_routes.md and key_routes.png into --out.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/key_routes.py` from anywhere

if TYPE_CHECKING:  # torch loads after the arguments parse: --help and bad flags answer at once
    import torch

FAMILIES = ("exact_match", "entity", "user_prefs")
NEGATIVES = ("neighbors", "general", "unseen")
EXAMPLES = 8  # missed rewordings and firing neighbours listed per route
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "experiments" / "results" / "key_routes"


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm", help="engram.models.loading.load_model name (default smollm)")
    ap.add_argument("--num-train", type=int, default=150, help="taught facts per family (default 150)")
    ap.add_argument("--num-eval", type=int, default=80, help="eval facts per family, half seen (default 80)")
    ap.add_argument("--general", type=int, default=200, help="general prompts to test, and as many to calibrate")
    ap.add_argument("--seed", type=int, default=0, help="data seed")
    ap.add_argument("--prompt-format", default="chat", choices=("chat", "plain"))
    ap.add_argument("--last-layers", type=ints, default=[27], help="(c) last token: hidden_states indices")
    ap.add_argument("--mean-layers", type=ints, default=[8], help="(c) question mean: hidden_states indices")
    ap.add_argument("--memoir-layers", type=ints, default=[8, 25], help="(b) decoder layers (down_proj input)")
    ap.add_argument("--memoir-k", type=ints, default=[20, 60, 150, 440],
                    help="(b) top-k sizes (440 = MEMOIR's 4096 of 14336 on Llama-3-8B, scaled to 1536)")
    ap.add_argument("--token-layer", type=int, default=8, help="(b') hidden_states index of the token states")
    ap.add_argument("--limit", type=float, default=0.05, help="(i): most firing allowed on each negative set")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output dir (default experiments/results/key_routes)")
    return ap.parse_args(argv)


# ---------------------------------------------------------------- data


def prompt_sets(num_train: int, num_eval: int, general: int, seed: int) -> dict[str, list]:
    """taught prompts (+ family); rewordings and neighbours with the index of their taught fact; general, unseen and
    calibration prompts. No query is a taught prompt."""
    from engram.data import build_splits
    from engram.data.replay import replay_prompts

    out: dict[str, list] = {k: [] for k in ("taught", "family", "rewordings", "rewording_fact", "rewording_family",
                                            "neighbors", "neighbor_fact", "unseen")}
    for family in FAMILIES:
        splits = build_splits({"family": family, "num_train": num_train, "num_eval": num_eval, "seed": seed})
        first = len(out["taught"])
        fact = {str(r["key"]): first + i for i, r in enumerate(splits["train"])}
        out["taught"] += [str(r["prompt"]) for r in splits["train"]]
        out["family"] += [family] * len(splits["train"])
        seen = {str(r["key"]) for r in splits["eval"] if r["seen"] and str(r["key"]) in fact}
        for r in splits.get("paraphrase", []):
            if str(r["key"]) in seen:
                out["rewordings"].append(str(r["prompt"]))
                out["rewording_fact"].append(fact[str(r["key"])])
                out["rewording_family"].append(family)
        for r in splits.get("neighbor", []):
            if str(r["key"]) in fact:
                out["neighbors"].append(str(r["prompt"]))
                out["neighbor_fact"].append(fact[str(r["key"])])
        out["unseen"] += [str(r["prompt"]) for r in splits["eval"] if not r["seen"]]
    taught = set(out["taught"])
    for name in ("rewordings", "neighbors", "unseen"):
        assert not taught & set(out[name]), f"a {name} prompt is a taught prompt"
    out["general"] = [p for p in replay_prompts(general, seed) if p not in taught]
    # calibration: another seed's general prompts, none of them tested
    held = taught | set(out["general"])
    out["calibration"] = [p for p in replay_prompts(2 * general, seed + 1) if p not in held][:general]
    return out


# ---------------------------------------------------------------- routes


def route_scores(args: argparse.Namespace, model: torch.nn.Module, tok: Any, sets: dict[str, list]
                 ) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], dict[str, object]]:
    """{route name: (best score, best taught index) over the queries (rewordings, neighbours, general, unseen
    concatenated)}, and the features (for the per-layer closeness)."""
    from tqdm import tqdm

    from benchmarks import key_route_scores as ks
    n_layers = model.config.num_hidden_layers
    memoir_layers = sorted({min(x, n_layers - 1) for x in args.memoir_layers})
    token_layer = min(args.token_layer, n_layers)
    queries = sets["rewordings"] + sets["neighbors"] + sets["general"] + sets["unseen"]

    def features(prompts: list[str], desc: str) -> ks.Features:
        return ks.encode(model, tok, prompts, args.prompt_format, memoir_layers, token_layer, args.batch_size, desc)

    taught, query, calib = (features(sets["taught"], "taught"), features(queries, "queries"),
                            features(sets["calibration"], "calibration"))
    reader, plain = ks.LexicalReader(tok, args.prompt_format), ks.LexicalReader(tok, args.prompt_format, False)
    taught_q, query_q = reader.read(sets["taught"]), reader.read(queries)
    taught_plain, query_plain = plain.read(sets["taught"]), plain.read(queries)
    candidates = ks.entity_candidates(query_q, taught_q)

    content: dict[str, torch.Tensor] = {}
    for layer in sorted({min(x, n_layers) for x in args.last_layers}):
        content[f"(c) content: last token, hidden_states[{layer}]"] = ks.cosine(
            query.last[:, layer], taught.last[:, layer], calib.last[:, layer])
    for layer in sorted({min(x, n_layers) for x in args.mean_layers}):
        content[f"(c) content: question mean, hidden_states[{layer}]"] = ks.cosine(
            query.mean[:, layer], taught.mean[:, layer], calib.mean[:, layer])
    jobs: dict[str, object] = {name: (lambda s=s: ks.best(s)) for name, s in content.items()}
    for layer in memoir_layers:
        for k in args.memoir_k:
            k_ = min(k, taught.act[layer].shape[-1])
            jobs[f"(b) MEMOIR: top-{k_} of down_proj input, layer {layer}"] = (
                lambda layer=layer, k_=k_: ks.best(ks.mask_overlap(query.act[layer], taught.act[layer],
                                                                   calib.act[layer], k_)))
    idf = ks.idf_weights(taught.token_ids + calib.token_ids)
    jobs[f"(b') token alignment: IDF recall, hidden_states[{token_layer}]"] = lambda: ks.best(ks.token_alignment(
        query.token_states, taught.token_states, taught.token_ids, calib.token_states, idf))
    jobs["(a) lexical: hash=question"] = lambda: ks.lexical_best(ks.lexical_index(taught_q), query_q)
    jobs["(a) lexical without word senses: engram.question.synonyms=false"] = lambda: ks.lexical_best(
        ks.lexical_index(taught_plain), query_plain)
    for name, s in content.items():
        jobs["(a)+(c) entities, then " + name.split(": ", 1)[1]] = lambda s=s: ks.best(ks.among(s, candidates))
    scores = {name: job() for name, job in tqdm(jobs.items(), desc="routes", leave=False)}
    return scores, {"taught": taught, "query": query, "calibration": calib}


def split(scores: tuple[torch.Tensor, torch.Tensor], sets: dict[str, list]) -> dict[str, tuple[torch.Tensor, ...]]:
    """The concatenated queries' (score, index) back into their sets."""
    out, start = {}, 0
    for name in ("rewordings", *NEGATIVES):
        end = start + len(sets[name])
        out[name] = (scores[0][start:end], scores[1][start:end])
        start = end
    return out


def evaluate(scores: dict[str, tuple[torch.Tensor, torch.Tensor]], sets: dict[str, list], limit: float
             ) -> dict[str, dict]:
    """Per route: its curve, its two operating points, top-1 (best match is the own fact, any score) and
    rewording recall / neighbour firing per family at operating point (ii)."""
    import torch

    from benchmarks import key_route_scores as ks
    from engram.config import EngramConfig

    own = torch.tensor(sets["rewording_fact"])
    fams = sets["rewording_family"]
    nb_fams = [sets["family"][i] for i in sets["neighbor_fact"]]
    out = {}
    for name, s in scores.items():
        parts = split(s, sets)
        c = ks.curve(parts["rewordings"], own, {n: parts[n][0] for n in NEGATIVES})
        points = ks.operating_points(c, list(NEGATIVES), limit)
        t = points["best"]["threshold"]
        rew_ok = (parts["rewordings"][0] >= t) & (parts["rewordings"][1] == own)
        nb_fire = parts["neighbors"][0] >= t
        per_family = {f: {"rewordings": float(rew_ok[[x == f for x in fams]].float().mean()),
                          "neighbors": float(nb_fire[[x == f for x in nb_fams]].float().mean())} for f in FAMILIES}
        out[name] = {**points, "top1": float((parts["rewordings"][1] == own).float().mean()),
                     "per_family_at_best": per_family, "curve": c}
        if name.startswith("(a) lexical"):  # also where the product runs: engram.question.threshold's default
            out[name]["at_configured"] = ks.at_threshold(c, list(NEGATIVES), EngramConfig().question.threshold)
        out[name]["examples_at_limit"] = examples(parts, sets, points["at_limit"]["threshold"])
    return out


def examples(parts: dict[str, tuple[torch.Tensor, ...]], sets: dict[str, list], threshold: float,
             n: int = EXAMPLES) -> dict[str, list[dict[str, str | None]]]:
    """Rewordings that miss their fact and neighbours that fire at a threshold, n of each spread over the list
    (so every family shows): what a route gets wrong, in words."""
    def spread(items: list[int]) -> list[int]:
        return items if len(items) <= n else [items[round(i * (len(items) - 1) / (n - 1))] for i in range(n)]

    taught = sets["taught"]
    score, index = parts["rewordings"]
    missed = [i for i, f in enumerate(sets["rewording_fact"]) if not (score[i] >= threshold and index[i] == f)]
    score_nb, index_nb = parts["neighbors"]
    fired = [i for i in range(len(sets["neighbors"])) if score_nb[i] >= threshold]
    return {
        "missed_rewordings": [{"prompt": sets["rewordings"][i], "taught": taught[sets["rewording_fact"][i]],
                               "matched": taught[int(index[i])] if score[i] >= threshold else None}
                              for i in spread(missed)],
        "firing_neighbors": [{"prompt": sets["neighbors"][i], "matched": taught[int(index_nb[i])]}
                             for i in spread(fired)],
    }


def layer_closeness(feats: dict[str, object], sets: dict[str, list]) -> list[dict[str, float]]:
    """Per hidden_states index and pooling: mean standardised cosine of rewordings and of neighbours with their own
    taught prompt, and the AUC of rewording over neighbour (< 0.5: neighbours are the closer ones), also per family."""
    import numpy as np
    import torch

    from benchmarks import key_route_scores as ks
    taught, query, calib = feats["taught"], feats["query"], feats["calibration"]
    n_rew, n_nb = len(sets["rewordings"]), len(sets["neighbors"])
    rew_own, nb_own = torch.tensor(sets["rewording_fact"]), torch.tensor(sets["neighbor_fact"])
    rew_fam = np.array(sets["rewording_family"])
    nb_fam = np.array([sets["family"][i] for i in sets["neighbor_fact"]])
    rows = []
    for layer in range(taught.last.shape[1]):
        row: dict[str, float] = {"layer": layer}
        for pooling in ("last", "mean"):
            q, t, c = (getattr(f, pooling)[:, layer] for f in (query, taught, calib))
            rew = ks.closeness(q[:n_rew], t, rew_own, c)
            nb = ks.closeness(q[n_rew : n_rew + n_nb], t, nb_own, c)
            row |= {f"{pooling}_rewordings": float(rew.mean()), f"{pooling}_neighbors": float(nb.mean()),
                    f"{pooling}_auc": ks.auc(rew, nb)}
            for f in FAMILIES:  # is it one family's templates? (entity / user_prefs neighbours share the template)
                row[f"{pooling}_auc_{f}"] = ks.auc(rew[rew_fam == f], nb[nb_fam == f])
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    import torch

    from benchmarks.common import commit, machine_info
    from benchmarks.key_routes_report import write_outputs
    from engram.models.loading import load_model

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    info = machine_info(args.threads)
    model, tok = load_model(args.model)
    model.eval()
    sets = prompt_sets(args.num_train, args.num_eval, args.general, args.seed)
    counts = {k: len(sets[k]) for k in ("taught", "rewordings", *NEGATIVES, "calibration")}
    print(f"key routes on {args.model}: " + ", ".join(f"{k} {v}" for k, v in counts.items()), flush=True)
    scores, feats = route_scores(args, model, tok, sets)
    routes = evaluate(scores, sets, args.limit)
    layers = layer_closeness(feats, sets)
    result = {
        "info": {"command": " ".join(["python benchmarks/key_routes.py", *argv]), "model": args.model,
                 "commit": commit(), "runtime_s": round(time.perf_counter() - start, 1), "counts": counts,
                 "families": list(FAMILIES), "limit": args.limit, **info},
        "routes": routes, "layers": layers}
    paths = write_outputs(result, args.out)
    print(paths["table"])
    print(f"wrote {', '.join(p.name for p in paths['files'])} in {args.out.name}/ "
          f"({result['info']['runtime_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
