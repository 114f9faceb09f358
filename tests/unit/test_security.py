"""Secrets never reach outputs: keys, bearer tokens and URL credentials are redacted."""

from __future__ import annotations

from msc_graph.security import redact, redact_url, redacted_argv, register_secret


def test_registered_keys_bearer_tokens_and_url_credentials_are_hidden():
    register_secret("sk-live-ABCDEF123456")
    text = ('HTTP 401: bad key sk-live-ABCDEF123456; headers {"Authorization": "Bearer xyz-987"} '
            "calling http://alice:s3cret@host:8000/v1")  # fmt: skip
    out = redact(text)
    for secret in ("sk-live-ABCDEF123456", "xyz-987", "s3cret", "alice"):
        assert secret not in out
    assert "http://***@host:8000/v1" in out and "HTTP 401" in out
    assert redact_url("https://u:p@api.example.com/v1") == "https://***@api.example.com/v1"
    assert redact_url("http://localhost:8000/v1") == "http://localhost:8000/v1"


def test_command_lines_lose_key_values_in_either_form():
    argv = ["batch.py", "--user_api_key", "k1", "--api-key=k2", "--collaborator_api_base", "http://a:b@h/v1", "--users", "2"]
    assert redacted_argv(argv) == ["batch.py", "--user_api_key", "***", "--api-key=***", "--collaborator_api_base",
                                   "http://***@h/v1", "--users", "2"]  # fmt: skip
