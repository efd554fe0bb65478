"""The scoring functions of benchmarks/key_routes.py: how each key route scores a query against the taught prompts,
and the firing curve over a route's threshold.

Every route gives each query its best score over the taught prompts and the taught prompt that scored it; a query
fires when that score reaches the threshold, and a rewording counts only when it fires on its own fact.
  - content keys (GRACE with a radius): cosine of hidden states standardised per dimension by general prompts;
  - MEMOIR: overlap |A ∩ B| / k of the top-k masks of the decentred mean down-projection input;
  - token alignment: BERTScore-like recall, each taught token's best cosine in the query, IDF-weighted;
  - lexical: engram.memory.questions as hash=question reads a prompt (engram/memory/hashes/question.py), with and
    without the relation words' WordNet senses (engram.question.synonyms);
  - lexical + content: the taught prompts whose entities the query all names, best cosine among them.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm import tqdm

from engram.data.formatting import encode_prompts, format_prompt
from engram.memory.hashes.question import QuestionReader
from engram.memory.questions import Question, QuestionIndex
from engram.models.engram_model import format_templates

NEVER = float("-inf")  # the score of a query with no candidate: it fires at no threshold


# ---------------------------------------------------------------- features


@dataclass
class Features:
    """What the model computes for a list of prompts: the last prompt token's and the question tokens' mean hidden
    state at every layer ([n, layers + 1, hidden]; index 0 = embeddings), the mean down-projection input of some
    decoder layers ([n, intermediate]) and the question tokens (ids, hidden states at one layer)."""

    last: torch.Tensor
    mean: torch.Tensor
    act: dict[int, torch.Tensor] = field(default_factory=dict)
    token_ids: list[torch.Tensor] = field(default_factory=list)
    token_states: list[torch.Tensor] = field(default_factory=list)


def _question_mask(text: str, prompt: str, offsets: torch.Tensor, length: int) -> torch.Tensor:
    """The tokens inside the question (not the chat template around it); all tokens if none is."""
    start = text.rindex(prompt)
    end = start + len(prompt)
    offsets = offsets[:length]
    mask = (offsets[:, 0] >= start) & (offsets[:, 1] <= end) & (offsets[:, 1] > offsets[:, 0])
    return mask if bool(mask.any()) else torch.ones(length, dtype=torch.bool)


def _batches(n: int, order: list[int], size: int) -> Iterator[list[int]]:
    for i in range(0, n, size):
        yield order[i : i + size]


@torch.no_grad()
def encode(model: torch.nn.Module, tokenizer: Any, prompts: list[str], prompt_format: str, act_layers: list[int],
           token_layer: int, batch_size: int = 16, desc: str = "prompts") -> Features:
    """One forward pass per batch over the prompts as generation feeds them (the same ids as encode_prompts)."""
    texts = [format_prompt(tokenizer, p, prompt_format) for p in prompts]
    enc = tokenizer(texts, add_special_tokens=prompt_format == "plain", return_offsets_mapping=True)
    captured: dict[int, torch.Tensor] = {}
    hooks = [model.model.layers[layer].mlp.down_proj.register_forward_hook(
        lambda _m, args, _out, layer=layer: captured.__setitem__(layer, args[0].float())) for layer in act_layers]
    n_states = model.config.num_hidden_layers + 1
    hidden = model.config.hidden_size
    last, mean = torch.zeros(len(prompts), n_states, hidden), torch.zeros(len(prompts), n_states, hidden)
    act = {layer: torch.zeros(len(prompts), model.config.intermediate_size) for layer in act_layers}
    token_ids: list[torch.Tensor] = [torch.empty(0)] * len(prompts)
    token_states: list[torch.Tensor] = [torch.empty(0)] * len(prompts)
    order = sorted(range(len(prompts)), key=lambda i: len(enc["input_ids"][i]))  # similar lengths: little padding
    pad = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id)
    try:
        for chunk in tqdm(list(_batches(len(prompts), order, batch_size)), desc=desc, leave=False):
            lengths = [len(enc["input_ids"][i]) for i in chunk]
            ids = torch.full((len(chunk), max(lengths)), pad, dtype=torch.long)
            attn = torch.zeros_like(ids)
            for b, i in enumerate(chunk):  # right padding: a causal model's real tokens never see it
                ids[b, : lengths[b]] = torch.tensor(enc["input_ids"][i])
                attn[b, : lengths[b]] = 1
            states = torch.stack(model(input_ids=ids, attention_mask=attn, output_hidden_states=True).hidden_states,
                                 1).float()  # [b, layers + 1, t, hidden]
            for b, i in enumerate(chunk):
                mask = _question_mask(texts[i], prompts[i], torch.tensor(enc["offset_mapping"][i]), lengths[b])
                last[i] = states[b, :, lengths[b] - 1]
                mean[i] = states[b, :, : lengths[b]][:, mask].mean(1)
                for layer in act_layers:
                    act[layer][i] = captured[layer][b, : lengths[b]][mask].mean(0)
                token_ids[i] = ids[b, : lengths[b]][mask]
                token_states[i] = states[b, token_layer, : lengths[b]][mask]
    finally:
        for h in hooks:
            h.remove()
    return Features(last, mean, act, token_ids, token_states)


# ---------------------------------------------------------------- routes: [queries, taught] score matrices


def standardise(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Per dimension, by the reference prompts' mean and std (general prompts: what a dimension does anyway)."""
    return (x - reference.mean(0)) / (reference.std(0) + 1e-3)


