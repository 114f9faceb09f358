"""The response cache (``--cache``): keyed by the whole request, replays in order, keeps only answers."""

from __future__ import annotations

import asyncio

import pytest

from msc_graph.cache import CacheError, ResponseCache, name_endpoint, use_cache
from msc_graph.clients import close_loop_clients
from msc_graph.config import RoleConfig
from msc_graph.llm import call_text
from msc_graph.testing.mock_backend import mock_server

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 1.0, "max_tokens": 64, "seed": 1}


def test_the_key_is_the_whole_request():
    digest = ResponseCache.request_digest
    base = digest("http://h/v1/chat/completions", BODY)
    assert base == digest("http://h/v1/chat/completions", dict(reversed(list(BODY.items()))))  # key order does not count
    for change in ({"seed": 2}, {"temperature": 0.0}, {"model": "n"}, {"max_tokens": 65},
                   {"messages": [{"role": "user", "content": "hi!"}]}, {"response_format": {"type": "json_object"}}):  # fmt: skip
        assert digest("http://h/v1/chat/completions", {**BODY, **change}) != base, change
    assert digest("http://other/v1/chat/completions", BODY) != base
    # a server the run starts on a free port is keyed by its name, not its port
    name_endpoint("http://127.0.0.1:4001/v1", "mock")
    name_endpoint("http://127.0.0.1:4002/v1", "mock")
    assert digest("http://127.0.0.1:4001/v1/chat/completions", BODY) == digest("http://127.0.0.1:4002/v1/chat/completions", BODY)
    assert digest("http://127.0.0.1:4001/v1/chat/completions", BODY) != digest("http://127.0.0.1:4003/v1/chat/completions", BODY)


def test_repeats_of_a_request_are_kept_apart_and_a_second_process_replays_them(tmp_path):
    first = ResponseCache(tmp_path / "c")
    keys = [first.key_for("u", BODY) for _ in range(2)]
    assert keys[0] != keys[1]
    first.put(keys[0], {"n": 0})
    first.put(keys[1], {"n": 1})
    second = ResponseCache(tmp_path / "c")  # another process on the same folder
    assert [second.get(second.key_for("u", BODY)) for _ in range(3)] == [{"n": 0}, {"n": 1}, None]
    assert (second.hits, second.misses, second.stored()) == (2, 1, 2)


def test_a_file_in_the_way_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(CacheError, match="is a file"):
        ResponseCache(tmp_path / "f")


def test_a_cached_call_is_not_sent_and_failures_are_not_kept(tmp_path):
    async def calls(cfg: RoleConfig) -> list:
        try:
            return [await call_text(cfg, [{"role": "user", "content": f"question {i}"}]) for i in range(2)]
        finally:
            await close_loop_clients()

    with mock_server() as server:
        good = RoleConfig(role="agent", base_url=server.base_url, model=server.model, max_retries=0)
        try:
            use_cache(tmp_path / "c")
            first = asyncio.run(calls(good))
            assert server.requests == 2 and all(r.ok for r in first)
            cache = use_cache(tmp_path / "c")  # a new run: counts and occurrences from zero
            again = asyncio.run(calls(good))
            assert server.requests == 2, "a cached request was sent"
            assert [r.value for r in again] == [r.value for r in first] and (cache.hits, cache.misses) == (2, 0)
            wrong = good.model_copy(update={"model": "no-such-model"})  # the server answers 404
            assert not asyncio.run(calls(wrong))[0].ok
            assert cache.stored() == 2 and cache.misses == 2  # the failures were asked, never stored
            assert not asyncio.run(calls(wrong))[0].ok and cache.misses == 4
        finally:
            use_cache(None)
