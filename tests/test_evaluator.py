"""The evaluator, step by step: each step's outcome and which step wins when several apply."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from dsl import ast
from dsl.parser import parse_text
from engine.compiler import CompiledPolicy, compile_policy
from engine.decision import Allow, Decision, Deny
from engine.ratelimit import MemoryRateLimiter
from engine.request import EvalContext, GatewayRequest, TextField
from engine.testing import evaluate_sync

POLICY = """
provider pa { kind mock }
provider pb { kind mock }
model pa/chat { price in 0 out 0 per 1M }
model pb/chat { price in 0 out 0 per 1M }
model pa/embed { kind embedding  price in 0 per 1M }
alias main { route pa/chat  fallback pb/chat }
detector digits pattern /[0-9]{4}/ type number
detector word pattern /secret/
app a {
  env prod
  models main, pa/embed
  max_tokens 100
  rate_limit 2/min
  input {
    digits redact
    word block
  }
  when operation == "bulk" { max_tokens 1000 }
  when operation == "bulk" and source_service == "x" { max_tokens 50 reject }
}
app r {
  env prod
  models main
  max_tokens 100 reject
  input {
    digits redact
    digits block shadow
  }
}
app s {
  env prod
  shadow
  models pa/chat
  input { word block }
}
app merge {
  env prod
  models pa/chat
  input {
    digits detect
    digits redact
  }
}
app other { env dev  models pa/chat }
"""


@pytest.fixture(scope="module")
def policy() -> CompiledPolicy:
    pf, diags = parse_text(POLICY, "t.policy")
    assert not [d for d in diags if d.level == "error"], diags
    return compile_policy(ast.PolicySet((pf,)), "prod")


def ask(
    policy: CompiledPolicy, app: str | None = "a", model: str = "main", text: str = "hi", *,
    endpoint: str = "chat", max_tokens: int | None = None, meta: dict[str, str] | None = None,
    requested: str | None = None, limiter: MemoryRateLimiter | None = None,
) -> Decision:  # fmt: skip
    req = GatewayRequest(
        "embeddings" if endpoint == "embeddings" else "chat", model, (TextField("user", text),), max_tokens,
        MappingProxyType(meta or {}), requested,
    )  # fmt: skip
    return evaluate_sync(policy, req, EvalContext(app, "k", "s", 0.0, True), limiter or MemoryRateLimiter())


def code(d: Decision) -> str:
    return "allow" if isinstance(d, Allow) else d.code


def test_each_step_denies_with_its_code(policy: CompiledPolicy) -> None:
    assert code(ask(policy, None)) == "unauthorized"
    assert code(ask(policy, "other")) == "unauthorized"  # an app of another environment does not exist
    assert code(ask(policy, requested="r")) == "app_mismatch"
    assert code(ask(policy, model="nope")) == "invalid_model"
    assert code(ask(policy, model="pa/embed")) == "invalid_model"  # an embedding model on chat
    assert code(ask(policy, model="main", endpoint="embeddings")) == "invalid_model"
    assert code(ask(policy, model="pb/chat")) == "guardrail_model_blocked"
    assert code(ask(policy, "r", max_tokens=101)) == "guardrail_max_tokens_exceeded"
    assert code(ask(policy, text="a secret")) == "guardrail_word_blocked"


def test_the_first_failing_step_decides(policy: CompiledPolicy) -> None:
    # unknown model and a blocked text: the model step comes first
    assert code(ask(policy, model="nope", text="secret")) == "invalid_model"
    # over the cap in reject mode and a blocked text: the cap comes first
    assert code(ask(policy, "r", max_tokens=500, text="secret")) == "guardrail_max_tokens_exceeded"
    # app mismatch beats an unknown model
    assert code(ask(policy, model="nope", requested="r")) == "app_mismatch"
    d = ask(policy, model="nope", text="secret")
    assert isinstance(d, Deny) and d.step == "model_known" and d.trace[-1].name == "model_known"


def test_rate_limit_comes_before_guards_and_counts_per_app(policy: CompiledPolicy) -> None:
    limiter = MemoryRateLimiter()
    assert code(ask(policy, limiter=limiter)) == "allow"
    assert code(ask(policy, text="secret", limiter=limiter)) == "guardrail_word_blocked"
    d = ask(policy, text="secret", limiter=limiter)
    assert code(d) == "guardrail_rate_limit_exceeded" and isinstance(d, Deny) and d.retry_after


def test_clamp_sets_or_lowers_max_tokens(policy: CompiledPolicy) -> None:
    for asked, want in ((None, 100), (50, 50), (500, 100)):
        d = ask(policy, max_tokens=asked)
        assert isinstance(d, Allow) and d.request.max_tokens == want
    d = ask(policy, max_tokens=500)
    assert isinstance(d, Allow) and "max_tokens" in d.fired


def test_when_overrides_and_later_blocks_win(policy: CompiledPolicy) -> None:
    d = ask(policy, max_tokens=900, meta={"operation": "bulk"})
    assert isinstance(d, Allow) and d.request.max_tokens == 900 and "when" in d.fired
    d = ask(policy, max_tokens=900, meta={"operation": "bulk", "source_service": "x"})
    assert code(d) == "guardrail_max_tokens_exceeded"  # the second when sets 50 reject
    assert isinstance(d, Deny) and d.span is not None and d.span.line == 20


def test_redaction_and_route(policy: CompiledPolicy) -> None:
    d = ask(policy, text="pin 1234 and 1234, then 5678")
    assert isinstance(d, Allow)
    assert d.request.texts[0].text == "pin [NUMBER_1] and [NUMBER_1], then [NUMBER_2]"
    assert [c.model for c in d.candidates] == ["pa/chat", "pb/chat"]
    assert d.fired == ("digits",)


def test_shadow_guard_reports_but_does_not_enforce(policy: CompiledPolicy) -> None:
    d = ask(policy, "r", text="pin 1234")
    assert isinstance(d, Allow) and d.request.texts[0].text == "pin [NUMBER_1]"
    assert {(o.action, o.shadow) for o in d.outcomes} == {("redact", False), ("block", True)}


def test_shadow_app_forwards_unchanged(policy: CompiledPolicy) -> None:
    d = ask(policy, "s", model="pa/chat", text="a secret")
    assert isinstance(d, Allow) and d.request.texts[0].text == "a secret" and d.shadow
    assert [o.action for o in d.outcomes] == ["block"]


def test_two_rules_on_one_detector_strictest_wins(policy: CompiledPolicy) -> None:
    d = ask(policy, "merge", model="pa/chat", text="1234")
    assert isinstance(d, Allow) and d.request.texts[0].text == "[NUMBER_1]"


def test_trace_is_free_when_off(policy: CompiledPolicy) -> None:
    req = GatewayRequest("chat", "main")
    d = evaluate_sync(policy, req, EvalContext("a"), None)
    assert isinstance(d, Allow) and d.trace == ()
    traced = evaluate_sync(policy, req, EvalContext("a", trace=True), None)
    assert [s.name for s in traced.trace] == ["authenticate", "resolve_app", "model_known", "model_allowed",
                                             "token_cap", "route"]  # fmt: skip


def test_a_request_at_exactly_the_cap_is_neither_refused_nor_clamped(policy: CompiledPolicy) -> None:
    """Found by the mutation run: `>` against `>=` at the cap was not pinned."""
    d = ask(policy, "r", max_tokens=100)  # app r: max_tokens 100 reject
    assert isinstance(d, Allow) and d.request.max_tokens == 100 and "max_tokens" not in d.fired
    d = ask(policy, max_tokens=100)  # app a: max_tokens 100 (clamp)
    assert isinstance(d, Allow) and "max_tokens" not in d.fired


def test_the_trace_shows_each_token_cap_outcome(policy: CompiledPolicy) -> None:
    """Found by the mutation run: `ghat explain` lost the clamp line without a test failing."""
    for asked, outcome in ((None, "default"), (500, "clamp"), (50, "ok")):
        d = ask(policy, max_tokens=asked)
        assert [s.detail for s in d.trace if s.name == "token_cap"] == [
            {"default": "max_tokens set to 100", "clamp": "500 → 100", "ok": "50 ≤ 100"}[outcome]
        ]
