"""The question judge of `engram.question.judge=model`: the base model itself, with a small trained adapter, reads
two questions and gives the probability that they ask the same thing (engram/memory/judged.py uses it).

The judge is a copy of the base model's decoder (frozen, as it came) with a peft LoRA adapter and a one-logit head on
the last token's hidden state of
    Question 1: <taught question>
    Question 2: <new question>
    Same question:
with every name replaced by "X". It is a copy so the memory's own model stays untouched, and it is not a submodule
of EngramModel: its weights are neither trained with the memory nor saved in engram.safetensors. The adapter is
trained by `python -m engram.training.question_judge` on pairs of questions (rewordings: same; other questions about
the same entity: not) and carries, in its file, the probability threshold calibrated on held-back pairs and a
fingerprint of the base model it was trained on: an adapter loads only onto that base model.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict
from safetensors.torch import load_file, save_file
from torch import nn

PAIR = "Question 1: {taught}\nQuestion 2: {question}\nSame question:"
SHIPPED = Path(__file__).resolve().parent / "judges"  # adapters trained by the project, one per base model
HEAD = "judge_head."
FINGERPRINT_ROWS = 64  # embedding rows hashed to tell one base model from another
BATCH = 32
log = logging.getLogger(__name__)


def base_fingerprint(body: nn.Module) -> dict[str, Any]:
    """What an adapter must match to load: the decoder's shape and a hash of its first embedding rows."""
    emb = body.embed_tokens.weight.detach()[:FINGERPRINT_ROWS].float().cpu().contiguous()
    return {"hidden_size": int(emb.shape[1]), "layers": len(body.layers),
            "vocab_size": int(body.embed_tokens.weight.shape[0]),
            "embeddings_sha256": hashlib.sha256(emb.numpy().tobytes()).hexdigest()[:16]}


