"""Settings defined once: the session context (also Studio's form), its aliases and its checks."""

from __future__ import annotations

from typing import get_args

import pytest

from msc_graph.config import LOCAL_BACKEND_OVERRIDES, RunSettings, SessionContext
from msc_graph.graphs.context import ContextError, parse_context, role_configs


def test_every_role_gets_the_one_transport_block():
    ctx = SessionContext(timeout=12, max_retries=1, parse_retries=0, max_inflight_requests=9, structured="prompt")
    for cfg in role_configs(ctx).values():
        assert (cfg.timeout_s, cfg.max_retries, cfg.parse_retries, cfg.max_inflight, cfg.structured) == (12, 1, 0, 9, "prompt")
    sampling = {r: (c.temperature, c.max_tokens) for r, c in role_configs(SessionContext()).items()}
    assert sampling == {"user": (1.0, 1024), "agent": (1.0, 2048), "judge": (0.0, 1024)}  # the published sampling


def test_old_context_names_still_read_and_unknown_keys_are_refused_by_name():
    ctx = parse_context({"agent_base_url": "http://a:1", "chroma_path": "/m", "request_timeout_s": 5})
    assert ctx.agent_api_base == "http://a:1/v1" and ctx.memory_dir == "/m" and ctx.timeout == 5
    with pytest.raises(ContextError, match="unknown context key 'agent_modle'.*agent_model"):
        parse_context({"agent_modle": "x"})
    with pytest.raises(ContextError, match="max_turns"):
        parse_context({"max_turns": 0})


def test_model_names_lose_litellm_prefixes_and_endpoints_get_v1():
    ctx = SessionContext(agent_model="hosted_vllm/meta-llama/Llama-3.3-70B-Instruct", user_api_base="http://h:8004/")
    assert ctx.agent_model == "meta-llama/Llama-3.3-70B-Instruct" and ctx.user_api_base == "http://h:8004/v1"


def test_the_local_backend_overrides_are_valid_context_fields():
    ctx = SessionContext(**LOCAL_BACKEND_OVERRIDES)
    assert ctx.structured == "json_object" and ctx.agent_context_tokens == 8192


def test_the_manifest_view_of_settings_has_no_secrets_and_keeps_the_role_blocks():
    s = RunSettings(session={"agent_model": "m"}, api_keys={"agent": "sk-secret-1"})
    public = s.public_dict()
    assert "sk-secret-1" not in str(public)
    assert public["agent"]["model"] == "m" and public["agent"]["api_key_set"] is True


def test_a_studio_caller_cannot_send_the_operators_key_to_an_endpoint_of_its_choosing(monkeypatch):
    from msc_graph.graphs.context import StudioContext

    monkeypatch.setenv("MSC_AGENT_API_KEY", "sk-operator-1")
    monkeypatch.setenv("MSC_AGENT_API_BASE", "https://models.example.org/v1")
    mine = StudioContext(agent_api_base="https://models.example.org/v1")
    theirs = StudioContext(agent_api_base="http://attacker.example.com/v1")
    assert role_configs(mine)["agent"].key_value() == "sk-operator-1"
    assert role_configs(theirs)["agent"].key_value() == "EMPTY"
    # the command line is the operator's own: there the key goes wherever the flags point
    assert role_configs(SessionContext(agent_api_base="http://elsewhere:1/v1"))["agent"].key_value() == "sk-operator-1"


def test_every_setting_declares_whether_it_changes_results_and_where_its_flag_goes():
    """A field without a ``Spec`` would key no record and have no flag: refused here, by name."""
    from msc_graph.spec import FLAG_GROUPS, Spec, spec_of

    unclassified = [f"{m.__name__}.{n}" for m in (SessionContext, RunSettings) for n in m.model_fields if spec_of(m, n) is None]
    assert unclassified == []
    for model in (SessionContext, RunSettings):
        for name in model.model_fields:
            spec: Spec = spec_of(model, name)
            assert spec.group is None or spec.group in FLAG_GROUPS, name
            assert spec.results in (True, False, "design"), name
            assert not (spec.via and spec.at), f"{name}: keys results through {spec.via!r} or at {spec.at}, not both"


def test_help_lists_every_declared_setting_in_its_declared_group():
    from msc_graph.cli.batch import build_parser
    from msc_graph.spec import FLAG_GROUPS, spec_of

    groups = {g.title: {o for a in g._group_actions for o in a.option_strings} for g in build_parser()._action_groups}
    for model in (SessionContext, RunSettings):
        for name in model.model_fields:
            spec = spec_of(model, name)
            if spec.group is not None:
                flag = "--" + (name if spec.group == "published" else name.replace("_", "-"))
                assert flag in groups[FLAG_GROUPS[spec.group]], f"{flag} not in group {spec.group}"


def _other(value):
    """A value other than ``value``, of its type (for the test below)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    return f"other-{value}"


def test_every_setting_declared_to_change_results_moves_the_hash_and_no_other_does():
    from msc_graph.spec import declared_settings, spec_of

    base = RunSettings()
    design = ("retrieval_k", "retrieval_threshold", "embedding_model")
    for model, part in ((SessionContext, "session"), (RunSettings, None)):
        for name, field in model.model_fields.items():
            spec = spec_of(model, name)
            if name in ("session", "api_keys") or spec.via:
                continue
            value = field.default if field.default is not None else 1
            args = get_args(field.annotation)
            changed = next((a for a in args if a != value), None) if args and isinstance(args[0], str) else _other(value)
            if part:
                edited = base.model_copy(update={"session": base.session.model_copy(update={name: changed})})
            else:
                edited = base.model_copy(update={name: changed})
            for reads in ((), design):
                moved = declared_settings((edited, edited.session), reads) != declared_settings((base, base.session), reads)
                keys = spec.results is True or (spec.results == "design" and name in reads)
                assert moved == keys, f"{name}: declared {spec.results}, but the hash {'moved' if moved else 'did not move'}"
