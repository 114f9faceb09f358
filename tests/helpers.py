"""What the tests share: where the published data is, loopback model servers (scripted and
fault-injecting), the command line of a batch run pointed at one, and checks of its output."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from msc_graph.results import read_records

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("MSC_SHARED_DATA", REPO.parent / "shared" / "data" / "multisessioncollab"))
DATASETS_DIR = SHARED / "datasets"
PROFILES_FILE = SHARED / "user_profiles.json"


def require_shared() -> None:
    if not PROFILES_FILE.is_file():
        pytest.skip(f"published data not found at {SHARED} (set MSC_SHARED_DATA)")


@dataclass
class Server:
    url: str
    model: str
    process: subprocess.Popen

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()


def start_scripted_server(*args: str, model: str = "scripted", module: str = "scripted_server") -> Server:
    """The scripted OpenAI-compatible server in its own process, on a free loopback port.

    ``module="fault_server"`` starts the fault-injecting variant (same replies, plus faults).
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", f"msc_graph.testing.{module}", "--port", "0", "--model", model, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.startswith("PORT "):
        proc.kill()
        raise RuntimeError(f"scripted server did not start: {line!r}")
    url = f"http://127.0.0.1:{int(line.split()[1])}/v1"
    if "--require-key" not in args:  # (the PORT line already means it listens)
        wait_until_ok(f"{url}/models")
    return Server(url, model, proc)


def wait_until_ok(url: str, attempts: int = 100, pause: float = 0.1) -> None:
    """Poll ``url`` until it answers 200 (a server the test just started)."""
    for _ in range(attempts):
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(pause)
    raise RuntimeError(f"{url} did not answer 200")




def cli_args(url: str, model: str = "scripted") -> list[str]:
    """Endpoint flags pointing every role at one server, in the published spelling."""
    out = []
    for flag in ("user", "collaborator", "judge"):
        out += [f"--{flag}_model_name", f"hosted_vllm/{model}", f"--{flag}_api_base", url, f"--{flag}_api_key", "EMPTY"]
    return out


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, str(REPO / "runners" / "batch.py"), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env=full_env,
    )


def fault_server(*args: str) -> Server:
    """The fault-injecting variant of the scripted server (``msc_graph.testing.fault_server``)."""
    return start_scripted_server(*args, module="fault_server")


def injected(server: Server) -> dict[str, int]:
    """How many faults of each kind the fault server has injected."""
    return httpx.get(server.url.removesuffix("/v1") + "/faults", timeout=5).json()["injected"]


def batch_args(server: Server, out: Path, *, users: int = 2, eval_size: int = 2, key: str = "EMPTY") -> list[str]:
    """A small batch run on the demo dataset against ``server``, writing ``out``."""
    args = cli_args(server.url)
    for i, a in enumerate(args):
        if a.endswith("_api_key"):
            args[i + 1] = key
    return ["--dataset", "demo", "--eval_size", str(eval_size), "--users", str(users), *args,
            "--output_file", str(out), "--no-progress"]  # fmt: skip


def assert_complete(out: Path, users: int, sessions: int) -> list[dict]:
    """Every (user, session) is in ``out`` exactly once; returns the records."""
    records = read_records(out)
    keys = [(r["user_id"], r["session_index"]) for r in records]
    assert len(keys) == len(set(keys)), "duplicate records"
    assert set(keys) == {(u, k) for u in range(users) for k in range(sessions)}, "missing records"
    return records

