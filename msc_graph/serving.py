"""The command lines that start model servers: SGLang (the published setup), vLLM, and SGLang's
router. Only command construction lives here (``msc_graph.cli.serve`` starts and stops the
processes); the engines themselves are SGLang, vLLM and sglang-router (the optional ``[serve]``
extra), never something home-made.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass, field, replace

LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class ServerSpec:
    """One model server: which model, where, and how it is parallelised."""

    name: str
    model_path: str
    port: int
    host: str = "127.0.0.1"
    tp_size: int = 1
    dp_size: int = 1
    mem_fraction: float | None = None
    #: The GPUs this server may use (its CUDA_VISIBLE_DEVICES); empty: whatever the process sees.
    gpus: tuple[int, ...] = field(default_factory=tuple)
    #: Requests must carry this key (``Authorization: Bearer KEY``); empty: none required.
    api_key: str = ""
    #: LoRA adapters served beside the base model, as (name, path) pairs (``serve.py --lora NAME=PATH``).
    loras: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    @property
    def gpus_needed(self) -> int:
        return self.tp_size * self.dp_size

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}/v1"

    def env(self) -> dict[str, str]:
        """What the server's process gets in its environment: the GPUs it may use."""
        return {"CUDA_VISIBLE_DEVICES": ",".join(map(str, self.gpus))} if self.gpus else {}


class ServingError(ValueError):
    """The servers asked for do not fit; the message says what to change."""


def assign_gpus(specs: list[ServerSpec], gpus: list[int]) -> list[ServerSpec]:
    """Give each server its own GPUs, in order: ``tp x dp`` each, never shared between servers.
    With no GPUs known (a machine without them, planning a run elsewhere), 0..N-1 are assumed."""
    needed = sum(s.gpus_needed for s in specs)
    gpus = gpus or list(range(needed))
    if needed > len(gpus):
        plan = " + ".join(f"{s.name} {s.gpus_needed}" for s in specs)
        raise ServingError(f"the servers need {needed} GPUs ({plan}) but {len(gpus)} are available ({gpus}); "
                           "lower --tp-size/--dp-size/--replicas or give more with --gpus")  # fmt: skip
    out, start = [], 0
    for spec in specs:
        out.append(replace(spec, gpus=tuple(gpus[start : start + spec.gpus_needed])))
        start += spec.gpus_needed
    return out


def sglang_command(spec: ServerSpec, python: str = sys.executable) -> list[str]:
    base = [python, "-m", "sglang.launch_server", "--model-path", spec.model_path]
    parallel = ["--tp-size", str(spec.tp_size), "--dp-size", str(spec.dp_size), "--enable-metrics", "--enable-cache-report"]
    return _command(spec, base, parallel + _lora_flags(spec, "--lora-paths"), "--mem-fraction-static")


def vllm_command(spec: ServerSpec) -> list[str]:
    base = ["vllm", "serve", spec.model_path]
    parallel = ["--tensor-parallel-size", str(spec.tp_size), "--data-parallel-size", str(spec.dp_size),
                "--enable-prefix-caching"]  # fmt: skip
    return _command(spec, base, parallel + _lora_flags(spec, "--lora-modules"), "--gpu-memory-utilization")


def _lora_flags(spec: ServerSpec, paths_flag: str) -> list[str]:
    """Multi-LoRA serving: SGLang takes ``--lora-paths NAME=PATH ...``, vLLM ``--lora-modules NAME=PATH ...``."""
    if not spec.loras:
        return []
    return ["--enable-lora", paths_flag, *(f"{name}={path}" for name, path in spec.loras)]


def adapter_model_name(engine: str, base_model: str, adapter: str) -> str:
    """The model name a request uses for an adapter: SGLang ``base:adapter``, vLLM the adapter's name."""
    return f"{base_model}:{adapter}" if engine == "sglang" else adapter


def parse_loras(items: list[str]) -> tuple[tuple[str, str], ...]:
    """``NAME=PATH`` pairs (each adapter's folder must hold ``adapter_config.json``)."""
    out = []
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise ServingError(f"--lora {item!r}: give NAME=PATH, e.g. --lora reflection=outputs/reflection-grpo/adapter")
        out.append((name.strip(), path.strip()))
    if len({n for n, _ in out}) != len(out):
        raise ServingError("--lora: two adapters share a name; give each its own")
    return tuple(out)


def _command(spec: ServerSpec, base: list[str], parallel: list[str], memory_flag: str) -> list[str]:
    """An engine's command: where it listens, how it is parallelised, its memory share and its key."""
    cmd = [*base, "--host", spec.host, "--port", str(spec.port), *parallel]
    if spec.mem_fraction is not None:
        cmd += [memory_flag, str(spec.mem_fraction)]
    return cmd + (["--api-key", spec.api_key] if spec.api_key else [])


def router_command(
    worker_urls: list[str], port: int, host: str = "127.0.0.1", python: str = sys.executable, api_key: str = ""
) -> list[str]:
    """sglang-router in front of several workers, with its cache-aware policy."""
    workers = [u.removesuffix("/v1") for u in worker_urls]
    cmd = [python, "-m", "sglang_router.launch_router", "--worker-urls", *workers, "--policy", "cache_aware",
           "--host", host, "--port", str(port)]  # fmt: skip
    return cmd + (["--api-key", api_key] if api_key else [])


def replicas(spec: ServerSpec, n: int, base_port: int) -> list[ServerSpec]:
    """``n`` copies of a server on ports ``base_port``, ``base_port+1``, ... for a router to spread over."""
    return [replace(spec, name=f"{spec.name}-{i}", port=base_port + i) for i in range(n)]


def batch_flags(user_url: str, agent_url: str, user_model: str, agent_model: str) -> str:
    """The ``runners/batch.py`` flags that point at these servers."""
    parts = [
        "--user_model_name", user_model, "--user_api_base", user_url,
        "--judge_model_name", user_model, "--judge_api_base", user_url,
        "--collaborator_model_name", agent_model, "--collaborator_api_base", agent_url,
    ]  # fmt: skip
    return " ".join(shlex.quote(p) for p in parts)


def shown(cmd: list[str], env: dict[str, str] | None = None) -> str:
    """A command as ``--dry-run`` prints it: its environment first, an API key hidden."""
    out = []
    for i, part in enumerate(cmd):
        out.append("***" if i and cmd[i - 1] == "--api-key" else part)
    prefix = " ".join(f"{k}={v}" for k, v in (env or {}).items())
    return (prefix + " " if prefix else "") + shlex.join(out)
