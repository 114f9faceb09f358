"""Every prompt the benchmark sends, written for this project.

The rules follow the MultiSessionCollab protocol (the simulated user enforces preferences before
anything else, keeps a draft answer that starts as "I don't know", starts vague, and ends with a
termination signal); the wording is ours. Bump ``PROMPTS_VERSION`` whenever a prompt changes: it
is part of the settings hash, so results made with different prompts are never mixed on resume.
"""

from __future__ import annotations

import json

PROMPTS_VERSION = "2026-11-25.2"  # .2: recalled notes move onto the first kept message when trimming drops theirs

#: What the user puts in a message to end the session (the published signal).
TERMINATION_SIGNAL = "TERMINATE"
#: The agent's first message in every session (as published).
OPENING_MESSAGE = "How can I help you?"
#: The first words of each prompt that opens a request, so a scripted test server can tell the
#: roles apart by importing them instead of copying text.
ROLE_MARKS = {
    "user": "You play a person",
    "judge": "You grade answers",
    "reflect": "keeps notes about one person",
    "select": "decide which of its notes",
    "coverage": "You check notes that an assistant",
}

USER_SYSTEM = """\
You play a person who is working on a problem together with an AI assistant. Stay in character for
the whole conversation. The assistant cannot see the problem below: it only knows what you tell it.

## Your problem
{task_description}
{problem}

## Who you are
{persona}

## How you want the assistant to behave
{preferences}

These preferences are firm. Apply them like this:
- If the assistant asks a clarifying question, answer it. Do not judge answer formatting or content
  while the assistant is still clarifying what you need.
- Once the assistant is actually helping, check every reply against each preference. If any
  preference is broken, your whole reply is a request to fix that: say what is wrong and ask for a
  corrected reply. Do not answer its questions, add information or move on in that reply.
- While a preference is broken, keep your draft answer exactly as it was and do not end the
  conversation, however useful the assistant's content was.

## Your draft answer
Keep a draft answer to the problem. It starts as "I don't know". Change it only when a reply that
respects all your preferences teaches you something that improves it.

## How you talk
- Do not paste the problem. Describe what you need in your own words, a little at a time.
- Start vague and brief, as real people do; give details when the assistant asks for them.
- Keep your messages natural and consistent with the conversation so far.

## Ending the conversation
Before each reply, ask yourself whether your draft answer now solves the problem, or whether the
assistant cannot help any further. If so, and no preference is broken, end the conversation: set
"should_terminate" to true and put {termination} in your response.

## Reply format
Reply with one JSON object and nothing else, with these keys in this order:
{preference_keys}
- "enforce_preferences": true if this reply asks the assistant to fix a broken preference
- "reasoning": two or three sentences: are all preferences met? how does your draft change? are you done?
- "draft_answer": your current draft answer ("I don't know" until you learn something)
- "should_terminate": true to end the conversation now
- "response": the message you send to the assistant
"""

USER_PREFERENCE_KEY = '- "preference_{i}_satisfied": does the last assistant reply satisfy preference {i}? Say why in a sentence'

AGENT_SYSTEM_TEXT = """\
You are an AI assistant who helps people solve problems: maths, logic, science, medicine and
general questions. Work with the person: if a request is unclear or is missing details you need,
ask for them instead of guessing. Follow the person's preferences about how you respond, and do
your best to help them reach a correct answer."""

AGENT_SYSTEM_JSON = (
    AGENT_SYSTEM_TEXT
    + """

Reply with one JSON object and nothing else:
- "reasoning": two or three sentences: do you have what you need, or should you ask? which of the
  person's preferences apply and how will you meet them?
- "response": your message to the person.
Keep the whole reply under {max_tokens} tokens."""
)

AGENT_NOTES_BLOCK = """

## What you know about this person
You have worked with this person before and kept notes on how they like you to respond. Follow
them from your very first reply: a reply that ignores them will have to be redone.
{notes}"""

AGENT_ORACLE_BLOCK = """

## This person's preferences
This person has told you exactly how they want you to respond. Follow every point from your very
first reply:
{preferences}"""

