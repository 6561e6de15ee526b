"""The engine's semantic properties (GUIDE §4) over generated policies and requests.

P1 determinism, P2 totality, P3 monotone strictness, P4 detect is
observational (at the decision level), P7 closure at run time (including for
policies the checker would reject), P9 every rate limit's sliding window over
request sequences, P10 split shares and stickiness. Policies come from the
one generator (tests/strategies.py): built-in and custom detectors, repeated
rules, output guards, `when` blocks that tighten or raise limits. Which limits
apply to a request is read off the AST by the reference interpreter
(tests/reference.py), not by the engine under test.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import replace
from types import MappingProxyType

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from dsl import ast
from engine.compiler import STAGES, CompiledPolicy, _State, compile_policy
from engine.decision import Allow, Decision, Deny
from engine.detectors.base import ScanContext
from engine.guards import GuardPipeline
from engine.ratelimit import MemoryRateLimiter
from engine.request import EvalContext, GatewayRequest, TextField
from engine.testing import evaluate_sync
from tests import reference
from tests.strategies import contexts, policy_sets, requests

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
sets = policy_sets(with_tests=False)


def run(policy: CompiledPolicy, req: GatewayRequest, ctx: EvalContext) -> Decision:
    return evaluate_sync(policy, req, ctx, MemoryRateLimiter())


def essence(d: Decision) -> tuple[object, ...]:
    """Everything a decision tells the caller and the router, without object identities."""
    if isinstance(d, Allow):
        return ("allow", d.candidates, d.request, d.timeout_s, d.outcomes, d.fired, d.trace, d.shadow)
    return ("deny", d.code, d.status, d.message, d.retry_after, d.step, d.outcomes, d.trace)


def env_of(data: st.DataObject, ps: ast.PolicySet) -> str:
    return data.draw(st.sampled_from(sorted({a.env or "" for a in ps.apps})), label="env")


@SETTINGS
@given(st.data())
def test_p1_same_inputs_give_the_same_decision(data: st.DataObject) -> None:
    ps = data.draw(sets)
    env = env_of(data, ps)
    first, second = compile_policy(ps, env), compile_policy(ps, env)
    assert first.version == second.version
    for _ in range(3):
        ctx = replace(data.draw(contexts(ps, env)), trace=data.draw(st.booleans()))
        req = data.draw(requests(ps, ctx.key_app))
        assert essence(run(first, req, ctx)) == essence(run(second, req, ctx)) == essence(run(first, req, ctx))


# Requests the schema admits, beyond what the generators favour: any text, any metadata, any name.
wild_requests = st.builds(
    GatewayRequest,
    endpoint=st.sampled_from(("chat", "embeddings")),
    model=st.text(max_size=12) | st.sampled_from(("a0", "a1", "pa/m1", "pa/e1")),
    texts=st.lists(st.builds(TextField, st.sampled_from(("user", "system", "tool", "input")), st.text())).map(tuple),
    max_tokens=st.none() | st.integers(0, 2**63),
    metadata=st.dictionaries(st.text(max_size=20), st.text()).map(MappingProxyType),
    requested_app=st.none() | st.text(max_size=8),
    stream=st.booleans(),
    grounding=st.lists(st.text(), max_size=2).map(tuple),
)


@SETTINGS
@given(st.data())
def test_p2_evaluation_never_raises(data: st.DataObject) -> None:
    ps = data.draw(sets)
    env = env_of(data, ps)
    policy = compile_policy(ps, env)
    limiter = MemoryRateLimiter()
    for _ in range(4):
        ctx = replace(data.draw(contexts(ps, env)), trace=True)
        req = data.draw(wild_requests | requests(ps, ctx.key_app))
        decision = evaluate_sync(policy, req, ctx, limiter)
        assert isinstance(decision, Allow) or decision.code  # a structured answer, whichever it is


def redacted(pipeline: GuardPipeline, texts: tuple[TextField, ...]) -> set[tuple[int, int]]:
    """(text, position) of every character an enforced rule redacts: what is kept from a provider."""
    return {
        (n, i)
        for n, t in enumerate(texts)
        for h in pipeline.hits(ScanContext(t.role), t.text)
        if not h.rule.shadow and h.action == "redact" and h.finding.redactable
        for i in range(h.finding.start, h.finding.end)
    }


def with_guards(ps: ast.PolicySet, app_name: str, change: object) -> ast.PolicySet:
    """The same set with one app's input rules passed through `change` (a function of the rule list)."""
    items: list[ast.Item] = []
    for item in ps.items():
        if isinstance(item, ast.App) and item.name == app_name and item.input is not None:
            item = replace(item, input=replace(item.input, guards=tuple(change(list(item.input.guards)))))  # type: ignore[operator]
        items.append(item)
    return ast.PolicySet((ast.PolicyFile("gen.policy", tuple(items)),))


