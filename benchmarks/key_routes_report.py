"""benchmarks/key_routes.py's outputs: key_routes.json (everything, curves thinned), key_routes.md (the tables) and
key_routes.png (each route's curve: rewording recall vs firing, and the per-layer closeness)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CURVE_POINTS = 150  # a curve has a point per distinct score; the JSON and the plot need fewer
NEGATIVES = ("neighbors", "general", "unseen")
LABELS = {"neighbors": "neighbours", "general": "general", "unseen": "unseen"}


def thin(curve: dict[str, list[float]], keep: list[float]) -> dict[str, list[float]]:
    """About CURVE_POINTS evenly spaced points of the curve, the thresholds in `keep` always among them."""
    n = len(curve["thresholds"])
    step = max(1, n // CURVE_POINTS)
    idx = set(range(0, n, step)) | {n - 1} | {i for i, t in enumerate(curve["thresholds"]) if t in keep}
    return {k: [round(v[i], 5) for i in sorted(idx)] for k, v in curve.items()}


def winner(routes: dict[str, Any]) -> str:
    """Highest rewording recall at (i); ties by the best (ii) gain."""
    def key(name: str) -> tuple[float, float]:
        r = routes[name]
        return r["at_limit"]["rewordings"], r["best"]["rewordings"] - r["best"]["neighbors"]

    return max(routes, key=key)


def thr(x: float) -> str:
    return "none fires" if x == float("inf") else f"{x:.3f}"


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def markdown(result: dict[str, Any]) -> str:
    info, routes = result["info"], result["routes"]
    limit = pct(info["limit"])
    lines = [
        "| route | top-1 | (i) threshold | (i) rewordings | neighbours | general | unseen | (ii) threshold | "
        "(ii) rewordings | neighbours | general | unseen |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in routes.items():
        a, b = r["at_limit"], r["best"]
        cells = [name, pct(r["top1"]), thr(a["threshold"]), f"**{pct(a['rewordings'])}**",
                 *(pct(a[n]) for n in NEGATIVES), thr(b["threshold"]), f"**{pct(b['rewordings'])}**",
                 *(pct(b[n]) for n in NEGATIVES)]
        lines.append("| " + " | ".join(cells) + " |")
    c = info["counts"]
    lines += [
        "",
        f"Model {info['model']}; taught {c['taught']} prompts of {', '.join(info['families'])} (one shared memory); "
        f"{c['rewordings']} rewordings, {c['neighbors']} neighbours, {c['general']} general, {c['unseen']} unseen "
        f"prompts; {c['calibration']} other general prompts calibrate. (i): the lowest threshold at which "
        f"neighbours, general and unseen prompts each fire on at most {limit}; (ii): the threshold maximising "
        f"rewording recall - neighbour firing. top-1: the rewording's best match is its own fact, at any score. "
        f"Winner by (i): **{winner(routes)}**.",
        *[f"{name} at engram.question.threshold = {p['threshold']:g} (the product's default): rewordings "
          f"{pct(p['rewordings'])}, " + ", ".join(f"{LABELS[n]} {pct(p[n])}" for n in NEGATIVES) + "."
          for name, p in ((n, r["at_configured"]) for n, r in routes.items() if "at_configured" in r)],
        "",
        "Rewording recall / neighbour firing per family at (ii):",
        "",
        "| route | " + " | ".join(result["routes"][next(iter(routes))]["per_family_at_best"]) + " |",
        "|---|" + "---|" * len(result["routes"][next(iter(routes))]["per_family_at_best"]),
    ]
    for name, r in routes.items():
        cells = [f"{pct(v['rewordings'])} / {pct(v['neighbors'])}" for v in r["per_family_at_best"].values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Per layer (hidden_states index): mean standardised cosine of a rewording and of a neighbour question with "
        "their own taught prompt, and AUC = P(rewording closer than neighbour); AUC < 0.5: neighbours are closer.",
        "",
        "| layer | last token: rewordings | neighbours | AUC | question mean: rewordings | neighbours | AUC |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in result["layers"]:
        lines.append(f"| {row['layer']} | {row['last_rewordings']:.3f} | {row['last_neighbors']:.3f} | "
                     f"{row['last_auc']:.3f} | {row['mean_rewordings']:.3f} | {row['mean_neighbors']:.3f} | "
                     f"{row['mean_auc']:.3f} |")
    best = routes[winner(routes)]["examples_at_limit"]
    lines += ["", "What the winner gets wrong at (i) (spread over the list): rewordings missing their fact",
              "", *(f"- {e['prompt']} (taught: {e['taught']}; matched: {e['matched'] or 'none'})"
                    for e in best["missed_rewordings"]),
              "", "neighbours firing", "", *(f"- {e['prompt']} (matched: {e['matched']})"
                                             for e in best["firing_neighbors"])]
    lines += ["", f"AUC per family, lowest-highest over hidden_states 1-{len(result['layers']) - 1}:", ""]
    for pooling, label in (("last", "last token"), ("mean", "question mean")):
        ranges = []
        for f in info["families"]:
            a = [row[f"{pooling}_auc_{f}"] for row in result["layers"][1:]]
            ranges.append(f"{f} {min(a):.2f}-{max(a):.2f}")
        lines.append(f"- {label}: " + ", ".join(ranges))
    lines += ["", f"Command: `{info['command'].strip()}` (code at commit {info['commit']}), {info['runtime_s']:.0f} s.",
              "", *(f"- {k}: {info[k]}" for k in ("cpu", "torch", "ram", "load average", "python"))]
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(17, 5.5))
    styles = {"(c)": "-", "(b)": "--", "(b')": "-.", "(a)": "-", "(a)+(c)": ":"}
    for i, (name, r) in enumerate(result["routes"].items()):
        c = r["curve"]
        style = styles.get(name.split(" ", 1)[0], "-")
        lexical = name.startswith("(a) ")  # the product's route: drawn on top, in black
        width = 2.5 if lexical else 1.3
        worst = [max(g, u) for g, u in zip(c["general"], c["unseen"], strict=True)]
        color = "black" if lexical else plt.cm.tab20(i % 20)
        axes[0].plot(c["neighbors"], c["rewordings"], style, color=color, lw=width, label=name)
        axes[1].plot(worst, c["rewordings"], style, color=color, lw=width)
    for ax, x in zip(axes[:2], ("neighbour questions firing", "general / unseen prompts firing (the worse)"),
                     strict=True):
        ax.axvline(result["info"]["limit"], color="grey", lw=0.8)
        ax.set(xlabel=x, ylabel="rewordings firing on their own fact", xlim=(-0.02, 1.02), ylim=(-0.02, 1.02))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=6.5, loc="lower right")
    axes[0].set_title("each route over its threshold")
    layers = result["layers"]
    x = [row["layer"] for row in layers]
    for pooling, label in (("last", "last token"), ("mean", "question mean")):
        axes[2].plot(x, [r[f"{pooling}_rewordings"] for r in layers], "o-", ms=3, label=f"{label}: rewordings")
        axes[2].plot(x, [r[f"{pooling}_neighbors"] for r in layers], "s--", ms=3, label=f"{label}: neighbours")
    axes[2].set(xlabel="hidden_states index", ylabel="standardised cosine with the own taught prompt",
                title="closeness to the taught prompt, per layer")
    axes[2].legend(fontsize=8)
    axes[2].grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def finite(x: Any) -> Any:
    """JSON without Infinity: a threshold above every score is written as null."""
    if isinstance(x, float) and x != x or x in (float("inf"), float("-inf")):
        return None
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [finite(v) for v in x]
    return x


def write_outputs(result: dict[str, Any], out: Path) -> dict[str, Any]:
    """Writes the three files; returns {"table": the markdown, "files": their paths}."""
    out.mkdir(parents=True, exist_ok=True)
    for r in result["routes"].values():
        r["curve"] = thin(r["curve"], [r["at_limit"]["threshold"], r["best"]["threshold"]])
    result["winner"] = winner(result["routes"])
    table = markdown(result)
    files = [out / "key_routes.json", out / "key_routes.md", out / "key_routes.png"]
    files[0].write_text(json.dumps(finite(result), indent=1, allow_nan=False))
    files[1].write_text(table)
    plot(result, files[2])
    return {"table": table, "files": files}
