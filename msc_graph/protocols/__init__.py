"""The two protocols a run can follow: ours, and the published one (``--protocol published``).

What differs between them is data and small rules, not copies of the graph: the prompts (ours in
``msc_graph.prompts``; the published ones read at run time by ``published_source``), how replies
are parsed and counted (``published``), how often a failed session is generated again, and how a
run is averaged. ``README.md`` lists every difference, why, and which numbers it moves.
"""

from __future__ import annotations


def effort_counter(protocol: str):
    """How a protocol counts User Effort over a session's turns."""
    from msc_graph import metrics
    from msc_graph.protocols import published

    return published.user_effort if protocol == "published" else metrics.user_effort


def task_description(dataset, ctx) -> str:
    """What the user simulator is told about the task: the published wording for a published
    dataset under the published protocol, else the dataset's own."""
    if ctx.protocol == "published" and dataset.key == dataset.name:  # a registered dataset, not a file
        from msc_graph.protocols.published_source import load_published

        return load_published(ctx.published_code).task_descriptions.get(dataset.name, dataset.task_description)
    return dataset.task_description
