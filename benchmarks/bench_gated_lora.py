"""What the gate costs: a gated_lora training step and greedy decoding vs plain LoRA, on one model in one process.

    python benchmarks/bench_gated_lora.py --model smollm --rounds 3     # ~3 min on one CPU thread
    python benchmarks/bench_gated_lora.py --model tiny                  # seconds

Both sides use the same peft LoRA model (the gated side wraps it), take turns (LoRA, gated, gated, LoRA, ...) and
medians are compared, because the machine is shared and noisy. Step: forward + backward of the answer-token loss on
one batch of 16 exact-match facts. Decoding: 16 chat prompts, 16 new tokens, eos suppressed so both do the same work.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from omegaconf import OmegaConf

from engram.config import TrainConfig
from engram.data import build_splits
from engram.data.collate import teacher_forced_batch
from engram.data.formatting import encode_answers, encode_prompts, pad_id
from engram.models.gated_lora import GatedLoRAModel
from engram.models.loading import load_model
from engram.training.variants import apply_variant


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = OmegaConf.structured(TrainConfig)
    cfg.model.name, cfg.variant.name = args.model, "gated_lora"
    model, tok = load_model(cfg.model)
    gated = apply_variant(model, cfg, tok)
    lora = gated.get_base_model()
    assert isinstance(gated, GatedLoRAModel)
    facts = build_splits({"family": "exact_match", "num_train": 16, "num_eval": 0})["train"]
    prompts = encode_prompts(tok, [f["prompt"] for f in facts], "chat")
    batch = teacher_forced_batch(prompts, encode_answers(tok, [f["answer"] for f in facts], "chat"), 256, pad_id(tok))

    def step(m: torch.nn.Module) -> None:
        logits = m(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                                 batch["labels"][:, 1:].reshape(-1), ignore_index=-100)
        loss.backward()

    tok.padding_side = "left"
    enc = tok(tok.batch_decode(prompts), return_tensors="pt", padding=True, add_special_tokens=False)
    gen = {"max_new_tokens": 16, "pad_token_id": tok.pad_token_id}

    def decode(m: torch.nn.Module) -> None:
        # every row decodes all 16 tokens: HF's generate by min_new_tokens, the gated loop by an empty eos list
        never_stop = {"eos_token_id": []} if m is gated else {"min_new_tokens": 16}
        with torch.no_grad():
            m.generate(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], do_sample=False, **gen,
                       **never_stop)

    results = {}
    for name, work in (("train step (fwd + bwd)", step), ("greedy decoding", decode)):
        times: dict[str, list[float]] = {"lora": [], "gated": []}
        work(lora), work(gated)  # warm-up
        for r in range(args.rounds):
            order = [("lora", lora), ("gated", gated)][:: 1 if r % 2 == 0 else -1]
            for side, m in order:
                times[side].append(timed(lambda m=m, work=work: work(m)))
        results[name] = (statistics.median(times["lora"]), statistics.median(times["gated"]))
    print(f"model={args.model}, rounds={args.rounds}, 1 torch thread")
    print("| what | LoRA | gated LoRA | ratio |\n|---|---|---|---|")
    for name, (a, b) in results.items():
        print(f"| {name} | {a:.2f} s | {b:.2f} s | {b / a:.2f} |")


if __name__ == "__main__":
    main()
