"""Server command construction (SGLang, vLLM, router) and `serve.py --dry-run`."""

from __future__ import annotations

import subprocess
import sys

from msc_graph.serving import router_command
from tests.helpers import REPO


def test_serve_dry_run_prints_exact_commands():
    res = subprocess.run(
        [sys.executable, str(REPO / "runners" / "serve.py"), "sglang", "--dry-run", "--replicas", "2"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert sum("sglang.launch_server" in line for line in lines) == 3
    assert any("sglang_router.launch_router" in line and "--port 8003" in line for line in lines)
    assert "runners/batch.py" in res.stdout


def test_runner_goes_through_sglang_router_to_two_workers(tmp_path):
    """A real sglang-router (cache-aware) in front of two loopback OpenAI-compatible workers."""
    import importlib.util
    import json
    import time

    import httpx
    import pytest

    from msc_graph.results import read_records
    from tests.helpers import cli_args, run_cli, start_scripted_server

    if importlib.util.find_spec("sglang_router") is None:
        pytest.skip("sglang-router is not installed (pip install -e '.[serve]' or sglang-router)")
    workers = [start_scripted_server(module="fault_server") for _ in range(2)]  # fault rate 0: counts requests
    port = _free_port()
    log = open(tmp_path / "router.log", "w")  # noqa: SIM115
    router = subprocess.Popen(router_command([w.url for w in workers], port, host="127.0.0.1"), stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        served: list = []
        for _ in range(300):  # the router registers each worker after asking who it is
            try:
                served = [m["id"] for m in httpx.get(f"{url}/models", timeout=2).json()["data"]]
                registered = httpx.get(f"http://127.0.0.1:{port}/workers", timeout=2).json()["workers"]
                if served == ["scripted"] and len(registered) == 2 and all(w["is_healthy"] for w in registered):
                    break
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            time.sleep(0.2)
        else:
            pytest.fail(f"router did not come up: {served}\n{(tmp_path / 'router.log').read_text()[-2000:]}")
        out = tmp_path / "r.jsonl"
        res = run_cli("--dataset", "demo", "--eval_size", "2", "--users", "4", "--experiment_type", "agent_with_memory",
                      *cli_args(url), "--output_file", str(out), "--no-progress", timeout=300)  # fmt: skip
        assert res.returncode == 0, res.stderr
        records = read_records(out)
        assert len(records) == 8 and all(r["failure"] is None for r in records)
        calls = sum(u["calls"] for r in records for u in r["usage"].values())
        counts = [httpx.get(w.url.removesuffix("/v1") + "/faults", timeout=5).json()["completions"] for w in workers]
        assert sum(counts) == calls  # every model call went through the router to a worker
        assert json.loads(out.with_name(out.name + ".manifest.json").read_text())["config"]["agent"]["base_url"] == url
    finally:
        router.terminate()
        router.wait(timeout=15)
        log.close()
        for w in workers:
            w.stop()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_refuses_to_expose_servers_without_a_key_and_splits_the_gpus():
    serve = [sys.executable, str(REPO / "runners" / "serve.py")]
    exposed = subprocess.run([*serve, "vllm", "--dry-run", "--host", "0.0.0.0"], capture_output=True, text=True, timeout=60,
                             env={k: v for k, v in __import__("os").environ.items() if k != "MSC_SERVE_API_KEY"})  # fmt: skip
    assert exposed.returncode == 2 and "--api-key" in exposed.stderr and exposed.stderr.count("\n") == 1
    res = subprocess.run([*serve, "sglang", "--dry-run", "--gpus", "0,1,2,3,4,5,6,7", "--api-key", "sk-serve-1"],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "CUDA_VISIBLE_DEVICES=0,1,2,3 " in res.stdout and "CUDA_VISIBLE_DEVICES=4,5,6,7 " in res.stdout
    assert "sk-serve-1" not in res.stdout and "--api-key" in res.stdout
