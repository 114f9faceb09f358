"""The rewards a reflection is trained with (TRL reward functions: lists in, one float per completion).

- format: the reply is what the notes designs parse (``llm.parse_json_reply`` into
  ``ReflectionResult``): 1.0; a JSON object that does not validate: 0.5; anything else: 0.0.
- coverage: a judge endpoint grades which of the preferences the user has enforced so far the
  notes capture (``prompts.COVERAGE_PROMPT``); the reward is the share covered. It grades content
  only: a reply that does not parse is graded on its text (the format reward is what punishes it),
  so the two rewards stay separate signals, as the study describes them. Calls run
  concurrently on one event loop (at most ``concurrency`` in flight), each with the project's
  HTTP and parse retries (``llm.call_json``), and are cached by content (judge model + prompt), in
  memory and in a JSONL file, so a resumed run or a repeated completion costs no call. A judge call
  that still fails gives ``None`` (TRL leaves that completion out of the reward's mean) and is
  counted.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from json_repair import repair_json

from msc_graph.config import RoleConfig
from msc_graph.llm import call_json, parse_json_reply, strip_reasoning
from msc_graph.memory.notes import notes_as_text
from msc_graph.prompts import COVERAGE_PROMPT, format_numbered
from msc_graph.schemas import CoverageGrade, ReflectionResult


def completion_text(completion) -> str:
    """A TRL completion's text: a string, or a conversational list of messages."""
    if isinstance(completion, str):
        return completion
    return "".join(m.get("content") or "" for m in completion if m.get("role") == "assistant")


def parsed_notes(text: str) -> list[dict] | None:
    """The notes the design would keep from this reply, or None when it cannot parse it."""
    try:
        result = parse_json_reply(text, ReflectionResult)
    except ValueError:
        return None
    return [n.model_dump() for n in result.notes if n.preference.strip()]


def format_score(text: str) -> float:
    if parsed_notes(text) is not None:
        return 1.0
    body = strip_reasoning(text)
    try:
        data = json.loads(body)
    except ValueError:
        data = repair_json(body, return_objects=True) if body.lstrip().startswith("{") else None
    return 0.5 if isinstance(data, dict) and data else 0.0


def format_reward(completions, **_) -> list[float]:
    """TRL reward: how well each completion keeps the JSON format the design parses."""
    return [format_score(completion_text(c)) for c in completions]


@dataclass
class JudgeStats:
    calls: int = 0
    cache_hits: int = 0
    failures: int = 0
    #: Seconds the trainer waited on judge batches (the reward's share of a step).
    waited_s: float = 0.0
    batches: int = 0


@dataclass
class CoverageJudge:
    """The coverage reward, graded by ``judge`` (an OpenAI-compatible endpoint)."""

    judge: RoleConfig
    concurrency: int = 16
    cache_file: Path | None = None
    stats: JudgeStats = field(default_factory=JudgeStats)
    __name__ = "coverage_reward"  # TRL names a reward function's metrics after it

    def __post_init__(self) -> None:
        self._cache: dict[str, float] = {}
        if self.cache_file and self.cache_file.is_file():
            for line in self.cache_file.read_text(encoding="utf-8").splitlines():
                row = json.loads(line)
                self._cache[row["key"]] = row["score"]
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="coverage-judge", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def __call__(self, completions, preferences, target, **_) -> list[float | None]:
        started = time.perf_counter()
        texts = [completion_text(c) for c in completions]
        future = asyncio.run_coroutine_threadsafe(self._grade_all(texts, preferences, target), self._loop)
        scores = future.result()
        self.stats.waited_s += time.perf_counter() - started
        self.stats.batches += 1
        return scores

    async def _grade_all(self, texts: list[str], preferences: list[list[str]], target: list[list[int]]) -> list:
        gate = asyncio.Semaphore(self.concurrency)

        async def one(i: int) -> float | None:
            async with gate:
                return await self.grade(texts[i], [preferences[i][j] for j in target[i]])

        return list(await asyncio.gather(*(one(i) for i in range(len(texts)))))

    async def grade(self, text: str, wanted: list[str]) -> float | None:
        """The share of ``wanted`` preferences the notes in ``text`` capture (0.0 for no notes)."""
        notes = parsed_notes(text)
        shown = notes_as_text(notes) if notes else strip_reasoning(text).strip() if notes is None else ""
        if not shown or not wanted:
            return 0.0
        prompt = COVERAGE_PROMPT.format(preferences=format_numbered(wanted), notes=shown)
        key = hashlib.sha256(f"{self.judge.model}\n{prompt}".encode("utf-8", "surrogatepass")).hexdigest()
        if key in self._cache:
            self.stats.cache_hits += 1
            return self._cache[key]
        self.stats.calls += 1
        result = await call_json(self.judge, [{"role": "user", "content": prompt}], CoverageGrade)
        if not result.ok:
            self.stats.failures += 1
            return None
        covered = {n for n in result.value.covered if 1 <= n <= len(wanted)}
        score = len(covered) / len(wanted)
        self._remember(key, score)
        return score

    def _remember(self, key: str, score: float) -> None:
        self._cache[key] = score
        if self.cache_file:
            with open(self.cache_file, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"key": key, "score": score}) + "\n")
