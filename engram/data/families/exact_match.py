"""Exact-match facts in seven categories, scaled from 100 to 100 000 training items.

Sources (no hand-typed tables where a maintained one exists):
- capitals: the `countryinfo` package (pinned); countries without a capital are skipped.
- elements: the `periodictable` package (pinned), both directions: number -> name and name -> number.
- ports: the system services list (`/etc/services`, what `socket.getservbyname` reads), TCP entries; when the
  file is missing, a snapshot shipped in `services_fallback.txt`.
- http_codes: `http.HTTPStatus` (status code -> reason phrase).
- unit_conversions: computed exactly with `Decimal` from conversion factors.
- acronyms: `acronyms.yaml`, shipped with the package (no maintained acronym package exists).
- synthetic: `SYN_01762 -> 0xBBF730` pairs drawn from `seed`; they fill `num_train` beyond the real facts.

Wordings: every fact is asked in the first wording of its kind in `WORDINGS` (the prompt trained and scored on);
the other wordings of that kind ask the same fact in other words. Eval records carry them as "paraphrases", from
which `build_splits` makes the "paraphrase" split (2 per eval item). `NEIGHBORS` ask something else about the same
entity (the official language of the country, the symbol of the element, the reverse conversion): untaught
questions whose answer must stay the base model's. Eval records carry them as "neighbors" ("neighbor" split, 2 per
seen eval item; none is a retention prompt, tests/test_data_neighbors.py).

Split: unseen eval keys are reserved first (spread over the categories), then `num_train` is spread evenly over the
categories (each capped by its facts; synthetic is unbounded), then the seen eval items are drawn from train.
"""

from __future__ import annotations

import functools
import http
import os
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from countryinfo import CountryInfo

from engram.config import ConfigError
from engram.data.records import Record, as_data_cfg, eval_counts, record, rng, spread, with_neighbors, with_paraphrases

CATEGORIES = ("capitals", "elements", "ports", "http_codes", "unit_conversions", "acronyms", "synthetic")
SERVICES_FILE = Path("/etc/services")
SERVICES_FALLBACK = Path(__file__).with_name("services_fallback.txt")
ACRONYMS_FILE = Path(__file__).with_name("acronyms.yaml")
UNBOUNDED = float("inf")

# (from unit, to unit, factor): "Convert v from to" -> v * factor; the reverse direction is generated too.
UNIT_FACTORS: tuple[tuple[str, str, str], ...] = (
    ("km", "m", "1000"), ("m", "cm", "100"), ("m", "mm", "1000"), ("cm", "mm", "10"),
    ("kg", "g", "1000"), ("g", "mg", "1000"), ("t", "kg", "1000"), ("L", "mL", "1000"),
    ("h", "min", "60"), ("min", "s", "60"), ("h", "s", "3600"), ("day", "h", "24"), ("week", "day", "7"),
    ("ft", "in", "12"), ("yd", "ft", "3"), ("mi", "yd", "1760"), ("lb", "oz", "16"), ("gal", "qt", "4"),
    ("in", "cm", "2.54"), ("mi", "km", "1.609344"), ("lb", "kg", "0.45359237"),
    ("byte", "bit", "8"), ("KiB", "byte", "1024"), ("MiB", "KiB", "1024"), ("kW", "W", "1000"),
)
UNIT_VALUES = range(1, 101)
PLURALS = {"day": "days", "week": "weeks", "byte": "bytes", "bit": "bits"}  # word units read as words; symbols don't


def _unit(name: str, amount: str | None = None) -> str:
    return name if amount == "1" else PLURALS.get(name, name)


# Question wordings per kind of fact. The first is the prompt (keep its text: existing results depend on it); the
# others ask the same fact in other words, for paraphrase generalisation (the eval records' "paraphrases").
WORDINGS: dict[str, tuple[str, ...]] = {
    "capital": ("What is the capital of {name}?", "Which city is the capital of {name}?",
                "{name} has which city as its capital?"),
    "element_name": ("Which element has atomic number {number}?",
                     "What is the name of the element with atomic number {number}?",
                     "Atomic number {number} belongs to which element?"),
    "element_number": ("What is the atomic number of {name}?", "Which atomic number does {name} have?",
                       "{name} has what atomic number?"),
    "port": ("Which service uses TCP port {port}?", "What service runs on TCP port {port}?",
             "TCP port {port} is used by which service?"),
    "http": ("What is the reason phrase of HTTP status {code}?", "Which reason phrase goes with HTTP status {code}?",
             "HTTP status {code} has what reason phrase?"),
    "unit": ("Convert {amount} {src} to {dst}.", "How many {dst} are in {amount} {src}?",
             "What is {amount} {src} in {dst}?"),
    "acronym": ("What does {acronym} stand for?", "What is {acronym} short for?",
                "{acronym} is an abbreviation of what?"),
    "synthetic": ("What is the value of {name}?", "Which value does {name} have?", "{name} has what value?"),
}

