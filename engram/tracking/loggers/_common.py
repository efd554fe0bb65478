"""What every logger records the same way: the run's name, its tags and its seed."""

from __future__ import annotations

from typing import Any


def run_name(cfg: Any) -> str:
    return f"{cfg.variant.name}-{cfg.model.name}-{cfg.data.family}"


def user_tags(cfg: Any) -> list[str]:
    """`tags=[...]` (root key) then `logger.tags=[...]`, in order, without repeats."""
    tags = [str(t) for t in [*(cfg.get("tags") or []), *(cfg.logger.get("tags") or [])]]
    return list(dict.fromkeys(tags))


def run_tags(cfg: Any) -> list[str]:
    """variant / model / data family, then the user's tags."""
    return [f"variant:{cfg.variant.name}", f"model:{cfg.model.name}", f"data:{cfg.data.family}", *user_tags(cfg)]


def run_record(cfg: Any) -> dict[str, Any]:
    """The keys every logger records beside the config: the tags and the seed."""
    return {"tags": run_tags(cfg), "seed": cfg.get("seed")}


def table_rows(columns: list[str], rows: list[dict[str, Any]]) -> list[list[Any]]:
    return [[r.get(c) for c in columns] for r in rows]
