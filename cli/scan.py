"""`ghat scan`: run a policy's detectors (or named detectors) over text.

    ghat scan --policies DIR --app APP [--direction input|output] [FILE…]
    ghat scan --detectors pii,secrets [--action detect|redact] [FILE…]
    ghat scan … --jsonl < corpus.jsonl     # {"id", "text"} in, {"id", "findings", "redacted"} out

Text comes from the files named, or stdin. Findings give detector, type,
offsets (code points), score, the action the policy takes and a detail (topic,
category), never the matched value. Exit status: 0 scanned, 1 some input would
be blocked, 2 usage or policy error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "scan", help="run guardrail detectors over text (files, stdin or JSONL)"
    )
    p.add_argument("files", nargs="*", type=Path, help="text files (default: stdin)")
    p.add_argument("--policies", type=Path, help="policy directory or file")
    p.add_argument("--app", help="the app whose guard block to run")
    p.add_argument("--direction", choices=("input", "output"), default="input")
    p.add_argument("--detectors", help="comma-separated detectors to run without a policy block")
    p.add_argument("--action", choices=("detect", "redact", "block"), default="detect",
                   help="action for --detectors (default detect)")  # fmt: skip
    p.add_argument("--role", help="message role of the text (default: user, or output)")
    p.add_argument("--grounding", type=Path, action="append", default=[],
                   help="grounding document for groundedness (repeatable)")  # fmt: skip
    p.add_argument("--jsonl", action="store_true", help='read {"id", "text"} lines, write one result per line')
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.detectors.base import ScanContext
    from engine.guards import Redactor

    try:
        pipeline = _pipeline(args)
    except _UsageError as exc:
        print(f"ghat scan: {exc}", file=sys.stderr)
        return 2
    role = args.role or ("output" if args.direction == "output" else "user")
    grounding = tuple(p.read_text(encoding="utf-8") for p in args.grounding)
    any_blocked = False

    def scan_one(ident: str, text: str, item: dict[str, Any], out: TextIO) -> None:
        nonlocal any_blocked
        context = ScanContext(str(item.get("role", role)), tuple(item.get("grounding", grounding)))
        result = _scan(pipeline, context, text, Redactor())
        any_blocked |= result["blocked"] is not None
        out.write(json.dumps({"id": ident, **result}, ensure_ascii=False) + "\n")

    if args.jsonl:
        sources = [p.open(encoding="utf-8") for p in args.files] or [sys.stdin]
        for source in sources:
            for n, line in enumerate(source, 1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                    text = item["text"]
                except (ValueError, KeyError, TypeError):
                    print(f"ghat scan: line {n}: expected a JSON object with \"text\"", file=sys.stderr)
                    return 2
                scan_one(str(item.get("id", n)), str(text), item, sys.stdout)
    elif args.files:
        for path in args.files:
            scan_one(str(path), path.read_text(encoding="utf-8"), {}, sys.stdout)
    else:
        scan_one("-", sys.stdin.read(), {}, sys.stdout)
    return 1 if any_blocked else 0


class _UsageError(Exception):
    pass


def _pipeline(args: argparse.Namespace) -> Any:
    from dsl import ast
    from engine.guards import compile_pipeline

    custom: dict[str, ast.CustomDetector] = {}
    app: ast.App | None = None
    if args.policies is not None:
        from dsl.check import validate
        from dsl.diagnostics import has_errors, render_text
        from dsl.loader import load

        loaded = load([args.policies])
        diags = loaded.diagnostics + validate(loaded.policy_set)
        if has_errors(diags):
            for d in diags:
                print(render_text(d, loaded.sources.get(d.span.file)), file=sys.stderr)
            raise _UsageError("the policies have errors")
        custom = {d.name: d for d in loaded.policy_set.detectors}
        if args.app:
            app = next((a for a in loaded.policy_set.apps if a.name == args.app), None)
            if app is None:
                raise _UsageError(f"no app named '{args.app}' in {args.policies}")
    if args.detectors:
        names = [n.strip() for n in args.detectors.split(",") if n.strip()]
        guards = tuple(ast.Guard(detector=n, action=args.action) for n in names)
        block = ast.GuardBlock(direction=args.direction, guards=guards)
        try:
            return compile_pipeline(block, args.direction, custom)
        except Exception as exc:  # an unknown detector name
            raise _UsageError(str(exc)) from exc
    if app is None:
        raise _UsageError("give --policies DIR --app APP, or --detectors NAMES")
    app_block = app.input if args.direction == "input" else app.output
    return compile_pipeline(app_block, args.direction, custom, app.shadow, app.name)


def _scan(pipeline: Any, context: Any, text: str, redactor: Any) -> dict[str, Any]:
    """One text's findings (with the action each gets) and its redacted form."""
    findings = [
        {
            "detector": h.finding.detector, "type": h.finding.type,
            "start": h.finding.start, "end": h.finding.end,
            "score": h.finding.score, "action": h.action, "shadow": h.rule.shadow,
            **({"detail": h.finding.detail} if h.finding.detail else {}),
        }
        for h in sorted(pipeline.hits(context, text), key=lambda h: h.finding.start)
    ]  # fmt: skip
    result = pipeline.run([(context, text)], redactor)
    blocked = None
    if result.blocked is not None:
        blocked = {"detector": result.blocked.rule.name, "message": result.blocked.message}
    return {"findings": findings, "redacted": result.texts[0], "blocked": blocked}
