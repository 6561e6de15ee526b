"""Evaluate one request against a compiled policy: the Decision.

The order is the guide's, and so is precedence: authenticate → resolve app →
model known → model allowed → token cap → rate limit → input guardrails →
route. The first failing step decides. Evaluation never raises on a request
the schema admits (P2); with the same policy, request, limiter state and seed
it returns the same decision (P1).
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

from dsl import ast
from engine import errors
from engine.compiler import CompiledApp, CompiledPolicy, Plan, SplitChoice
from engine.decision import Allow, Candidate, Decision, Deny, Step
from engine.detectors.base import ScanContext
from engine.guards import Outcome, Redactor
from engine.ratelimit import RateLimiter
from engine.request import EvalContext, GatewayRequest


class _Trace:
    """Collects steps only when asked to (explain, dry runs): the hot path skips it."""

    __slots__ = ("on", "steps")

    def __init__(self, on: bool) -> None:
        self.on = on
        self.steps: list[Step] = []

    def add(self, name: str, result: str, detail: str = "", span: ast.Span | None = None) -> None:
        if self.on:
            self.steps.append(Step(name, result, detail, span))


async def evaluate(
    policy: CompiledPolicy,
    request: GatewayRequest,
    ctx: EvalContext,
    limiter: RateLimiter | None = None,
) -> Decision:
    """The decision for one request (see the module docstring for the order)."""
    trace = _Trace(ctx.trace)

    def deny(code_status: tuple[str, int], step: str, message: str, **kw: object) -> Deny:
        trace.add(step, "deny", message, kw.get("span"))  # type: ignore[arg-type]
        return Deny(code_status[0], code_status[1], message, step=step,
                    trace=tuple(trace.steps), policy_version=policy.version, **kw)  # type: ignore[arg-type]  # fmt: skip

    # 1. authenticate
    if ctx.key_app is None:
        return deny(errors.UNAUTHORIZED, "authenticate", "Missing or invalid API key.")
    trace.add("authenticate", "ok")
    # 2. resolve app
    app = policy.apps.get(ctx.key_app)
    if app is None:
        return deny(errors.UNAUTHORIZED, "resolve_app",
                    f"The key's app is not served in environment '{policy.env}'.")  # fmt: skip
    if request.requested_app is not None and request.requested_app != app.name:
        return deny(errors.APP_MISMATCH, "resolve_app",
                    f"This key belongs to app '{app.name}', not '{request.requested_app}'.",
                    app=app.name, span=app.span)  # fmt: skip
    trace.add("resolve_app", "ok", app.name, app.span)
    # 3. model known (and for this endpoint)
    kind = policy.kinds.get(request.model)
    wanted: ast.ModelKind = "embedding" if request.endpoint == "embeddings" else "chat"
    if kind is None:
        return deny(errors.INVALID_MODEL, "model_known", f"Unknown model or alias '{request.model}'.",
                    param="model", app=app.name)  # fmt: skip
    if kind != wanted:
        return deny(errors.INVALID_MODEL, "model_known",
                    f"'{request.model}' is a {kind} model; it cannot serve /v1/{request.endpoint}.",
                    param="model", app=app.name)  # fmt: skip
    trace.add("model_known", "ok", f"{request.model} ({kind})")
    # 4. model allowed
    plan = app.plans.get(request.model)
    if plan is None:
        return deny(errors.MODEL_BLOCKED, "model_allowed",
                    f"Model '{request.model}' is not allowed for app '{app.name}'.",
                    param="model", app=app.name, span=app.span)  # fmt: skip
    trace.add("model_allowed", "ok", request.model, plan.span)
    fired: list[str] = []
    settings, when_span = _effective_settings(app, request, trace, fired)
    # 5. token cap
    cap = settings.max_tokens
    if cap is not None and request.endpoint == "chat":
        span = settings.span_of("max_tokens") or when_span
        asked = request.max_tokens
        if asked is not None and asked > cap.limit:
            if cap.mode == "reject":
                return deny(errors.MAX_TOKENS, "token_cap",
                            f"max_tokens {asked} exceeds this app's cap of {cap.limit}.",
                            param="max_tokens", app=app.name, span=span)  # fmt: skip
            request = replace(request, max_tokens=cap.limit)
            fired.append("max_tokens")
            trace.add("token_cap", "clamp", f"{asked} → {cap.limit}", span)
        elif asked is None:
            request = replace(request, max_tokens=cap.limit)
            trace.add("token_cap", "default", f"max_tokens set to {cap.limit}", span)
        else:
            trace.add("token_cap", "ok", f"{asked} ≤ {cap.limit}", span)
    # 6. rate limit
    rate = settings.rate_limit
    if rate is not None and limiter is not None:
        bucket = _bucket(policy, app, rate, ctx)
        retry_after = await limiter.acquire(bucket, rate.limit, rate.period_s, ctx.now)
        if retry_after is not None:
            return deny(errors.RATE_LIMITED, "rate_limit",
                        f"Rate limit of {rate.text} for app '{app.name}' exceeded.",
                        retry_after=retry_after, app=app.name,
                        span=settings.span_of("rate_limit") or when_span)  # fmt: skip
        trace.add("rate_limit", "ok", rate.text, settings.span_of("rate_limit") or when_span)
    # 7. input guardrails
    redactor = Redactor()
    outcomes: tuple[Outcome, ...] = ()
    if app.input.rules and request.texts:
        result = app.input.run([(ScanContext(t.role, request.grounding), t.text) for t in request.texts], redactor)
        outcomes = tuple(result.outcomes)
        fired.extend(o.detector for o in outcomes if o.action != "detect" or o.shadow)
        if result.blocked is not None:
            blocked = result.blocked
            return deny(errors.guardrail_blocked(blocked.rule.name), "input_guardrails",
                        blocked.message, app=app.name, span=blocked.rule.span,
                        outcomes=outcomes)  # fmt: skip
        changed = [t for t, new in zip(request.texts, result.texts, strict=True) if t.text != new]
        if changed:
            request = replace(request, texts=tuple(
                replace(t, text=new) if t.text != new else t
                for t, new in zip(request.texts, result.texts, strict=True)
            ))  # fmt: skip
        trace.add("input_guardrails", "ok", _summary(outcomes))
    # 8. route
    candidates = _candidates(plan, request, ctx)
    if not candidates:
        return deny(errors.ROUTE_UNAVAILABLE, "route",
                    f"No provider this app allows can serve '{request.model}'.",
                    app=app.name, span=plan.span, outcomes=outcomes)  # fmt: skip
    trace.add("route", "ok", " → ".join(c.model for c in candidates), candidates[0].span)
    return Allow(
        app=app.name,
        request=request,
        candidates=candidates,
        output=app.output,
        redactor=redactor,
        timeout_s=settings.timeout_s,
        outcomes=outcomes,
        fired=tuple(dict.fromkeys(fired)),
        shadow=app.shadow,
        trace=tuple(trace.steps),
        policy_version=policy.version,
    )


def _effective_settings(
    app: CompiledApp, request: GatewayRequest, trace: _Trace, fired: list[str]
) -> tuple[ast.Settings, ast.Span | None]:
    """The app's settings with every matching `when` applied; later blocks override earlier."""
    if not app.whens:
        return app.settings, None
    settings = app.settings
    last_span: ast.Span | None = None
    for rule in app.whens:
        if rule.predicate(request):
            settings = _override(settings, rule.settings)
            last_span = rule.span
            fired.append("when")
            trace.add("when", "override", ", ".join(rule.settings.set_fields()), rule.span)
    return settings, last_span


