"""User profiles: the published format's loader and validator, and our built-in generated set.

A profile is ``{i, persona, preferences, categories}``; ``preferences`` and ``categories`` are
parallel lists (the published file has three of each). Our built-in users are generated from a
seed: a persona and three preferences from three different categories, never both sides of a pair.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError, model_validator

from msc_graph.data.jsonfile import read_record_list
from msc_graph.data.preferences import BY_KEY, CATEGORIES, PREFERENCE_TYPES


class ProfileError(ValueError):
    """A profile file could not be used; the message says which file, which entry and what to fix."""


class UserProfile(BaseModel):
    i: int = Field(ge=0, description="User id.")
    persona: str = Field(min_length=1)
    preferences: list[str] = Field(min_length=1)
    categories: list[str] = Field(default_factory=list)
    #: Keys of our preference types, for built-in users (absent in the published file).
    preference_keys: list[str] | None = None

    @model_validator(mode="after")
    def _parallel(self) -> UserProfile:
        if self.categories and len(self.categories) != len(self.preferences):
            raise ValueError(
                f"has {len(self.preferences)} preferences but {len(self.categories)} categories; "
                "the two lists must be parallel"
            )
        if any(not p.strip() for p in self.preferences):
            raise ValueError("has an empty preference")
        return self


PERSONA_ROLES = (
    "a night-shift nurse", "a retired ship engineer", "a first-year law student", "a bakery owner",
    "a high-school chemistry teacher", "a freelance illustrator", "a logistics planner",
    "a graduate student in ecology", "a volunteer firefighter", "a data journalist", "a piano tuner",
    "a hospital pharmacist", "an amateur astronomer", "a small-town accountant", "a game designer",
    "a physiotherapist", "a museum archivist", "a software tester", "a beekeeper", "a tour guide",
)
PERSONA_TRAITS = (
    "who studies in short bursts between other duties",
    "who is preparing for an exam next month",
    "who likes to double-check every number",
    "who is curious but easily distracted",
    "who wants to understand things properly, not just get answers",
    "who is returning to study after many years",
    "who learns by doing and hates long lectures",
    "who is helping a teenager with homework",
    "who is skeptical of answers that sound too sure",
    "who keeps detailed notebooks of everything learned",
)


def generate_profiles(n: int, seed: int = 0) -> list[UserProfile]:
    """``n`` users, each with a persona and three preferences from three different categories."""
    rng = random.Random(seed)
    by_category: dict[str, list] = {c: [p for p in PREFERENCE_TYPES if p.category == c] for c in CATEGORIES}
    users = []
    for i in range(n):
        persona = f"{rng.choice(PERSONA_ROLES).capitalize()} {rng.choice(PERSONA_TRAITS)}"
        cats = rng.sample(CATEGORIES, 3)
        prefs = [rng.choice(by_category[c]) for c in cats]
        users.append(
            UserProfile(
                i=i,
                persona=persona,
                preferences=[p.text for p in prefs],
                categories=cats,
                preference_keys=[p.key for p in prefs],
            )
        )
    return users


def builtin_profiles(n: int = 100) -> list[UserProfile]:
    """The default users: a fixed seed, so everyone gets the same built-in set."""
    return generate_profiles(n, seed=20261124)


#: The digest of the built-in set (its first 100 users; user i is the same whatever the size) when
#: results began to be keyed by their profile set: runs on it key nothing more, so results made
#: before keep their hash. Never update it: a changed generator must give its runs a new key.
BUILTIN_PROFILE_SET = "967c38106df0"


def profile_set_digest(profiles: list[UserProfile]) -> str:
    """A short digest of a whole profile set: every user's id, persona and preferences."""
    users = sorted(([p.i, p.persona, p.preferences] for p in profiles), key=lambda u: u[0])
    return hashlib.sha256(json.dumps(users).encode()).hexdigest()[:12]


def load_profiles(path: str | Path) -> list[UserProfile]:
    """Load and validate a profile file (the published JSON list, or a JSONL file of the same records)."""
    raw = read_record_list(
        path, what="profile file", fields="{i, persona, preferences}", wrapper_key="profiles",
        missing_hint="check --profiles", error=ProfileError,
    )  # fmt: skip
    profiles: list[UserProfile] = []
    for idx, item in enumerate(raw):
        if not isinstance(item, dict):
            raise ProfileError(f"profile file {path}: entry {idx} is not an object")
        try:
            profiles.append(UserProfile.model_validate(item))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "entry"
            raise ProfileError(f"profile file {path}: entry {idx} ({where}): {first['msg']}") from None
    seen: set[int] = set()
    for p in profiles:
        if p.i in seen:
            raise ProfileError(f"profile file {path}: user id {p.i} appears twice; ids must be unique")
        seen.add(p.i)
    return profiles


__all__ = [
    "BUILTIN_PROFILE_SET", "BY_KEY", "ProfileError", "UserProfile", "builtin_profiles", "generate_profiles", "load_profiles",
    "profile_set_digest",
]  # fmt: skip
