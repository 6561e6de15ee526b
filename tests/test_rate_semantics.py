"""Rate limits only tighten: the cases of issue 10, on the memory limiter and the compiled policy.

Every limit that applies to a request (the app's, and each matching `when`'s)
has a bucket of its own, named by the rule that declared it; a request is
admitted only if every one admits it, and a refusal takes nothing from any
bucket. A `when` replaces the app's limit only with `raise`. P9 over
generated policies is in tests/test_properties_engine.py; across two servers
sharing Redis in tests/test_ratelimit_e2e.py.
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

import pytest

from dsl import ast
from dsl.loader import load
from dsl.parser import parse_text
from engine.compiler import CompiledPolicy, compile_paths, compile_policy
from engine.decision import Allow, Decision, Deny
from engine.ratelimit import MemoryRateLimiter
from engine.request import EvalContext, GatewayRequest
from engine.testing import evaluate_sync

ROOT = Path(__file__).resolve().parent.parent


def compiled(app_body: str, *apps: str) -> CompiledPolicy:
    src = "provider p { kind mock }\nmodel p/m { price in 0 out 0 per 1M }\n" + "\n".join(
        f"app {name} {{\n  env prod; models p/m; max_tokens 10\n{app_body}\n}}" for name in apps or ("a",)
    )
    pf, diags = parse_text(src, "t.policy")
    assert not [d for d in diags if d.level == "error"], diags
    return compile_policy(ast.PolicySet((pf,)), "prod")


def send(policy: CompiledPolicy, limiter: MemoryRateLimiter, app: str = "a", key: str = "k", now: float = 0.0,
         **meta: str) -> Decision:  # fmt: skip
    req = GatewayRequest("chat", "p/m", (), None, MappingProxyType(meta))
    return evaluate_sync(policy, req, EvalContext(app, key, "s", now), limiter)


def admitted(decisions: list[Decision]) -> int:
    return sum(isinstance(d, Allow) for d in decisions)


def test_a_tightening_when_does_not_add_to_the_apps_total() -> None:
    """The issue's case: 7 admitted against `5/min` when a `when` set 2/min in a bucket of its own."""
    policy = compiled('  rate_limit 5/min\n  when operation == "bulk" { rate_limit 2/min }')
    limiter = MemoryRateLimiter()
    ds = [send(policy, limiter, operation="bulk" if i % 2 else "") for i in range(14)]
    assert admitted(ds) == 5
    assert admitted(ds[1::2]) == 2  # the bulk ones: at most 2 of them
    assert admitted(ds[0::2]) == 3


def test_two_whens_with_one_number_count_apart() -> None:
    policy = compiled(
        '  rate_limit 100/min\n  when workspace_id == "team-a" { rate_limit 3/min }\n'
        '  when workspace_id == "team-b" { rate_limit 3/min }'
    )
    limiter = MemoryRateLimiter()
    a = [send(policy, limiter, workspace_id="team-a") for _ in range(5)]
    b = [send(policy, limiter, workspace_id="team-b") for _ in range(5)]
    assert (admitted(a), admitted(b)) == (3, 3)


def test_apps_with_one_number_count_apart() -> None:
    policy = compiled("  rate_limit 2/min", "a", "b")
    limiter = MemoryRateLimiter()
    assert [admitted([send(policy, limiter, app) for _ in range(3)]) for app in ("a", "b")] == [2, 2]


def test_a_refused_request_takes_nothing_from_the_other_buckets() -> None:
    policy = compiled('  rate_limit 3/min\n  when operation == "x" { rate_limit 1/min }')
    limiter = MemoryRateLimiter()
    assert isinstance(send(policy, limiter, operation="x"), Allow)
    refused = [send(policy, limiter, operation="x") for _ in range(5)]
    assert admitted(refused) == 0
    assert admitted([send(policy, limiter) for _ in range(3)]) == 2  # 3 minus the one x admitted


