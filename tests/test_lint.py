"""Lint rules, and the `when` satisfiability decision checked against brute force."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsl import ast, conditions
from dsl.catalog import ENDPOINTS
from dsl.conditions import Domain, example, satisfy
from dsl.lint import lint
from dsl.parser import parse_text

HEAD = """provider openai { kind openai; api_key env.OPENAI_API_KEY }
provider local { kind mock }
model openai/gpt-4o { price in 2.5 out 10 per 1M; context 128k }
model local/echo { price in 0 out 0 per 1M }
model local/embed { kind embedding; price in 0 per 1M }
alias smart { route openai/gpt-4o timeout 20s; fallback local/echo }
alias embed { route local/embed }
"""


def _lint(body: str) -> list[tuple[str, int, str]]:
    pf, diags = parse_text(HEAD + body, "t.policy")
    assert diags == []
    offset = HEAD.count("\n")
    return [(d.rule, d.span.line - offset, d.message) for d in lint(ast.PolicySet((pf,)))]


def _app(*lines: str, models: str = "smart, embed") -> str:
    inner = "\n".join(f"  {line}" for line in lines)
    return f"app chat {{\n  env dev; models {models}; max_tokens 1024; rate_limit 60/min; timeout 45s\n{inner}\n}}\n"


def _rules(body: str) -> list[str]:
    return [rule for rule, _, _ in _lint(body)]


def test_a_clean_app_has_no_lint() -> None:
    assert _lint(_app()) == []


def test_when_contradiction_and_impossible_values_never_match() -> None:
    out = _lint(
        _app(
            'when operation == "a" and operation == "b" { timeout 10s }',  # line 3
            'when operation in ["a", "b"] and not operation in ["a", "b"] { timeout 10s }',
            'when model == "openai/gpt-4o" { timeout 10s }',  # a concrete model behind an alias
            'when endpoint == "completions" { timeout 10s }',
            'when endpoint == "embeddings" and model == "smart" { timeout 10s }',
        )
    )
    assert [(r, line) for r, line, _ in out] == [("when/never-matches", n) for n in range(3, 8)]
    assert "contradicts itself" in out[0][2] and "contradicts itself" in out[1][2]
    assert "'openai/gpt-4o' is not among the models" in out[2][2]
    assert "never 'completions'" in out[3][2]
    assert "no model the app allows serves that endpoint" in out[4][2]


def test_satisfiable_conditions_are_not_reported() -> None:
    body = _app(
        'when operation != "a" and operation != "b" { timeout 10s }',
        'when not (operation == "a" or endpoint == "chat") { max_tokens 10 }',
        'when operation not in ["x"] and source_service == "" { rate_limit 5/min }',
    )
    assert _rules(body) == []


def test_impossible_value_inside_a_live_condition_is_reported_at_the_comparison() -> None:
    out = _lint(_app('when model == "smrt" or operation == "bulk" { timeout 10s }'))
    assert [(r, line) for r, line, _ in out] == [("when/impossible-value", 3)]


def test_overlapping_whens_that_disagree_are_reported_with_a_witness() -> None:
    out = _lint(
        _app(
            'when operation == "bulk" { max_tokens 4096 }',
            'when source_service == "nightly" { max_tokens 2048 }',
        )
    )
    assert [(r, line) for r, line, _ in out] == [("when/conflicting-overrides", 4)]
    assert 'operation="bulk"' in out[0][2] and 'source_service="nightly"' in out[0][2]


def test_overlapping_whens_that_agree_or_exclude_each_other_are_not_reported() -> None:
    agree = _app('when operation == "bulk" { max_tokens 4096 }', 'when model == "smart" { max_tokens 4096 }')
    exclusive = _app(
        'when operation == "bulk" { max_tokens 4096 }',
        'when operation != "bulk" and source_service == "x" { max_tokens 2048 }',
    )
    by_kind = _app(
        'when endpoint == "chat" and operation == "a" { timeout 10s }', 'when model == "embed" { timeout 20s }'
    )
    other_fields = _app('when operation == "bulk" { max_tokens 4096 }', 'when operation == "bulk" { timeout 20s }')
    for body in (agree, exclusive, by_kind, other_fields):
        assert _rules(body) == [], body


def test_when_that_always_matches_is_a_note() -> None:
    every = ", ".join(f'"{e}"' for e in ENDPOINTS)  # every endpoint the gateway serves, whichever they are
    out = _lint(_app(f"when endpoint in [{every}] {{ timeout 10s }}"))
    assert [r for r, _, _ in out] == ["when/always-matches"]
    assert _rules(_app('when endpoint in ["chat", "embeddings"] { timeout 10s }')) == []  # not /v1/responses


def test_limits_cost_timeouts_and_security() -> None:
    body = """model openai/gpt-x { context 4k }
