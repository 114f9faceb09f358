"""Per-session metrics: reading the simulator's preference checks."""

from __future__ import annotations

from msc_graph.metrics import enforced_preferences, preference_violated


def test_violation_reading_of_simulator_checks():
    assert preference_violated("No: the reply has no bullet points.")
    assert preference_violated("The response does not include a TL;DR.")
    assert not preference_violated("Yes, it uses bullet points.")
    assert not preference_violated("satisfied")
    record = {"preferences": ["a", "b"], "turns": [
        {"role": "user", "enforce_preferences": True, "preference_1_satisfied": "yes", "preference_2_satisfied": "Not satisfied"},
        {"role": "user", "enforce_preferences": False, "preference_1_satisfied": "no"},
    ]}  # fmt: skip
    assert enforced_preferences(record) == [1]
