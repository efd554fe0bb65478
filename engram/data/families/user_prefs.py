"""data=user_prefs (engram/data/user_prefs.py): several preferences per user ID; unseen = users never trained."""

from engram.data.user_prefs import USER_PREFS

__all__ = ["build", "check"]

build = USER_PREFS.build
check = USER_PREFS.check  # data.categories (theme, units, ...) and data.facts_per_id