alias slow { route openai/gpt-x timeout 90s }
alias spare { route local/echo }
detector ticket pattern /T-[0-9]+/
provider leaky { kind openai; api_key "sk-123" }
app chat {
  env prod; models slow, slow; timeout 30s; max_tokens 8000; capture prompts
  input { pii off }
}
app embedder { env dev; models embed; rate_limit 5/min }
"""
    got = {(r, line) for r, line, _ in _lint(body)}
    assert got == {
        ("cost/unpriced-model", 1),
        ("routing/timeout-exceeds-app", 2),
        ("reference/unused-alias", 3),
        ("reference/unused-detector", 4),
        ("security/literal-api-key", 5),
        ("reference/unused-provider", 5),
        ("security/prod-without-guardrails", 6),
        ("security/capture-in-prod", 7),  # at `capture`, the statement to change
        ("limits/no-rate-limit", 6),
        ("app/duplicate-model", 7),
        ("limits/cap-exceeds-context", 7),
        ("guardrail/guard-off", 8),
        ("reference/unused-alias", -1),  # `smart`, from HEAD, which no app here uses
        # and no limits/no-token-cap for `embedder`: an embedding-only app needs none
    }


# ── satisfiability against brute force ──────────────────────────────────────

MODELS = {"smart": "chat", "fast": "chat", "embed": "embedding", "mixed": None}
VALUES = {"model": ["smart", "fast", "embed", "mixed", "ghost"], "endpoint": ["chat", "embeddings", "completions"],
          "operation": ["a", "b", ""], "source_service": ["x", "y"]}  # fmt: skip


def _exprs(values: dict[str, list[str]]) -> st.SearchStrategy[ast.Expr]:
    """Random conditions over `values`: comparisons and memberships joined by not/and/or."""
    field = st.sampled_from(sorted(values))
    compare = field.flatmap(
        lambda f: st.builds(ast.Compare, st.just(f), st.sampled_from(["==", "!="]), st.sampled_from(values[f]))
    )
    member = field.flatmap(
        lambda f: st.builds(
            ast.Member,
            st.just(f),
            st.lists(st.sampled_from(values[f]), min_size=1, max_size=3).map(tuple),
            st.booleans(),
        )
    )
    return st.recursive(
        compare | member,
        lambda inner: (
            st.builds(ast.Not, inner)
            | st.builds(ast.And, st.lists(inner, min_size=2, max_size=3).map(tuple))
            | st.builds(ast.Or, st.lists(inner, min_size=2, max_size=3).map(tuple))
        ),
        max_leaves=8,
    )


EXPRS = _exprs(VALUES)


def _holds(expr: ast.Expr, request: dict[str, str]) -> bool:
    """The engine's semantics, written out plainly: a missing field is ""."""
    if isinstance(expr, ast.Compare):
        return (request.get(expr.field, "") == expr.value) == (expr.op == "==")
    if isinstance(expr, ast.Member):
        return (request.get(expr.field, "") in expr.values) != expr.negated
    if isinstance(expr, ast.Not):
        return not _holds(expr.operand, request)
    results = [_holds(e, request) for e in expr.operands]
    return all(results) if isinstance(expr, ast.And) else any(results)


def _admitted_requests() -> list[dict[str, str]]:
    """Every request that reaches `when` evaluation, over values plus an unmentioned one for metadata."""
    out = []
    for model, kind in MODELS.items():
        for endpoint in ENDPOINTS:  # a chat model serves chat and messages, an embedding model embeddings
            if kind is not None and (kind == "embedding") != (endpoint == "embeddings"):
                continue
            for op, svc in itertools.product([*VALUES["operation"], "zz"], [*VALUES["source_service"], "", "zz"]):
                out.append({"model": model, "endpoint": endpoint, "operation": op, "source_service": svc})
    return out


