"""Replay: what a changed policy would have decided for traffic the gateway already served.

A platform team changing a policy wants to know, before deploying, which real
requests it would treat differently. The request log holds what policy sees of
a request — app, endpoint, requested model, metadata, max_tokens, stream, and
the request id that picks a split member — so each record is rebuilt as a
`GatewayRequest` and evaluated against the new policy; its recorded outcome is
the old decision. What the log does not hold is not guessed:

- Prompt texts are logged only where an app enables `capture` outside prod.
  Without them input guardrails cannot run again: a record the old policy
  refused by a guardrail is *not replayable*, and any other record is
  replayed with the guardrail step marked as not re-run.
- Rate limits depend on the traffic around a request: the step is skipped, and
  a record refused by a rate limit is not replayable.
- Keys and app names sent in headers are not logged: `unauthorized`,
  `app_mismatch` and malformed requests are not replayable.

The comparison is of decisions, not of upstream luck: an allowed request that
then failed upstream counts as allowed, routed to its first attempt's model.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from engine.compiler import CompiledPolicy
from engine.decision import Allow
from engine.records import LogRecord
from engine.request import EvalContext, GatewayRequest, TextField
from engine.testing import evaluate_sync

# Codes whose decision depended on something replay cannot rebuild.
_NOT_REPLAYABLE = {
    "unauthorized": "the key is not logged",
    "app_mismatch": "the app named in the request is not logged",
    "invalid_request": "the request was malformed",
    "not_found": "no such route",
    "guardrail_rate_limit_exceeded": "rate limits depend on the traffic around the request",
}
# Codes an upstream produces after policy allowed the request.
_UPSTREAM = {"request_timeout", "internal_error"}


@dataclass(frozen=True, slots=True)
class Outcome:
    """A decision reduced to what replay compares: allow with its first route, or deny with its code."""

    allowed: bool
    detail: str  # the route's first model, or the deny code

    def __str__(self) -> str:
        return f"allow → {self.detail}" if self.allowed else f"deny {self.detail}"


@dataclass(frozen=True, slots=True)
class Replayed:
    request_id: str
    app: str
    before: Outcome
    after: Outcome
    guardrails_rerun: bool  # False when the texts were not logged

    @property
    def changed(self) -> bool:
        return self.before != self.after


@dataclass(slots=True)
class ReplayReport:
    replayed: list[Replayed] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)  # reason → count

    @property
    def changed(self) -> list[Replayed]:
        return [r for r in self.replayed if r.changed]

    def changes(self) -> dict[tuple[str, str, str], list[str]]:
        """(app, before, after) → request ids, for a summary a reviewer can read."""
        out: dict[tuple[str, str, str], list[str]] = {}
        for r in self.changed:
            out.setdefault((r.app, str(r.before), str(r.after)), []).append(r.request_id)
        return out


def recorded_outcome(r: LogRecord) -> Outcome | str:
    """The old decision as the log recorded it, or why it cannot be compared."""
    code = r.error_code
    if r.endpoint not in ("chat", "embeddings"):
        return f"endpoint {r.endpoint} is not decided by policy"
    if code in _NOT_REPLAYABLE:
        return _NOT_REPLAYABLE[code]
    if r.app is None or r.requested_model is None:
        return "no app or model recorded"
    if code is None or code in _UPSTREAM or code.startswith("upstream_") or (code == "route_unavailable"
                                                                              and r.attempts):  # fmt: skip
        if not r.attempts:
            return "allowed, but no upstream attempt was recorded to compare the route with"
        return Outcome(True, r.attempts[0].model)
    if code.startswith("guardrail_") and code.endswith("_blocked") and code != "guardrail_model_blocked" \
            and not (r.captured or {}).get("prompt"):  # fmt: skip
        return "refused by a guardrail and its texts were not captured"
    return Outcome(False, code)


Decoder = Callable[[dict[str, Any], str], GatewayRequest]


def _texts(r: LogRecord, decode: Decoder | None = None) -> tuple[TextField, ...] | None:
    """The captured input texts (`capture prompts`), or None when they were not logged.

    A record that kept the whole body is decoded by the server's own codec
    (`decode`, from adapters/codecs), so replay sees every slot the server saw.
    """
    captured = r.captured or {}
    if decode is not None and captured.get("request"):
        try:
            kept = json.loads(captured["request"])
            return decode(kept["body"], str(kept["endpoint"])).texts
        except (ValueError, KeyError, TypeError):
            return None
    raw = captured.get("prompt")
    if not raw:
        return None
    try:
        items = json.loads(raw)
        return tuple(TextField(str(i["role"]), str(i["text"])) for i in items)
    except (ValueError, KeyError, TypeError):
        return None


def rebuild(r: LogRecord, texts: tuple[TextField, ...] | None = None) -> GatewayRequest:
    """The request as policy saw it, from its log record (and its captured texts, if any)."""
    return GatewayRequest(
        endpoint="embeddings" if r.endpoint == "embeddings" else "chat", model=r.requested_model or "",
        texts=texts or (), max_tokens=r.max_tokens, metadata=dict(r.metadata), stream=r.stream,
    )  # fmt: skip


def decide(policy: CompiledPolicy, r: LogRecord, texts: tuple[TextField, ...] | None = None) -> Outcome:
    """The new policy's decision for a logged request (rate limits not applied: see the module docstring)."""
    ctx = EvalContext(key_app=r.app, key_id=r.key_id or "", seed=r.request_id)
    d = evaluate_sync(policy, rebuild(r, texts), ctx, None)
    if isinstance(d, Allow):
        return Outcome(True, d.candidates[0].model)
    return Outcome(False, d.code)


def replay(policies: dict[str, CompiledPolicy], records: Iterable[LogRecord],
           decode: Decoder | None = None) -> ReplayReport:
    """Each record against the policy compiled for its environment."""
    report = ReplayReport()
    for r in records:
        before = recorded_outcome(r)
        policy = policies.get(r.env)
        if isinstance(before, str) or policy is None:
            reason = before if isinstance(before, str) else f"environment {r.env} not replayed"
            report.skipped[reason] = report.skipped.get(reason, 0) + 1
            continue
        texts = _texts(r, decode)
        report.replayed.append(Replayed(r.request_id, r.app or "", before, decide(policy, r, texts), texts is not None))
    return report
