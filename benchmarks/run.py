"""Performance benchmarks (issue 8): one run, every target measured side by side, one table.

    python benchmarks/run.py --quick      # tiny model, < 2 minutes: a smoke run of every benchmark
    python benchmarks/run.py              # real SmolLM2-135M: the numbers in benchmarks/README.md
    python benchmarks/run.py --only table,hash --threads 1
    python benchmarks/run.py --only window      # windowed attention + Engram vs full attention, 512 -> 8k tokens
    python benchmarks/run.py --only hybrid      # address=hybrid's product-key lookup vs scoring all rows, 10^3-10^6
    python benchmarks/run.py --only offload,shard   # tables offloaded to host / memory-mapped files; row-sharded
    python benchmarks/run.py --only exact5k     # experiment=exact5k_fast's four variants vs one hour (~1 h)
    python benchmarks/run.py --only data        # 20 000 exact-match records; loading the model again
    python benchmarks/run.py --only lm          # data=text: a training step with the memory at layer 1 vs the base
    python benchmarks/run.py --only alloc       # experiment=lm_allocation's arms: training steps vs the dense arm
    python benchmarks/run.py --only compress    # the trained compressor: a QA step, 300 steps projected vs 60 min

Prints machine info, then `target | measured | ratio | limit | PASS/FAIL`; `--out FILE` also writes it (markdown),
`--json FILE` the same rows with the machine info, the command and the commit (the docs' tables read these).
Exit status 0 even with FAILs (machines are noisy; the table is the result), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/run.py` from anywhere

PARTS = ("table", "overhead", "throughput", "generation", "hash", "window", "hybrid", "offload", "shard", "exact5k",
         "data", "lm", "alloc", "compress")
# measured on the base model (window builds its own model, shard and exact5k run the pipeline, hybrid needs none,
# data and compress load the model themselves, alloc builds the allocation arms)
BASE_PARTS = set(PARTS) - {"window", "hybrid", "shard", "exact5k", "data", "alloc", "compress"}

# quick: tiny model, smaller tables, fewer steps; full: the settings on SmolLM2
SETTINGS = {
    "quick": {"model": "tiny", "rows64": [10**3, 10**5, 10**6], "rows576": [10**3, 10**5], "rounds": 6,
              "warmup": 2, "train_n": 5000, "tp_batch": 8, "tp_batches": 4, "recipe_n": 16, "gen_rounds": 3,
              "window_lengths": [256, 512], "window_attentions": ("sdpa",), "hybrid_rows": [10**3, 10**4],
              "offload_rows": [10**3, 10**5], "offload_steps": 3, "offload_rounds": 6, "shard_steps": 2,
              "lm_block": 64, "lm_blocks": 2, "alloc_blocks": 4},
    "full": {"model": "smollm", "rows64": [10**3, 10**5, 10**6, 10**7], "rows576": [10**3, 10**6], "rounds": 3,
             "warmup": 1, "train_n": 5000, "tp_batch": 8, "tp_batches": 2, "recipe_n": 128, "gen_rounds": 3,
             "window_lengths": [512, 1024, 2048, 4096, 8192], "window_attentions": ("sdpa", "flex_attention"),
             "hybrid_rows": [10**3, 10**4, 10**5, 10**6],
             "offload_rows": [10**3, 10**7], "offload_steps": 3, "offload_rounds": 30, "shard_steps": 4,
             "lm_block": 256, "lm_blocks": 4, "alloc_blocks": 16},
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny model, < 2 minutes")
    ap.add_argument("--only", default=",".join(PARTS), help=f"comma list of: {', '.join(PARTS)}")
    # One thread by default: on a shared machine every OpenMP region with 2 threads waits for a time slice of the
    # other jobs (measured: tiny-model step 50 ms with 1 thread, 2 s with 2 while another job ran).
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1; see benchmarks/README.md)")
    ap.add_argument("--rounds", type=int, default=None, help="timed steps per configuration")
    ap.add_argument("--gen-prompts", type=int, default=32)
    ap.add_argument("--gen-tokens", type=int, default=64)
    ap.add_argument("--window-lengths", type=lambda v: [int(x) for x in v.split(",")], default=None,
                    help="window: sequence lengths, comma list (default 512,...,8192; quick 256,512)")
    ap.add_argument("--offload-gib", type=float, default=None,
                    help="offload: size of the largest memory-mapped table in GiB (default: 10^7 rows = 2.4 GiB; "
                         "full mode confines that part to a memory limit below it where it can, see benchmarks/README)")
    ap.add_argument("--offload-dir", default=None, help="offload: where the table files go (default: the temp dir)")
    ap.add_argument("--no-cgroup", action="store_true",
                    help="offload: never confine a child process in a memory cgroup (a shared machine); give an "
                         "--offload-gib above the free RAM instead")
    ap.add_argument("--exact5k-dir", type=Path, default=None,
                    help="exact5k: read this finished `experiment=exact5k_fast` sweep instead of running it")
    ap.add_argument("--out", type=Path, default=None, help="also write the table (markdown) here")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows, machine info and command (JSON)")
    args = ap.parse_args(argv)
    unknown = set(args.only.split(",")) - set(PARTS)
    if unknown:
        ap.error(f"--only: unknown part(s) {sorted(unknown)}; choose from {', '.join(PARTS)}")
    return args


def without_outputs(argv: list[str]) -> list[str]:
    """The command line as recorded: where the records went (`--json`, `--out`) is no part of what was measured (and
    is often a machine's temp dir)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in OUTPUT_FLAGS:
            skip = True  # its value is the next argument
        elif not arg.startswith(tuple(f"{flag}=" for flag in OUTPUT_FLAGS)):
            out.append(arg)
    return out


OUTPUT_FLAGS = ("--json", "--out")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    import torch

    from benchmarks import (
        bench_alloc,
        bench_compress,
        bench_data,
        bench_exact5k,
        bench_generation,
        bench_hybrid,
        bench_lm,
        bench_offload,
        bench_shard,
        bench_throughput,
        bench_train,
        bench_window,
    )
    from benchmarks.common import commit, format_table, frozen, machine_info, peak_rss_bytes, train_batch
    from engram.models import load_model

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    mode = "quick" if args.quick else "full"
    s = SETTINGS[mode]
    rounds = args.rounds or s["rounds"]
    parts = args.only.split(",")
    info = machine_info(args.threads)
    # window builds its own model (model=scratch), shard trains the tiny one, exact5k runs train.py, hybrid needs none
    own = "scratch" if "window" in parts else "tiny" if "shard" in parts else "none"
    own = s["model"] if {"exact5k", "data", "compress"} & set(parts) else own
    model = s["model"] if BASE_PARTS & set(parts) else own
    print(f"engram-lab benchmarks, mode={mode}, model={model}")
    if args.quick:
        print("  (quick: a smoke run of the same code on the tiny model; the targets are defined on SmolLM2)")
    for k, v in info.items():
        print(f"  {k}: {v}")
    start = time.perf_counter()
    if BASE_PARTS & set(parts):
        base, tok = load_model(s["model"])
        frozen(base)
        batch = train_batch(tok, 16)  # batch 16 of exact-match facts, plain prompts (~30 tokens with SmolLM2)
        print(f"  train batch: {tuple(batch['input_ids'].shape)}", flush=True)
    rows = []

    def done(part: str, new: list) -> None:
        rows.extend(new)
        print(f"\n[{part} done at {time.perf_counter() - start:.0f} s]\n{format_table(new)}", flush=True)

    if "hash" in parts:
        done("hash", bench_generation.hash_speed(tok, int(base.config.vocab_size), 10**6, 5))
    if "table" in parts:
        done("table 64-dim", bench_train.table_scaling(base, tok, batch, bench_train.DEEPSEEK_64, s["rows64"],
                                                       rounds, s["warmup"], "64-dim deepseek"))
        done("table 576-dim", bench_train.table_scaling(base, tok, batch, bench_train.POC_576, s["rows576"],
                                                        rounds, s["warmup"], "576-dim poc"))
    if "overhead" in parts:
        done("overhead", bench_train.overhead(base, tok, batch, 5000, rounds, s["warmup"]))
    if "throughput" in parts:
        done("throughput", bench_throughput.throughput(base, tok, s["train_n"], s["tp_batch"], s["tp_batches"],
                                                       s["recipe_n"]))
    if "generation" in parts:
        done("generation", bench_generation.generation(base, tok, args.gen_prompts, args.gen_tokens, s["gen_rounds"]))
    if "window" in parts:
        lengths = args.window_lengths or s["window_lengths"]
        done("window", bench_window.window_scaling(lengths, rounds, s["window_attentions"]))
    if "hybrid" in parts:
        done("hybrid", bench_hybrid.hybrid_scaling(s["hybrid_rows"], max(rounds, 5), s["warmup"]))
    if "offload" in parts:
        offload_rows = list(s["offload_rows"])
        if args.offload_gib:
            offload_rows[-1] = int(args.offload_gib * 2**30 / bench_offload.ROW_BYTES)
        done("offload", bench_offload.offload(base, tok, offload_rows, s["offload_rounds"], s["offload_steps"],
                                              args.offload_dir, beyond_ram=not args.quick, confine=not args.no_cgroup))
    if "shard" in parts:
        done("shard", bench_shard.shard(s["shard_steps"]))
    if "lm" in parts:
        done("lm", bench_lm.lm_speed(base, tok, s["lm_block"], s["lm_blocks"], 20000, rounds, s["warmup"]))
    if "alloc" in parts:
        done("alloc", bench_alloc.alloc_speed(128, s["alloc_blocks"], max(rounds, 5), s["warmup"]))
    if "compress" in parts:
        done("compress", bench_compress.compress_speed(s["model"], min(rounds, 3), s["warmup"]))
    if "exact5k" in parts:
        done("exact5k", bench_exact5k.exact5k(args.quick, args.exact5k_dir))
    if "data" in parts:
        done("data", bench_data.data_speed(s["model"], min(rounds, 3)))

    total = time.perf_counter() - start
    table = format_table(rows)
    cmd = ("python benchmarks/run.py " + " ".join(without_outputs(sys.argv[1:] if argv is None else argv))).strip()
    header = "\n".join([f"mode={mode}, model={model}, total {total:.0f} s, peak RSS "
                        f"{peak_rss_bytes() / 2**30:.2f} GiB, command: `{cmd}`", "",
                        *[f"- {k}: {v}" for k, v in info.items()], ""])
    print("\n== results ==\n" + header + "\n" + table)
    if args.out:
        args.out.write_text(header + "\n" + table + "\n")
    if args.json:
        record = {"info": {"command": cmd, "mode": mode, "model": model, "commit": commit(), "total_s": round(total),
                           "peak_rss_gib": round(peak_rss_bytes() / 2**30, 2), **info},
                  "rows": [{**asdict(r), "result": r.verdict} for r in rows]}
        args.json.write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
