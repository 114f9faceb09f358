"""Settings: model endpoints per role, sampling per role, and the experiment itself.

Everything that crosses a boundary (command line, config files, manifests) is a pydantic model.
API keys are ``SecretStr`` and are never written out: ``public_dict`` drops them.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

Role = Literal["user", "agent", "judge"]
StructuredMode = Literal["auto", "json_schema", "json_object", "prompt"]
ReplyMode = Literal["auto", "text", "json"]
MemoryMode = Literal["none", "notes", "retrieval", "select", "oracle"]

#: Provider prefixes accepted in litellm-style model names (``hosted_vllm/meta-llama/...``).
LITELLM_PREFIXES = (
    "hosted_vllm/",
    "openai/",
    "vllm/",
    "sglang/",
    "litellm_proxy/",
    "llamacpp/",
    "local/",
)

#: Default sampling per role, as in the published setup.
ROLE_DEFAULTS: dict[str, dict[str, float | int]] = {
    "user": {"temperature": 1.0, "max_tokens": 1024},
    "agent": {"temperature": 1.0, "max_tokens": 2048},
    "judge": {"temperature": 0.0, "max_tokens": 1024},
}

#: Environment variables consulted for API keys when no key is given explicitly.
KEY_ENV = {"user": "MSC_USER_API_KEY", "agent": "MSC_AGENT_API_KEY", "judge": "MSC_JUDGE_API_KEY"}
TERMINATION_SIGNAL = "TERMINATE"
OPENING_MESSAGE = "How can I help you?"


def normalize_model_name(name: str) -> str:
    """Strip a litellm-style provider prefix: ``hosted_vllm/meta-llama/X`` -> ``meta-llama/X``."""
    for prefix in LITELLM_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def normalize_base_url(url: str) -> str:
    """Endpoints are OpenAI-compatible roots ending in ``/v1``; accept them with or without it."""
    url = url.rstrip("/")
    if not url.endswith("/v1"):
        url = url + "/v1"
    return url


class RoleConfig(BaseModel):
    """How to reach the model that plays one role."""

    model_config = ConfigDict(frozen=True)

    role: Role
    base_url: str = "http://localhost:8000/v1"
    model: str = "default"
    api_key: SecretStr | None = None
    temperature: float = 1.0
    max_tokens: int = 1024
    timeout_s: float = 600.0
    max_retries: int = 4
    structured: StructuredMode = "auto"
    #: Extra attempts when a reply does not parse or validate (on top of HTTP retries).
    parse_retries: int = 3
    #: Most requests in flight to this endpoint at once (shared by roles on one endpoint).
    max_inflight: int = 256

    @field_validator("model")
    @classmethod
    def _strip_prefix(cls, v: str) -> str:
        return normalize_model_name(v)

    @field_validator("base_url")
    @classmethod
    def _norm_url(cls, v: str) -> str:
        return normalize_base_url(v)

    def key_value(self) -> str:
        if self.api_key is not None and self.api_key.get_secret_value():
            return self.api_key.get_secret_value()
        return os.environ.get(KEY_ENV[self.role]) or os.environ.get("OPENAI_API_KEY") or "EMPTY"

    def public_dict(self) -> dict:
        data = self.model_dump(exclude={"api_key"})
        data["api_key_set"] = self.api_key is not None or bool(os.environ.get(KEY_ENV[self.role]))
        return data

    def result_fields(self) -> dict:
        """The part of this config that can change results (used in the settings hash)."""
        return {
            "model": self.model,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "structured": self.structured,
        }


def role_config(role: Role, **overrides) -> RoleConfig:
    """A ``RoleConfig`` with the published sampling defaults for ``role``; ``None`` overrides are ignored."""
    values: dict = dict(ROLE_DEFAULTS[role])
    values.update({k: v for k, v in overrides.items() if v is not None})
    if isinstance(values.get("api_key"), str):
        values["api_key"] = SecretStr(values["api_key"])
    return RoleConfig(role=role, **values)


class SessionSettings(BaseModel):
    """Settings of one conversation that are not about endpoints."""

    model_config = ConfigDict(frozen=True)

    max_turns: int = Field(10, ge=1, description="Most user turns in one session.")
    agent_reply: ReplyMode = Field("auto", description="Agent replies as plain text or as JSON.")
    agent_context_tokens: int = Field(16384, ge=512, description="Agent context budget in tokens.")
    memory: MemoryMode = "none"
    retrieval_k: int = Field(5, ge=1)
    retrieval_threshold: float = Field(0.0, description="Least cosine similarity for a retrieved note.")


def settings_hash(payload: dict) -> str:
    """A short stable hash of the settings that change results."""
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
