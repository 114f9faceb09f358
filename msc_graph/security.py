"""Keeping secrets out of outputs: API keys and URL credentials never reach records, summaries,
manifests or logs.

The runner registers the keys it was given (:func:`register_secret`); :func:`redact` replaces them,
``Authorization`` header values, and the credentials of URLs (``http://user:KEY@host``) with ``***``
in any text that is written out (failure reasons echo server error bodies, which may echo headers).
"""

from __future__ import annotations

import os
import re
import sys
from urllib.parse import urlsplit, urlunsplit

from msc_graph.config import KEY_ENV

_SECRETS: set[str] = set()
#: Environment variables whose values are secrets wherever they appear.
SECRET_ENV = (*KEY_ENV.values(), "MSC_EMBEDDING_API_KEY", "OPENAI_API_KEY")
#: Command-line flags whose value is a secret.
SECRET_FLAGS = (
    "--api-key", "--api_key", "--user-api-key", "--agent-api-key", "--judge-api-key",
    "--user_api_key", "--collaborator_api_key", "--judge_api_key",
)  # fmt: skip
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<cred>[^/@\s:]+(?::[^/@\s]*)?)@")
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s\"',}]+")
_KEY_FIELD = re.compile(r"(?i)(\"?(?:api[_-]?key|authorization|x-api-key)\"?\s*[:=]\s*\"?)[^\s\"',}]+")
#: Values too short or too common to be a secret worth hiding ("EMPTY" is what local servers take).
_NOT_SECRET = {"", "EMPTY", "empty", "none", "None", "sk-"}


def register_secret(value: str | None) -> None:
    """Hide ``value`` wherever :func:`redact` sees it from now on."""
    if value and value not in _NOT_SECRET and len(value) >= 4:
        _SECRETS.add(value)


def register_environment_secrets() -> None:
    for name in SECRET_ENV:
        register_secret(os.environ.get(name))


def redact(text: str) -> str:
    """``text`` with keys, bearer tokens and URL credentials replaced by ``***``."""
    if not text:
        return text
    for secret in sorted(_SECRETS, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, "***")
    text = _URL_CREDENTIALS.sub(lambda m: f"{m.group('scheme')}***@", text)
    text = _BEARER.sub(r"\1***", text)
    return _KEY_FIELD.sub(r"\1***", text)


def redact_url(url: str) -> str:
    """A URL without its credentials (``http://user:KEY@host/v1`` -> ``http://***@host/v1``)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def redacted_argv(argv: list[str] | None = None) -> list[str]:
    """The command line with secret flag values and URL credentials hidden."""
    out, hide = [], False
    for arg in sys.argv if argv is None else argv:
        if hide:
            out.append("***")
            hide = False
            continue
        name, eq, _ = arg.partition("=")
        if name in SECRET_FLAGS:
            out.append(f"{name}=***" if eq else name)
            hide = not eq
        else:
            out.append(redact(arg))
    return out


def redact_tree(value):
    """``redact`` applied to every string in a JSON-like value."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_tree(v) for v in value]
    return value
