"""Chat with the memory agent yourself, over several sessions, in this terminal.

You play the user: each session shows you a problem (the agent does not see it), you work on it
with the agent, and you end the session when you are done, optionally with your final answer.
After each session the agent reflects on the conversation and keeps notes about your preferences;
the notes persist between runs (in --home), so the next session starts from what it learned.

  python runners/chat.py --backend local                       # offline, the embedded small model
  python runners/chat.py --api-base http://localhost:8003/v1 --model meta-llama/Llama-3.3-70B-Instruct

In a session: /end [answer] ends it, /answer X sets your answer, /remind X sends X as a reminder
of a preference (counted as user effort), /notes shows what the agent has learned about you,
/quit leaves without saving the session, /help lists these.
Every finished session is saved to <home>/sessions.jsonl in the same record format as batch runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from pathlib import Path

from msc_graph.cli.common import EXIT_BAD_INPUT, OneLineParser, add_flag, signal_exit_code
from msc_graph.config import DEFAULT_API_BASE, DEFAULT_MODEL, LOCAL_BACKEND_OVERRIDES, ROLES, SessionContext
from msc_graph.data import DatasetError, load_dataset_problems
from msc_graph.data.profiles import UserProfile
from msc_graph.graphs.context import role_configs, set_api_keys
from msc_graph.graphs.human import SessionAborted, TerminalPerson, run_with_person
from msc_graph.graphs.memory import store_locator
from msc_graph.local_backend import LocalBackendError
from msc_graph.memory.access import astore_for
from msc_graph.memory.lock import MemoryError_
from msc_graph.results.files import RecordWriter, ResultsError, read_records
from msc_graph.run.errors import RunError
from msc_graph.run.preflight import check_endpoint
from msc_graph.run.records import SessionJob, build_record
from msc_graph.run.session import session_inputs

PERSON = "a person at the keyboard, with their own preferences"
OWN_PREFERENCES = ["(the person's own preferences; not written down)"]


def build_parser() -> argparse.ArgumentParser:
    ap = OneLineParser(prog="runners/chat.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_flag(ap, "--backend", choices=["remote", "local"], default="remote",
             help="remote: the endpoint in --api-base; local: start the embedded llama.cpp model (default: %(default)s)")
    add_flag(ap, "--api-base", default=DEFAULT_API_BASE["agent"], help="OpenAI-compatible endpoint for every role (default: %(default)s)")
    add_flag(ap, "--model", default=DEFAULT_MODEL, help="model served there (default: %(default)s)")
    add_flag(ap, "--api-key", default=None, help="API key (default: env MSC_AGENT_API_KEY or OPENAI_API_KEY)")
    add_flag(ap, "--local-model", default=None, help="GGUF file for --backend local (default: SmolLM2-135M-Instruct)")
    add_flag(ap, "--home", default=".msc_chat", help="where your notes and transcripts are kept (default: %(default)s)")
    add_flag(ap, "--user-id", type=int, default=0, help="your id in --home; use another id for another person (default: %(default)s)")
    add_flag(ap, "--dataset", default="demo", help="where the problems come from: demo, a published dataset or a file (default: %(default)s)")
    add_flag(ap, "--data-dir", default=None, help="dataset cache folder (default: env MSC_DATA_DIR)")
    add_flag(ap, "--eval-size", type=int, default=12, help="problems drawn from the dataset, used in turn (default: %(default)s)")
    add_flag(ap, "--memory", choices=["retrieval", "notes", "select"], default="retrieval",
             help="how the agent uses its notes (default: %(default)s)")
    add_flag(ap, "--max-turns", type=int, default=SessionContext.model_fields["max_turns"].default,
             help="most messages you can send per session (default: %(default)s)")
    add_flag(ap, "--sessions", type=int, default=None, help="stop after this many sessions (default: ask after each)")
    add_flag(ap, "--structured", choices=["auto", "json_schema", "json_object", "prompt"], default=None,
             help="how JSON replies are enforced (default: auto; json_object for --backend local)")
    return ap


def make_context(args: argparse.Namespace, base_url: str, model: str, local: bool) -> SessionContext:
    values: dict = {f"{role}_{what}": v for role in ROLES for what, v in (("api_base", base_url), ("model", model))}
    if local:
        values.update(LOCAL_BACKEND_OVERRIDES)
    if args.structured:
        values["structured"] = args.structured
    return SessionContext(
        **values,
        max_turns=args.max_turns,
        memory=args.memory,
        memory_dir=str(Path(args.home) / "memory"),
        memory_namespace="chat",
        user_kind="human",
    )


async def chat(args: argparse.Namespace, ctx: SessionContext, person: TerminalPerson) -> int:
    data = load_dataset_problems(args.dataset, args.eval_size, cache_dir=args.data_dir)
    await check_endpoint(
        ctx.agent_api_base,
        {ctx.agent_model},
        role_configs(ctx)["agent"].key_value(),
        start_hint="start a server (python runners/serve.py --help) or use --backend local",
        model_flag="--model",
    )
    log = Path(args.home) / "sessions.jsonl"
    past = [r for r in read_records(log) if r["user_id"] == args.user_id] if log.exists() else []
    profile = UserProfile(i=args.user_id, persona=PERSON, preferences=OWN_PREFERENCES)
    async def notes() -> list[dict]:
        store = await astore_for(store_locator(ctx))
        return (await store.anotes(args.user_id, with_vectors=False))[0]

    person.notes = notes
    index = 1 + max((r["session_index"] for r in past), default=-1)
    done_now = 0
    with RecordWriter(log) as writer:
        while args.sessions is None or done_now < args.sessions:
            pid = index % len(data.problems)
            problem = data.problems[pid]
            person.start_session(
                f"\n=== session {index + 1} ({data.name}) ===\nTask: {data.task_description}\n"
                f"Problem (the agent has not seen it):\n{problem['problem']}\n"
            )
            job = SessionJob(profile, index, pid, problem)
            started = time.time()
            try:
                state = await run_with_person(session_inputs(job, data.task_description), ctx, person)
            except SessionAborted:
                person.say("\n(session left; it is not saved. Your notes so far are kept.)")
                return 0
            base = {"dataset": data.name, "experiment_type": "human_chat", "memory": ctx.memory,
                    "agent_model": ctx.agent_model, "user_model": "human"}  # fmt: skip
            record = build_record(job, state, base, started, memory=True).to_json_dict()
            writer.write(record)
            report_session(person, record, problem["solution"])
            index += 1
            done_now += 1
            if args.sessions is None and not await another(person):
                break
    person.say(f"transcripts: {log}")
    return 0


def report_session(person: TerminalPerson, record: dict, solution: str) -> None:
    if record.get("failure"):
        f = record["failure"]
        person.say(f"\n(the session failed at {f['stage']}: {f['reason']}; saved as a failure)")
        return
    ts = record.get("task_success")
    verdict = "correct" if ts == 1 else "not correct" if ts == 0 else "not judged"
    person.say(f"\nyour answer: {record.get('draft_answer')} ({verdict}; reference: {solution[:200]})")
    person.say(f"messages: {record['length']}, reminders: {record['user_effort']}")
    notes = record.get("notes_after") or []
    person.say("what the agent now knows about you:" if notes else "the agent has no notes about you yet")
    for n in notes:
        person.say(f"  - {n.get('preference', '')}")


async def another(person: TerminalPerson) -> bool:
    try:
        return (await person.read_line("\nanother session? [y/N] ")).strip().lower().startswith("y")
    except SessionAborted:
        return False


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    person = TerminalPerson()
    try:
        set_api_keys({"user": args.api_key, "agent": args.api_key, "judge": args.api_key})
        with contextlib.ExitStack() as stack:
            if args.backend == "local":
                from msc_graph.local_backend import local_server

                server = stack.enter_context(local_server(args.local_model))
                ctx = make_context(args, server.base_url, server.model, local=True)
            else:
                ctx = make_context(args, args.api_base, args.model, local=False)
            return asyncio.run(chat(args, ctx, person))
    except (DatasetError, ResultsError, MemoryError_, LocalBackendError, RunError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("\n(left; finished sessions are saved)", file=sys.stderr)
        return signal_exit_code("SIGINT")


if __name__ == "__main__":
    sys.exit(main())