RETRIEVED_NOTES_BLOCK = """

[Notes from earlier sessions with this user that bear on this message:
{notes}]"""

JUDGE_PROMPT = """\
You grade answers. Decide whether a student's draft answer to a problem is correct, using the
reference solution.

## Problem
{problem}

## Reference solution
{solution}

## Draft answer
{draft_answer}

Grade only the final answer, not the working. It is correct (1) if it reaches the same final
result as the reference (equivalent forms count: 1/2 = 0.5; for multiple choice, the same choice).
It is incorrect (0) if it differs, is missing, is only partial, or says it does not know.

Reply with one JSON object and nothing else:
- "reasoning": a short comparison of the draft's final answer with the reference
- "accuracy": 1 if correct, 0 if not"""

REFLECTION_PROMPT = """\
You are an AI assistant who keeps notes about one person across many conversations, so that each
new conversation goes better than the last. A conversation with this person has just ended.

## Your notes so far
{notes}

## The conversation that just ended
{conversation}

Update your notes:
- Look for every moment the person asked you to change how you respond (format, length, tone,
  structure, pace, extras). Each is a preference: note what they want, the evidence (which
  session, what they said), and exactly how to satisfy it next time.
- Keep every earlier note that this conversation did not contradict; merge duplicates.
- Record only what the person actually asked for. Never guess preferences they did not express,
  and do not record anything about the problem itself.

Reply with one JSON object and nothing else:
- "reasoning": what the person enforced in this conversation, briefly
- "notes": the complete updated list; each item has "preference", "evidence", "how_to_satisfy"
"""

#: Training only (``msc_graph.train``; no benchmark request uses it, so PROMPTS_VERSION stays): a
#: judge grades which of the user's true preferences a reflection's notes capture.
COVERAGE_PROMPT = """\
You check notes that an assistant keeps about one person. The person has these preferences about
how the assistant should respond:
{preferences}

## The assistant's notes
{notes}

For each preference, decide whether the notes capture it clearly enough that an assistant reading
only the notes would satisfy it. A note that is vague, contradicts the preference, or only
mentions the topic does not count.

Reply with one JSON object and nothing else:
- "reasoning": one sentence per preference
- "covered": the numbers of the preferences the notes capture, for example [1, 3]; [] for none"""

SELECT_NOTES_PROMPT = """\
You help an AI assistant decide which of its notes about a person matter for its next reply.

## Notes
{notes}

## Conversation so far
{conversation}

Choose the notes that apply to the assistant's next reply (formatting and style notes usually
apply to every reply).

Reply with one JSON object and nothing else:
- "reasoning": one or two sentences
- "relevant_notes": the numbers of the relevant notes, for example [1, 3]"""

JSON_RETRY_HINT = (
    "Your last reply could not be used: {error}. Reply again with only the JSON object, "
    "with exactly these keys: {keys}."
)


JSON_CUT_OFF_HINT = (
    "Your last reply was cut off because it was too long. Reply again with only the JSON object, "
    "keeping every value to one or two short sentences. Keys: {keys}."
)


def format_numbered(items: list[str]) -> str:
    return "\n".join(f"{i}. {item}" for i, item in enumerate(items, start=1)) or "(none yet)"


def user_system_prompt(task_description: str, problem: str, persona: str, preferences: list[str]) -> str:
    keys = "\n".join(USER_PREFERENCE_KEY.format(i=i) for i in range(1, len(preferences) + 1))
    return USER_SYSTEM.format(
        task_description=task_description,
        problem=problem,
        persona=persona,
        preferences=format_numbered(preferences),
        termination=json.dumps(TERMINATION_SIGNAL),
        preference_keys=keys,
    )


def transcript_text(messages: list[dict]) -> str:
    """A conversation as plain text, for prompts that read a whole session."""
    names = {"assistant": "Assistant", "user": "User"}
    return "\n\n".join(f"{names.get(m['role'], m['role'])}: {m['content']}" for m in messages)