def _override(base: ast.Settings, top: ast.Settings) -> ast.Settings:
    spans = dict(base.spans)
    spans.update(dict(top.spans))
    return ast.Settings(
        max_tokens=top.max_tokens or base.max_tokens,
        rate_limit=top.rate_limit or base.rate_limit,
        timeout_s=top.timeout_s or base.timeout_s,
        spans=tuple(spans.items()),
    )


def _bucket(policy: CompiledPolicy, app: CompiledApp, rate: ast.RateLimit, ctx: EvalContext) -> str:
    who = f"key:{ctx.key_id}" if rate.per == "key" else "app"
    return f"{policy.env}:{app.name}:{who}:{rate.limit}/{rate.period_s:g}"


def _candidates(plan: Plan, request: GatewayRequest, ctx: EvalContext) -> tuple[Candidate, ...]:
    if plan.fixed is not None:
        return plan.fixed
    sticky = request.metadata.get("external_request_id") or ctx.seed
    out: list[Candidate] = []
    _expand(plan, sticky, out)
    return tuple(out)


def _expand(plan: Plan, sticky: str, out: list[Candidate]) -> None:
    for seg in plan.segments:
        if isinstance(seg, tuple):
            out.extend(seg)
        else:
            _expand(seg.members[pick(seg, sticky)], sticky, out)


def pick(choice: SplitChoice, sticky: str) -> int:
    """The split member for a sticky key: a uniform draw from a hash, so one id always lands alike (P10)."""
    digest = hashlib.blake2b(f"{choice.salt}\0{sticky}".encode(), digest_size=8).digest()
    point = int.from_bytes(digest, "big") / 2**64 * choice.total
    for i, edge in enumerate(choice.cumulative):
        if point < edge:
            return i
    return len(choice.cumulative) - 1


def _summary(outcomes: tuple[Outcome, ...]) -> str:
    return ", ".join(f"{o.detector}:{o.type}×{o.count} {o.action}{' (shadow)' if o.shadow else ''}" for o in outcomes)
