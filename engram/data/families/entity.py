"""data=entity (engram/data/entity.py): several fictional facts per entity ID; unseen = IDs never trained."""

from engram.data.entity import ENTITY

__all__ = ["build", "check"]

build = ENTITY.build
check = ENTITY.check  # data.categories (birth_year, birth_city, ...) and data.facts_per_id
