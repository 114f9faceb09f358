"""Server command construction: SGLang, vLLM and sglang-router command lines."""

from __future__ import annotations

import pytest

from msc_graph.serving import ServerSpec, batch_flags, replicas, router_command, sglang_command, vllm_command


def test_sglang_command_has_the_published_flags_and_metrics():
    cmd = sglang_command(ServerSpec("agent", "meta-llama/Llama-3.3-70B-Instruct", 8003, tp_size=4, mem_fraction=0.85), "py")
    assert cmd[:3] == ["py", "-m", "sglang.launch_server"]
    joined = " ".join(cmd)
    for part in ("--model-path meta-llama/Llama-3.3-70B-Instruct", "--port 8003", "--tp-size 4", "--dp-size 1",
                 "--enable-metrics", "--enable-cache-report", "--mem-fraction-static 0.85"):  # fmt: skip
        assert part in joined


def test_vllm_and_router_commands():
    cmd = vllm_command(ServerSpec("a", "Qwen/Qwen2.5-7B-Instruct", 9000, tp_size=2, dp_size=2))
    assert cmd[:3] == ["vllm", "serve", "Qwen/Qwen2.5-7B-Instruct"]
    assert "--tensor-parallel-size" in cmd and cmd[cmd.index("--data-parallel-size") + 1] == "2"
    reps = replicas(ServerSpec("agent", "m", 8003), 3, 8100)
    assert [r.port for r in reps] == [8100, 8101, 8102]
    router = router_command([r.url for r in reps], 8003, python="py")
    assert router[:3] == ["py", "-m", "sglang_router.launch_router"]
    assert router[router.index("--worker-urls") + 1 : router.index("--policy")] == [
        "http://127.0.0.1:8100", "http://127.0.0.1:8101", "http://127.0.0.1:8102"
    ]  # fmt: skip
    assert router[router.index("--policy") + 1] == "cache_aware"


def test_batch_flags_point_roles_at_the_servers():
    flags = batch_flags("http://a:8004/v1", "http://b:8003/v1", "U", "A")
    assert "--judge_api_base http://a:8004/v1" in flags and "--collaborator_api_base http://b:8003/v1" in flags


def test_each_server_and_replica_gets_gpus_of_its_own():
    from msc_graph.serving import ServingError, assign_gpus

    eight = list(range(8))
    user, agent = ServerSpec("user-judge", "m", 8004, tp_size=4), ServerSpec("agent", "m", 8003, tp_size=4)
    assert [s.gpus for s in assign_gpus([user, agent], eight)] == [(0, 1, 2, 3), (4, 5, 6, 7)]
    reps = replicas(ServerSpec("agent", "m", 8003, tp_size=2), 3, 8100)
    placed = assign_gpus([ServerSpec("user-judge", "m", 8004, tp_size=2), *reps], eight)
    assert [s.gpus for s in placed] == [(0, 1), (2, 3), (4, 5), (6, 7)]
    assert placed[1].env() == {"CUDA_VISIBLE_DEVICES": "2,3"}
    with pytest.raises(ServingError, match="need 12 GPUs"):
        assign_gpus([user, agent, ServerSpec("x", "m", 1, tp_size=4)], eight)


def test_servers_bind_loopback_and_carry_the_key_passed():
    spec = ServerSpec("agent", "m", 8003, api_key="k-1")
    for cmd in (sglang_command(spec, "py"), vllm_command(spec)):
        assert cmd[cmd.index("--host") + 1] == "127.0.0.1" and cmd[cmd.index("--api-key") + 1] == "k-1"
    router = router_command(["http://127.0.0.1:8100/v1"], 8003, python="py", api_key="k-1")
    assert router[router.index("--host") + 1] == "127.0.0.1" and router[-2:] == ["--api-key", "k-1"]
    from msc_graph.serving import shown

    assert "k-1" not in shown(sglang_command(spec, "py"), spec.env())


def test_lora_adapters_are_served_beside_the_agent_and_named_for_batch(capsys):
    """serve.py --lora NAME=PATH: SGLang's multi-LoRA flags on the agent server, and the model name
    batch.py's --reflection-model takes (SGLang: base:adapter, vLLM: the adapter's name)."""
    from msc_graph.cli.serve import main

    spec = ServerSpec("agent", "Qwen/Qwen2.5-7B-Instruct", 8003, loras=(("refl", "/a/adapter"), ("b", "/b")))
    cmd = sglang_command(spec, "py")
    assert cmd[cmd.index("--enable-lora") : cmd.index("--enable-lora") + 4] == ["--enable-lora", "--lora-paths", "refl=/a/adapter", "b=/b"]
    vcmd = vllm_command(spec)
    assert vcmd[vcmd.index("--lora-modules") + 1 : vcmd.index("--lora-modules") + 3] == ["refl=/a/adapter", "b=/b"]
    assert "--enable-lora" not in sglang_command(ServerSpec("agent", "m", 8003), "py")
    for engine, name in (("sglang", "Qwen/Qwen2.5-7B-Instruct:refl"), ("vllm", "refl")):
        assert main([engine, "--dry-run", "--gpus", "0,1", "--tp-size", "1", "--agent-model", "Qwen/Qwen2.5-7B-Instruct",
                     "--lora", "refl=/a/adapter"]) == 0  # fmt: skip
        out = capsys.readouterr().out
        agent_line = out.split("# agent\n", 1)[1].splitlines()[0]
        assert "refl=/a/adapter" in agent_line and "--enable-lora" in agent_line
        assert "refl=" not in out.split("# agent\n", 1)[0]  # the user/judge server serves no adapter
        assert f"--reflection-model {name}" in out
    assert main(["sglang", "--dry-run", "--lora", "no-path"]) == 2
    assert "error: --lora 'no-path': give NAME=PATH" in capsys.readouterr().err
