"""What each setting declares on its field: its ``--help`` group and whether it changes results.

Every field of ``config.SessionContext`` and ``config.RunSettings`` is annotated with a
:class:`Spec` (``Annotated[type, Spec(...)]``; ``tests/unit/test_config.py`` refuses a field
without one). The settings hash (``run/plan.py: result_settings``) and the batch command's flags
(``cli/batch.py``) are derived from these declarations, never from lists of names.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

FlagGroup = Literal["published", "models", "data", "memory", "throughput", "reliability", "output"]
#: The ``--help`` groups, in order, with their titles.
FLAG_GROUPS: dict[str, str] = {
    "published": "published flags (accepted unchanged; each also has a dashed spelling)",
    "models": "models and endpoints (role flags override --api-base/--model/--api-key)",
    "data": "data and users",
    "memory": "memory",
    "throughput": "throughput",
    "reliability": "reliability",
    "output": "output",
}


@dataclass(frozen=True)
class Spec:
    """What a setting is, declared on its field (``Annotated[type, Spec(...)]``); every field of
    :class:`SessionContext` and :class:`RunSettings` has one (``tests/unit/test_config.py``).

    - ``group``: the ``--help`` group of its flag (None: no flag of its own);
    - ``results``: it changes results, so it keys every record (the settings hash): ``True``,
      ``False``, or ``"design"`` (only in runs whose memory design declares that it reads it);
    - ``at``: where it sits in ``result_settings`` (dotted paths; default: its name);
    - ``only_if_changed``: it enters ``result_settings`` only when not at its default (it was
      added after results were written: results at its default keep their hash);
    - ``via``: it changes results through a derived item instead (the dataset's content, the
      profile set, ...): ``run/plan.py:result_settings`` keys that item, not the field.
    """

    group: FlagGroup | None
    results: bool | Literal["design"]
    at: tuple[str, ...] = ()
    only_if_changed: bool = False
    via: str = ""


def spec_of(model: type[BaseModel], name: str) -> Spec | None:
    """The :class:`Spec` declared on a field (None: the field declares none, which a test refuses)."""
    return next((m for m in model.model_fields[name].metadata if isinstance(m, Spec)), None)


def declared_settings(parts: Iterable[BaseModel], design_reads: Collection[str] = ()) -> dict:
    """The settings of ``parts`` (a run's ``RunSettings`` and its ``SessionContext``) whose
    declarations say they change results, each where ``result_settings`` keeps it
    (``design_reads``: the ``"design"`` settings the run's memory design declares it reads)."""
    out: dict = {}
    for values in parts:
        model = type(values)
        for name, field in model.model_fields.items():
            spec = spec_of(model, name)
            if spec is None or spec.via or not spec.results or (spec.results == "design" and name not in design_reads):
                continue
            value = getattr(values, name)
            if spec.only_if_changed and value == field.default:
                continue
            for path in spec.at or (name,):
                *parents, leaf = path.split(".")
                node = out
                for part in parents:
                    node = node.setdefault(part, {})
                node[leaf] = value
    return out