ADMITTED = _admitted_requests()


@settings(max_examples=300, deadline=None)
@given(st.lists(EXPRS, min_size=1, max_size=2))
def test_satisfy_agrees_with_brute_force_and_its_witness_holds(exprs: list[ast.Expr]) -> None:
    domain = Domain.for_app(MODELS.items(), exprs)
    box = satisfy(domain, *exprs)
    witnesses = [r for r in ADMITTED if all(_holds(e, r) for e in exprs)]
    assert (box is not None) == bool(witnesses)
    if box is not None:  # the witness box holds a request that satisfies every expression
        inside = [r for r in witnesses if all(r[f] in box.get(f, {r[f]}) or _other(r[f], box.get(f)) for f in r)]
        assert inside
        assert example(domain, box, ["model", "operation"]).startswith("model=")


def _other(value: str, allowed: frozenset[str] | None) -> bool:
    """A value no condition mentions is represented by OTHER in the box."""
    mentioned = {v for vs in VALUES.values() for v in vs}
    return allowed is not None and conditions.OTHER in allowed and value not in mentioned


def test_literals_prune_before_branching() -> None:
    either = ast.Or((ast.Compare("operation", "==", "a"), ast.Compare("operation", "==", "b")))
    wide = ast.And((ast.Compare("operation", "==", "c"), *([either] * 40)))
    domain = Domain.for_app(MODELS.items(), [wide])
    assert satisfy(domain, wide) is None  # 2**40 branches unless the literal is applied first


def test_budget_exhaustion_answers_maybe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conditions, "STEP_BUDGET", 3)
    pairs = [ast.Or((ast.Compare(f, "==", "a"), ast.Compare(f, "==", "b"))) for f in ("operation", "source_service")]
    never = ast.Or((ast.Compare("workspace_id", "==", "a"), ast.Compare("workspace_id", "==", "b")))
    expr = ast.And((never, *pairs, ast.Not(never)))  # `never` is branched on last
    domain = Domain.for_app(MODELS.items(), [expr])
    assert satisfy(domain, expr) == {}
    monkeypatch.setattr(conditions, "STEP_BUDGET", 1000)
    assert satisfy(domain, expr) is None


# ── end to end: policy text → parser → lint agrees with brute force ─────────

APP_MODELS = {"smart": "chat", "embed": "embedding", "local/echo": "chat"}


def _render(expr: ast.Expr) -> str:
    if isinstance(expr, ast.Compare):
        return f'{expr.field} {expr.op} "{expr.value}"'
    if isinstance(expr, ast.Member):
        values = ", ".join(f'"{v}"' for v in expr.values)
        return f"{expr.field} {'not in' if expr.negated else 'in'} [{values}]"
    if isinstance(expr, ast.Not):
        return f"not ({_render(expr.operand)})"
    joiner = " and " if isinstance(expr, ast.And) else " or "
    return joiner.join(f"({_render(e)})" for e in expr.operands)


def _admitted_app_requests() -> list[dict[str, str]]:
    out = []
    for model, kind in APP_MODELS.items():
        served = ["embeddings"] if kind == "embedding" else [e for e in ENDPOINTS if e != "embeddings"]
        for endpoint, op, svc in itertools.product(served, ["a", "b", "", "zz"], ["x", "y", "", "zz"]):
            out.append({"model": model, "endpoint": endpoint, "operation": op, "source_service": svc})
    return out


APP_REQUESTS = _admitted_app_requests()
APP_VALUES = {**VALUES, "model": ["smart", "embed", "local/echo", "ghost"]}


@settings(max_examples=150, deadline=None)
@given(_exprs(APP_VALUES))
def test_never_matches_is_reported_exactly_when_no_admitted_request_matches(expr: ast.Expr) -> None:
    out = _lint(_app(f"when {_render(expr)} {{ timeout 10s }}", models="smart, embed, local/echo"))
    never = any(r == "when/never-matches" for r, _, _ in out)
    assert never == (not any(_holds(expr, r) for r in APP_REQUESTS))