# Untaught questions about the same entity, per kind (the eval records' "neighbors"): a memory that answers them
# with the taught fact fires on the entity, not on the question. Never a retention prompt (general_prompts.yaml).
NEIGHBORS: dict[str, tuple[str, ...]] = {
    "capital": ("What is the official language of {name}?", "Which continent is {name} in?"),
    "element_name": ("Is the element with atomic number {number} a metal?",
                     "What is the chemical symbol of the element with atomic number {number}?"),
    "element_number": ("What is the chemical symbol of {name}?", "Is {name} a metal?"),
    "port": ("Which protocol runs on UDP port {port}?", "Is TCP port {port} a well-known port?"),
    "http": ("Is HTTP status {code} an error?", "Which class of responses does HTTP status {code} belong to?"),
    "unit": ("Convert {amount} {dst} to {src}.", "Which is larger, {src} or {dst}?"),  # the reverse conversion
    "acronym": ("How do you pronounce {acronym}?", "In which field is {acronym} used?"),
    "synthetic": ("How many characters are in {name}?", "Is {name} an English word?"),
}


class Fact(NamedTuple):
    """One fact; its question texts are rendered from `WORDINGS[kind]` with `fields` only when asked for."""

    answer: str
    key: str
    kind: str
    fields: dict[str, str]

    @property
    def prompt(self) -> str:
        return WORDINGS[self.kind][0].format_map(self.fields)

    @property
    def paraphrases(self) -> list[str]:
        return [w.format_map(self.fields) for w in WORDINGS[self.kind][1:]]

    @property
    def neighbors(self) -> list[str]:
        return [w.format_map(self.fields) for w in NEIGHBORS[self.kind]]


# ---------------------------------------------------------------- sources


@functools.cache
def capital_facts() -> tuple[Fact, ...]:
    facts = []
    for data in CountryInfo.all().values():
        name, capital = data.get("name"), data.get("capital")
        if isinstance(capital, list):  # the package stores a few capitals as a one-item list
            capital = capital[0] if len(capital) == 1 else None
        if isinstance(name, str) and isinstance(capital, str) and capital.strip():
            facts.append(Fact(capital, f"capitals:{name}", "capital", {"name": name}))
    return tuple(sorted(facts, key=lambda f: f.key))


@functools.cache
def element_facts() -> tuple[Fact, ...]:
    import periodictable  # lazy: ~0.1 s; only the elements category needs it, and validation builds splits

    facts = []
    for el in periodictable.elements:
        if el.number < 1:  # element 0 is the neutron
            continue
        name = el.name.capitalize()
        facts.append(Fact(name, f"elements:{el.number}", "element_name", {"number": str(el.number)}))
        facts.append(Fact(str(el.number), f"elements:{name}", "element_number", {"name": name}))
    return tuple(facts)


def read_services(path: Path) -> dict[int, str]:
    """TCP port -> service name from a services(5) file; the first name listed for a port wins."""
    ports: dict[int, str] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2:
            continue
        name, spec = fields[0], fields[1]
        port, _, proto = spec.partition("/")
        if proto in ("tcp", "") and port.isdigit():
            ports.setdefault(int(port), name)
    return ports


def services_source() -> Path:
    """The system list when present and readable, else the shipped snapshot (a fresh container may lack netbase)."""
    override = os.environ.get("ENGRAM_SERVICES_FILE")
    system = Path(override) if override else SERVICES_FILE
    try:
        if system.is_file() and read_services(system):
            return system
    except OSError:
        pass
    return SERVICES_FALLBACK


@functools.cache
def _port_facts(path: Path) -> tuple[Fact, ...]:
    return tuple(
        Fact(name, f"ports:{port}", "port", {"port": str(port)})
        for port, name in sorted(read_services(path).items())
    )


def port_facts() -> tuple[Fact, ...]:
    return _port_facts(services_source())


@functools.cache
def http_facts() -> tuple[Fact, ...]:
    return tuple(
        Fact(s.phrase, f"http_codes:{s.value}", "http", {"code": str(s.value)})
        for s in http.HTTPStatus
    )


