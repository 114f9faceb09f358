"""Process-wide counters of model traffic, for the progress line: requests, retries, throttling
(HTTP 429), tokens. Plain integers, updated where requests are made; reading them costs nothing."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass
class Traffic:
    requests: int = 0
    retries: int = 0
    throttled: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def reset(self) -> None:
        for f in fields(self):
            setattr(self, f.name, 0)


TRAFFIC = Traffic()
