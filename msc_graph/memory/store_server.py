"""The store process itself: one embedded Chroma folder served over stdin/stdout.

Started by ``store_process.StoreProcess`` as ``python -m msc_graph.memory.store_server --path DIR``.
It takes over the folder's lock from its runner, opens the folder, says so, then answers one JSON
request per line (``{"id", "store", "method", "args"}``) with one JSON reply per line, in order,
until its stdin closes; it then answers what is left and exits.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from typing import Any

import numpy as np

from msc_graph.memory.access import StoreLocator, store_for
from msc_graph.memory.lock import adopt_lock
from msc_graph.memory.store import make_client

#: the environment variable that tells the child which inherited descriptor holds the folder's lock
LOCK_FD_ENV = "MSC_STORE_LOCK_FD"

#: the store methods a runner may call in the child
METHODS = ("list", "notes_with_vectors", "replace", "replace_with_vectors", "warm")


def encode(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        arr = np.ascontiguousarray(value, dtype=np.float32)
        return {"__ndarray__": base64.b64encode(arr.tobytes()).decode(), "shape": list(arr.shape)}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    return value


def decode(value: Any) -> Any:
    if isinstance(value, dict):
        if "__ndarray__" in value:
            return np.frombuffer(base64.b64decode(value["__ndarray__"]), dtype=np.float32).reshape(value["shape"])
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


def serve(path: str, stdin: Any = None, stdout: Any = None) -> None:
    """Open the folder, say so (``{"ready": true}``, or ``{"ready": false, "error": ...}`` and
    return), then answer requests from ``stdin`` until it closes. Each request: ``{"id", "store",
    "method", "args"}``; each reply: ``{"id", "result"}`` or ``{"id", "error": {"type", "message"}}``."""
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout

    def say(obj: dict) -> None:
        stdout.write(json.dumps(obj) + "\n")
        stdout.flush()

    try:
        if os.environ.get(LOCK_FD_ENV):
            adopt_lock(path, int(os.environ[LOCK_FD_ENV]))
        make_client(path=path)
    except Exception as exc:  # noqa: BLE001 - the runner shows the reason and stops
        say({"ready": False, "error": {"type": type(exc).__name__, "message": str(exc)}})
        return
    say({"ready": True})
    for line in stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        try:
            if req["method"] not in METHODS:
                raise ValueError(f"unknown store method {req['method']!r}")
            mem = store_for(StoreLocator(path=path, **req["store"]))
            result = getattr(mem, req["method"])(*decode(req.get("args") or []))
            reply = {"id": req["id"], "result": encode(result)}
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the caller, named
            reply = {"id": req["id"], "error": {"type": type(exc).__name__, "message": str(exc)}}
        say(reply)
    say({"bye": True})  # every request is answered; what is left is shutting Chroma down


def main() -> None:
    ap = argparse.ArgumentParser(description="Serve one embedded Chroma memory folder to a runner over stdin/stdout.")
    ap.add_argument("--path", required=True, help="the embedded Chroma folder")
    args = ap.parse_args()
    # replies go to the real stdout only; anything a library prints goes to stderr (the log)
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    serve(args.path, sys.stdin, out)




if __name__ == "__main__":
    main()
