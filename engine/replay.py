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

What is compared: the decision (allow, or the deny code), the route, the cap,
the action on every input finding, and the forwarded text. Against the log,
only what the log holds can be compared: the decision, the first route, and —
for records whose texts were captured — the action on each finding (a rule
going from `redact` to `detect` changes no decision, but changes that). With a
baseline policy set (`ghat replay --baseline`), both sets decide every record
and every aspect is compared, caps and fallbacks included.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, cast

from dsl.catalog import ENDPOINTS
from engine.compiler import CompiledPolicy
from engine.decision import Allow, Decision
from engine.records import LogRecord
from engine.request import Endpoint, EvalContext, GatewayRequest, TextField
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


ASPECTS = ("decision", "route", "cap", "actions", "forwarded")


@dataclass(frozen=True, slots=True)
class Outcome:
    """A decision reduced to what replay compares.

    `detail` is the route's first model, or the deny code. `aspects` are the other things
    compared (route, cap, actions, forwarded), each rendered as text; an aspect its source
    cannot know (a log holds no cap) is absent, and only aspects both sides know are compared.
    """

    allowed: bool
    detail: str
    aspects: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        return f"allow → {self.detail}" if self.allowed else f"deny {self.detail}"


@dataclass(frozen=True, slots=True)
class Difference:
    aspect: str  # one of ASPECTS
    before: str
    after: str

    def __str__(self) -> str:
        if self.aspect == "decision":
            return f"{self.before}  ⇒  {self.after}"
        return f"{self.aspect}: {self.before}  ⇒  {self.after}"


def differences(before: Outcome, after: Outcome) -> tuple[Difference, ...]:
    """Every aspect that changed, the decision first; aspects one side does not know are skipped."""
    out: list[Difference] = []
    if (before.allowed, before.detail) != (after.allowed, after.detail):
        out.append(Difference("decision", str(before), str(after)))
    theirs = dict(after.aspects)
    for aspect, value in before.aspects:
        other = theirs.get(aspect)
        if other is not None and other != value:
            out.append(Difference(aspect, value, other))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Replayed:
    request_id: str
    app: str
    before: Outcome
    after: Outcome
    guardrails_rerun: bool  # False when the texts were not logged

    @property
    def differences(self) -> tuple[Difference, ...]:
        return differences(self.before, self.after)

    @property
    def changed(self) -> bool:
        return bool(self.differences)


@dataclass(slots=True)
class ReplayReport:
    replayed: list[Replayed] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)  # reason → count

    @property
    def changed(self) -> list[Replayed]:
        return [r for r in self.replayed if r.changed]

    def changes(self) -> dict[tuple[str, tuple[Difference, ...]], list[str]]:
        """(app, what changed) → request ids, for a summary a reviewer can read."""
        out: dict[tuple[str, tuple[Difference, ...]], list[str]] = {}
        for r in self.changed:
            out.setdefault((r.app, r.differences), []).append(r.request_id)
        return out


def recorded_outcome(r: LogRecord) -> Outcome | str:
    """The old decision as the log recorded it, or why it cannot be compared."""
    code = r.error_code
    if r.endpoint not in ENDPOINTS:
        return f"endpoint {r.endpoint} is not decided by policy"
    if code in _NOT_REPLAYABLE:
        return _NOT_REPLAYABLE[code]
    if r.app is None or r.requested_model is None:
        return "no app or model recorded"
    if code is None or code in _UPSTREAM or code.startswith("upstream_") or (code == "route_unavailable"
                                                                              and r.attempts):  # fmt: skip
        if not r.attempts:
            return "allowed, but no upstream attempt was recorded to compare the route with"
        return Outcome(True, r.attempts[0].model, _recorded_actions(r))
    if code.startswith("guardrail_") and code.endswith("_blocked") and code != "guardrail_model_blocked" \
            and not (r.captured or {}).get("prompt"):  # fmt: skip
        return "refused by a guardrail and its texts were not captured"
    return Outcome(False, code, _recorded_actions(r))


def _recorded_actions(r: LogRecord) -> tuple[tuple[str, str], ...]:
    """The input findings the log holds, as the `actions` aspect (compared only where texts were re-run)."""
    found = [(g.detector, g.type, g.count, g.action, g.shadow) for g in r.guardrails if g.direction == "input"]
    return (("actions", _render_actions(found)),)


def _render_actions(found: Iterable[tuple[str, str, int, str, bool]]) -> str:
    shown = sorted(f"{d}/{t}×{n} {a}{' (shadow)' if s else ''}" for d, t, n, a, s in found)
    return ", ".join(shown) or "none"


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
        endpoint=cast(Endpoint, r.endpoint) if r.endpoint in ENDPOINTS else "chat", model=r.requested_model or "",
        texts=texts or (), max_tokens=r.max_tokens, metadata=dict(r.metadata), stream=r.stream,
    )  # fmt: skip


def decide(policy: CompiledPolicy, r: LogRecord, texts: tuple[TextField, ...] | None = None) -> Outcome:
    """The policy's decision for a logged request (rate limits not applied: see the module docstring).

    Actions and the forwarded text are aspects only when the texts were captured: without them
    the guards scanned nothing, and "no finding" would be a guess.
    """
    ctx = EvalContext(key_app=r.app, key_id=r.key_id or "", seed=r.request_id)
    return outcome(evaluate_sync(policy, rebuild(r, texts), ctx, None), texts is not None)


def outcome(d: Decision, scanned: bool) -> Outcome:
    """A Decision as replay compares it."""
    aspects: list[tuple[str, str]] = []
    if scanned:
        aspects.append(("actions", _render_actions((o.detector, o.type, o.count, o.action, o.shadow)
                                                   for o in d.outcomes)))  # fmt: skip
    if not isinstance(d, Allow):
        return Outcome(False, d.code, tuple(aspects))
    aspects.append(("route", " → ".join(c.model for c in d.candidates)))
    aspects.append(("cap", "none" if d.request.max_tokens is None else str(d.request.max_tokens)))
    if scanned:
        digest = hashlib.sha256("\0".join(t.text for t in d.request.texts).encode()).hexdigest()[:12]
        aspects.append(("forwarded", f"text {digest}"))
    return Outcome(True, d.candidates[0].model, tuple(aspects))


def replay(
    policies: dict[str, CompiledPolicy],
    records: Iterable[LogRecord],
    decode: Decoder | None = None,
    baseline: dict[str, CompiledPolicy] | None = None,
) -> ReplayReport:
    """Each record against the policy compiled for its environment.

    Without a baseline the old decision is the one the log recorded; with one, it is the
    baseline set's decision for the same rebuilt request, so every aspect can be compared.
    """
    report = ReplayReport()
    for r in records:
        before = recorded_outcome(r)
        policy = policies.get(r.env)
        old = baseline.get(r.env) if baseline is not None else None
        if isinstance(before, str) or policy is None or (baseline is not None and old is None):
            reason = before if isinstance(before, str) else f"environment {r.env} not replayed"
            report.skipped[reason] = report.skipped.get(reason, 0) + 1
            continue
        texts = _texts(r, decode)
        if old is not None:
            before = decide(old, r, texts)
        report.replayed.append(Replayed(r.request_id, r.app or "", before, decide(policy, r, texts), texts is not None))
    return report
