"""`ghat explain`: the decision trace for one request, with the policy line behind each step.

The request is a JSON body in OpenAI chat or embeddings shape (ghat's own
fields in `ghat`: `metadata`, `documents`, `app`), read from a file or stdin,
and decoded by the server's own codec (adapters/codecs). The policy is
evaluated as the server would for a key of `--key-app`, with tracing on and a
fresh rate limiter, so the answer is what this request alone would get.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from dsl.catalog import ENDPOINTS

if TYPE_CHECKING:
    from engine.decision import Decision
    from engine.request import Endpoint, GatewayRequest


class BadRequest(ValueError):
    """The JSON is not a chat or embeddings request: reported as a one-line error."""


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("explain", help="print the decision trace for one request")
    p.add_argument("request", help="request JSON file (OpenAI chat or embeddings body), or - for stdin")
    p.add_argument("--policies", type=Path, nargs="+", required=True, help="policy files or directories")
    p.add_argument("--key-app", required=True, help="the app the request's key belongs to")
    p.add_argument("--env", help="the environment the server runs (default: every app)")
    p.add_argument("--endpoint", choices=ENDPOINTS,
                   help="default: responses or embeddings if the body has input (by its fields), else chat")
    p.add_argument("--json", action="store_true", help="print the decision and its trace as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cli.policyset import compiled
    from engine.ratelimit import MemoryRateLimiter
    from engine.request import EvalContext
    from engine.testing import evaluate_sync

    try:
        raw = sys.stdin.read() if args.request == "-" else Path(args.request).read_text(encoding="utf-8")
        request = request_from_json(json.loads(raw), args.endpoint)
    except (OSError, ValueError) as exc:  # json.JSONDecodeError and BadRequest are ValueErrors
        print(f"ghat explain: {exc}", file=sys.stderr)
        return 2
    policy = compiled("explain", args.policies, args.env)
    if isinstance(policy, int):
        return policy
    if args.key_app not in policy.apps:  # a typo would explain an `unauthorized` nobody asked about
        where = f" in env '{args.env}'" if args.env else ""
        print(f"ghat explain: no app '{args.key_app}'{where}; apps: {_some(sorted(policy.apps))}", file=sys.stderr)
        return 2
    ctx = EvalContext(key_app=args.key_app, key_id="explain", seed="explain", trace=True)
    decision = evaluate_sync(policy, request, ctx, MemoryRateLimiter())
    sources = {f.path: f.source for f in policy.source.files}
    if args.json:
        print(json.dumps(to_json(decision, sources), indent=2, ensure_ascii=False))
    else:
        print(render(decision, sources))
    return 0


def _some(names: list[str], shown: int = 8) -> str:
    return ", ".join(names[:shown]) + (f", … ({len(names)} apps)" if len(names) > shown else "") if names else "none"


def request_from_json(body: object, endpoint: str | None = None) -> GatewayRequest:
    """The request a body makes, through the server's own decoder (adapters/codecs), so explain cannot disagree."""
    from adapters.codecs import BadRequest as InvalidBody
    from adapters.codecs import decode

    if not isinstance(body, dict):
        raise BadRequest("the request must be a JSON object")
    try:
        return decode(body, {}, cast("Endpoint", endpoint) if endpoint in ENDPOINTS else None)
    except InvalidBody as exc:
        raise BadRequest(exc.message) from None


def to_json(decision: Decision, sources: dict[str, str]) -> dict[str, Any]:
    """The decision as plain data: what `--json` prints."""
    from engine.decision import Allow

    steps = [
        {"step": s.name, "result": s.result, "detail": s.detail,
         "at": str(s.span) if s.span else None,
         "source": _source(sources, s.span.file, s.span.line) if s.span else None}
        for s in decision.trace
    ]  # fmt: skip
    out: dict[str, Any] = {"decision": "allow" if decision.allowed else "deny", "steps": steps,
                           "policy_version": decision.policy_version}  # fmt: skip
    if isinstance(decision, Allow):
        out.update(
            app=decision.app, max_tokens=decision.request.max_tokens, timeout_s=decision.timeout_s,
            candidates=[{"model": c.model, "provider": c.provider, "via": list(c.via)} for c in decision.candidates],
            forwarded=[{"role": t.role, "text": t.text} for t in decision.request.texts],
            fired=list(decision.fired), shadow=decision.shadow,
        )  # fmt: skip
    else:
        out.update(code=decision.code, status=decision.status, message=decision.message,
                   step=decision.step, at=str(decision.span) if decision.span else None)  # fmt: skip
    return out


def render(decision: Decision, sources: dict[str, str]) -> str:
    """Text: the verdict, then each step with its policy line."""
    from engine.decision import Allow

    if isinstance(decision, Allow):
        head = f"allow: app {decision.app}, route {' → '.join(c.model for c in decision.candidates)}"
    else:
        head = f"deny: {decision.code} ({decision.status}) — {decision.message}"
    lines = [head, ""]
    width = max((len(s.name) for s in decision.trace), default=0)
    for i, s in enumerate(decision.trace, 1):
        lines.append(f"{i:>2}. {s.name:<{width}}  {s.result:<8} {s.detail}".rstrip())
        if s.span is not None:
            src = _source(sources, s.span.file, s.span.line)
            lines.append(f"      at {s.span}" + (f"   {src.strip()}" if src else ""))
    if not isinstance(decision, Allow):
        lines += ["", f"decided by step {decision.step}" + (f" at {decision.span}" if decision.span else "")]
    return "\n".join(lines)


def _source(sources: dict[str, str], file: str, line: int) -> str | None:
    text = sources.get(file)
    if text is None or line < 1:
        return None
    lines = text.splitlines()
    return lines[line - 1].rstrip() if line <= len(lines) else None
