"""What the scripted server answers mem0 and LangMem (the request shapes they send, from their
own code): fact extraction as JSON, memory updates as tool calls."""

from __future__ import annotations

import json

from msc_graph.testing.scripted_server import LEARNED_TEXT, ScriptedServer

SERVER = ScriptedServer()


def mem0_request(new_messages: str, existing: str = "[]") -> dict:
    user = (f"## Summary\n\n\n## Last k Messages\n\n\n## Recently Extracted Memories\n[]\n\n## Existing Memories\n{existing}"
            f"\n\n## New Messages\n{new_messages}\n\n## Observation Date\n2026-11-25\n\n# Output:")  # fmt: skip
    system = "\n\n# ROLE\n\nYou are a Memory Extractor — a precise, evidence-bound processor. Mention bullet points."
    return {"messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
            "response_format": {"type": "json_object"}}  # fmt: skip


def test_mem0_extraction_learns_what_a_user_message_asked_for():
    asked = SERVER.reply_for(mem0_request("user: Hi\nassistant: Hello\nuser: Please use bullet points, as I asked.\n"))
    assert json.loads(asked)["memory"][0]["text"] == LEARNED_TEXT
    # the agent's words and the system prompt do not count
    quiet = SERVER.reply_for(mem0_request("user: Hi\nassistant: - bullet points, as you like\n"))
    assert json.loads(quiet) == {"memory": []}


def langmem_request(conversation: str, tools: list[str], existing: str = "", choice: str | None = None) -> dict:
    system = "You are a memory subroutine for an AI."
    if existing:
        system += f"\n\n<existing>\n<instance id=abc123 schema_type=\"Memory\">\n{existing}\n</instance>\n</existing>\n"
    user = f"Reflect on the input.\n\n<session_1f2e>\n{conversation}\n</session_1f2e>"
    body = {"messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
            "tools": [{"type": "function", "function": {"name": n, "parameters": {"required": ["content"]}}} for n in tools]}  # fmt: skip
    if choice:
        body["tool_choice"] = choice
    return body


ASKED = ("=== Human Message ===\n\nI need help.\n\n=== Ai Message ===\n\nHere.\n\n"
         "=== Human Message ===\n\nPlease use bullet points, as I asked.")  # fmt: skip


def test_langmem_updates_are_tool_calls():
    first = SERVER.reply_for(langmem_request(ASKED, ["Memory"]))
    (call,) = first["tool_calls"]
    assert call["function"]["name"] == "Memory" and json.loads(call["function"]["arguments"]) == {"content": LEARNED_TEXT}
    # nothing asked, no memories: no call (tool_choice is not required then)
    assert "tool_calls" not in SERVER.reply_for(langmem_request("=== Human Message ===\n\nThanks!", ["Memory"]))
    # a memory that has it already: a required call keeps it as it is
    kept = SERVER.reply_for(langmem_request(ASKED, ["PatchDoc", "Memory"], f"{{'content': '{LEARNED_TEXT}'}}", "required"))
    (patch,) = kept["tool_calls"]
    args = json.loads(patch["function"]["arguments"])
    assert patch["function"]["name"] == "PatchDoc" and args["json_doc_id"] == "abc123"
    assert args["patches"] == [{"op": "replace", "path": "/content", "value": LEARNED_TEXT}]


def test_a_required_tool_call_is_answered():
    """A tool-calling check (``--memory langmem``) gets the call it requires."""
    reply = SERVER.reply_for(langmem_request("", ["remember"], choice="required"))
    assert reply["tool_calls"][0]["function"]["name"] == "remember"
