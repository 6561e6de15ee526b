"""Policy engine: compile time and evaluate latency, beside Cedar (cedarpy) in the same run.

`python -m bench.bench_engine` prints the table recorded in bench/RESULTS.md;
`make bench` runs the pytest-benchmark cases at the bottom. Decisions are
driven without an event loop (`coro.send(None)`), as the server's await would
cost the same for both; Cedar gets its policies and entities pre-parsed, so
the comparison is decision against decision.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any

from dsl import ast
from dsl.loader import load
from engine.compiler import CompiledPolicy, compile_policy
from engine.request import EvalContext, GatewayRequest
from engine.testing import evaluate_sync

ROOT = Path(__file__).resolve().parent.parent
PROD = EvalContext("support-prod", key_id="k", seed="r")


def generated_set(n_apps: int = 200) -> ast.PolicySet:
    """The shipped providers, models and aliases plus `n_apps` apps, each with caps, limits, guards and a when."""
    shared = [i for i in load([ROOT / "policies"]).policy_set.items() if not isinstance(i, ast.App | ast.TestCase)]
    aliases = ["smart-default", "cheap-fast", "reasoning", "embed-default"]
    apps: list[ast.Item] = []
    for i in range(n_apps):
        guards = (ast.Guard("ticket-id", "redact"), ast.Guard("pii", "redact"), ast.Guard("secrets", "block"))
        apps.append(
            ast.App(
                name=f"app-{i}",
                env="prod",
                models=tuple(ast.Target(a) for a in aliases[: 1 + i % 4]),
                providers=("openai", "anthropic", "local"),
                settings=ast.Settings(ast.MaxTokens(1024 + i), ast.RateLimit(600, 60.0, "app", "600/min")),
                input=ast.GuardBlock("input", guards[: 1 + i % 3]),
                whens=(ast.When(ast.Compare("operation", "==", "bulk"), ast.Settings(ast.MaxTokens(4096))),),
            )
        )
    return ast.PolicySet((ast.PolicyFile("gen.policy", (*shared, *apps)),))


def routing_request() -> GatewayRequest:
    return GatewayRequest("chat", "smart-default", (), 256)


def when_request() -> GatewayRequest:
    return GatewayRequest("chat", "smart-default", (), 3000, MappingProxyType({"operation": "bulk-summarize"}))


# ── Cedar: the same decision (app may use model, token cap, when override) ──

CEDAR_POLICIES = """
permit(principal == App::"support-prod", action == Action::"chat", resource in ModelSet::"support-prod")
when { context.max_tokens <= 1024 || (context.operation == "bulk-summarize" && context.max_tokens <= 4096) };
"""
CEDAR_ENTITIES = [
    {"uid": {"type": "App", "id": "support-prod"}, "attrs": {}, "parents": []},
    {"uid": {"type": "ModelSet", "id": "support-prod"}, "attrs": {}, "parents": []},
    *(
        {"uid": {"type": "Model", "id": m}, "attrs": {}, "parents": [{"type": "ModelSet", "id": "support-prod"}]}
        for m in ("smart-default", "cheap-fast", "embed-default")
    ),
]


def cedar_decider() -> Callable[[], Any]:
    import json

    import cedarpy

    policies = cedarpy.PolicySet.from_str(CEDAR_POLICIES)
    entities = cedarpy.Entities.from_json_str(json.dumps(CEDAR_ENTITIES))
    request = {
        "principal": 'App::"support-prod"',
        "action": 'Action::"chat"',
        "resource": 'Model::"smart-default"',
        "context": {"max_tokens": 256, "operation": ""},
    }
    assert cedarpy.is_authorized(request, policies, entities).allowed
    return lambda: cedarpy.is_authorized(request, policies, entities)


# ── measurement ──────────────────────────────────────────────────────────


def latency(fn: Callable[[], Any], n: int = 50_000) -> tuple[float, float]:
    """(median, p99) in µs over n calls, after a warm-up."""
    for _ in range(n // 10):
        fn()
    samples = []
    clock = time.perf_counter_ns
    for _ in range(n):
        t0 = clock()
        fn()
        samples.append(clock() - t0)
    samples.sort()
    return samples[n // 2] / 1000, samples[int(n * 0.99)] / 1000


def seconds(fn: Callable[[], Any], repeat: int = 7) -> float:
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def shipped() -> CompiledPolicy:
    loaded = load([ROOT / "policies"])
    return compile_policy(loaded.policy_set, "prod", loaded.sources)


def main() -> None:
    loaded = load([ROOT / "policies"])
    generated = generated_set()
    policy = shipped()
    rows = [
        ("compile shipped set (check + compile, parsed)", seconds(lambda: compile_policy(loaded.policy_set, "prod"))),
        ("load + parse + compile shipped set", seconds(shipped)),
        ("compile generated set, 200 apps", seconds(lambda: compile_policy(generated, "prod"), 3)),
    ]
    for name, s in rows:
        print(f"{name}: {s * 1000:.1f} ms")
    routing, override = routing_request(), when_request()
    trace_ctx = EvalContext("support-prod", key_id="k", seed="r", trace=True)
    cases = [
        ("routing-only decision", lambda: evaluate_sync(policy, routing, PROD)),
        ("decision with a when override", lambda: evaluate_sync(policy, override, PROD)),
        ("routing-only, trace on (explain)", lambda: evaluate_sync(policy, routing, trace_ctx)),
        ("cedarpy is_authorized (same run)", cedar_decider()),
    ]
    results = {name: latency(fn) for name, fn in cases}
    for name, (med, p99) in results.items():
        print(f"{name}: median {med:.2f} µs, p99 {p99:.2f} µs")
    cedar = results["cedarpy is_authorized (same run)"][0]
    print(f"cedar / ghat routing-only median: {cedar / results['routing-only decision'][0]:.1f}×")


# ── pytest-benchmark cases (`make bench`) ─────────────────────────────────


def test_bench_routing_only(benchmark: Any) -> None:
    policy, req = shipped(), routing_request()
    benchmark(lambda: evaluate_sync(policy, req, PROD))


def test_bench_when_override(benchmark: Any) -> None:
    policy, req = shipped(), when_request()
    benchmark(lambda: evaluate_sync(policy, req, PROD))


def test_bench_cedar(benchmark: Any) -> None:
    benchmark(cedar_decider())


def test_bench_compile_200_apps(benchmark: Any) -> None:
    generated = generated_set()
    benchmark.pedantic(lambda: compile_policy(generated, "prod"), rounds=3)


if __name__ == "__main__":
    main()