@SETTINGS
@given(st.data())
def test_p3_raising_an_action_never_loosens(data: st.DataObject) -> None:
    ps = data.draw(sets)
    guarded = [a for a in ps.apps if a.input is not None and a.input.guards]
    assume(guarded)
    app = data.draw(st.sampled_from(guarded))
    assert app.input is not None and app.env is not None
    index = data.draw(st.integers(0, len(app.input.guards) - 1))
    rank = ast.ACTION_RANK[app.input.guards[index].action]
    assume(rank < len(ast.ACTIONS) - 1)
    stricter = data.draw(st.sampled_from(ast.ACTIONS[rank + 1 :]))

    def raise_one(rules: list[ast.Guard]) -> list[ast.Guard]:
        rules[index] = replace(rules[index], action=stricter)
        return rules

    before, after = compile_policy(ps, app.env), compile_policy(with_guards(ps, app.name, raise_one), app.env)
    for _ in range(4):
        ctx = replace(data.draw(contexts(ps)), key_app=app.name)
        req = data.draw(requests(ps, app.name))
        old, new = run(before, req, ctx), run(after, req, ctx)
        assert old.allowed or not new.allowed, "a stricter action turned a deny into an allow"
        if new.allowed:
            kept_before = redacted(before.apps[app.name].input, req.texts)
            assert kept_before <= redacted(after.apps[app.name].input, req.texts), "a stricter action forwarded more"


def guarded_run(d: Decision) -> bool:
    return isinstance(d, Allow) or d.step in ("input_guardrails", "route")


def found(d: Decision) -> Counter[tuple[object, ...]]:
    return Counter((o.detector, o.type, o.detail, o.count, o.shadow) for o in d.outcomes)


@SETTINGS
@given(st.data())
def test_p4_detect_everywhere_forwards_the_body_and_finds_the_same(data: st.DataObject) -> None:
    """With every rule at detect, nothing is refused by a guard or changed; the findings are the same."""
    ps = data.draw(sets)
    guarded = [a for a in ps.apps if a.input is not None and a.input.guards]
    assume(guarded)
    app = data.draw(st.sampled_from(guarded))
    assert app.env is not None

    def detect(rules: list[ast.Guard]) -> list[ast.Guard]:
        return [replace(g, action="detect") if g.action != "off" else g for g in rules]

    before, after = compile_policy(ps, app.env), compile_policy(with_guards(ps, app.name, detect), app.env)
    for _ in range(4):
        ctx = replace(data.draw(contexts(ps)), key_app=app.name)
        req = data.draw(requests(ps, app.name))
        old, new = run(before, req, ctx), run(after, req, ctx)
        if isinstance(new, Allow):
            assert [t.text for t in new.request.texts] == [t.text for t in req.texts]
        else:
            assert new.step != "input_guardrails"
        if guarded_run(old) and guarded_run(new):  # both ran the input guards: the same findings
            assert found(old) == found(new)


def compile_unchecked(ps: ast.PolicySet, env: str | None) -> CompiledPolicy:
    """Run the compiler's stages without the checker: what run time does with a set lint rejects."""
    state = _State(ps, env)
    for _name, stage in STAGES:
        stage(state)
    kinds = {name: plan.kind for name, plan in state.plans.items()}
    return CompiledPolicy(env, state.apps, kinds, dict(state.index.models), dict(state.index.providers), "x", ps)


@SETTINGS
@given(st.data())
def test_p7_no_candidate_on_an_excluded_provider(data: st.DataObject) -> None:
    ps = data.draw(policy_sets(closed=False, builtins=False, with_tests=False))
    env = env_of(data, ps)
    policy = compile_unchecked(ps, env)
    apps = {a.name: a for a in ps.apps}
    for _ in range(6):
        ctx = data.draw(contexts(ps, env))
        req = data.draw(requests(ps, ctx.key_app))
        decision = run(policy, req, ctx)
        if isinstance(decision, Allow):
            allowed = apps[decision.app].providers
            assert decision.candidates
            assert allowed is None or all(c.provider in allowed for c in decision.candidates)


