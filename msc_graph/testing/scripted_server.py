"""A small scripted OpenAI-compatible server for tests and benchmarks (loopback only).

It speaks real HTTP/1.1 (keep-alive) and answers ``GET /v1/models``, ``POST /v1/chat/completions``
and ``POST /v1/embeddings``. Replies are deterministic functions of the request, so two runs of the
same sessions produce the same records. It recognises which role is calling from the prompt:

- user simulator: wants bullet points; enforces that preference whenever a substantive agent
  reply has none, updates its draft to ``FINAL: <n>`` and terminates after ``terminate_after`` turns;
- judge: accuracy 1 when the draft answer contains ``FINAL``;
- reflection: one note per user message that asked for a change;
- note selection: picks note 1;
- coverage grading (reflection training's judge): a preference counts as covered when one of its
  words of four letters or more appears in the notes (lenient: a tiny model's notes must score);
- the agent: a short reply, in bullet points only once the word "bullet" appears in what it is sent
  (the user asked, or its notes say so), as text or JSON when ``response_format`` asks;
- mem0's fact extraction (its "Memory Extractor" prompt): ``{"memory": [...]}`` with one memory
  about bullet points when a user message among the new messages asked for them, else none;
- LangMem (a request that offers ``tools``): tool calls. A ``Memory`` call records the bullet-point
  preference when the user asked for it and no existing memory has it; with existing memories
  (``PatchDoc`` offered, a tool call required) a ``PatchDoc`` that keeps the memory as it is;
  ``search_memory`` searches for the latest user message.

So without memory every session costs one enforcement; with memory, sessions after the first cost none.

A request that carries a ``seed`` (a later trial of ``--trials``) lets the user simulator *lapse*
on one seed in three (a function of the seed alone): it lets a broken preference pass without
enforcing it, or ends the session with no final answer (TS 0). So trials of one session differ.

``--latency`` and ``--capacity`` model a saturated GPU server: at most ``capacity`` requests are
in service, each takes ``latency`` seconds, the rest wait in a queue.

Run: ``python -m msc_graph.testing.scripted_server --port 0`` prints ``PORT <n>`` when ready.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import hashlib
import json
import re
import sys
import time

from msc_graph.prompts import ROLE_MARKS, TERMINATION_SIGNAL

USER_MARK = ROLE_MARKS["user"]
JUDGE_MARK = ROLE_MARKS["judge"]
REFLECT_MARK = ROLE_MARKS["reflect"]
SELECT_MARK = ROLE_MARKS["select"]
COVERAGE_MARK = ROLE_MARKS["coverage"]
ENFORCE_TEXT = "Please use bullet points, as I asked."
#: What mem0 and LangMem learn from a session where the user asked for bullet points.
LEARNED_TEXT = "The user wants answers as bullet points."
MEM0_MARK = "You are a Memory Extractor"


class ScriptedServer:
    def __init__(
        self,
        model: str = "scripted",
        latency: float = 0.0,
        capacity: int = 1_000_000,
        terminate_after: int = 3,
        enforce_on_turn: int = 1,
    ) -> None:
        self.model = model
        self.latency = latency
        self.capacity = capacity
        self.terminate_after = terminate_after
        self.enforce_on_turn = enforce_on_turn
        self.requests = 0
        self._sem: asyncio.Semaphore | None = None

    # ------------------------------------------------------------------ replies

    def reply_for(self, body: dict) -> str | dict:
        """The reply's text, or a whole message (tool calls)."""
        messages = body.get("messages") or []
        first = messages[0]["content"] if messages else ""
        if body.get("tools"):
            return _tool_reply(body)
        if isinstance(first, str) and MEM0_MARK in first:
            return _mem0_reply(messages)
        if COVERAGE_MARK in first:
            return json.dumps(_coverage_reply(first))
        if USER_MARK in first:
            return json.dumps(self._user_reply(messages, lapses(body.get("seed"))))
        if JUDGE_MARK in first:
            draft = first.split("## Draft answer", 1)[-1]
            ok = "FINAL" in draft
            return json.dumps({"reasoning": "compared with the reference", "accuracy": 1 if ok else 0})
        if REFLECT_MARK in first:
            notes_part, _, convo = first.partition("## The conversation that just ended")
            asks = re.findall(r"User: ([^\n]*bullet[^\n]*)", convo)
            known = "bullet points" in notes_part
            notes = []
            if asks or known:
                evidence = f"Asked: {asks[0][:80]}" if asks else "asked in an earlier session"
                notes = [{"preference": "The user wants answers as bullet points.", "evidence": evidence,
                          "how_to_satisfy": "Format every reply as a bulleted list."}]  # fmt: skip
            return json.dumps({"reasoning": "the user wants bullet points" if notes else "nothing enforced", "notes": notes})
        if SELECT_MARK in first:
            return json.dumps({"reasoning": "formatting applies", "relevant_notes": [1]})
        # the agent: bullet points once it knows the user wants them (asked, or told by its notes)
        last_user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        digest = hashlib.sha256(last_user.encode("utf-8", "surrogatepass")).hexdigest()[:6]
        knows = any("bullet" in (m.get("content") or "").lower() for m in messages)
        if knows:
            text = f"- Here is a step towards the answer ({digest}).\n- Tell me what you think."
        else:
            text = f"Here is a step towards the answer ({digest}). Tell me what you think."
        if body.get("response_format"):
            return json.dumps({"reasoning": "help the user", "response": text})
        return text

    def _user_reply(self, messages: list[dict], lapse: bool = False) -> dict:
        # reversed view: the agent speaks as "user"
        agent_msgs = [m for m in messages[1:] if m["role"] == "user"]
        turn = len(agent_msgs)  # this is user turn number `turn`
        n_prefs = len(re.findall(r'"preference_\d+_satisfied"', messages[0]["content"]))
        checks = {f"preference_{i}_satisfied": "yes, satisfied" for i in range(1, n_prefs + 1)}
        last_agent = agent_msgs[-1]["content"] if agent_msgs else ""
        has_bullets = any(line.lstrip().startswith("- ") for line in last_agent.splitlines())
        if turn > self.enforce_on_turn and turn < self.terminate_after and not has_bullets:
            checks["preference_1_satisfied"] = "No: the reply has no bullet points."
            if lapse:
                return {**checks, "enforce_preferences": False, "reasoning": "let it pass", "draft_answer": "I don't know",
                        "should_terminate": False, "response": f"Go on (turn {turn})."}  # fmt: skip
            return {**checks, "enforce_preferences": True, "reasoning": "a preference was broken",
                    "draft_answer": "I don't know", "should_terminate": False, "response": ENFORCE_TEXT}
        if turn >= self.terminate_after:
            return {**checks, "enforce_preferences": False, "reasoning": "done",
                    "draft_answer": "I don't know" if lapse else f"FINAL: {turn}", "should_terminate": True, "response": f"Thanks! {TERMINATION_SIGNAL}"}
        return {**checks, "enforce_preferences": False, "reasoning": "asking for help",
                "draft_answer": "I don't know" if turn == 1 else f"partial {turn}",
                "should_terminate": False, "response": f"I need help with a problem (turn {turn})."}

    # ------------------------------------------------------------------ HTTP

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request_line = await reader.readline()
                if not request_line:
                    break
                method, path, _ = request_line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while True:
                    line = await reader.readline()
                    if line in (b"\r\n", b"\n", b""):
                        break
                    k, _, v = line.decode("latin-1").partition(":")
                    headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
                if not await self.respond(writer, method, path, headers, body):
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()

    async def respond(self, writer: asyncio.StreamWriter, method: str, path: str, headers: dict, body: bytes) -> bool:
        """Answer one request; ``False`` closes the connection."""
        try:
            status, payload = await self.route(method, path, body)
        except Exception as exc:  # noqa: BLE001 - a scripted bug answers 500, not a dropped socket
            status, payload = 500, {"error": {"message": f"{type(exc).__name__}: {exc}"}}
        await write_response(writer, status, json.dumps(payload).encode())
        return True

    async def route(self, method: str, path: str, body: bytes) -> tuple[int, dict]:
        path = path.split("?", 1)[0]
        if method == "GET" and path.rstrip("/") in ("/v1/models", "/models"):
            return 200, {"object": "list", "data": [{"id": self.model, "object": "model", "owned_by": "msc"}]}
        if method == "GET" and path in ("/health", "/v1/health", "/health_generate"):
            return 200, {"status": "ok"}
        if method == "GET" and path in ("/get_model_info", "/model_info", "/get_server_info", "/server_info"):
            # what SGLang workers tell sglang-router about themselves
            return 200, {"model_path": self.model, "tokenizer_path": self.model, "is_generation": True,
                         "served_model_name": self.model}  # fmt: skip
        if method == "POST" and path.endswith("/chat/completions"):
            req = json.loads(body or b"{}")
            if req.get("model") != self.model:
                return 404, {"error": {"message": f"model {req.get('model')!r} not found", "type": "not_found"}}
            if self._sem is None:
                self._sem = asyncio.Semaphore(self.capacity)
            async with self._sem:
                if self.latency:
                    await asyncio.sleep(self.latency)
                self.requests += 1
                reply = self.reply_for(req)
            message = reply if isinstance(reply, dict) else {"role": "assistant", "content": reply}
            finish = "tool_calls" if message.get("tool_calls") else "stop"
            produced = len(message.get("content") or "")
            if message.get("tool_calls"):
                produced += len(json.dumps(message["tool_calls"]))
            prompt_tokens = sum(len(str(m.get("content") or "")) for m in req.get("messages", [])) // 4 + 1
            return 200, {
                "id": f"chatcmpl-{self.requests}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": self.model,
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": produced // 4 + 1,
                    "total_tokens": prompt_tokens + produced // 4 + 1,
                    "prompt_tokens_details": {"cached_tokens": prompt_tokens // 2},
                },
            }
        if method == "POST" and path.endswith("/embeddings"):
            req = json.loads(body or b"{}")
            inputs = req.get("input") or []
            inputs = [inputs] if isinstance(inputs, str) else inputs
            return 200, {"object": "list", "model": self.model, "data": [
                {"object": "embedding", "index": i, "embedding": _toy_embedding(t)} for i, t in enumerate(inputs)
            ]}
        return 404, {"error": {"message": f"no route {method} {path}"}}


