"""The language-modelling part of a sweep report (data=text runs): the perplexity table with its controls, and held-out
loss against memory slots (log scale) with the fitted log-linear slope, and against training tokens.

The paper (arXiv 2601.07372) finds validation loss falling log-linearly with the number of slots; `fit_log_slope`
gives the slope of test loss per decade of slots (least squares), which `loss_vs_slots.png` draws over the points.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from engram.data import is_language_model
from engram.tracking.figures import finish_axes, line_data, save_figure
from engram.variants.common import variant_spec

LM_COLUMNS = ("label", "variant", "table_size", "key_shuffle", "num_tokens", "lm_ppl", "lm_bpb", "lm_ppl_base",
              "lm_ppl_change", "lm_ppl_knockout", "lm_loss", "trainable_params", "active_params", "flops_per_token",
              "lm_tokens_per_s", "wall_s")
LM_HEADERS = {"label": "arm", "table_size": "slots per head", "key_shuffle": "shuffled keys",
              "num_tokens": "train tokens", "lm_ppl": "test ppl", "lm_bpb": "bits/byte", "lm_ppl_base": "base ppl",
              "lm_ppl_change": "vs base", "lm_ppl_knockout": "memory off ppl", "lm_loss": "test loss",
              "trainable_params": "trainable params", "active_params": "active params per token",
              "flops_per_token": "FLOPs per token", "lm_tokens_per_s": "scoring tokens/s", "wall_s": "wall s"}
# the differences between arms are small: more digits than the report's general 3 significant ones
PRECISE = {"lm_ppl": "{:.3f}", "lm_ppl_base": "{:.3f}", "lm_ppl_knockout": "{:.3f}", "lm_bpb": "{:.4f}",
           "lm_loss": "{:.4f}", "lm_ppl_change": "{:+.2%}"}


def is_lm(df: pd.DataFrame) -> pd.Series:
    """The rows of language-model runs (their data family declares it; not only data=text)."""
    return df["data"].map(is_language_model) if "data" in df else pd.Series(False, index=df.index)


def fit_log_slope(slots: np.ndarray, loss: np.ndarray) -> tuple[float, float] | None:
    """(slope per decade of slots, intercept) of loss = a * log10(slots) + b; None with fewer than two slot sizes."""
    if len(np.unique(slots)) < 2:
        return None
    a, b = np.polyfit(np.log10(slots.astype(float)), loss.astype(float), 1)
    return float(a), float(b)


def loss_points(df: pd.DataFrame, x: str) -> pd.DataFrame:
    """The runs with a numeric `x` and test loss, as columns `_x`, `_y`."""
    runs = df.assign(_x=pd.to_numeric(df[x], errors="coerce"), _y=pd.to_numeric(df["lm_loss"], errors="coerce"))
    return runs.dropna(subset=["_x", "_y"])


SERIES_FREE = ("seed",)  # overrides that do not split a series: its points average over them
AXIS_OVERRIDES = {"table_size": "engram.table_size", "num_tokens": "data.num_tokens"}


def series_of(df: pd.DataFrame, x: str) -> pd.Series:
    """Per run, what its line of a loss-vs-`x` plot holds fixed: its overrides but `x`'s own and the seed, so runs
    that differ in anything else (an arm, the layers, the other axis) are never joined or fitted together."""
    if "overrides" not in df:
        return pd.Series("", index=df.index)
    drop = {AXIS_OVERRIDES.get(x, x), *SERIES_FREE}
    return df["overrides"].fillna("").map(lambda ov: " ".join(sorted(
        o for o in str(ov).split() if o.split("=", 1)[0].lstrip("+") not in drop)))


def fitted_series(df: pd.DataFrame, x: str) -> dict[str, pd.DataFrame]:
    """{series: its runs' points (`_x`, `_y`)} of the series with at least two values of `x`."""
    runs = loss_points(df, x)
    keys = series_of(runs, x)
    return {key: group for key, group in runs.groupby(keys, sort=True) if group["_x"].nunique() >= 2}


def plot_loss_vs(series: dict[str, pd.DataFrame], df: pd.DataFrame, xlabel: str, path: Path,
                 fits: dict[str, tuple[float, float]] | None = None) -> dict[str, Any] | None:
    """Test loss against x (log scale), a line per series (`fitted_series`), the frozen base's loss (of `df`'s
    runs) as a dashed line, and each series' log-linear fit in `fits` (slope, intercept) with its slope in the
    legend; None without a series."""
    if not series:
        return None
    shared = set.intersection(*(set(key.split()) for key in series))  # legends name what tells the lines apart
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for key, runs in series.items():
        name = "memory (test loss)" if len(series) == 1 else " ".join(
            o for o in key.split() if o not in shared) or "memory"
        mean = runs.groupby("_x")["_y"].mean()
        ax.plot(mean.index, mean.values, marker="o", label=name)
        line = (fits or {}).get(key)
        if line is not None:
            xs = np.logspace(math.log10(mean.index.min()), math.log10(mean.index.max()), 20)
            ax.plot(xs, line[0] * np.log10(xs) + line[1], linestyle=":",
                    label=f"fit: {line[0]:+.4f} nats per 10x slots")
    base = pd.to_numeric(df.get("lm_loss_base", pd.Series(dtype=float)), errors="coerce").dropna()
    if not base.empty:
        ax.axhline(float(base.mean()), color="grey", linestyle="--", label="frozen base")
    ax.set_xscale("log")
    ax.set(xlabel=xlabel, ylabel="test loss (nats per token)", title=f"Held-out loss vs {xlabel}")
    finish_axes(ax)
    drawn = line_data(ax)
    save_figure(fig, path)
    return drawn


def lm_section(df: pd.DataFrame, out_dir: Path,
               table: Any) -> tuple[list[str], dict[str, Any]]:
    """report.md lines and {png name: drawn data} for the finished data=text jobs of `df` (`table`: the report's
    markdown_table)."""
    ok = df[is_lm(df)] if not df.empty else df
    if ok.empty:
        return [], {}
    ok = ok.copy()
    no_memory = ~ok["variant"].map(lambda v: variant_spec(v, recorded=True).engram)
    for col in ("table_size", "key_shuffle"):  # memory settings mean nothing for a run without memory
        if col in ok:
            ok[col] = ok[col].astype(object).where(~no_memory, None)
    cols = [c for c in LM_COLUMNS if c in ok and ok[c].notna().any()]
    shown = ok.assign(**{col: [fmt.format(float(v)) if pd.notna(v) else None for v in ok[col]]
                         for col, fmt in PRECISE.items() if col in ok})
    md = ["## Language modelling (test split)", "",
          "Perplexity and bits per UTF-8 byte on the test documents (never trained on); base = the untouched model "
          "on the same blocks; memory off = the trained memory switched off.", ""]
    md += table(shown, cols, [LM_HEADERS.get(c, c) for c in cols]) + [""]
    plots: dict[str, Any] = {}
    memory = ok[pd.to_numeric(ok.get("table_size"), errors="coerce").notna()] if "table_size" in ok else ok.iloc[:0]
    if "key_shuffle" in memory:
        memory = memory[memory["key_shuffle"].astype(str) != "True"]
    fits: dict[str, tuple[float, float]] = {}
    for name, x, xlabel in (("loss_vs_slots.png", "table_size", "memory slots per head"),
                            ("loss_vs_tokens.png", "num_tokens", "training tokens")):
        series = fitted_series(memory, x) if x in memory else {}
        if x == "table_size":
            fits = {key: fit for key, runs in series.items()
                    if (fit := fit_log_slope(runs["_x"].to_numpy(), runs["_y"].to_numpy())) is not None}
        drawn = plot_loss_vs(series, memory, xlabel, out_dir / name, fits if x == "table_size" else None)
        if drawn:
            plots[name] = drawn
    for key, (slope, _) in fits.items():
        where = f" ({key})" if len(fits) > 1 else ""
        md += [f"Fitted slope{where}: {slope:+.4f} nats of test loss per 10x slots.", ""]
    drawn = plot_loss_vs_share(ok, out_dir / "loss_vs_rho.png")
    if drawn:
        plots["loss_vs_rho.png"] = drawn
        md += ["Test loss against the memory's share of the idle parameters (rho): the mean over seeds, the bars "
               "from the lowest to the highest seed (loss_vs_rho.png).", ""]
    return md, plots


def memory_share(df: pd.DataFrame) -> pd.Series:
    """rho per run: table parameters over table + idle expert parameters (eval.json's accounting); NaN for a run
    with neither (a dense model)."""
    table = pd.to_numeric(df.get("table_params", pd.Series(index=df.index, dtype=float)), errors="coerce")
    idle = pd.to_numeric(df.get("idle_expert_params", pd.Series(index=df.index, dtype=float)), errors="coerce")
    sparse = table.fillna(0) + idle.fillna(0)
    return (table.fillna(0) / sparse).where(sparse > 0)


def plot_loss_vs_share(df: pd.DataFrame, path: Path) -> dict[str, Any] | None:
    """Test loss against rho (the allocation study), mean and seed-to-seed range per arm, the dense models' loss
    as a dashed line; None unless at least two shares were run."""
    runs = df.assign(_x=memory_share(df).round(2), _y=pd.to_numeric(df["lm_loss"], errors="coerce"))
    shared, dense = runs.dropna(subset=["_x", "_y"]), runs[runs["_x"].isna()].dropna(subset=["_y"])
    if shared["_x"].nunique() < 2:
        return None
    stats = shared.groupby("_x")["_y"].agg(["mean", "min", "max"])
    fig, ax = plt.subplots(figsize=(6, 4.2))
    ax.plot(stats.index, stats["mean"], marker="o", label="MoE experts + memory rows (equal total parameters)")
    ax.errorbar(stats.index, stats["mean"], yerr=[stats["mean"] - stats["min"], stats["max"] - stats["mean"]],
                fmt="none", capsize=3, ecolor="C0")  # the seed-to-seed range
    if not dense.empty:
        ax.axhline(float(dense["_y"].mean()), color="grey", linestyle="--", label="dense, equal active FLOPs")
    ax.set(xlabel="rho: the memory's share of the idle parameters", ylabel="test loss (nats per token)",
           title="Held-out loss vs allocation")
    finish_axes(ax)
    drawn = line_data(ax)
    save_figure(fig, path)
    return drawn
