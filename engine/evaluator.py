"""Evaluate one request against a compiled policy: the Decision.

The order is the guide's, and so is precedence: authenticate → resolve app →
model known → model allowed → token cap → rate limit → input guardrails →
route. The first failing step decides. Evaluation never raises on a request
the schema admits (P2); with the same policy, request, limiter state and seed
it returns the same decision (P1).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import fields, replace
from typing import TypeVar

from dsl import ast
from engine import errors
from engine.compiler import CompiledApp, CompiledPolicy, Effective, Plan, SplitChoice
from engine.decision import Allow, Candidate, Decision, Deny, Step
from engine.detectors.base import ScanContext
from engine.guards import Outcome, Redactor
from engine.offload import run_guards
from engine.ratelimit import RateLimiter
from engine.request import EvalContext, GatewayRequest

T = TypeVar("T")


def _builder(cls: type[T], expected: tuple[str, ...]) -> Callable[..., T]:
    """A positional constructor for a frozen, slotted dataclass that skips its __init__.

    A frozen dataclass's __init__ goes through object.__setattr__ once per
    field (an Allow costs ~1.6 µs that way); setting the slots through their
    descriptors builds the same object for a third of that. If the class ever
    stops being slotted, this falls back to the ordinary constructor.
    """
    names = tuple(f.name for f in fields(cls))  # type: ignore[arg-type]
    setters = [getattr(cls, n, None) for n in names]
    if names != expected or not all(type(s).__name__ == "member_descriptor" for s in setters):
        return lambda *values: cls(**dict(zip(expected, values, strict=True)))
    sets = tuple(s.__set__ for s in setters)  # type: ignore[union-attr]
    new = object.__new__

    def build(*values: object) -> T:
        obj = new(cls)
        for put, value in zip(sets, values, strict=True):
            put(obj, value)
        return obj

    return build


_new_allow = _builder(Allow, ("app", "request", "candidates", "output", "redactor", "timeout_s", "outcomes",
                              "fired", "shadow", "trace", "policy_version"))  # fmt: skip
_new_request = _builder(GatewayRequest, ("endpoint", "model", "texts", "max_tokens", "metadata", "requested_app",
                                         "stream", "grounding"))  # fmt: skip


def _capped(r: GatewayRequest, max_tokens: int) -> GatewayRequest:
    """The request with max_tokens set (cheaper than dataclasses.replace on the hot path)."""
    return _new_request(r.endpoint, r.model, r.texts, max_tokens, r.metadata, r.requested_app, r.stream, r.grounding)


def _deny(
    policy: CompiledPolicy, steps: list[Step] | None, code_status: tuple[str, int], step: str, message: str,
    param: str | None = None, retry_after: float | None = None, app: str | None = None,
    span: ast.Span | None = None, outcomes: tuple[Outcome, ...] = (),
) -> Deny:  # fmt: skip
    trace: tuple[Step, ...] = ()
    if steps is not None:
        steps.append(Step(step, "deny", message, span))
        trace = tuple(steps)
    return Deny(code_status[0], code_status[1], message, param, retry_after, app, step, span, outcomes, trace,
                policy.version)  # fmt: skip


async def evaluate(
    policy: CompiledPolicy,
    request: GatewayRequest,
    ctx: EvalContext,
    limiter: RateLimiter | None = None,
) -> Decision:
    """The decision for one request (see the module docstring for the order).

    With `ctx.trace` off nothing is recorded: `steps` is None and every trace
    line is behind one `is not None` test.
    """
    steps: list[Step] | None = [] if ctx.trace else None
    # 1. authenticate
    if ctx.key_app is None:
        return _deny(policy, steps, errors.UNAUTHORIZED, "authenticate", "Missing or invalid API key.")
    if steps is not None:
        steps.append(Step("authenticate", "ok"))
    # 2. resolve app
    app = policy.apps.get(ctx.key_app)
    if app is None:
        return _deny(policy, steps, errors.UNAUTHORIZED, "resolve_app",
                     f"The key's app is not served in environment '{policy.env}'.")  # fmt: skip
    if request.requested_app is not None and request.requested_app != app.name:
        return _deny(policy, steps, errors.APP_MISMATCH, "resolve_app",
                     f"This key belongs to app '{app.name}', not '{request.requested_app}'.",
                     app=app.name, span=app.span)  # fmt: skip
    if steps is not None:
        steps.append(Step("resolve_app", "ok", app.name, app.span))
    # 3. model known (and for this endpoint)
    model, endpoint = request.model, request.endpoint
    kind = policy.kinds.get(model)
    if kind is None:
        return _deny(policy, steps, errors.INVALID_MODEL, "model_known", f"Unknown model or alias '{model}'.",
                     param="model", app=app.name)  # fmt: skip
    if kind != ("embedding" if endpoint == "embeddings" else "chat"):
        return _deny(policy, steps, errors.INVALID_MODEL, "model_known",
                     f"'{model}' is a {kind} model; it cannot serve /v1/{endpoint}.",
                     param="model", app=app.name)  # fmt: skip
    if steps is not None:
        steps.append(Step("model_known", "ok", f"{model} ({kind})"))
    # 4. model allowed
    plan = app.plans.get(model)
    if plan is None:
        return _deny(policy, steps, errors.MODEL_BLOCKED, "model_allowed",
                     f"Model '{model}' is not allowed for app '{app.name}'.",
                     param="model", app=app.name, span=app.span)  # fmt: skip
    if steps is not None:
        steps.append(Step("model_allowed", "ok", model, plan.span))
    fired: list[str] = []
    eff = app.base if not app.whens else _effective(app, request, steps, fired)
    # 5. token cap
    cap = eff.cap
    if cap is not None and endpoint != "embeddings":  # chat and responses generate; embeddings do not
        asked = request.max_tokens
        if asked is None:
            request = _capped(request, cap.limit)
            if steps is not None:
                steps.append(Step("token_cap", "default", f"max_tokens set to {cap.limit}", eff.cap_span))
        elif asked > cap.limit:
            if cap.mode == "reject":
                return _deny(policy, steps, errors.MAX_TOKENS, "token_cap",
                             f"max_tokens {asked} exceeds this app's cap of {cap.limit}.",
                             param="max_tokens", app=app.name, span=eff.cap_span)  # fmt: skip
            request = _capped(request, cap.limit)
            fired.append("max_tokens")
            if steps is not None:
                steps.append(Step("token_cap", "clamp", f"{asked} → {cap.limit}", eff.cap_span))
        elif steps is not None:
            steps.append(Step("token_cap", "ok", f"{asked} ≤ {cap.limit}", eff.cap_span))
    # 6. rate limit: every limit that applies must admit (nothing is taken from any when one refuses)
    limits = eff.limits
    if limits and limiter is not None:
        buckets = eff.buckets
        if buckets is None:  # a per-key limit: its bucket ends with the key id
            buckets = tuple((lim.bucket + ctx.key_id if lim.per_key else lim.bucket, lim.rate.limit,
                             lim.rate.period_s) for lim in limits)  # fmt: skip
        refusal = await limiter.acquire_all(buckets, ctx.now)
        if refusal is not None:
            refused = limits[refusal[0]]
            return _deny(policy, steps, errors.RATE_LIMITED, "rate_limit",
                         f"Rate limit of {refused.rate.text} for app '{app.name}' exceeded.",
                         retry_after=refusal[1], app=app.name, span=refused.span)  # fmt: skip
        if steps is not None:
            steps.extend(Step("rate_limit", "ok", lim.rate.text, lim.span) for lim in limits)
    # 7. input guardrails (never on more text than the app lets them scan)
    if app.max_scan is not None:
        size = sum(len(t.text) for t in request.texts)
        if size > app.max_scan:
            return _deny(policy, steps, errors.BODY_TOO_LARGE, "input_guardrails",
                         f"The request's text is {size} characters; app '{app.name}' scans at most {app.max_scan}.",
                         app=app.name, span=app.span)  # fmt: skip
    redactor = Redactor()
    outcomes: tuple[Outcome, ...] = ()
    if app.input.rules and request.texts:
        texts = [(ScanContext(t.role, request.grounding), t.text) for t in request.texts]
        result = await run_guards(app.input, texts, redactor)  # off the event loop when large (P15)
        outcomes = tuple(result.outcomes)
        fired.extend(o.detector for o in outcomes if o.action != "detect" or o.shadow)
        if result.blocked is not None:
            blocked = result.blocked
            return _deny(policy, steps, errors.guardrail_blocked(blocked.rule.name), "input_guardrails",
                         blocked.message, app=app.name, span=blocked.rule.span, outcomes=outcomes)  # fmt: skip
        if any(t.text != new for t, new in zip(request.texts, result.texts, strict=True)):
            request = replace(request, texts=tuple(
                replace(t, text=new) if t.text != new else t
                for t, new in zip(request.texts, result.texts, strict=True)
            ))  # fmt: skip
        if steps is not None:
            steps.append(Step("input_guardrails", "ok", _summary(outcomes)))
    # 8. route
    candidates = plan.fixed if plan.fixed is not None else _candidates(plan, request, ctx)
    if not candidates:
        return _deny(policy, steps, errors.ROUTE_UNAVAILABLE, "route",
                     f"No provider this app allows can serve '{model}'.",
                     app=app.name, span=plan.span, outcomes=outcomes)  # fmt: skip
    trace: tuple[Step, ...] = ()
    if steps is not None:
        steps.append(Step("route", "ok", " → ".join(c.model for c in candidates), candidates[0].span))
        trace = tuple(steps)
    return _new_allow(
        app.name, request, candidates, app.output, redactor, eff.timeout_s, outcomes,
        tuple(dict.fromkeys(fired)) if fired else (), app.shadow, trace, policy.version,
    )  # fmt: skip


def _effective(app: CompiledApp, request: GatewayRequest, steps: list[Step] | None, fired: list[str]) -> Effective:
    """The app's settings with every matching `when` applied (later blocks override earlier).

    Which `when`s match is the only per-request part; the merged settings for
    each combination are built once and cached on the app.
    """
    matched = tuple(i for i, rule in enumerate(app.whens) if rule.predicate(request))
    if not matched:
        return app.base
    fired.append("when")
    if steps is not None:
        for i in matched:
            rule = app.whens[i]
            steps.append(Step("when", "override", ", ".join(rule.settings.set_fields()), rule.span))
    return app.effective(matched)


def _candidates(plan: Plan, request: GatewayRequest, ctx: EvalContext) -> tuple[Candidate, ...]:
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