def lapses(seed: int | None) -> bool:
    """Whether the simulator lapses on a request with this ``seed`` (one seed in three; never without one)."""
    return seed is not None and int(hashlib.sha256(str(seed).encode()).hexdigest(), 16) % 3 == 0


def _coverage_reply(prompt: str) -> dict:
    head, _, notes = prompt.partition("## The assistant's notes")
    notes = notes.split("\n\nFor each preference", 1)[0].lower()
    prefs = re.findall(r"^(\d+)\. (.*)$", head, flags=re.M)
    covered = [int(n) for n, text in prefs if any(w in notes for w in re.findall(r"[a-z]{4,}", text.lower()))]
    return {"reasoning": f"{len(covered)} of {len(prefs)} preferences appear in the notes", "covered": covered}


def _mem0_reply(messages: list[dict]) -> str:
    """mem0's extraction: the bullet-point preference when a user message among the new ones asked."""
    prompt = str(messages[-1].get("content") or "")
    new = prompt.split("## New Messages", 1)[-1].split("## Observation Date", 1)[0]
    asked = re.search(r"^user: [^\n]*bullet", new, re.MULTILINE | re.IGNORECASE)
    memory = [{"id": "0", "text": LEARNED_TEXT, "attributed_to": "user", "linked_memory_ids": []}] if asked else []
    return json.dumps({"memory": memory})


