"""A reference interpreter of the policy language, read straight off the AST and docs/language.md.

No compiled plans, no closures, no shared detectors, no bucket names: each
step of the guide's order is written as plainly as the language reference
states it. It is slow and that is fine; `tests/test_differential.py` checks
that the compiled decision graph agrees with it on generated policies and
request sequences, and the P1–P10 properties use it as their oracle.

What it takes from elsewhere, and why that is not the engine's logic:
- A built-in detector is an oracle for *what is in a text*: each rule gets a
  detector built for that rule alone (`engine.detectors.registry.build` with
  only that rule's options). Which findings a rule acts on, thresholds aside,
  and what the actions do is decided here. Custom detectors are plain RE2
  patterns, run here.
- Rate limits are its own model: a sliding log per (app, rule, key), the rule
  being the app itself or the position of a `when` block. Nothing is shared
  with the engine's bucket strings.

The placeholder scheme (`[TYPE_n]`, numbered per type by first appearance
within a request, one per distinct value, overlapping spans merged under the
first one's type) is part of what is specified.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import re2

from dsl import ast
from dsl.catalog import BUILTINS
from engine.detectors.base import Detector, Finding, ScanContext
from engine.detectors.registry import build
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
    timeout_s: float | None = None
    line: int | None = None  # a refusal by a guard or a limit: the line of the rule that refused
    retry_after: float | None = None


# ── rate limits: a sliding log per (app, rule, key) ──────────────────────


@dataclass
class RefLimiter:
    """Every admission time per bucket; a bucket is (app, "app" or the `when`'s position, key or None)."""

    log: dict[tuple[object, ...], list[float]] = field(default_factory=dict)

    def in_window(self, bucket: tuple[object, ...], period: float, now: float) -> list[float]:
        return [t for t in self.log.get(bucket, []) if now - period < t <= now]

    def admit(self, limits: list[tuple[tuple[object, ...], ast.RateLimit, ast.Span]], now: float
              ) -> tuple[int, float] | None:  # fmt: skip
        """All admit (and each records the request) or none does: the refusing limit with the longest wait."""
        refusal: tuple[int, float] | None = None
        for i, (bucket, rate, _span) in enumerate(limits):
            recent = self.in_window(bucket, rate.period_s, now)
            if len(recent) >= rate.limit:
                wait = max(min(recent) + rate.period_s - now, 0.001)
                if refusal is None or wait > refusal[1]:
                    refusal = (i, wait)
        if refusal is None:
            for bucket, _rate, _span in limits:
                self.log.setdefault(bucket, []).append(now)
        return refusal


# ── guards: every rule on its own ────────────────────────────────────────


@dataclass
class Tags:
    """Placeholders of one request, shared by its input and its output."""

    counters: dict[str, int] = field(default_factory=dict)
    tags: dict[tuple[str, str], str] = field(default_factory=dict)


_DETECTORS: dict[tuple[object, ...], Detector] = {}


def findings(rule: ast.Guard, detectors: dict[str, ast.CustomDetector], text: str, role: str,
             grounding: tuple[str, ...] = ()) -> list[Finding]:  # fmt: skip
    """The findings `rule` acts on in `text`, by the rule alone (its own options, its own selection)."""
    spec = BUILTINS.get(rule.detector)
    if spec is not None and spec.roles is not None and role not in spec.roles:
        return []
    custom = detectors.get(rule.detector)
    if custom is not None:
        options = re2.Options()
        options.case_sensitive = not custom.ignorecase
        return [Finding(custom.name, custom.type or custom.name, m.start(), m.end())
                for m in re2.compile(custom.pattern, options).finditer(text) if m.end() > m.start()]  # fmt: skip
    key = (rule.detector, rule.types, rule.categories, rule.topics, rule.threshold, rule.model)
    if key not in _DETECTORS:
        alone = ast.Guard(rule.detector, "block", rule.types, rule.categories, rule.topics, rule.threshold, rule.model)
        _DETECTORS[key] = build(alone, {})
    found = _DETECTORS[key].scan(text, ScanContext(role, grounding))
    assert spec is not None
    selected = set(rule.types) | set(rule.categories) or set(spec.default_types) or None
    return [f for f in found if (selected is None or f.type in selected)
            and (rule.detector != "topics" or f.detail in rule.topics)]  # fmt: skip


def guard(app: ast.App, block: ast.GuardBlock | None, detectors: dict[str, ast.CustomDetector],
          texts: list[tuple[str, str]], tags: Tags, grounding: tuple[str, ...] = ()
          ) -> tuple[ast.Guard | None, list[str]]:  # fmt: skip
    """A block over (role, text) pairs: the rule that refuses, else the forwarded texts.

    The refusal names the first rule in declared order that is enforced (not
    shadow, in an app not in shadow), at `block`, and finds something in any
    text. Otherwise every span some enforced `redact` rule finds is redacted;
    `detect`, `off` and shadow rules change nothing.
    """
    enforced = [g for g in (block.guards if block else ()) if not g.shadow and not app.shadow]
    found = {id(g): [findings(g, detectors, text, role, grounding) for role, text in texts] for g in enforced}
    for g in enforced:
        if g.action == "block" and any(found[id(g)]):
            return g, []
    out: list[str] = []
    for i, (_role, text) in enumerate(texts):
        spans = [(f.start, f.end, f.type) for g in enforced if g.action == "redact"
                 for f in found[id(g)][i] if f.redactable]  # fmt: skip
        out.append(redact(text, spans, tags))
    return None, out


def redact(text: str, spans: list[tuple[int, int, str]], tags: Tags) -> str:
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
        if (label, value) not in tags.tags:
            tags.counters[label] = tags.counters.get(label, 0) + 1
            tags.tags[(label, value)] = f"[{label}_{tags.counters[label]}]"
        pieces += [text[cursor:start], tags.tags[(label, value)]]
        cursor = end
    return "".join([*pieces, text[cursor:]])


# ── the decision ──────────────────────────────────────────────────────────


def deny(code: str, line: int | None = None, retry_after: float | None = None) -> RefDecision:
    return RefDecision(False, code, line=line, retry_after=retry_after)


def find_app(ps: ast.PolicySet, env: str | None, name: str | None) -> ast.App | None:
    return next((a for a in ps.apps if a.name == name and (env is None or a.env == env)), None)


def decide(
    ps: ast.PolicySet, env: str | None, req: GatewayRequest, ctx: EvalContext, limiter: RefLimiter | None,
    tags: Tags | None = None,
) -> RefDecision:  # fmt: skip
    """The decision for one request, in the guide's order; the first failing step decides."""
    tags = Tags() if tags is None else tags
    if ctx.key_app is None:
        return deny("unauthorized")
    app = find_app(ps, env, ctx.key_app)
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
    matched = [(i, w) for i, w in enumerate(app.whens) if holds(w.condition, req)]
    cap, timeout = app.settings.max_tokens, app.settings.timeout_s
    for _i, when in matched:  # scalar settings: a later matching block wins
        cap = when.settings.max_tokens or cap
        timeout = when.settings.timeout_s or timeout
    max_tokens = req.max_tokens
    if cap is not None and req.endpoint != "embeddings":
        if max_tokens is not None and max_tokens > cap.limit and cap.mode == "reject":
            return deny("guardrail_max_tokens_exceeded")
        if max_tokens is None or max_tokens > cap.limit:
            max_tokens = cap.limit
    if limiter is not None:
        limits = applicable_limits(app, matched, ctx.key_id)
        refusal = limiter.admit(limits, ctx.now or 0.0) if limits else None
        if refusal is not None:
            return deny("guardrail_rate_limit_exceeded", limits[refusal[0]][2].line, refusal[1])
    texts = [t.text for t in req.texts]
    if texts:
        blocked, texts = guard(app, app.input, {d.name: d for d in ps.detectors},
                               [(t.role, t.text) for t in req.texts], tags, req.grounding)  # fmt: skip
        if blocked is not None:
            return deny(f"guardrail_{blocked.detector.replace('-', '_')}_blocked", blocked.span.line)
    sticky = req.metadata.get("external_request_id") or ctx.seed
    candidates = [
        c for c in route(req.model, models, aliases, sticky, (), None, {p.name: p.timeout_s for p in ps.providers})
        if app.providers is None or c.provider in app.providers
    ]  # fmt: skip
    if not candidates:
        return deny("route_unavailable")
    return RefDecision(True, "", tuple(candidates), max_tokens, tuple(texts), timeout)


def applicable_limits(app: ast.App, matched: list[tuple[int, ast.When]], key_id: str
                      ) -> list[tuple[tuple[object, ...], ast.RateLimit, ast.Span]]:  # fmt: skip
    """The app's own limit unless a matching `when` raises it, then each matching `when`'s, in order."""
    out: list[tuple[tuple[object, ...], ast.RateLimit, ast.Span]] = []
    own = app.settings.rate_limit
    raised = any(w.settings.rate_limit is not None and w.settings.rate_limit.raises for _i, w in matched)
    if own is not None and not raised:
        span = app.settings.span_of("rate_limit") or app.span
        out.append(((app.name, "app", key_id if own.per == "key" else None), own, span))
    for i, when in matched:
        rate = when.settings.rate_limit
        if rate is not None:
            span = when.settings.span_of("rate_limit") or when.span
            out.append(((app.name, i, key_id if rate.per == "key" else None), rate, span))
    return out


def output(ps: ast.PolicySet, env: str | None, app_name: str, text: str, tags: Tags,
           grounding: tuple[str, ...] = ()) -> tuple[ast.Guard | None, str]:  # fmt: skip
    """The output block of an allowed request's app over one response text."""
    app = find_app(ps, env, app_name)
    assert app is not None
    blocked, out = guard(app, app.output, {d.name: d for d in ps.detectors}, [("output", text)], tags, grounding)
    return blocked, (out[0] if out else "")


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