def test_the_refusal_names_the_limit_that_refused_and_waits_for_the_longest() -> None:
    policy = compiled('  rate_limit 3/min\n  when operation == "x" { rate_limit 1/h }')
    limiter = MemoryRateLimiter()
    assert isinstance(send(policy, limiter, operation="x", now=0.0), Allow)
    d = send(policy, limiter, operation="x", now=10.0)
    assert isinstance(d, Deny) and d.step == "rate_limit" and "1/h" in d.message
    assert d.span is not None and d.span.line == 6 and d.retry_after == pytest.approx(3590.0)
    for t in (11.0, 12.0):
        assert isinstance(send(policy, limiter, now=t), Allow)
    d = send(policy, limiter, operation="x", now=13.0)  # both full: the app frees a slot at 60, the x limit at 3600
    assert isinstance(d, Deny) and "1/h" in d.message and d.retry_after == pytest.approx(3587.0)
    d = send(policy, limiter, now=13.0)
    assert isinstance(d, Deny) and "3/min" in d.message and d.retry_after == pytest.approx(47.0)


def test_raise_replaces_the_apps_limit_for_the_requests_it_matches() -> None:
    policy = compiled('  rate_limit 2/min\n  when operation == "bulk" { rate_limit 4/min raise }')
    limiter = MemoryRateLimiter()
    bulk = [send(policy, limiter, operation="bulk") for _ in range(6)]
    plain = [send(policy, limiter) for _ in range(4)]
    assert (admitted(bulk), admitted(plain)) == (4, 2)


def test_a_per_key_when_limit_counts_each_key_apart() -> None:
    policy = compiled('  rate_limit 10/min\n  when operation == "x" { rate_limit 1/min per key }')
    limiter = MemoryRateLimiter()
    assert [isinstance(send(policy, limiter, key=k, operation="x"), Allow) for k in ("k1", "k2", "k1")] == [
        True, True, False,
    ]  # fmt: skip


def test_every_limit_shows_in_the_trace() -> None:
    policy = compiled('  rate_limit 5/min\n  when operation == "x" { rate_limit 2/min }')
    req = GatewayRequest("chat", "p/m", (), None, MappingProxyType({"operation": "x"}))
    d = evaluate_sync(policy, req, EvalContext("a", "k", "s", 0.0, True), MemoryRateLimiter())
    assert [(s.detail, s.span.line if s.span else 0) for s in d.trace if s.name == "rate_limit"] == [
        ("5/min", 5), ("2/min", 6),
    ]  # fmt: skip


def test_buckets_are_named_by_the_rule_not_the_number() -> None:
    before = compiled('  rate_limit 5/min\n  when operation == "x" { rate_limit 2/min }').apps["a"]
    after = compiled('  rate_limit 9/min\n  when operation == "x" { rate_limit 3/h }').apps["a"]
    assert [lim.bucket for lim in before.effective((0,)).limits] == [lim.bucket for lim in after.effective((0,)).limits]
    assert before.effective((0,)).limits[0].bucket == "{prod:a}:app"


def test_the_shipped_batch_policy_holds_60_per_minute_whatever_the_caller_says() -> None:
    """The issue's case: 160 requests admitted in one instant against 60/min with the nightly metadata."""
    policy = compile_paths([ROOT / "policies"], "prod")
    limiter = MemoryRateLimiter()
    meta = MappingProxyType({"source_service": "nightly-report", "operation": "summarize"})
    req = GatewayRequest("chat", "cheap-fast", (), 100, meta)
    ds = [evaluate_sync(policy, req, EvalContext("batch-summarizer", "k", "s", 0.0), limiter) for _ in range(200)]
    assert admitted(ds) == 60


def test_the_shipped_policies_raise_no_limit_on_metadata() -> None:
    for app in load([ROOT / "policies"]).policy_set.apps:
        assert not any(w.settings.rate_limit and w.settings.rate_limit.raises for w in app.whens), app.name


def test_two_whens_with_one_condition_still_count_apart() -> None:
    """Found by the mutation run: the occurrence number that keeps such buckets apart was not pinned."""
    policy = compiled('  rate_limit 100/min\n  when operation == "x" { rate_limit 2/min }\n'
                      '  when operation == "x" { rate_limit 3/min }')  # fmt: skip
    limits = policy.apps["a"].effective((0, 1)).limits
    assert len({lim.bucket for lim in limits}) == 3
    limiter = MemoryRateLimiter()
    assert admitted([send(policy, limiter, operation="x") for _ in range(5)]) == 2
