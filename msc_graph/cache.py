"""The response cache (``--cache DIR``, off by default): a model call whose request was answered
before is answered from the cache, so re-running a run (after a report-only change, a crash, or
to judge again) repeats no model call.

- **Key: the whole request.** The endpoint URL and the JSON body as it is sent: model, messages,
  temperature, max_tokens, ``seed``, ``response_format``, tools; everything but the API key (which
  is a header and never stored). Any change to any of them is another request. A server the run
  starts itself on a free port (``--backend local`` / ``mock``) is named instead of its URL
  (:func:`name_endpoint`), so its replies are found again when the next run gets another port.
- **A cached re-run replays.** At temperature > 0 the same request gets the same reply it got the
  first time, which is what "repeat no model call" means; a cache is not a way to draw new samples.
  Runs that should differ must send different requests: distinct trials carry distinct ``seed``s.
- **Repeats of one request within a run are kept apart.** The n-th time a process sends a request
  it gets the n-th stored reply for it (the key carries the occurrence), so a retry of an empty or
  unparseable reply is a new call the first time and the same replay the next time, never the same
  bad reply over and over.
- **Only answers are stored:** an HTTP error, a timeout or a body that is not a chat completion is
  never cached (the caller stores the reply only after it was read as a completion).
- **Storage:** one SQLite file, ``DIR/responses.sqlite``, in WAL mode: many concurrent sessions of
  one process and several processes (shards) may share a folder; a reply is committed as it comes.

Hits and misses are counted here (the progress line and the run's manifest show them).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections import Counter
from pathlib import Path

from msc_graph.counters import TRAFFIC

FILE_NAME = "responses.sqlite"


class CacheError(RuntimeError):
    """The cache folder cannot be used; the message says why and what to do."""


def check_folder(folder: str | Path | None) -> None:
    """Raise :class:`CacheError` when ``folder`` cannot be a cache folder (a file is in the way)."""
    if folder and Path(folder).exists() and not Path(folder).is_dir():
        raise CacheError(f"--cache {folder} is a file; give a folder")


class ResponseCache:
    """Replies to chat-completion requests, by request, in ``folder/responses.sqlite``."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        check_folder(self.folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.folder / FILE_NAME, timeout=60, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, reply TEXT NOT NULL)")
        except (OSError, sqlite3.Error) as exc:
            raise CacheError(f"--cache {self.folder} cannot be used: {exc}") from None
        self._lock = threading.Lock()
        self._seen: Counter[str] = Counter()
        self.hits = self.misses = 0

    @staticmethod
    def request_digest(url: str, body: dict) -> str:
        for base, name in _ENDPOINT_NAMES.items():
            if url.startswith(base):
                url = name + url[len(base) :]
                break
        blob = json.dumps({"url": url, "body": body}, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def key_for(self, url: str, body: dict) -> str:
        """The key of this request's next occurrence in this process."""
        digest = self.request_digest(url, body)
        with self._lock:
            n = self._seen[digest]
            self._seen[digest] += 1
        return f"{digest}:{n}"

    def get(self, key: str) -> dict | None:
        with self._lock:
            row = self._db.execute("SELECT reply FROM replies WHERE key = ?", (key,)).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        TRAFFIC.cache_hits += 1
        return json.loads(row[0])

    def put(self, key: str, reply: dict) -> None:
        text = json.dumps(reply, ensure_ascii=False, separators=(",", ":"))
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO replies (key, reply) VALUES (?, ?)", (key, text))

    def stored(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM replies").fetchone()[0])

    def stats(self) -> dict:
        return {"dir": str(self.folder.resolve()), "hits": self.hits, "misses": self.misses, "stored": self.stored()}

    def close(self) -> None:
        with self._lock:
            self._db.close()


_ACTIVE: list[ResponseCache] = []
#: Base URLs of servers started on a free port -> the stable name that keys their requests.
_ENDPOINT_NAMES: dict[str, str] = {}


def name_endpoint(base_url: str, name: str) -> None:
    """Key requests to ``base_url`` (a server this process started on a free port) by ``name``."""
    _ENDPOINT_NAMES[base_url.rstrip("/")] = name


def use_cache(folder: str | Path | None) -> ResponseCache | None:
    """Make ``folder`` this process's response cache (``None``: no cache), with counts from zero."""
    while _ACTIVE:
        _ACTIVE.pop().close()
    if folder is None or str(folder) == "":
        return None
    cache = ResponseCache(folder)
    _ACTIVE.append(cache)
    return cache


def active_cache() -> ResponseCache | None:
    return _ACTIVE[0] if _ACTIVE else None


def cache_stats() -> dict | None:
    """Hits, misses and stored replies of the active cache (``None`` without one)."""
    cache = active_cache()
    return cache.stats() if cache is not None else None
