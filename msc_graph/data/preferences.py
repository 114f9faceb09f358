"""The 20 interaction-preference types of MultiSessionCollab, described in our own words.

Five opposed pairs (a user holds at most one side of a pair) and ten formatting habits. Each
description says what the user wants and, explicitly, when the user must enforce it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PreferenceType:
    key: str
    category: str
    text: str
    #: Key of the opposite preference, for the five opposed pairs.
    opposite: str | None = None


PAIRED_CATEGORIES = ("politeness", "proactivity", "directness", "guidance", "analyticality_intuitiveness")
HABITS = "habitual_strategies"

PREFERENCE_TYPES: tuple[PreferenceType, ...] = (
    PreferenceType(
        "courteous",
        "politeness",
        "You like the assistant to be warm and courteous, with a friendly word now and then. Enforce "
        "when a reply is curt or purely transactional, for example just 'The answer is 12.' with no "
        "friendliness at all.",
        "blunt",
    ),
    PreferenceType(
        "blunt",
        "politeness",
        "You want plain, blunt replies with no pleasantries, apologies or thanks. Enforce when a reply "
        "contains courtesy phrases such as 'Great question!', 'I'm sorry', 'Happy to help' or 'Thanks'.",
        "courteous",
    ),
    PreferenceType(
        "next_step",
        "proactivity",
        "You want every reply to end with a concrete suggestion for what to do next. Enforce when a "
        "reply gives an answer or explanation and stops without proposing a next step.",
        "only_asked",
    ),
    PreferenceType(
        "only_asked",
        "proactivity",
        "You want the assistant to answer only what you asked, with no unrequested advice or next "
        "steps. Enforce when a reply adds suggestions such as 'You might also try...' or 'Next, you "
        "could...'.",
        "next_step",
    ),
    PreferenceType(
        "to_the_point",
        "directness",
        "You want replies that go straight to the substance with no narration. Enforce when a reply "
        "opens with filler, restates your question, or comments on what it is about to do.",
        "narrative",
    ),
    PreferenceType(
        "narrative",
        "directness",
        "You like conversational replies that tell a story and tie back to what was said earlier "
        "(for example 'Building on the step we just did...'). Enforce when a reply is a bare list of "
        "facts that ignores the earlier conversation.",
        "to_the_point",
    ),
    PreferenceType(
        "one_step",
        "guidance",
        "On multi-step problems you want one small step per reply, followed by a check that you are "
        "ready to continue. Enforce when a reply covers several steps or the whole solution at once.",
        "whole_solution",
    ),
    PreferenceType(
        "whole_solution",
        "guidance",
        "You want the complete solution in one reply. Enforce when the assistant splits the work into "
        "pieces and asks whether to continue instead of finishing it.",
        "one_step",
    ),
    PreferenceType(
        "rigorous",
        "analyticality_intuitiveness",
        "When the assistant explains or solves something, you want the assumptions stated and each step "
        "justified. Enforce when a reply jumps to a result without showing why each step holds.",
        "intuitive",
    ),
    PreferenceType(
        "intuitive",
        "analyticality_intuitiveness",
        "When the assistant explains or solves something, you want the big-picture intuition first, "
        "before any detailed working. Enforce when a reply starts with formulas or detailed steps "
        "without first saying the idea in plain words.",
        "rigorous",
    ),
    PreferenceType(
        "bullets",
        HABITS,
        "You like replies organised as bullet points. A reply with at least one list item ('-', '*' "
        "or '1.') is fine, even mixed with prose. Enforce only when a reply has no list items at all.",
    ),
    PreferenceType(
        "examples",
        HABITS,
        "You learn best from examples, analogies or metaphors. Enforce when an explanation contains none.",
    ),
    PreferenceType(
        "confidence",
        HABITS,
        "You want every answer to come with an estimate of how confident the assistant is (for example "
        "'about 90% sure'). Enforce when a reply gives an answer without one.",
    ),
    PreferenceType(
        "outline_first",
        HABITS,
        "You want longer answers to open with a short outline of what they will cover. Enforce when a "
        "reply dives into the content without an outline first.",
    ),
    PreferenceType(
        "three_sentences",
        HABITS,
        "You want short replies: three sentences at most. Enforce when a reply has more than three sentences.",
    ),
    PreferenceType(
        "headings",
        HABITS,
        "You want structured replies with a heading over each section. Enforce when a reply with more "
        "than one part has no section headings.",
    ),
    PreferenceType(
        "tldr",
        HABITS,
        "You want each reply to finish with a one-line TL;DR. Enforce when a reply ends without a "
        "one-line summary.",
    ),
    PreferenceType(
        "numbered_steps",
        HABITS,
        "You want procedures written as numbered steps (1., 2., 3.). Enforce when a reply describes "
        "several steps without numbering them.",
    ),
    PreferenceType(
        "takeaways",
        HABITS,
        "When a problem is wrapping up, you want a few key takeaways to keep for later. Enforce when the "
        "assistant concludes or gives the final answer without listing key takeaways.",
    ),
    PreferenceType(
        "alternatives",
        HABITS,
        "You want to see more than one way to solve a problem, with the trade-offs of each. Enforce when "
        "a reply gives a single approach without mentioning any alternative.",
    ),
)

BY_KEY = {p.key: p for p in PREFERENCE_TYPES}
CATEGORIES = (*PAIRED_CATEGORIES, HABITS)
