"""data=user_prefs: per-user preferences keyed by a user ID, several per user.

    [user_90211] User prefers theme:  ->  dark mode
    [user_90211] User prefers units:  ->  metric units

Each preference is drawn uniformly from a short list, so the base model can only guess (chance 1 in the list's
length). The split and paraphrases: engram/data/keyed_facts.py.
"""

from __future__ import annotations

from engram.data.keyed_facts import Attribute, KeyedFamily

# what -> the values a user may prefer
PREFERENCES: dict[str, tuple[str, ...]] = {
    "theme": ("dark mode", "light mode", "high contrast", "sepia mode"),
    "units": ("metric units", "imperial units"),
    "language": ("French", "Spanish", "German", "Japanese", "Portuguese", "Italian", "Dutch", "Korean"),
    "drink": ("green tea", "black coffee", "oat latte", "sparkling water", "chai", "espresso", "mint tea"),
    "music": ("jazz", "bluegrass", "synthwave", "opera", "reggae", "ambient", "baroque", "techno"),
    "notifications": ("email digests", "push alerts", "SMS only", "no alerts", "weekly summary"),
    "font": ("large text", "small text", "serif fonts", "monospace"),
}


def _attribute(what: str, values: tuple[str, ...]) -> Attribute:
    return Attribute((f"[{{id}}] User prefers {what}:", f"[{{id}}] Which {what} does this user prefer?",
                      f"[{{id}}] The {what} this user chose is"), values)


USER_PREFS = KeyedFamily(name="user_prefs", id_format="user_{n}",
                         attributes={what: _attribute(what, values) for what, values in PREFERENCES.items()})


# the family (engram/registry.py): data.categories (theme, units, ...) and data.facts_per_id are checked
build, check = USER_PREFS.build, USER_PREFS.check
