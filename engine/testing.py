"""Run a policy set's `test` blocks and measure which rules they exercise.

A test block is a request plus expectations. Running it builds the same
`GatewayRequest` the server would, evaluates it with the test's app as the
key's app and a fresh in-memory rate limiter (so tests never depend on one
another), and checks every expectation against the Decision. Failures carry
the expectation's span so `ghat test` can point at the line.

Rule coverage is derived from what evaluation recorded — the trace steps and
guard outcomes of each test's decision, and its route candidates — never from
reading the test text: a rule counts as exercised only when some test's
evaluation reached it and it applied.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, cast

from dsl import ast
from dsl.catalog import ENDPOINTS
from engine.compiler import CompiledPolicy
from engine.decision import Allow, Decision, Deny
from engine.evaluator import evaluate
from engine.ratelimit import MemoryRateLimiter, RateLimiter
from engine.request import Endpoint, EvalContext, GatewayRequest

TEXT_ROLES = ("system", "user", "assistant", "tool", "document", "input")


class RequestError(ValueError):
    """A test's request cannot be built (a non-numeric max_tokens, a bad endpoint)."""


def evaluate_sync(
    policy: CompiledPolicy, request: GatewayRequest, ctx: EvalContext, limiter: RateLimiter | None = None
) -> Decision:
    """Drive `evaluate` without an event loop: with an in-memory limiter it never suspends."""
    coro: Coroutine[Any, Any, Decision] = evaluate(policy, request, ctx, limiter)
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    raise RuntimeError("evaluation suspended: run it on an event loop instead")


def body_of_test(test: ast.TestRequest) -> tuple[Endpoint, dict[str, Any]]:
    """The body a test block describes: its endpoint and the JSON a client would send.

    The body is then decoded by the server's own codec (`adapters/codecs`,
    passed in as `build`), so a policy test and the gateway cannot disagree.
    """
    endpoint = test.get("endpoint") or "chat"
    if endpoint not in ENDPOINTS:
        raise RequestError(f"endpoint must be one of {', '.join(ENDPOINTS)}, not '{endpoint}'")
    body: dict[str, Any] = {"model": test.get("model") or ""}
    texts = [(name, value) for name, value in test.fields if name in TEXT_ROLES and name != "document"]
    if endpoint == "embeddings":
        body["input"] = [value for _name, value in texts]
    elif endpoint == "responses":  # OpenAI's Responses API: a tool's text is a function call's output
        body["input"] = [{"type": "function_call_output", "call_id": "call_test", "output": value} if name == "tool"
                         else {"role": "user" if name == "input" else name, "content": value}
                         for name, value in texts] or [{"role": "user", "content": ""}]  # fmt: skip
    else:
        body["messages"] = [{"role": "user" if name == "input" else name, "content": value} for name, value in texts]
        if not body["messages"]:
            body["messages"] = [{"role": "user", "content": ""}]
    raw = test.get("max_tokens")
    if raw is not None:
        try:
            body["max_output_tokens" if endpoint == "responses" else "max_tokens"] = int(raw)
        except ValueError:
            raise RequestError(f"max_tokens must be a whole number, not '{raw}'") from None
    ghat: dict[str, Any] = {}
    documents = [v for n, v in test.fields if n == "document"]
    if documents:
        ghat["documents"] = documents
    if test.metadata:
        ghat["metadata"] = dict(test.metadata)
    if test.get("app") is not None:
        ghat["app"] = test.get("app")
    if ghat:
        body["ghat"] = ghat
    return cast(Endpoint, endpoint), body


Build = Callable[[ast.TestRequest], GatewayRequest]


# ── results ──────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class Failure:
    message: str
    span: ast.Span


@dataclass(frozen=True, slots=True)
class CaseResult:
    case: ast.TestCase
    decision: Decision | None  # None when the request could not be built or the app is not served
    failures: tuple[Failure, ...] = ()
    skipped: str | None = None  # why the case did not run (its app is of another environment)

    @property
    def passed(self) -> bool:
        return not self.failures and self.skipped is None


def run_case(policy: CompiledPolicy, case: ast.TestCase, build: Build) -> CaseResult:
    """Evaluate one test block (its request built by `build`, the server's decoder) and check each expectation."""
    if case.app is not None and case.app not in policy.apps:
        return CaseResult(case, None, skipped=f"app '{case.app}' is not served in environment '{policy.env}'")
    try:
        request = build(case.request)
    except RequestError as exc:
        return CaseResult(case, None, (Failure(str(exc), case.request.span),))
    ctx = EvalContext(key_app=case.app, key_id="test", seed=case.name, now=0.0, trace=True)
    decision = evaluate_sync(policy, request, ctx, MemoryRateLimiter())
    failures = [Failure(msg, exp.span) for exp in case.expectations if (msg := check(exp, decision)) is not None]
    if not case.expectations:
        failures.append(Failure("the test has no `expect` line", case.span))
    return CaseResult(case, decision, tuple(failures))