def cosine(queries: torch.Tensor, taught: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    q = torch.nn.functional.normalize(standardise(queries, reference), dim=-1)
    t = torch.nn.functional.normalize(standardise(taught, reference), dim=-1)
    return q @ t.T


def topk_mask(x: torch.Tensor, background: torch.Tensor, k: int) -> torch.Tensor:
    """MEMOIR's fingerprint: the k largest (by magnitude) dimensions of the activation minus the background mean."""
    top = (x - background.mean(0)).abs().topk(k, dim=-1).indices
    return torch.zeros_like(x).scatter_(-1, top, 1.0)


def mask_overlap(queries: torch.Tensor, taught: torch.Tensor, background: torch.Tensor, k: int) -> torch.Tensor:
    """|A ∩ B| / k of the two top-k masks."""
    return topk_mask(queries, background, k) @ topk_mask(taught, background, k).T / k


def idf_weights(token_lists: list[torch.Tensor]) -> Callable[[int], float]:
    """log((N + 1) / (df + 1)) over the given token lists (taught and calibration prompts)."""
    df = Counter(t for ids in token_lists for t in set(ids.tolist()))
    n = len(token_lists)
    return lambda t: math.log((n + 1) / (df.get(t, 0) + 1))


def _padded(states: list[torch.Tensor], mu: torch.Tensor, sd: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in states)
    out = torch.zeros(len(states), width, states[0].shape[-1])
    valid = torch.zeros(len(states), width, dtype=torch.bool)
    for i, s in enumerate(states):
        out[i, : len(s)] = torch.nn.functional.normalize((s - mu) / sd, dim=-1)
        valid[i, : len(s)] = True
    return out, valid


def token_alignment(query_states: list[torch.Tensor], taught_states: list[torch.Tensor],
                    taught_ids: list[torch.Tensor], reference_states: list[torch.Tensor],
                    idf: Callable[[int], float], chunk: int = 32) -> torch.Tensor:
    """BERTScore recall: for each taught token its best cosine with a query token, averaged with IDF weights
    (the rare tokens, names and relation words, count most). Token states standardised by the reference tokens."""
    ref = torch.cat(reference_states)
    mu, sd = ref.mean(0), ref.std(0) + 1e-3
    t, t_valid = _padded(taught_states, mu, sd)
    weights = torch.zeros(t_valid.shape)
    for i, ids in enumerate(taught_ids):
        weights[i, : len(ids)] = torch.tensor([idf(int(x)) for x in ids])
    weights = weights / weights.sum(-1, keepdim=True).clamp_min(1e-9)
    out = torch.zeros(len(query_states), len(taught_states))
    for start in range(0, len(query_states), chunk):
        q, q_valid = _padded(query_states[start : start + chunk], mu, sd)
        sim = torch.einsum("qah,sbh->qsba", q, t)  # query token a, taught token b
        sim = sim.masked_fill(~q_valid[:, None, None, :], -2.0)
        out[start : start + chunk] = (sim.max(-1).values * weights).sum(-1)
    return out


def best(scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each query's best score and the taught prompt giving it."""
    return scores.max(-1)


# ---------------------------------------------------------------- the lexical route, as hash=question reads


class LexicalReader:
    """Reads prompts exactly as engram/memory/hashes/question.py does (its QuestionReader): the prompt's ids as
    generation feeds them; `synonyms` as engram.question.synonyms (relation words with their WordNet senses)."""

    def __init__(self, tokenizer: Any, prompt_format: str, synonyms: bool = True) -> None:
        self.tokenizer, self.prompt_format = tokenizer, prompt_format
        self.reader = QuestionReader(tokenizer, format_templates(tokenizer), synonyms)

    def read(self, prompts: list[str]) -> list[Question]:
        return [self.reader(x) for x in encode_prompts(self.tokenizer, prompts, self.prompt_format)]


def lexical_index(taught: list[Question]) -> QuestionIndex:
    """The taught questions keyed by their position (threshold 0: the sweep sets it)."""
    index = QuestionIndex(0.0)
    for i, q in enumerate(taught):
        index.add(q, i)
    return index


def lexical_best(index: QuestionIndex, queries: list[Question]) -> tuple[torch.Tensor, torch.Tensor]:
    """QuestionIndex.best per query; a query with no scoring candidate never fires (score -inf, index -1)."""
    scores, keys = [], []
    for q in queries:
        s, key = index.best(q)
        scores.append(s if key is not None else NEVER)
        keys.append(-1 if key is None else key)
    return torch.tensor(scores), torch.tensor(keys)


def entity_candidates(queries: list[Question], taught: list[Question]) -> torch.Tensor:
    """[queries, taught]: the query names every entity of the taught question (the lexical route's first check)."""
    return torch.tensor([[bool(t.entities) and t.entities <= q.entities for t in taught] for q in queries])


def among(scores: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    return scores.masked_fill(~candidates, NEVER)


# ---------------------------------------------------------------- curves and operating points


def curve(rewording: tuple[torch.Tensor, torch.Tensor], own: torch.Tensor,
          negatives: dict[str, torch.Tensor]) -> dict[str, list[float]]:
    """At every threshold a score takes: the share of rewordings firing on their own fact and the share of each
    negative set firing at all. `rewording` = (best score, best taught index) per rewording."""
    score, index = rewording
    correct = score.masked_fill(index != own, NEVER)
    values = torch.cat([score, *negatives.values()])
    thresholds = torch.unique(values[torch.isfinite(values)])
    thresholds = torch.cat([thresholds, torch.tensor([math.inf])])  # above every score: nothing fires

    def share(s: torch.Tensor) -> list[float]:
        return (s[None, :] >= thresholds[:, None]).float().mean(-1).tolist() if len(s) else [0.0] * len(thresholds)

    return {"thresholds": thresholds.tolist(), "rewordings": share(correct),
            **{name: share(s) for name, s in negatives.items()}}


def operating_points(c: dict[str, list[float]], negatives: list[str], limit: float = 0.05,
                     against: str = "neighbors") -> dict[str, dict[str, float]]:
    """(i) `at_limit`: the lowest threshold at which every negative set fires on at most `limit` of its prompts
    (recall only falls as the threshold rises); (ii) `best`: the threshold maximising rewordings − `against`,
    the highest of equal ones."""

    def point(i: int) -> dict[str, float]:
        return _point(c, negatives, i)

    n = len(c["thresholds"])
    ok = [i for i in range(n) if all(c[name][i] <= limit for name in negatives)]
    gain = [c["rewordings"][i] - c[against][i] for i in range(n)]
    # ties: the highest threshold (the same gain with the fewest prompts firing; abstaining when nothing gains)
    return {"at_limit": point(min(ok)), "best": point(max(range(n), key=lambda i: (gain[i], i)))}


def _point(c: dict[str, list[float]], negatives: list[str], i: int) -> dict[str, float]:
    return {"threshold": c["thresholds"][i], "rewordings": c["rewordings"][i], **{n: c[n][i] for n in negatives}}


def at_threshold(c: dict[str, list[float]], negatives: list[str], threshold: float) -> dict[str, float]:
    """The curve at a given threshold (its first point at or above it fires on exactly the same prompts)."""
    i = next(i for i, t in enumerate(c["thresholds"]) if t >= threshold)
    return {**_point(c, negatives, i), "threshold": threshold}


def closeness(queries: torch.Tensor, facts: torch.Tensor, own: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Standardised cosine of each query with one taught prompt (its own fact): [queries]."""
    q = torch.nn.functional.normalize(standardise(queries, reference), dim=-1)
    t = torch.nn.functional.normalize(standardise(facts[own], reference), dim=-1)
    return (q * t).sum(-1)


def auc(pos: torch.Tensor, neg: torch.Tensor) -> float:
    """P(a positive scores above a negative), ties half: 0.5 = no separation, < 0.5 = negatives score higher."""
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0).float() + 0.5 * (diff == 0).float()).mean())
