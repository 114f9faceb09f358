"""A session's input, completed: a problem named by dataset and index is loaded, a user named by
profile id is looked up, and an input that says neither is refused with what to give.

So a caller (Studio's input form, the SDK) can start a session from ``{"dataset": "math-500",
"problem_index": 3, "profile_id": 7}`` instead of pasting the problem, solution, persona and
preferences; pasted fields still win.
"""

from __future__ import annotations

from msc_graph.config import SessionContext
from msc_graph.data import DatasetError, ProfileError, builtin_profiles, load_dataset_problems, load_profiles
from msc_graph.graphs.state import SessionState
from msc_graph.protocols import task_description


class InputError(ValueError):
    """The session's input is incomplete or names something that does not exist."""


NEEDS = (
    "a session needs a problem: give 'problem' and 'solution', or 'dataset' (e.g. \"demo\", \"math-500\") and "
    "'problem_index'; and a user: 'persona' and 'preferences', or 'profile_id'"
)


def complete_input(state: SessionState, ctx: SessionContext) -> dict:
    """The fields a named problem or user fills in (nothing when everything was pasted)."""
    update: dict = {}
    if not state.get("problem"):
        update.update(_problem(state, ctx))
    if not state.get("preferences"):
        update.update(_user(state))
    return update


def _problem(state: SessionState, ctx: SessionContext) -> dict:
    name = state.get("dataset")
    if not name:
        raise InputError(f"no problem in the input: {NEEDS}")
    index = int(state.get("problem_index") or 0)
    try:
        data = load_dataset_problems(name, index + 1, cache_dir=ctx.data_dir or None, allow_download=False)
    except DatasetError as exc:
        raise InputError(f"problem {index} of {name!r}: {exc}") from None
    problem = data.problems[index]
    out = {"problem": problem["problem"], "solution": problem["solution"]}
    if not state.get("task_description"):
        out["task_description"] = task_description(data, ctx)
    return out


def _user(state: SessionState) -> dict:
    if state.get("profile_id") is None:
        raise InputError(f"no preferences in the input: {NEEDS}")
    uid = int(state["profile_id"])
    try:
        profiles = load_profiles(state["profiles"]) if state.get("profiles") else builtin_profiles(max(100, uid + 1))
    except ProfileError as exc:
        raise InputError(str(exc)) from None
    profile = next((p for p in profiles if p.i == uid), None)
    if profile is None:
        raise InputError(f"profile_id {uid} is not in {state.get('profiles') or 'the built-in profiles'}")
    out: dict = {"preferences": profile.preferences, "user_id": state.get("user_id", uid)}
    if not state.get("persona"):
        out["persona"] = profile.persona
    return out