def _number(d: Decimal) -> str:
    """Exact decimal text without exponent or trailing zeros: 5000, 2.54, 0.5."""
    text = format(d.normalize(), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


@functools.cache
def unit_facts() -> tuple[Fact, ...]:
    facts = []
    for src, dst, factor in UNIT_FACTORS:
        f = Decimal(factor)
        for v in UNIT_VALUES:
            big = _number(v * f)
            facts.append(Fact(big, f"unit_conversions:{v} {src}->{dst}", "unit",
                              {"amount": str(v), "src": _unit(src, str(v)), "dst": _unit(dst)}))
            # reverse direction: start from the converted amount so the answer is the whole number v
            facts.append(Fact(str(v), f"unit_conversions:{big} {dst}->{src}", "unit",
                              {"amount": big, "src": _unit(dst, big), "dst": _unit(src)}))
    return tuple(facts)


@functools.cache
def acronym_facts() -> tuple[Fact, ...]:
    table = yaml.safe_load(ACRONYMS_FILE.read_text(encoding="utf-8"))
    return tuple(Fact(str(v), f"acronyms:{k}", "acronym", {"acronym": str(k)}) for k, v in table.items())


def synthetic_facts(count: int, seed: int) -> list[Fact]:
    """`count` distinct synthetic keys with random 24-bit hex values, reproducible from `seed`."""
    width = 5 if count <= 50_000 else 6
    r = rng(seed, "synthetic")
    ids = r.sample(range(10**width), count)
    names = [f"SYN_{i:0{width}d}" for i in ids]
    return [Fact(f"0x{r.getrandbits(24):06X}", f"synthetic:{n}", "synthetic", {"name": n}) for n in names]


SOURCES = {
    "capitals": capital_facts,
    "elements": element_facts,
    "ports": port_facts,
    "http_codes": http_facts,
    "unit_conversions": unit_facts,
    "acronyms": acronym_facts,
}


# ---------------------------------------------------------------- splits


def resolve_categories(categories: Any) -> list[str]:
    if not categories:
        return list(CATEGORIES)
    cats = [categories] if isinstance(categories, str) else list(categories)
    for c in cats:
        if c not in CATEGORIES:
            raise ConfigError("data.categories", cats, f"has {c!r}, not one of {', '.join(CATEGORIES)}")
    return list(dict.fromkeys(cats))


def build_exact_match(data_cfg: Any) -> dict[str, list[Record]]:
    """Deterministic train/eval records for `data=exact_match` (see the module doc for the split rule)."""
    cfg = as_data_cfg(data_cfg)
    cats = resolve_categories(cfg.categories)
    seed, num_train = int(cfg.seed), int(cfg.num_train)
    n_seen, n_unseen = eval_counts(int(cfg.num_eval), float(cfg.eval_seen_fraction))

    pools: dict[str, list[Fact]] = {}
    for c in cats:
        if c != "synthetic":
            pools[c] = list(SOURCES[c]())
            rng(seed, "pool", c).shuffle(pools[c])
    size = {c: (len(pools[c]) if c in pools else UNBOUNDED) for c in cats}

    # unseen keys first: at most half of a real category, so training keeps the other half
    unseen_n = spread(n_unseen, {c: size[c] // 2 if c in pools else UNBOUNDED for c in cats})
    train_n = spread(num_train, {c: size[c] - unseen_n[c] for c in cats})
    if sum(train_n.values()) < num_train or sum(unseen_n.values()) < n_unseen:
        raise ConfigError(
            "data.num_train", num_train,
            f"(+ {n_unseen} unseen eval items) is more than the facts of data.categories={cats}; add synthetic",
        )
    if "synthetic" in cats:
        pools["synthetic"] = synthetic_facts(train_n["synthetic"] + unseen_n["synthetic"], seed)

    train: list[Record] = []
    unseen: list[Record] = []
    for c in cats:
        facts = pools[c]
        train += [record(f.prompt, f.answer, c, f.key, True) for f in facts[: train_n[c]]]
        unseen += [record(f.prompt, f.answer, c, f.key, False) for f in facts[train_n[c] : train_n[c] + unseen_n[c]]]

    # seen eval items: the same prompts as in training, spread over the categories
    by_cat = {c: [r for r in train if r["category"] == c] for c in cats}
    seen_n = spread(n_seen, {c: len(by_cat[c]) for c in cats})
    seen = [r for c in cats for r in rng(seed, "eval_seen", c).sample(by_cat[c], seen_n[c])]

    rng(seed, "train_order").shuffle(train)
    # eval records carry their other wordings and neighbour questions (build_splits turns them into the
    # "paraphrase" and "neighbor" splits); train records stay the common shape, and new dicts keep the seen eval
    # items from changing the train records they came from
    fact_of = {f.key: f for c in cats for f in pools[c][: train_n[c] + unseen_n[c]]}
    evals = [with_neighbors(with_paraphrases(r, fact_of[r["key"]].paraphrases), fact_of[r["key"]].neighbors)
             for r in seen + unseen]
    rng(seed, "eval_order").shuffle(evals)
    return {"train": train, "eval": evals}


build = build_exact_match  # the family (engram/registry.py)
