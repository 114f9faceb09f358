"""Process-wide counters of model traffic, for the progress line: requests, retries, throttling
(HTTP 429), tokens. Plain integers, updated where requests are made; reading them costs nothing."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Traffic:
    """Since the process started: HTTP requests sent, retried, answered 429; tokens generated;
    replies taken from the response cache instead (``msc_graph.cache``)."""

    requests: int = 0
    retries: int = 0
    throttled: int = 0
    completion_tokens: int = 0
    cache_hits: int = 0


TRAFFIC = Traffic()