class QuestionJudge:
    """`judge([(taught, question), ...]) -> [P(same question) per pair]`, on the base decoder with an adapter."""

    def __init__(self, body: nn.Module, head: nn.Linear, tokenizer: Any) -> None:
        self.body, self.head, self.tokenizer = body, head, tokenizer

    @classmethod
    def fresh(cls, decoder: nn.Module, tokenizer: Any, rank: int, alpha: int, seed: int) -> QuestionJudge:
        """An untrained judge on a copy of `decoder` (the causal LM's `.model`): adapter and head to be trained."""
        for module in decoder.modules():
            if hasattr(module, "lora_A"):
                raise ValueError("engram.question.judge=model: build the memory on the base model before LoRA "
                                 "adapters are added (the judge copies the plain decoder)")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            body = get_peft_model(copy.deepcopy(decoder), LoraConfig(
                r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
            ref = next(decoder.parameters())
            head = nn.Linear(int(body.config.hidden_size), 1).to(device=ref.device, dtype=ref.dtype)
        return cls(body, head, tokenizer)

    def logits(self, pairs: Sequence[tuple[str, str]]) -> torch.Tensor:
        """One logit per (taught, question) pair; right-padded, so a pair scores the same in any batch."""
        texts = [PAIR.format(taught=t, question=q) for t, q in pairs]
        batch = self.tokenizer(texts, padding=True, padding_side="right", return_tensors="pt",
                               add_special_tokens=False)
        device = self.head.weight.device
        ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
        hidden = self.body(input_ids=ids, attention_mask=mask).last_hidden_state
        last = hidden[torch.arange(len(texts), device=device), mask.sum(-1) - 1]
        return self.head(last).squeeze(-1).float()

    @torch.no_grad()
    def __call__(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """P(same question) of each (taught, question) pair."""
        self.body.eval()
        # pairs of like length batched together: less padding to run through the model
        order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
        out = [0.0] * len(pairs)
        for i in range(0, len(pairs), BATCH):
            batch = order[i:i + BATCH]
            for j, p in zip(batch, torch.sigmoid(self.logits([pairs[j] for j in batch])).tolist(), strict=True):
                out[j] = p
        return out

    def parameters(self) -> list[nn.Parameter]:
        """What training moves: the adapter and the head."""
        return [p for p in self.body.parameters() if p.requires_grad] + list(self.head.parameters())

    def save(self, path: str | Path, info: dict[str, Any]) -> None:
        """The adapter, the head and `info` (threshold, base fingerprint, LoRA shape, training data) in one file."""
        tensors = {k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(self.body).items()}
        tensors |= {HEAD + k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()}
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(path), metadata={"engram_question_judge": json.dumps(info, sort_keys=True)})


def read_info(path: str | Path) -> dict[str, Any]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if "engram_question_judge" not in meta:
        raise ValueError(f"engram.question.judge_path={path}: not a question judge (no engram_question_judge info)")
    return json.loads(meta["engram_question_judge"])


def shipped_path(decoder: nn.Module, required: bool = True) -> Path | None:
    """The shipped adapter trained on `decoder`'s base model; None (or, `required`, an error) when there is none."""
    print_ = base_fingerprint(decoder)
    for f in sorted(SHIPPED.glob("*.safetensors")):
        if read_info(f)["base"] == print_:
            return f
    if not required:
        return None
    raise ValueError("engram.question.judge=model: no question judge is shipped for this base model "
                     f"({print_['hidden_size']} wide, {print_['layers']} layers); train one with "
                     "`python -m engram.training.question_judge --model <name> --out <file>` and pass "
                     "engram.question.judge_path=<file>, or use engram.question.judge=words")


def load_judge(decoder: nn.Module, tokenizer: Any, path: str | Path | None) -> tuple[QuestionJudge, dict[str, Any]]:
    """The judge at `path` (None: the shipped one for this base model) on a copy of `decoder`, and its info; it scores
    pairs, and is not trained further (its adapter is merged into the copy)."""
    path = shipped_path(decoder) if path is None else Path(path)
    if path is None or not path.is_file():
        raise ValueError(f"engram.question.judge_path={path}: no such file")
    info = read_info(path)
    if info["base"] != base_fingerprint(decoder):
        raise ValueError(f"engram.question.judge_path={path}: trained on another base model ({info['base']}); "
                         "train one for this model with `python -m engram.training.question_judge`")
    judge = QuestionJudge.fresh(decoder, tokenizer, int(info["lora_rank"]), int(info["lora_alpha"]), 0)
    tensors = load_file(str(path))
    set_peft_model_state_dict(judge.body, {k: v for k, v in tensors.items() if not k.startswith(HEAD)})
    judge.head.load_state_dict({k[len(HEAD):]: v for k, v in tensors.items() if k.startswith(HEAD)})
    # the adapter folded into the copy's weights: the same scores (to float rounding) with less work per forward
    judge.body = judge.body.merge_and_unload().eval()
    for p in [*judge.body.parameters(), *judge.head.parameters()]:
        p.requires_grad_(False)
    return judge, info


def judge_for(ecfg: Any, lm: nn.Module, tokenizer: Any) -> tuple[QuestionJudge, float] | None:
    """(judge, min probability) when `ecfg` asks hash=question to be judged by the model (judge=auto: and one is
    shipped for this base model, or judge_path names one); None: the words decide."""
    question = getattr(ecfg, "question", None)
    if ecfg.hash != "question" or question is None or question.judge == "words":
        return None
    path = question.judge_path
    if question.judge == "auto" and path is None:
        path = shipped_path(lm.model, required=False)
        if path is None:
            log.info("hash=question: judged by its words (engram.question.judge=auto; no judge for this base model)")
            return None
    judge, info = load_judge(lm.model, tokenizer, path)
    threshold = question.judge_threshold if question.judge_threshold is not None else info["threshold"]
    log.info("hash=question: judged by the model (%s, threshold %.3f)", Path(path or "").name or "shipped", threshold)
    return judge, float(threshold)