def _tool_call(name: str, args: dict, n: int) -> dict:
    digest = hashlib.sha256(json.dumps([name, args, n], sort_keys=True).encode()).hexdigest()[:12]
    return {"id": f"call_{digest}", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}


def _tool_reply(body: dict) -> dict:
    """LangMem's memory manager (trustcall): tool calls chosen from the request alone."""
    messages = body.get("messages") or []
    names = [t.get("function", {}).get("name") for t in body.get("tools") or []]
    text = "\n".join(str(m.get("content") or "") for m in messages)
    system = str(messages[0].get("content") or "") if messages and messages[0].get("role") == "system" else ""
    if "search_memory" in names:
        last_user = next((str(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
        calls = [_tool_call("search_memory", {"query": last_user[-300:]}, 0)]
        return {"role": "assistant", "content": "", "tool_calls": calls}
    conversation = text.split("<session_", 1)[-1] if "<session_" in text else text
    asked = re.search(r"Human Message =+\s*\n\s*\n[^\n]*bullet", conversation, re.IGNORECASE) is not None
    existing = re.findall(r'<instance id=(\S+) schema_type="Memory">\n(.*?)\n</instance>', system, re.DOTALL)
    calls = []
    if asked and not any("bullet" in doc.lower() for _, doc in existing) and "Memory" in names:
        calls.append(_tool_call("Memory", {"content": LEARNED_TEXT}, len(calls)))
    if not calls and existing and "PatchDoc" in names:  # a tool call is required: keep a memory as it is
        doc_id, doc = existing[0]
        try:
            content = ast.literal_eval(doc.strip()).get("content", "")
        except (ValueError, SyntaxError, AttributeError):
            content = doc.strip()
        patch = {"json_doc_id": doc_id, "planned_edits": "nothing new", "patches": [
            {"op": "replace", "path": "/content", "value": content}]}  # fmt: skip
        calls.append(_tool_call("PatchDoc", patch, len(calls)))
    if not calls and body.get("tool_choice") in ("required", "any") and names:  # e.g. a tool-calling check
        params = (body["tools"][0].get("function") or {}).get("parameters") or {}
        calls.append(_tool_call(names[0], {p: "probe" for p in params.get("required") or []}, 0))
    if not calls:
        return {"role": "assistant", "content": "Nothing to record."}
    return {"role": "assistant", "content": "", "tool_calls": calls}


async def write_response(
    writer: asyncio.StreamWriter,
    status: int,
    data: bytes,
    content_type: str = "application/json",
    extra_headers: dict[str, str] | None = None,
) -> None:
    head = f"HTTP/1.1 {status} {'OK' if status < 400 else 'Error'}\r\nContent-Type: {content_type}\r\n"
    head += f"Content-Length: {len(data)}\r\nConnection: keep-alive\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in (extra_headers or {}).items())
    writer.write((head + "\r\n").encode() + data)
    await writer.drain()


def _toy_embedding(text: str, dim: int = 32) -> list[float]:
    vec = [0.0] * dim
    for word in re.findall(r"[a-z]+", text.lower()):
        vec[int(hashlib.md5(word.encode()).hexdigest(), 16) % dim] += 1.0
    norm = sum(v * v for v in vec) ** 0.5 or 1.0
    return [v / norm for v in vec]


async def serve(server: ScriptedServer, host: str = "127.0.0.1", port: int = 0) -> asyncio.base_events.Server:
    return await asyncio.start_server(server.handle, host, port, backlog=4096)


def add_server_args(ap: argparse.ArgumentParser) -> None:
    """Flags every scripted server takes."""
    ap.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    ap.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (printed as PORT n)")
    ap.add_argument("--model", default="scripted", help="model name served (default scripted)")
    ap.add_argument("--latency", type=float, default=0.0, help="seconds each request takes in service")
    ap.add_argument("--capacity", type=int, default=1_000_000, help="requests in service at once")
    ap.add_argument("--terminate-after", type=int, default=3, help="user turns before the user terminates")


def serve_until_interrupted(server: ScriptedServer, host: str, port: int) -> None:
    """Serve on loopback, print ``PORT n`` once listening, run until Ctrl-C or SIGTERM."""
    if host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("the scripted servers bind loopback only")

    async def run() -> None:
        srv = await serve(server, host, port)
        print(f"PORT {srv.sockets[0].getsockname()[1]}", flush=True)
        async with srv:
            await srv.serve_forever()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_server_args(ap)
    args = ap.parse_args(argv)
    server = ScriptedServer(args.model, args.latency, args.capacity, args.terminate_after)
    serve_until_interrupted(server, args.host, args.port)


if __name__ == "__main__":
    main()
