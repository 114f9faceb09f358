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

from pydantic import ValidationError

from msc_graph.cli.common import OneLineParser, add_flag, bad_input
from msc_graph.config import SessionContext
from msc_graph.data import DatasetError, ProfileError, builtin_profiles, load_dataset_problems, load_profiles
from msc_graph.graphs.context import set_api_keys
from msc_graph.graphs.session import graph
from msc_graph.metrics import session_metrics
from msc_graph.protocols import effort_counter, task_description
from msc_graph.run.records import SessionJob
from msc_graph.run.session import session_inputs


def build_parser() -> argparse.ArgumentParser:
    ap = OneLineParser(prog="runners/session.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_flag(ap, "--api-base", required=True, help="OpenAI-compatible endpoint for every role, e.g. http://localhost:8000/v1")
    add_flag(ap, "--model", required=True, help="model name served there (litellm prefixes such as hosted_vllm/ are stripped)")
    add_flag(ap, "--api-key", default=None, help="API key (default: env OPENAI_API_KEY, else EMPTY)")
    add_flag(ap, "--agent-api-base", default=None, help="a different endpoint for the agent (default: --api-base)")
    add_flag(ap, "--agent-model", default=None, help="a different model for the agent (default: --model)")
    add_flag(ap, "--profiles", default=None, help="profile file (default: the built-in set)")
    add_flag(ap, "--user-id", "--user", type=int, default=0, help="user id (default: %(default)s)")
    add_flag(ap, "--dataset", default="demo", help="dataset name or file (default: %(default)s)")
    add_flag(ap, "--problem", type=int, default=0, help="problem index in the seed-42 sample (default: %(default)s)")
    add_flag(ap, "--data-dir", default=None, help="dataset cache folder (default: env MSC_DATA_DIR)")
    add_flag(ap, "--max-turns", type=int, default=SessionContext.model_fields["max_turns"].default, help="most user turns (default: %(default)s)")
    add_flag(ap, "--protocol", choices=["ours", "published"], default="ours", help="ours, or the published protocol (default: %(default)s)")
    add_flag(ap, "--published-code", default="", help="a checkout of the published code, for --protocol published")
    add_flag(ap, "--structured", choices=["auto", "json_schema", "json_object", "prompt"], default="auto",
             help="how JSON replies are enforced (json_object for llama.cpp servers)")  # fmt: skip
    add_flag(ap, "--json", action="store_true", help="print the final state as JSON instead")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        profiles = load_profiles(args.profiles) if args.profiles else builtin_profiles()
        profile = next((p for p in profiles if p.i == args.user_id), None)
        if profile is None:
            raise ProfileError(f"user {args.user_id} is not in {args.profiles or 'the built-in set'}")
        data = load_dataset_problems(args.dataset, args.problem + 1, cache_dir=args.data_dir)
        set_api_keys({"user": args.api_key, "agent": args.api_key, "judge": args.api_key})
        ctx = SessionContext(
            user_api_base=args.api_base, user_model=args.model, judge_api_base=args.api_base, judge_model=args.model,
            agent_api_base=args.agent_api_base or args.api_base, agent_model=args.agent_model or args.model,
            max_turns=args.max_turns, structured=args.structured, protocol=args.protocol, published_code=args.published_code,
        )  # fmt: skip
    except (DatasetError, ProfileError, ValidationError) as exc:
        return bad_input(exc)
    problem = data.problems[args.problem]
    state = asyncio.run(
        graph.ainvoke(session_inputs(SessionJob(profile, 0, args.problem, problem), task_description(data, ctx)), context=ctx)
    )  # fmt: skip
    metrics = session_metrics(state, effort_counter(ctx.protocol))
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
