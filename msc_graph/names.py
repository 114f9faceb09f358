"""Model names and endpoint URLs as people write them, read into one form: a litellm-style
provider prefix is dropped from a model name, and an endpoint always ends in ``/v1``."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator

#: Provider prefixes accepted in litellm-style model names (``hosted_vllm/meta-llama/...``).
LITELLM_PREFIXES = ("hosted_vllm/", "openai/", "vllm/", "sglang/", "litellm_proxy/", "llamacpp/", "local/")


def normalize_model_name(name: str) -> str:
    """Strip a litellm-style provider prefix: ``hosted_vllm/meta-llama/X`` -> ``meta-llama/X``."""
    for prefix in LITELLM_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def normalize_base_url(url: str) -> str:
    """Endpoints are OpenAI-compatible roots ending in ``/v1``; accept them with or without it."""
    url = url.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


#: A model name with any litellm-style provider prefix stripped; an endpoint ending in ``/v1``.
ModelName = Annotated[str, AfterValidator(normalize_model_name)]
ApiBase = Annotated[str, AfterValidator(normalize_base_url)]
