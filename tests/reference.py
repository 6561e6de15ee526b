"""A reference interpreter of the policy language, read straight off the AST.

No compiled plans, no closures, no merged pipelines: each step of the guide's
order is written as plainly as the language reference states it. It is slow
and that is fine; `tests/test_differential.py` checks that the compiled
decision graph agrees with it on every generated request.

Only custom pattern detectors are interpreted (the built-ins are their own
module's business); the placeholder scheme (`[TYPE_n]`, numbered per type by
first appearance within a request, one per distinct value, overlapping spans
merged under the first one's type) is part of what is specified.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import re2

from dsl import ast
from engine.request import EvalContext, GatewayRequest

RANK = ast.ACTION_RANK


@dataclass(frozen=True)
class RefCandidate:
    model: str
    provider: str
    timeout_s: float | None
    retries: int


@dataclass(frozen=True)
class RefDecision:
    allowed: bool
    code: str = ""
    candidates: tuple[RefCandidate, ...] = ()
    max_tokens: int | None = None
    forwarded: tuple[str, ...] = ()


class RefLimiter:
    """A sliding log per bucket, as the guide states P9: admit iff fewer than N in the last period."""

    def __init__(self) -> None:
        self.log: dict[tuple[object, ...], list[float]] = {}

    def admit(self, bucket: tuple[object, ...], limit: int, period: float, now: float) -> bool:
        recent = [t for t in self.log.get(bucket, []) if t > now - period]
        if len(recent) >= limit:
            self.log[bucket] = recent
            return False
        self.log[bucket] = [*recent, now]
        return True


def deny(code: str) -> RefDecision:
    return RefDecision(False, code)


def decide(
    ps: ast.PolicySet, env: str | None, req: GatewayRequest, ctx: EvalContext, limiter: RefLimiter | None
) -> RefDecision:
    """The decision for one request, in the guide's order; the first failing step decides."""
    if ctx.key_app is None:
        return deny("unauthorized")
    app = next((a for a in ps.apps if a.name == ctx.key_app and (env is None or a.env == env)), None)
    if app is None:
        return deny("unauthorized")
    if req.requested_app is not None and req.requested_app != app.name:
        return deny("app_mismatch")
    models = {m.name: m for m in ps.models}
    aliases = {a.name: a for a in ps.aliases}
    kinds = {m.kind for m in reachable(req.model, models, aliases)}
    if len(kinds) != 1:
        return deny("invalid_model")
    if kinds != {"embedding" if req.endpoint == "embeddings" else "chat"}:
        return deny("invalid_model")
    if req.model not in [t.name for t in app.models]:
        return deny("guardrail_model_blocked")
    cap, rate = app.settings.max_tokens, app.settings.rate_limit
    for when in app.whens:
        if holds(when.condition, req):
            cap = when.settings.max_tokens or cap
            rate = when.settings.rate_limit or rate
    max_tokens = req.max_tokens
    if cap is not None and req.endpoint == "chat":
        if max_tokens is not None and max_tokens > cap.limit and cap.mode == "reject":
            return deny("guardrail_max_tokens_exceeded")
        if max_tokens is None or max_tokens > cap.limit:
            max_tokens = cap.limit
    if rate is not None and limiter is not None:
        who = ctx.key_id if rate.per == "key" else None
        if not limiter.admit((app.name, who, rate.limit, rate.period_s), rate.limit, rate.period_s, ctx.now or 0.0):
            return deny("guardrail_rate_limit_exceeded")
    texts = [t.text for t in req.texts]
    if app.input is not None and app.input.guards and texts:
        blocked, texts = guard(app, {d.name: d for d in ps.detectors}, texts)
        if blocked is not None:
            return deny(f"guardrail_{blocked.replace('-', '_')}_blocked")
    sticky = req.metadata.get("external_request_id") or ctx.seed
    candidates = [
        c for c in route(req.model, models, aliases, sticky, (), None, {p.name: p.timeout_s for p in ps.providers})
        if app.providers is None or c.provider in app.providers
    ]  # fmt: skip
    if not candidates:
        return deny("route_unavailable")
    return RefDecision(True, "", tuple(candidates), max_tokens, tuple(texts))


def reachable(name: str, models: dict[str, ast.Model], aliases: dict[str, ast.Alias]) -> list[ast.Model]:
    if name in models:
        return [models[name]]
    alias = aliases.get(name)
    if alias is None:
        return []
    head = [alias.route] if alias.route else list(alias.split)
    return [m for t in [*head, *alias.fallbacks] if t is not None for m in reachable(t.name, models, aliases)]


