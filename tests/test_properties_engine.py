"""The engine's semantic properties (GUIDE §4) over generated policies and requests.

P1 determinism, P2 totality, P3 monotone strictness, P7 closure at run time
(including for policies the checker would reject), P10 split shares and
stickiness. Policies use custom pattern detectors only, so these hold
whatever the built-in detectors do.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import replace
from types import MappingProxyType

import re2
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from dsl import ast
from engine.compiler import STAGES, CompiledPolicy, _State, compile_policy
from engine.decision import Allow, Decision
from engine.ratelimit import MemoryRateLimiter
from engine.request import EvalContext, GatewayRequest, TextField
from engine.testing import evaluate_sync
from tests.engine_gen import DETECTORS, contexts, policy_sets, raw_policy_sets, requests

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def run(policy: CompiledPolicy, req: GatewayRequest, ctx: EvalContext) -> Decision:
    return evaluate_sync(policy, req, ctx, MemoryRateLimiter())


def essence(d: Decision) -> tuple[object, ...]:
    """Everything a decision tells the caller and the router, without object identities."""
    if isinstance(d, Allow):
        return ("allow", d.candidates, d.request, d.timeout_s, d.outcomes, d.fired, d.trace, d.shadow)
    return ("deny", d.code, d.status, d.message, d.retry_after, d.step, d.outcomes, d.trace)


@SETTINGS
@given(st.data())
def test_p1_same_inputs_give_the_same_decision(data: st.DataObject) -> None:
    ps = data.draw(policy_sets)
    first, second = compile_policy(ps, "prod"), compile_policy(ps, "prod")
    assert first.version == second.version
    for _ in range(3):
        req = data.draw(requests(ps))
        ctx = replace(data.draw(contexts(ps)), trace=data.draw(st.booleans()))
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
    ps = data.draw(policy_sets)
    policy = compile_policy(ps, "prod")
    limiter = MemoryRateLimiter()
    for _ in range(4):
        req = data.draw(wild_requests | requests(ps))
        ctx = replace(data.draw(contexts(ps)), trace=True)
        decision = evaluate_sync(policy, req, ctx, limiter)
        assert isinstance(decision, Allow) or decision.code  # a structured answer, whichever it is


def sensitive(decision: Decision) -> Counter[tuple[str, str]]:
    """Every detector match left in the forwarded texts: what would reach a provider."""
    if not isinstance(decision, Allow):
        return Counter()
    return Counter(
        (d.name, m.group()) for t in decision.request.texts for d in DETECTORS for m in re2.finditer(d.pattern, t.text)
    )


def raise_one(ps: ast.PolicySet, app_name: str, index: int, action: ast.Action) -> ast.PolicySet:
    """The same set with one input guard of one app at a stricter action."""
    items: list[ast.Item] = []
    for item in ps.items():
        if isinstance(item, ast.App) and item.name == app_name and item.input is not None:
            guards = list(item.input.guards)
            guards[index] = replace(guards[index], action=action)
            item = replace(item, input=replace(item.input, guards=tuple(guards)))
        items.append(item)
    return ast.PolicySet((ast.PolicyFile("gen.policy", tuple(items)),))


@SETTINGS
@given(st.data())
def test_p3_raising_an_action_never_loosens(data: st.DataObject) -> None:
    ps = data.draw(policy_sets)
    guarded = [a for a in ps.apps if a.input is not None and a.input.guards]
    assume(guarded)
    app = data.draw(st.sampled_from(guarded))
    assert app.input is not None
    index = data.draw(st.integers(0, len(app.input.guards) - 1))
    rank = ast.ACTION_RANK[app.input.guards[index].action]
    assume(rank < len(ast.ACTIONS) - 1)
    stricter = data.draw(st.sampled_from(ast.ACTIONS[rank + 1 :]))
    before, after = compile_policy(ps, "prod"), compile_policy(raise_one(ps, app.name, index, stricter), "prod")
    for _ in range(4):
        req = data.draw(requests(ps))
        ctx = replace(data.draw(contexts(ps)), key_app=app.name)
        old, new = run(before, req, ctx), run(after, req, ctx)
        assert old.allowed or not new.allowed, "a stricter action turned a deny into an allow"
        leaked = sensitive(new) - sensitive(old)
        assert not leaked, f"a stricter action forwarded more: {leaked}"


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
    ps = data.draw(raw_policy_sets())
    policy = compile_unchecked(ps, "prod")
    apps = {a.name: a for a in ps.apps}
    for _ in range(6):
        req = data.draw(requests(ps))
        ctx = data.draw(contexts(ps))
        decision = run(policy, req, ctx)
        if isinstance(decision, Allow):
            allowed = apps[decision.app].providers
            assert decision.candidates
            assert allowed is None or all(c.provider in allowed for c in decision.candidates)


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
