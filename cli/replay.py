"""`ghat replay`: run logged traffic against a changed policy set and list the decisions that change.

Reads the request log (`--data-dir`, as `ghat logs`), rebuilds each request
from its record, evaluates it against `--policies` and compares with what was
decided then. What the log cannot rebuild (texts without `capture`, rate
limits, keys) is skipped or marked, never guessed: see `engine/replay.py`.
Exit status: 0, or 1 with `--fail-on-change` when any decision changes (for CI).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cli.logs import add_data_dir, open_store, parse_time

if TYPE_CHECKING:
    from engine.compiler import CompiledPolicy
    from engine.replay import ReplayReport

SHOWN_IDS = 3  # example request ids per kind of change in the text report


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "replay", help="recorded traffic against a changed policy: which decisions change",
        description="Replay logged requests against a policy set and report every decision that changes.",
    )  # fmt: skip
    p.add_argument("--policies", nargs="+", required=True, type=Path, help="the changed policy set")
    add_data_dir(p)
    p.add_argument("--env", help="replay only this environment's records (default: every env in the log)")
    p.add_argument("--app", help="replay only this app's records")
    p.add_argument("--since", type=parse_time, help="1h, 30m, 2d or ISO 8601")
    p.add_argument("--until", type=parse_time)
    p.add_argument("--limit", type=int, default=10_000, help="newest records replayed at most (default 10000)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--fail-on-change", action="store_true", help="exit 1 when any decision changes")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from adapters.codecs import replay_decoder
    from adapters.logstore.base import LogQuery
    from dsl.diagnostics import PolicyError
    from engine.replay import replay

    if args.limit < 1:
        print("ghat replay: --limit must be at least 1", file=sys.stderr)
        return 2
    store = open_store(args.data_dir)
    if store is None:
        return 1
    try:
        rows = store.query(LogQuery(app=args.app, env=args.env, since=args.since, until=args.until,
                                    limit=args.limit, newest_first=True))  # fmt: skip
    finally:
        store.close()
    records = [r for _, r in reversed(rows)]
    policies: dict[str, CompiledPolicy] = {}
    try:
        for env in sorted({r.env for r in records}):
            policies[env] = _compile(args.policies, env)
    except PolicyError as exc:
        from dsl.diagnostics import render_text
        from dsl.loader import load

        sources = load(list(args.policies)).sources
        for d in exc.diagnostics:
            print(render_text(d, sources.get(d.span.file)), file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"ghat replay: cannot read the policy set: {exc}", file=sys.stderr)
        return 1
    report = replay(policies, records, replay_decoder)
    print(json.dumps(_to_json(report), indent=2) if args.format == "json" else _render(report))
    return 1 if args.fail_on_change and report.changed else 0


def _compile(paths: list[Path], env: str) -> CompiledPolicy:
    from engine.compiler import compile_paths

    return compile_paths(paths, env)


def _to_json(report: ReplayReport) -> dict[str, Any]:
    return {
        "replayed": len(report.replayed),
        "changed": len(report.changed),
        "guardrails_not_rerun": sum(not r.guardrails_rerun for r in report.replayed),
        "skipped": report.skipped,
        "changes": [{"request_id": r.request_id, "app": r.app, "before": str(r.before), "after": str(r.after)}
                    for r in report.changed],
    }


def _render(report: ReplayReport) -> str:
    n, changed = len(report.replayed), report.changed
    lines = [f"replayed {n} request(s): {len(changed)} decision(s) change, {n - len(changed)} unchanged"]
    for (app, before, after), ids in sorted(report.changes().items(), key=lambda kv: -len(kv[1])):
        shown = ", ".join(ids[:SHOWN_IDS]) + (", …" if len(ids) > SHOWN_IDS else "")
        lines.append(f"  {len(ids):>6}  {app}: {before}  ⇒  {after}   ({shown})")
    not_rerun = sum(not r.guardrails_rerun for r in report.replayed)
    if not_rerun:
        lines.append(f"input guardrails not re-run for {not_rerun} request(s): their texts were not captured")
    for reason, count in sorted(report.skipped.items()):
        lines.append(f"skipped {count}: {reason}")
    return "\n".join(lines)
