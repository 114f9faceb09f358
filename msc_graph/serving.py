"""The command lines that start model servers: SGLang (the published setup), vLLM, and SGLang's
router. Only command construction lives here (``msc_graph.cli.serve`` starts and stops the
processes); the engines themselves are SGLang, vLLM and sglang-router (the optional ``[serve]``
extra), never something home-made.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class ServerSpec:
    """One model server: which model, where, and how it is parallelised."""

    name: str
    model_path: str
    port: int
    host: str = "0.0.0.0"
    tp_size: int = 1
    dp_size: int = 1
    mem_fraction: float | None = None

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}/v1"


def sglang_command(spec: ServerSpec, python: str = sys.executable) -> list[str]:
    cmd = [
        python, "-m", "sglang.launch_server",
        "--model-path", spec.model_path,
        "--host", spec.host,
        "--port", str(spec.port),
        "--tp-size", str(spec.tp_size),
        "--dp-size", str(spec.dp_size),
        "--enable-metrics",
        "--enable-cache-report",
    ]  # fmt: skip
    if spec.mem_fraction is not None:
        cmd += ["--mem-fraction-static", str(spec.mem_fraction)]
    return cmd


def vllm_command(spec: ServerSpec) -> list[str]:
    cmd = [
        "vllm", "serve", spec.model_path,
        "--host", spec.host,
        "--port", str(spec.port),
        "--tensor-parallel-size", str(spec.tp_size),
        "--data-parallel-size", str(spec.dp_size),
        "--enable-prefix-caching",
    ]  # fmt: skip
    if spec.mem_fraction is not None:
        cmd += ["--gpu-memory-utilization", str(spec.mem_fraction)]
    return cmd


def router_command(worker_urls: list[str], port: int, host: str = "0.0.0.0", python: str = sys.executable) -> list[str]:
    """sglang-router in front of several workers, with its cache-aware policy."""
    workers = [u.removesuffix("/v1") for u in worker_urls]
    return [python, "-m", "sglang_router.launch_router", "--worker-urls", *workers, "--policy", "cache_aware",
            "--host", host, "--port", str(port)]  # fmt: skip


def replicas(spec: ServerSpec, n: int, base_port: int) -> list[ServerSpec]:
    """``n`` copies of a server on ports ``base_port``, ``base_port+1``, ... for a router to spread over."""
    return [
        ServerSpec(f"{spec.name}-{i}", spec.model_path, base_port + i, spec.host, spec.tp_size, spec.dp_size, spec.mem_fraction)
        for i in range(n)
    ]


def batch_flags(user_url: str, agent_url: str, user_model: str, agent_model: str) -> str:
    """The ``runners/batch.py`` flags that point at these servers."""
    parts = [
        "--user_model_name", user_model, "--user_api_base", user_url,
        "--judge_model_name", user_model, "--judge_api_base", user_url,
        "--collaborator_model_name", agent_model, "--collaborator_api_base", agent_url,
    ]  # fmt: skip
    return " ".join(shlex.quote(p) for p in parts)