def holds(expr: ast.Expr, req: GatewayRequest) -> bool:
    """A `when` condition; an absent metadata field reads as the empty string."""

    def value(name: str) -> str:
        return {"model": req.model, "endpoint": req.endpoint}.get(name, req.metadata.get(name, ""))

    if isinstance(expr, ast.Compare):
        return (value(expr.field) == expr.value) == (expr.op == "==")
    if isinstance(expr, ast.Member):
        return (value(expr.field) in expr.values) != expr.negated
    if isinstance(expr, ast.Not):
        return not holds(expr.operand, req)
    if isinstance(expr, ast.And):
        return all(holds(e, req) for e in expr.operands)
    return any(holds(e, req) for e in expr.operands)


def route(
    name: str,
    models: dict[str, ast.Model],
    aliases: dict[str, ast.Alias],
    sticky: str,
    path: tuple[str, ...],
    target: ast.Target | None,
    providers: dict[str, float | None],
) -> list[RefCandidate]:
    """Candidates in the order the router tries them: primary (or the split's pick), then fallbacks."""
    model = models.get(name)
    if model is not None:
        timeout = target.timeout_s if target is not None and target.timeout_s else providers.get(model.provider)
        retries = target.retries if target is not None and target.retries is not None else 0
        return [RefCandidate(model.name, model.provider, timeout, retries)]
    alias = aliases[name]
    here = (*path, name)
    out: list[RefCandidate] = []
    if alias.route is not None:
        out += route(alias.route.name, models, aliases, sticky, here, alias.route, providers)
    elif alias.split:
        weights = [m.weight or 0.0 for m in alias.split]
        digest = hashlib.blake2b(f"{'/'.join(here)}\0{sticky}".encode(), digest_size=8).digest()
        point = int.from_bytes(digest, "big") / 2**64 * sum(weights)
        chosen, edge = alias.split[-1], 0.0
        for member, w in zip(alias.split, weights, strict=True):
            edge += w
            if point < edge:
                chosen = member
                break
        out += route(chosen.name, models, aliases, sticky, here, chosen, providers)
    for fb in alias.fallbacks:
        out += route(fb.name, models, aliases, sticky, here, fb, providers)
    return out


def guard(app: ast.App, detectors: dict[str, ast.CustomDetector], texts: list[str]) -> tuple[str | None, list[str]]:
    """Input guards: the strictest enforced action per detector; shadow rules change nothing."""
    assert app.input is not None
    enforced: dict[str, str] = {}
    for g in app.input.guards:
        if not g.shadow and not app.shadow:
            enforced[g.detector] = max(enforced.get(g.detector, "off"), g.action, key=RANK.__getitem__)
    order = list(dict.fromkeys(g.detector for g in app.input.guards))
    counters: dict[str, int] = {}
    tags: dict[tuple[str, str], str] = {}
    out: list[str] = []
    for text in texts:
        spans: list[tuple[int, int, str]] = []
        for name in order:
            det = detectors[name]
            found = [(m.start(), m.end()) for m in re2.finditer(det.pattern, text) if m.end() > m.start()]
            action = enforced.get(name, "off")
            if found and action == "block":
                return name, []
            if action == "redact":
                spans += [(s, e, det.type or det.name) for s, e in found]
        out.append(redact(text, spans, counters, tags))
    return None, out


def redact(
    text: str, spans: list[tuple[int, int, str]], counters: dict[str, int], tags: dict[tuple[str, str], str]
) -> str:
    """Replace each group of overlapping spans with the placeholder of its first span's type."""
    groups: list[tuple[int, int, str]] = []
    for start, end, type_ in sorted(spans, key=lambda s: (s[0], -s[1])):
        if groups and start < groups[-1][1]:
            groups[-1] = (groups[-1][0], max(groups[-1][1], end), groups[-1][2])
        else:
            groups.append((start, end, type_))
    pieces, cursor = [], 0
    for start, end, type_ in groups:
        value, label = text[start:end], type_.upper()
        if (label, value) not in tags:
            counters[label] = counters.get(label, 0) + 1
            tags[(label, value)] = f"[{label}_{counters[label]}]"
        pieces += [text[cursor:start], tags[(label, value)]]
        cursor = end
    return "".join([*pieces, text[cursor:]])
