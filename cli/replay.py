"""`ghat replay`: run logged traffic against a changed policy set and list the decisions that change.

Reads the request log (`--data-dir`, as `ghat logs`), rebuilds each request
from its record, evaluates it against `--policies` and compares with what was
decided then. What the log cannot rebuild (texts without `capture`, rate
limits, keys) is skipped or marked, never guessed: see `engine/replay.py`.
A change is any change of a decision, a route, a cap, an action on an input
finding or the forwarded text; the log holds no cap and only the first route,
so `--baseline OLD_POLICIES` decides every record with both sets and compares
all of it. Exit status: 0; 1 with `--fail-on-change` when anything changes, or
when no logged request matches; 2 for usage errors (an env or app the policy
set does not have).
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
    p.add_argument("--baseline", nargs="+", type=Path, metavar="PATH",
                   help="the policy set the traffic was served with: compare both sets' decisions, caps and "
                        "fallbacks included (default: compare with what the log recorded)")  # fmt: skip
    add_data_dir(p)
    p.add_argument("--env", help="replay only this environment's records (default: every env in the log)")
    p.add_argument("--app", help="replay only this app's records")
    p.add_argument("--since", type=parse_time, help="1h, 30m, 2d or ISO 8601")
    p.add_argument("--until", type=parse_time)
    p.add_argument("--limit", type=int, default=10_000, help="newest records replayed at most (default 10000)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--fail-on-change", action="store_true",
                   help="exit 1 when any decision, route, cap, action or forwarded text changes")  # fmt: skip
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from adapters.codecs import replay_decoder
    from adapters.logstore.base import LogQuery
    from cli.policyset import compiled
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
    sets: list[dict[str, CompiledPolicy]] = []
    for paths in [args.policies] + ([args.baseline] if args.baseline else []):
        policies: dict[str, CompiledPolicy] = {}
        # An explicit --env must exist in the set; an env seen only in the log may be gone from the
        # changed set, and then its records are changes to report, not an error.
        envs: list[str | None] = sorted({r.env for r in records} | ({args.env} if args.env else set()))
        for env in envs or [None]:  # no record: still check the set and the names asked for
            policy = compiled("replay", paths, env, env_must_exist=env == args.env)
            if isinstance(policy, int):
                return policy
            policies[env or ""] = policy
        sets.append(policies)
    declared = {a.name for p in sets[0].values() for a in p.source.apps}
    if args.app and args.app not in declared:
        print(f"ghat replay: no app '{args.app}' in the policy set", file=sys.stderr)
        return 2
    if not records:
        print("ghat replay: no logged request matches; nothing was compared", file=sys.stderr)
        return 1
    report = replay(sets[0], records, replay_decoder, sets[1] if len(sets) > 1 else None)
    print(json.dumps(_to_json(report), indent=2) if args.format == "json" else _render(report))
    return 1 if args.fail_on_change and report.changed else 0


def _to_json(report: ReplayReport) -> dict[str, Any]:
    return {
        "replayed": len(report.replayed),
        "changed": len(report.changed),
        "guardrails_not_rerun": sum(not r.guardrails_rerun for r in report.replayed),
        "skipped": report.skipped,
        "changes": [{"request_id": r.request_id, "app": r.app, "before": str(r.before), "after": str(r.after),
                     "differences": [{"aspect": d.aspect, "before": d.before, "after": d.after}
                                     for d in r.differences]}
                    for r in report.changed],
    }  # fmt: skip


def _render(report: ReplayReport) -> str:
    n, changed = len(report.replayed), report.changed
    lines = [f"replayed {n} request(s): {len(changed)} change, {n - len(changed)} unchanged"]
    for (app, diffs), ids in sorted(report.changes().items(), key=lambda kv: -len(kv[1])):
        shown = ", ".join(ids[:SHOWN_IDS]) + (", …" if len(ids) > SHOWN_IDS else "")
        lines.append(f"  {len(ids):>6}  {app}: {diffs[0]}   ({shown})")
        lines.extend(f"          {' ' * len(app)}  {d}" for d in diffs[1:])
    not_rerun = sum(not r.guardrails_rerun for r in report.replayed)
    if not_rerun:
        lines.append(f"input guardrails not re-run for {not_rerun} request(s): their texts were not captured")
    for reason, count in sorted(report.skipped.items()):
        lines.append(f"skipped {count}: {reason}")
    return "\n".join(lines)