# ── P9: every limit's sliding window ────────────────────────────────────


def window(admitted: dict[tuple[object, ...], list[float]], bucket: tuple[object, ...], period: float,
           now: float) -> int:  # fmt: skip
    """How many requests the bucket admitted in the window (now - period, now]."""
    return sum(1 for t in admitted.get(bucket, []) if now - period < t <= now)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_p9_every_limit_holds_its_window_and_refuses_only_when_full(data: st.DataObject) -> None:
    """Over a request sequence: each limit admits at most N of the requests it applies to in any window
    of its period, and a request is refused only when some limit that applies to it is full."""
    ps = data.draw(policy_sets(builtins=False, with_tests=False))
    env = env_of(data, ps)
    policy, limiter = compile_policy(ps, env), MemoryRateLimiter()
    admitted: dict[tuple[object, ...], list[float]] = {}
    now = 1000.0
    for _ in range(data.draw(st.integers(2, 14))):
        now += data.draw(st.sampled_from((0.0, 0.0, 0.5, 1.0, 30.0, 60.0, 3600.0)))
        ctx = replace(data.draw(contexts(ps, env)), now=now)
        req = data.draw(requests(ps, ctx.key_app))
        decision = evaluate_sync(policy, req, ctx, limiter)
        passed = isinstance(decision, Allow) or decision.step in ("input_guardrails", "route")
        refused = isinstance(decision, Deny) and decision.step == "rate_limit"
        if not (passed or refused):
            continue  # decided before the rate limit: no limit was asked
        app = reference.find_app(ps, env, ctx.key_app)
        assert app is not None
        matched = [(i, w) for i, w in enumerate(app.whens) if reference.holds(w.condition, req)]
        limits = reference.applicable_limits(app, matched, ctx.key_id)
        full = [rate for bucket, rate, _span in limits if window(admitted, bucket, rate.period_s, now) >= rate.limit]
        if refused:
            assert full, "refused although every limit that applies had room"
        else:
            assert not full, "admitted although a limit that applies was full"
            for bucket, rate, _span in limits:
                admitted.setdefault(bucket, []).append(now)
                assert window(admitted, bucket, rate.period_s, now) <= rate.limit


# ── P10: splits ──────────────────────────────────────────────────────────

SPLIT_POLICY = ast.PolicySet(
    (
        ast.PolicyFile(
            "split.policy",
            (
                ast.Provider("p", "mock"),
                *(ast.Model(f"p/m{i}") for i in range(3)),
                ast.Alias("two", split=(ast.Target("p/m0", 80.0), ast.Target("p/m1", 20.0))),
                ast.Alias("three", split=(ast.Target("p/m0", 1.0), ast.Target("p/m1", 2.0), ast.Target("p/m2", 7.0))),
                ast.Alias("nested", route=ast.Target("three"), fallbacks=(ast.Target("two"),)),
                ast.App("app", env="prod", models=(ast.Target("two"), ast.Target("three"), ast.Target("nested"))),
            ),
        ),
    )
)


def first_model(policy: CompiledPolicy, alias: str, sticky: str, seed: str = "") -> str:
    req = GatewayRequest("chat", alias, metadata=MappingProxyType({"external_request_id": sticky} if sticky else {}))
    decision = run(policy, req, EvalContext("app", seed=seed))
    assert isinstance(decision, Allow)
    return decision.candidates[0].model


def test_p10_split_shares_within_binomial_tolerance() -> None:
    policy = compile_policy(SPLIT_POLICY, "prod")
    n = 4000
    for alias, shares in (("two", (0.8, 0.2, 0.0)), ("three", (0.1, 0.2, 0.7))):
        counts = Counter(first_model(policy, alias, f"req-{i}") for i in range(n))
        for i, p in enumerate(shares):
            tolerance = 4.5 * math.sqrt(n * p * (1 - p))  # ~1e-5 two-sided per cell for a fair hash
            assert abs(counts[f"p/m{i}"] - n * p) <= tolerance, (alias, counts)


@settings(max_examples=100, deadline=None)
@given(st.text(min_size=1, max_size=40), st.text(max_size=8), st.text(max_size=8))
def test_p10_one_external_request_id_always_lands_alike(sticky: str, seed_a: str, seed_b: str) -> None:
    policy = compile_policy(SPLIT_POLICY, "prod")
    for alias in ("two", "three", "nested"):
        assert first_model(policy, alias, sticky, seed_a) == first_model(policy, alias, sticky, seed_b)