def check(exp: ast.Expectation, decision: Decision) -> str | None:
    """None when the expectation holds, else a one-line reason."""
    got = _describe(decision)
    if exp.kind == "allow":
        return None if isinstance(decision, Allow) else f"expected allow, got {got}"
    if exp.kind == "deny":
        if not isinstance(decision, Deny):
            return f"expected deny{' ' + exp.value if exp.value else ''}, got {got}"
        if exp.value and decision.code != exp.value:
            return f"expected deny {exp.value}, got {got}"
        return None
    if exp.kind == "forwarded":
        needle = exp.value or ""
        if not isinstance(decision, Allow):
            # Nothing is forwarded on a deny: "not contains" holds, "contains" cannot.
            return None if exp.negated else f"expected forwarded text to contain {needle!r}, got {got}"
        present = any(needle in t.text for t in decision.request.texts)
        if exp.negated and present:
            return f"forwarded text contains {needle!r}"
        if not exp.negated and not present:
            return f"forwarded text does not contain {needle!r}"
        return None
    if not isinstance(decision, Allow):
        return f"expected {exp.kind} {exp.value}, got {got}"
    if exp.kind == "route":
        first = decision.candidates[0].model
        return None if first == exp.value else f"expected route {exp.value}, got {first}"
    if exp.kind == "max_tokens":
        mt = decision.request.max_tokens
        return None if str(mt) == exp.value else f"expected max_tokens {exp.value}, got {mt}"
    if exp.kind == "fired":
        names = set(decision.fired) | {o.detector for o in decision.outcomes}
        if exp.value in names:
            return None
        return f"expected {exp.value} to fire; fired: {', '.join(sorted(names)) or 'nothing'}"
    return f"unknown expectation '{exp.kind}'"


def _describe(decision: Decision) -> str:
    if isinstance(decision, Allow):
        return "allow"
    return f"deny {decision.code} at {decision.step}: {decision.message}"


# ── coverage ─────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule a test can exercise: an input guard, a `when`, a cap, a limit or an alias target."""

    app: str
    kind: str  # guard | when | max_tokens | rate_limit | route | split | fallback
    label: str
    span: ast.Span
    detector: str = ""  # guards: the detector, and the types the rule names (none: all)
    types: tuple[str, ...] = ()
    parent: str = ""  # alias targets: the alias, and the model or alias it names
    target: str = ""


@dataclass
class Report:
    results: list[CaseResult]
    rules: list[Rule]
    covered: set[Rule] = field(default_factory=set)

    @property
    def failed(self) -> list[CaseResult]:
        return [r for r in self.results if r.failures]

    @property
    def uncovered(self) -> list[Rule]:
        return [r for r in self.rules if r not in self.covered]


def run_tests(policy: CompiledPolicy, build: Build) -> Report:
    """Run every test block of the compiled set and compute rule coverage."""
    results = [run_case(policy, case, build) for case in policy.source.tests]
    rules = coverable_rules(policy)
    by_app: dict[str, list[Rule]] = {}
    for rule in rules:  # each decision is matched against its own app's rules only: linear in the set
        by_app.setdefault(rule.app, []).append(rule)
    covered: set[Rule] = set()
    for result in results:
        if result.decision is not None and result.case.app is not None:
            covered |= exercised(by_app.get(result.case.app, []), result.case.app, result.decision)
    return Report(results, rules, covered)


def coverable_rules(policy: CompiledPolicy) -> list[Rule]:
    """Every rule of the served apps that a request test could exercise.

    Output guards are left out: test blocks describe requests, never responses.
    """
    aliases = {a.name: a for a in policy.source.aliases}
    out: list[Rule] = []
    for app in policy.source.apps:
        if app.name not in policy.apps:
            continue
        for guard in app.input.guards if app.input else ():
            types = f" types {', '.join(guard.types)}" if guard.types else ""
            label = f"input {guard.detector}{types} {guard.action}"
            out.append(Rule(app.name, "guard", label, guard.span, guard.detector, guard.types))
        for name, what in (("max_tokens", "max_tokens"), ("rate_limit", "rate_limit")):
            span = app.settings.span_of(name)
            if span is not None:
                out.append(Rule(app.name, what, f"{what} (app default)", span))
        for when in app.whens:
            out.append(Rule(app.name, "when", f"when … {{ {', '.join(when.settings.set_fields())} }}", when.span))
        seen: set[str] = set()
        for entry in app.models:
            _alias_rules(app.name, entry.name, aliases, seen, out)
    return out


def _alias_rules(app: str, name: str, aliases: dict[str, ast.Alias], seen: set[str], out: list[Rule]) -> None:
    alias = aliases.get(name)
    if alias is None or name in seen:
        return
    seen.add(name)
    parts = [("route", alias.route)] if alias.route else [("split", m) for m in alias.split]
    parts += [("fallback", fb) for fb in alias.fallbacks]
    for kind, target in parts:
        if target is not None:
            label = f"alias {name}: {kind} {target.name}"
            out.append(Rule(app, kind, label, target.span, parent=name, target=target.name))
            _alias_rules(app, target.name, aliases, seen, out)


def exercised(rules: list[Rule], app: str, decision: Decision) -> set[Rule]:
    """The rules of `app` one decision shows were reached and applied."""
    steps: set[ast.Span] = {s.span for s in decision.trace if s.span is not None}
    cands = decision.candidates if isinstance(decision, Allow) else ()
    routed = {c.span for c in cands if c.span is not None}
    hops = {pair for c in cands for pair in zip(c.via, c.via[1:], strict=False)}
    hit: set[Rule] = set()
    for rule in rules:
        if rule.app != app:
            continue
        if rule.kind == "guard":
            if any(o.detector == rule.detector and (not rule.types or o.type in rule.types) for o in decision.outcomes):
                hit.add(rule)
        elif rule.kind in ("route", "split", "fallback"):
            if rule.span in routed or (rule.parent, rule.target) in hops:
                hit.add(rule)
        elif rule.span in steps:
            hit.add(rule)
    return hit
