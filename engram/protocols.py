"""The interfaces of the kinds in engram/registry.py, as `typing.Protocol`s: what a hash, gate, address or data family
must offer. A kind implements one by having the members (structural typing), never by inheriting.

For each kind, `PROTOCOLS[kind]` holds three protocols:
    factory    what `registry.get(kind, name)` returns (a class or a function) and how the caller calls it
    built      what the factory builds (None for a data family: its records are plain dicts)
    options    members a kind may leave out (callers read them with a default: getattr / registry.attribute)
`problems(obj, protocol)` lists what `obj` lacks, or declares with parameters the caller cannot pass
(tests/test_protocols.py holds every registered kind to its protocols).

Gates and addresses are also `nn.Module`s (their weights and buffers are saved with the memory); a protocol cannot
demand a base class, so that is said here and tested. Torch-free at run time (torch only in annotations), beside the
registry at the bottom of the import flow, so every layer may import it.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch
    from torch import nn

Record = dict[str, Any]  # {"prompt", "answer", "category", "key", "seen"} (engram/data/records.py)


class Lookup(NamedTuple):
    """What a hash returns for the `new` newest positions."""

    slots: torch.Tensor  # LongTensor[B, T, heads]: row within each head's block
    keys: torch.Tensor  # LongTensor[B, T, heads]: each head's full key before the modulo (equal keys = same n-gram)
    keep: torch.Tensor  # BoolTensor[B, T]: the positions that get memory


# ---------------------------------------------------------------- hash (engram.hash, engram/memory/hashes/)


class HashKind(Protocol):
    def __call__(self, *, layers: list[int], vocab_size: int, pad_id: int, token_map: torch.Tensor | None,
                 **keys: Any) -> Hash:
        """Called by name (engram/config/sections.py's `build`, as every kind's constructor): these from the model,
        each other parameter from the config, the hash's own section first (engram.<name>.*), then the engram key of
        that name (table_size, heads, max_ngram, seed, ...). `token_map`: the vocabulary compression map when
        engram.compress_vocab and the hash `uses_token_map` (engram/memory/hashing.py's build_token_map), else None.
        The constructor takes only the parameters it uses."""
        ...


@runtime_checkable
class Hash(Protocol):
    shared_table: bool  # all heads index one block of rows (their rows are averaged), else one block each

    def head_sizes(self, layer: int) -> list[int]:
        """The rows of each head's block (the modulus of its slots)."""
        ...

    def lookup(self, ids: torch.Tensor, mask: torch.Tensor, prompt_lengths: torch.Tensor, new: int,
               layer: int) -> Lookup:
        """Slots, keys and keep of the `new` newest of the ids [B, S] (mask [B, S], prompt_lengths [B])."""
        ...


class HashOptions(Protocol):
    uses_token_map: bool  # default True: wants the vocabulary compression map

    @staticmethod
    def table_sizes(cfg: Any) -> list[int]:
        """The rows asked for per group of `heads` heads (one per n-gram order); the memory budget bounds the real
        (prime) sizes from it. Default: engram.table_size as a list."""
        ...


# ---------------------------------------------------------------- gate (engram.gate, engram/memory/gates/)


class GateKind(Protocol):
    def __call__(self, *, hidden_size: int, mem_dim: int, **keys: Any) -> Gate:
        """By name, as HashKind: the model's width and the rows' width, then config keys (gate_bias, ...)."""
        ...


@runtime_checkable
class Gate(Protocol):
    """An nn.Module. `gate_bias` means the same in every gate: a fixed offset (not trained) on the gate's logit
    before the sigmoid (-5: a fresh gate nearly closed, 0: half open)."""

    def forward(self, h: torch.Tensor, e: torch.Tensor, keep: torch.Tensor,
                cache: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(h [B, T, H], rows e [B, T, E], keep [B, T]) -> (the residual [B, T, H], zero where not keep; the gate's
        value [B, T] at every position, with its graph: the memory's trace and engram.gate_l1 read it). `cache`
        (cached decoding): a per-layer dict the gate may read and rewrite."""
        ...


class GateOptions(Protocol):
    """None: a gate keeps no record of its forwards (the memory's `MemoryTrace` holds what they did)."""


# ---------------------------------------------------------------- address (engram.address, engram/memory/address/)


class AddressKind(Protocol):
    def __call__(self, *, rows: int, heads: int, **keys: Any) -> Address:
        """By name, as HashKind: the table's rows and its head blocks (orders x heads), then config keys."""
        ...


@runtime_checkable
class Address(Protocol):
    """An nn.Module deciding which looked-up rows contribute; its buffers (e.g. a key stored per row) are saved with
    the memory."""

    def forward(self, rows: torch.Tensor, keys: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """(rows [B, T, heads] (global table rows), keys [B, T, heads] (Lookup.keys), keep [B, T]) -> [B, T, heads]:
        1 where that head's row contributes, 0 where not."""
        ...


class AddressOptions(Protocol):
    def retriever(self, hidden_size: int, row_dim: int) -> nn.Module:
        """Rows found by content (address=hybrid): a module the memory builds once and calls as `(h [B, T, H],
        table, keep) -> [B, T, heads, row_dim]`, added to the hash rows before the gate."""
        ...


# ---------------------------------------------------------------- data family (data=, engram/data/families/)


class Family(Protocol):
    def __call__(self, data_cfg: Any) -> dict[str, list[Record]]:
        """{"train": [...], "eval": [...]} (jsonl may add "test"), deterministic in data_cfg.seed. An eval record may
        carry "paraphrases" (other wordings of its prompt) and "neighbors" (untaught questions about its entity):
        engram.data.build_splits adds the "paraphrase" and "neighbor" splits."""
        ...


class FamilyOptions(Protocol):
    """Beside `build` (a built-in family's module attributes; a plugin sets them on the function it registers)."""

    generated: bool  # default True: built from data.seed, num_train + num_eval are capped (False: read from files)
    from_files: bool  # default False: no training records means data.path (not num_train) is to blame
    paraphrased: bool  # default False: eval/consistency is reported (items asked in several phrasings)
    language_model: bool  # default False: packed token blocks and perplexity metrics (data=text)
    checks_own_paths: bool  # default False: data.path may be a directory or a glob, checked by `check`

    def check(self, data_cfg: Any) -> None:
        """The family's own config rules (torch-free; raise engram.config.rules.ConfigError)."""
        ...

    def check_run(self, cfg: Any) -> None:
        """Rules on the whole run config, after the groups' own checks."""
        ...

    def tokenizer(self, data_cfg: Any) -> Any:
        """The family's own tokenizer, for models built from scratch on its vocabulary (model=scratch)."""
        ...


PROTOCOLS: dict[str, tuple[type, type | None, type]] = {
    "hash": (HashKind, Hash, HashOptions),
    "gate": (GateKind, Gate, GateOptions),
    "address": (AddressKind, Address, AddressOptions),
    "family": (Family, None, FamilyOptions),
}


# ---------------------------------------------------------------- checking


def members(protocol: type) -> dict[str, Any]:
    """The protocol's own members: name -> its function (a method; a staticmethod unwrapped) or its annotation
    (a data attribute, a string)."""
    out: dict[str, Any] = dict(protocol.__dict__.get("__annotations__", {}))
    for name, value in protocol.__dict__.items():
        if name.startswith("_") and name != "__call__":
            continue
        if isinstance(value, staticmethod):
            out[name] = value.__func__
        elif inspect.isfunction(value):
            out[name] = value
    return out


def callable_as(impl: Any, spec: Any, skip_self: bool) -> bool:
    """Whether `impl` accepts what a caller of `spec` passes: its required arguments alone, and all of them
    (positionally, as the pipeline calls a family); for a spec of keyword-only arguments (a constructor called by
    name), that every parameter takes a keyword (which it gets is engram/config/sections.py's `arguments`)."""
    params = list(inspect.signature(spec).parameters.values())[1 if skip_self else 0:]
    required = sum(p.default is inspect.Parameter.empty for p in params)
    try:
        signature = inspect.signature(impl)
    except (TypeError, ValueError):  # a builtin without a signature: nothing to check
        return True
    if any(p.kind is p.KEYWORD_ONLY for p in params):
        return all(p.kind is not p.POSITIONAL_ONLY for p in signature.parameters.values())
    try:
        signature.bind(*range(required))
        signature.bind(*range(len(params)))
    except TypeError:
        return False
    return True


def problems(obj: Any, protocol: type, optional: bool = False) -> list[str]:
    """What `obj` lacks of `protocol`, or has in a form its callers cannot use ([] when it conforms). `__call__`
    is checked on `obj` itself (a class: its constructor). `optional`: missing members are fine."""
    out = []
    for name, spec in members(protocol).items():
        target = obj if name == "__call__" else getattr(obj, name, None)
        if target is None and name != "__call__":
            if not optional and not hasattr(obj, name):
                out.append(f"has no {name}")
            continue
        if isinstance(spec, str):  # a data attribute: only a flag's type is checked
            if spec == "bool" and not isinstance(target, bool):
                out.append(f"{name} = {target!r} is not a bool")
        elif not callable(target) or not callable_as(target, spec, "self" in inspect.signature(spec).parameters):
            out.append(f"{name} cannot be called as {name}{inspect.signature(spec)}")
    return out
