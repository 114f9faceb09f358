"""The scripted OpenAI-compatible server with faults injected into chat completions (loopback only).

Each ``POST /v1/chat/completions`` draws at most one fault, at the configured rates:

=============== ==============================================================================
``500``         HTTP 500 with an error body
``503``         HTTP 503 with ``Retry-After`` (and ``retry-after-ms``)
``429``         HTTP 429 with ``Retry-After`` (and ``retry-after-ms``)
``hang``        no answer for ``--hang-s`` seconds (past the client's timeout), then the socket closes
``drop``        the connection closes without an answer
``bad_body``    HTTP 200 with an HTML body instead of JSON
``not_json``    a completion whose content is prose, not JSON
``truncated``   a completion whose content stops halfway (``finish_reason`` stop)
``missing_key`` the JSON content with one key removed
``wrong_type``  the JSON content with one value of the wrong type
``empty``       an empty completion
``endless``     a very long run of text cut at max tokens (``finish_reason`` length)
``surrogate``   a valid reply whose text holds a lone surrogate (``\\ud83d``), as broken tokenizers emit
``huge``        a valid reply padded to 1 MB, as a server that ignores ``max_tokens`` sends (only
                when named: ``--fault huge=RATE`` or ``--fail-with huge``; not in ``--fault-rate``)
=============== ==============================================================================

``--fail-when TEXT`` answers every completion whose request contains TEXT with the fault
``--fail-with`` (default 500; ``not_json`` makes it a content failure) to fail one chosen session
for good. ``GET /faults`` returns how many of each were injected. ``POST /control/outage?seconds=S``
starts an outage: for S seconds every request (``/models`` too) has its connection closed
unanswered. ``--require-key K`` answers 401 to any request without ``Authorization: Bearer K``
(for the secrets tests).

Run: ``python -m msc_graph.testing.fault_server --port 0 --fault-rate 0.05`` prints ``PORT <n>``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections import Counter

from msc_graph.testing.scripted_server import (
    ScriptedServer,
    add_server_args,
    serve_until_interrupted,
    write_response,
)

FAULTS = (
    "500", "503", "429", "hang", "drop", "bad_body",
    "not_json", "truncated", "missing_key", "wrong_type", "empty", "endless", "surrogate",
)  # fmt: skip
#: Faults injected only when named (``--fault-rate`` spreads over :data:`FAULTS` alone).
NAMED_FAULTS = ("huge",)
#: The size of a ``huge`` reply.
HUGE_REPLY_CHARS = 1_000_000


def parse_rates(spec: list[str], total: float) -> dict[str, float]:
    """``total`` spread evenly over every fault, then ``KIND=RATE`` entries override."""
    rates = dict.fromkeys(FAULTS, total / len(FAULTS)) if total else {}
    for item in spec:
        kind, _, rate = item.partition("=")
        if kind not in FAULTS + NAMED_FAULTS:
            raise ValueError(f"unknown fault {kind!r}; known: {', '.join(FAULTS + NAMED_FAULTS)}")
        rates[kind] = float(rate)
    if sum(rates.values()) > 1:
        raise ValueError("fault rates add up to more than 1")
    return rates


class FaultServer(ScriptedServer):
    def __init__(
        self,
        rates: dict[str, float],
        *,
        hang_s: float = 30.0,
        retry_after_s: float = 0.2,
        seed: int = 0,
        require_key: str | None = None,
        fail_when: tuple[str, ...] = (),
        fail_with: str = "500",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.rates = rates
        self.hang_s = hang_s
        self.retry_after_s = retry_after_s
        self.require_key = require_key
        self.fail_when = tuple(fail_when)
        self.fail_with = fail_with
        self.down_until = 0.0
        self.rng = random.Random(seed)
        self.injected: Counter[str] = Counter()
        self.completions = 0

    def draw(self) -> str | None:
        x = self.rng.random()
        for kind, rate in self.rates.items():
            if x < rate:
                return kind
            x -= rate
        return None

    async def respond(self, writer: asyncio.StreamWriter, method: str, path: str, headers: dict, body: bytes) -> bool:
        path_only = path.split("?", 1)[0]
        if self.require_key and headers.get("authorization") != f"Bearer {self.require_key}":
            sent = headers.get("authorization", "")  # echoed, as some proxies do: clients must not log it
            await write_response(writer, 401, json.dumps({"error": {"message": f"invalid API key ({sent})"}}).encode())
            return True
        if method == "GET" and path_only.rstrip("/") in ("/faults", "/v1/faults"):
            report = {"completions": self.completions, "injected": dict(self.injected)}
            await write_response(writer, 200, json.dumps(report).encode())
            return True
        if method == "POST" and path_only == "/control/outage":
            seconds = float(path.partition("seconds=")[2] or 0)
            self.down_until = time.monotonic() + seconds
            await write_response(writer, 200, json.dumps({"down_for_s": seconds}).encode())
            return True
        if time.monotonic() < self.down_until:
            self.injected["outage"] += 1
            return False  # the connection closes unanswered
        if not (method == "POST" and path_only.endswith("/chat/completions")):
            return await super().respond(writer, method, path, headers, body)
        self.completions += 1
        text = body.decode("utf-8", "replace")
        fault = self.fail_with if any(t in text for t in self.fail_when) else self.draw()
        if fault is None:
            return await super().respond(writer, method, path, headers, body)
        self.injected[fault] += 1
        if fault in ("500", "503", "429"):
            extra = {} if fault == "500" else {
                "Retry-After": str(max(1, round(self.retry_after_s))),
                "retry-after-ms": str(int(self.retry_after_s * 1000)),
            }  # fmt: skip
            error = {"error": {"message": f"injected {fault}", "type": "server_error"}}
            await write_response(writer, int(fault), json.dumps(error).encode(), extra_headers=extra)
            return True
        if fault == "hang":
            await asyncio.sleep(self.hang_s)
            return False
        if fault == "drop":
            return False
        if fault == "bad_body":
            await write_response(writer, 200, b"<html><body>502 Bad Gateway</body></html>", "text/html")
            return True
        status, payload = await self.route(method, path, body)
        if status == 200:
            choice = payload["choices"][0]
            choice["message"]["content"] = spoil(choice["message"]["content"], fault)
            if fault == "endless":
                choice["finish_reason"] = "length"
        await write_response(writer, status, json.dumps(payload).encode())
        return True


def spoil(content: str, fault: str) -> str:
    """The content of a bad completion of kind ``fault``."""
    if fault == "not_json":
        return "Sure! I would be glad to help with that, here are my thoughts on the matter."
    if fault == "truncated":
        return content[: max(1, len(content) // 2)]
    if fault == "empty":
        return ""
    if fault == "endless":
        return "and so on " * 2000
    if fault == "huge":  # the reply as it was, its longest text padded to 1 MB: still valid
        try:
            data = json.loads(content)
        except json.JSONDecodeError:
            return content + " and so on" * (HUGE_REPLY_CHARS // 10)
        if isinstance(data, dict) and data:
            key = max(data, key=lambda k: len(str(data[k])))
            data[key] = str(data[key]) + " and so on" * (HUGE_REPLY_CHARS // 10)
        return json.dumps(data)
    if fault == "surrogate":
        try:
            data = json.loads(content)
            data["response"] = str(data.get("response", "")) + "\ud83d"
            return json.dumps(data)
        except (json.JSONDecodeError, TypeError, AttributeError):
            return content + "\ud83d"
    try:
        data = json.loads(content)
    except json.JSONDecodeError:
        data = None
    if not isinstance(data, dict) or not data:
        return "" if fault == "missing_key" else "[1, 2, 3]"
    key = sorted(data)[0]
    if fault == "missing_key":
        data.pop(key)
    else:  # wrong_type
        data[key] = {"unexpected": [1, 2]}
    return json.dumps(data)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_server_args(ap)
    ap.add_argument("--fault-rate", type=float, default=0.0, help="total fault rate, spread evenly over all kinds")
    ap.add_argument("--fault", action="append", default=[], metavar="KIND=RATE",
                    help=f"rate of one kind (repeatable); kinds: {', '.join(FAULTS + NAMED_FAULTS)}")  # fmt: skip
    ap.add_argument("--hang-s", type=float, default=30.0, help="how long a hang lasts (default 30)")
    ap.add_argument("--retry-after-s", type=float, default=0.2, help="Retry-After on 429/503 (default 0.2)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the fault draws (default 0)")
    ap.add_argument("--require-key", default=None, help="answer 401 unless this bearer key is sent")
    ap.add_argument("--fail-when", action="append", default=[], metavar="TEXT",
                    help="answer every completion whose request contains TEXT with --fail-with (repeatable)")
    ap.add_argument("--fail-with", default="500", choices=FAULTS + NAMED_FAULTS, help="the fault --fail-when injects (default 500)")  # fmt: skip
    args = ap.parse_args(argv)
    try:
        rates = parse_rates(args.fault, args.fault_rate)
    except ValueError as exc:
        sys.exit(f"error: {exc}")
    server = FaultServer(
        rates, hang_s=args.hang_s, retry_after_s=args.retry_after_s, seed=args.seed, require_key=args.require_key,
        fail_when=tuple(args.fail_when), fail_with=args.fail_with,
        model=args.model, latency=args.latency, capacity=args.capacity, terminate_after=args.terminate_after,
    )  # fmt: skip
    serve_until_interrupted(server, args.host, args.port)


if __name__ == "__main__":
    main()
