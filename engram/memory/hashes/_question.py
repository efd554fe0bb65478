"""hash=question in torch (the kind, its keys and rules: question.py)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from engram.memory import wordnet
from engram.memory.hashes._answer import AnswerHasher
from engram.memory.hashes.question import Params  # the kind declares the defaults
from engram.memory.judged import Judge, JudgedIndex, question_text
from engram.memory.questions import Question, QuestionIndex, read_question, template_words

PROMPT_TOKENS = 128  # the last this-many prompt ids are remembered per taught question (the question sits at the end)
COMMON_RANK = 8000  # a word the tokenizer spells as one token below this id is a common word (byte-level BPE ranks)
MADE_UP_PIECES = 3  # a lower-case word the tokenizer spells in this many pieces or more is a name ("zarnite")
NO_KEY = -1
MEMO_SIZE = 65536  # prompts whose key is remembered between forwards (decoding asks again at every step)


class TaughtQuestions(nn.Module):
    """The prompts trained on, as ids, with the span key their rows were written under (fixed size, so a saved
    memory loads into a fresh one)."""

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.register_buffer("keys", torch.full((capacity,), NO_KEY, dtype=torch.long))
        self.register_buffer("prompt_ids", torch.full((capacity, PROMPT_TOKENS), NO_KEY, dtype=torch.long))

    def count(self) -> int:
        return int((self.keys != NO_KEY).sum())

    @torch.no_grad()
    def remember(self, prompt: torch.Tensor, key: int) -> None:
        if bool((self.keys == key).any()):
            return
        n = self.count()
        if n == self.keys.numel():
            raise RuntimeError(f"engram: hash=question holds {n} taught questions; raise engram.question.capacity")
        prompt = prompt[-PROMPT_TOKENS:]
        self.keys[n] = key
        self.prompt_ids[n] = NO_KEY
        self.prompt_ids[n, : prompt.numel()] = prompt

    def signature(self, first: int | None = None) -> tuple[int, int]:
        """(count, sum of keys) of the first `first` questions (default: all); it changes whenever they do (a load or
        a new fact), so a cached index is brought up to date."""
        n = self.count() if first is None else int(first)
        return n, int(self.keys[:n].sum())


class QuestionReader:
    """Reads a prompt's ids as a question: decoded with the tokenizer, whose vocabulary says which words are common
    (one token below COMMON_RANK) and which are made up (MADE_UP_PIECES pieces or more), the prompt formats' own
    words skipped. The benchmark of key routes (benchmarks/key_routes.py) reads prompts with it too."""

    def __init__(self, tokenizer: Any, template_texts: list[str], synonyms: bool) -> None:
        """`synonyms`: relation words carry their WordNet senses (engram.question.synonyms; memory/wordnet.py)."""
        self.tokenizer, self.template = tokenizer, template_words(template_texts)
        self.template_texts = list(template_texts)
        self.senses = wordnet.senses if synonyms else None
        if synonyms:
            wordnet.data_dir()  # a missing package is one line now, not at the first question
        self._common = functools.lru_cache(maxsize=65536)(self._is_common)
        self._made_up = functools.lru_cache(maxsize=65536)(self._is_made_up)

    def _pieces(self, word: str) -> list[int]:
        return self.tokenizer.encode(" " + word, add_special_tokens=False)

    def _is_common(self, word: str) -> bool:
        ids = self._pieces(word)
        return len(ids) == 1 and ids[0] < COMMON_RANK

    def _is_made_up(self, word: str) -> bool:
        pieces = len(self._pieces(word))
        # with WordNet at hand, a word it does not know that the tokenizer spells in pieces is a name ("velmine")
        unknown = self.senses is not None and pieces > 1 and word.isalpha() and not self.senses(word)
        return pieces >= MADE_UP_PIECES or unknown

    def __call__(self, prompt_ids: list[int]) -> Question:
        return read_question(self.tokenizer.decode(prompt_ids), self._common, self.template, self._made_up,
                             self.senses)

    def text(self, prompt_ids: list[int]) -> str:
        """The question as written, without the prompt format around it (what a judge reads)."""
        return question_text(self.tokenizer.decode(prompt_ids), self.template_texts)


class QuestionHasher(AnswerHasher):
    reads_words = True  # EngramModel hands it the tokenizer (read_words_with)

    def __init__(self, table_size: int | Sequence[int], heads: int, layers: Sequence[int], seed: int,
                 token_map: torch.Tensor | None = None, threshold: float = Params.threshold,
                 capacity: int = Params.capacity, synonyms: bool = Params.synonyms,
                 aliases: bool = Params.aliases) -> None:
        """`threshold`, `capacity`, `synonyms`, `aliases`: engram.question.* (question.py's Params)."""
        super().__init__(table_size, heads, layers, seed, token_map)
        self.threshold, self.capacity, self.synonyms = float(threshold), int(capacity), bool(synonyms)
        self.aliases = bool(aliases)
        self.stores: dict[int, TaughtQuestions] = {}
        self.reader: QuestionReader | None = None
        self.judge: tuple[Judge, float] | None = None  # engram.question.judge=model: (judge, min probability)
        self._index: dict[int, tuple[tuple[int, int], QuestionIndex]] = {}
        self._asked: dict[tuple[int, tuple[int, ...]], int] = {}  # (layer, prompt ids) -> key, per index

    def read_words_with(self, tokenizer: Any, template_texts: list[str],
                        judge: tuple[Judge, float] | None = None) -> None:
        """`template_texts`: the prompt formats' text around an empty question (their words are skipped). `judge`:
        (a judge of two questions, its min probability) for engram.question.judge=model; None: the words decide."""
        self.reader = QuestionReader(tokenizer, template_texts, self.synonyms)
        self.judge = judge
        self._index, self._asked = {}, {}

    def taught_store(self, layer: int) -> TaughtQuestions:
        """The module holding layer `layer`'s taught questions (EngramMemory keeps it, so it is saved)."""
        self.stores[int(layer)] = TaughtQuestions(self.capacity)
        return self.stores[int(layer)]

    # ------------------------------------------------------------ reading a prompt
    def question(self, prompt_ids: list[int]) -> Question:
        if self.reader is None:
            raise RuntimeError("engram: hash=question reads the prompt's words and needs the tokenizer "
                               "(add_engram(model, cfg, tokenizer))")
        return self.reader(prompt_ids)

    def index(self, layer: int) -> QuestionIndex:
        """The taught questions of layer `layer`, read once each: questions remembered since the last call are
        added to the cached index; a store that changed otherwise (a load) is read again from the start."""
        store = self.stores.get(int(layer))
        if store is None:  # a hasher used without its memory (nothing taught): abstain everywhere
            return self._new_index()
        count = store.count()
        cached = self._index.get(int(layer))
        if cached is not None and cached[0] == store.signature():
            return cached[1]
        index, start = self._new_index(), 0
        if cached is not None and cached[0][0] <= count and store.signature(cached[0][0]) == cached[0]:
            index, start = cached[1], cached[0][0]  # only appended since: read just the new ones
        for key, ids in zip(store.keys[start:count].tolist(), store.prompt_ids[start:count].tolist(), strict=True):
            prompt = [t for t in ids if t != NO_KEY]
            index.add(self.question(prompt), key, self._text(prompt))
        self._index[int(layer)] = (store.signature(), index)
        self._asked = {k: v for k, v in self._asked.items() if k[0] != int(layer)}
        return index

    def threshold_in_use(self) -> tuple[float, str]:
        """(the min score a prompt needs to read a taught question's rows, the config key it comes from)."""
        if self.judge is None:
            return self.threshold, "engram.question.threshold"
        return float(self.judge[1]), "engram.question.judge_threshold"

    def _new_index(self) -> QuestionIndex:
        if self.judge is None:
            return QuestionIndex(self.threshold)
        return JudgedIndex(self.judge[1], self.judge[0], self.aliases)

    def _text(self, prompt_ids: list[int]) -> str:
        """The question as written, for a judge; the words alone decide without one."""
        return "" if self.judge is None or self.reader is None else self.reader.text(prompt_ids)

    @staticmethod
    def _prompts(ids: torch.Tensor, mask: torch.Tensor, prompt_lengths: torch.Tensor) -> list[list[int]]:
        pos = torch.arange(ids.shape[1], device=ids.device)
        in_prompt = (pos < prompt_lengths.to(ids.device).unsqueeze(-1)) & mask.bool()
        return [row[keep].tolist() for row, keep in zip(ids.cpu(), in_prompt.cpu(), strict=True)]

    def best_matches(self, prompts: list[list[int]], layer: int) -> list[tuple[float, int | None]]:
        """(score, key) of the taught question scoring highest for each prompt (its ids as generation feeds them), a
        judge asked once for all; the firing curve (engram/evaluation/firing.py) reads them at every threshold."""
        return self.index(layer).best_many([self.question(p) for p in prompts], [self._text(p) for p in prompts])

    def key_of(self, prompt_ids: list[int], layer: int) -> int:
        """The prompt's own span key (what its rows are written under when it is taught)."""
        ids = torch.tensor([prompt_ids], dtype=torch.long)
        return int(super().prompt_keys(ids, torch.ones_like(ids), torch.tensor([len(prompt_ids)]), layer)[0])

    # ------------------------------------------------------------ the two uses
    @torch.no_grad()
    def remember(self, ids: torch.Tensor, mask: torch.Tensor, prompt_lengths: torch.Tensor, layer: int) -> None:
        """Training forward: remember every prompt that has answer tokens (replay prompts have none)."""
        own = super().prompt_keys(ids, mask, prompt_lengths, layer)
        pos = torch.arange(ids.shape[1], device=ids.device)
        answered = (mask.bool() & (pos >= prompt_lengths.to(ids.device).unsqueeze(-1))).any(-1)
        for prompt, key, has_answer in zip(self._prompts(ids, mask, prompt_lengths), own.tolist(),
                                           answered.tolist(), strict=True):
            if has_answer:
                self.stores[int(layer)].remember(torch.tensor(prompt, dtype=torch.long), int(key))

    def prompt_keys(self, ids: torch.Tensor, mask: torch.Tensor, prompt_lengths: torch.Tensor,
                    layer: int) -> torch.Tensor:
        """Each row's own span key if it was taught, else the key of the taught question it asks, else its own."""
        own = super().prompt_keys(ids, mask, prompt_lengths, layer)
        index = self.index(layer)
        if not index.taught:  # nothing taught yet: every prompt keeps its own key
            return own
        keys = own.tolist()
        prompts = self._prompts(ids, mask, prompt_lengths)
        if len(self._asked) + len(prompts) > MEMO_SIZE:
            self._asked.clear()
        memos = [(int(layer), tuple(p)) for p in prompts]
        new = {memo: b for b, memo in enumerate(memos) if memo not in self._asked}  # one row per distinct new prompt
        matches = index.match_many([self.question(prompts[b]) for b in new.values()], [keys[b] for b in new.values()],
                                   [self._text(prompts[b]) for b in new.values()])  # judged together
        for (memo, b), match in zip(new.items(), matches, strict=True):
            self._asked[memo] = keys[b] if match is None else match
        return torch.tensor([self._asked[memo] for memo in memos], dtype=own.dtype, device=own.device)


Hash = QuestionHasher  # what the registry builds for hash=question
