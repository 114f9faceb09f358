#!/usr/bin/env python
"""Run one session (one user, one problem) against any OpenAI-compatible endpoint and print the
transcript and the three metrics.

  python runners/session.py --api-base http://localhost:8000/v1 --model my-model \\
      --profiles ../shared/data/multisessioncollab/user_profiles.json --user 0 \\
      --dataset math-500 --problem 0 --data-dir ../shared/data/multisessioncollab/datasets
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from msc_graph.data import DatasetError, ProfileError, builtin_profiles, load_dataset_problems, load_profiles  # noqa: E402
from msc_graph.graphs.context import SessionContext, set_api_keys  # noqa: E402
from msc_graph.graphs.session import graph  # noqa: E402
from msc_graph.metrics import session_metrics  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--api-base", required=True, help="OpenAI-compatible endpoint for every role, e.g. http://localhost:8000/v1")
    ap.add_argument("--model", required=True, help="model name served there (litellm prefixes such as hosted_vllm/ are stripped)")
    ap.add_argument("--api-key", default=None, help="API key (default: env OPENAI_API_KEY, else EMPTY)")
    ap.add_argument("--agent-api-base", default=None, help="a different endpoint for the agent (default: --api-base)")
    ap.add_argument("--agent-model", default=None, help="a different model for the agent (default: --model)")
    ap.add_argument("--profiles", default=None, help="profile file (default: the built-in set)")
    ap.add_argument("--user", type=int, default=0, help="user id (default: %(default)s)")
    ap.add_argument("--dataset", default="demo", help="dataset name or file (default: %(default)s)")
    ap.add_argument("--problem", type=int, default=0, help="problem index in the seed-42 sample (default: %(default)s)")
    ap.add_argument("--data-dir", default=None, help="dataset cache folder (default: env MSC_DATA_DIR)")
    ap.add_argument("--max_turns", type=int, default=10, help="most user turns (default: %(default)s)")
    ap.add_argument("--structured", choices=["auto", "json_schema", "json_object", "prompt"], default="auto",
                    help="how JSON replies are enforced (json_object for llama.cpp servers)")  # fmt: skip
    ap.add_argument("--json", action="store_true", help="print the final state as JSON instead")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        profiles = load_profiles(args.profiles) if args.profiles else builtin_profiles()
        profile = next((p for p in profiles if p.i == args.user), None)
        if profile is None:
            raise ProfileError(f"user {args.user} is not in {args.profiles or 'the built-in set'}")
        data = load_dataset_problems(args.dataset, args.problem + 1, cache_dir=args.data_dir)
    except (DatasetError, ProfileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    set_api_keys({"user": args.api_key, "agent": args.api_key, "judge": args.api_key})
    ctx = SessionContext(
        user_base_url=args.api_base, user_model=args.model, judge_base_url=args.api_base, judge_model=args.model,
        agent_base_url=args.agent_api_base or args.api_base, agent_model=args.agent_model or args.model,
        max_turns=args.max_turns, structured=args.structured,
    )  # fmt: skip
    problem = data.problems[args.problem]
    state = asyncio.run(
        graph.ainvoke(
            {"user_id": profile.i, "session_index": 0, "problem": problem["problem"], "solution": problem["solution"],
             "task_description": data.task_description, "persona": profile.persona, "preferences": profile.preferences},
            context=ctx,
        )
    )  # fmt: skip
    metrics = session_metrics(state)
    if args.json:
        print(json.dumps({**state, **metrics}, indent=2, default=str))
        return 0 if not state.get("failure") else 1
    for m in state.get("messages") or []:
        who = "AGENT" if m["role"] == "assistant" else "USER "
        print(f"{who}: " + textwrap.indent(m["content"], "       ").lstrip())
    print(f"\ndraft answer: {state.get('draft_answer')}\nreference:    {problem['solution'][:200]}")
    ts = metrics["task_success"]
    print(f"task_success={ts if ts is not None else 'n/a'}  user_effort={metrics['user_effort']}  length={metrics['length']}")
    if state.get("failure"):
        print(f"failed at {state['failure']['stage']}: {state['failure']['reason']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
