"""The compiler: stages in one place, route plans, run-time closure, and refusing unchecked sets."""

from __future__ import annotations

import pytest

from dsl import ast
from dsl.diagnostics import PolicyError
from dsl.parser import parse_text
from engine.compiler import STAGES, SplitChoice, compile_policy

SRC = """
provider pa { kind mock  timeout 7s }
provider pb { kind mock }
model pa/m { price in 0 out 0 per 1M }
model pb/m { price in 0 out 0 per 1M }
alias inner { route pb/m timeout 3s retries 1 }
alias outer { route pa/m  fallback inner }
alias mix { split { pa/m weight 1; pb/m weight 3 }  fallback pa/m }
app a { env prod  models outer, mix }
app b { env dev  models outer }
"""


def policy_set(src: str = SRC) -> ast.PolicySet:
    pf, diags = parse_text(src, "c.policy")
    assert not [d for d in diags if d.level == "error"], diags
    return ast.PolicySet((pf,))


def test_stages_are_named_in_order() -> None:
    assert [name for name, _ in STAGES] == ["index", "plans", "apps"]


def test_plans_resolve_aliases_in_order_with_attempt_settings() -> None:
    policy = compile_policy(policy_set(), "prod")
    plan = policy.apps["a"].plans["outer"]
    assert plan.fixed is not None
    assert [(c.model, c.timeout_s, c.retries, c.via) for c in plan.fixed] == [
        ("pa/m", 7.0, 0, ("outer",)),  # the provider's timeout when the target sets none
        ("pb/m", 3.0, 1, ("outer", "inner")),
    ]
    split = policy.apps["a"].plans["mix"]
    assert split.fixed is None and isinstance(split.segments[0], SplitChoice)
    assert split.segments[0].cumulative == (1.0, 4.0)


def test_env_selects_apps_and_version_is_stable() -> None:
    prod, dev = compile_policy(policy_set(), "prod"), compile_policy(policy_set(), "dev")
    assert set(prod.apps) == {"a"} and set(dev.apps) == {"b"}
    assert set(compile_policy(policy_set()).apps) == {"a", "b"}
    assert prod.version == compile_policy(policy_set(), "prod").version
    assert len(prod.version) == 12 and int(prod.version, 16) >= 0  # the x-ghat-policy header's width


def test_a_set_with_errors_is_not_compiled() -> None:
    with pytest.raises(PolicyError) as exc:
        compile_policy(policy_set(SRC + "app c { env prod  models outer  providers pa }\n"))
    assert any(d.rule == "routing/excluded-target" for d in exc.value.diagnostics)


def test_when_combinations_are_merged_once() -> None:
    app_a = 'app a { env prod  models outer  max_tokens 10  when operation == "x" { max_tokens 20 } }'
    src = SRC.replace("app a { env prod  models outer, mix }", app_a)
    app = compile_policy(policy_set(src), "prod").apps["a"]
    assert app.base.cap is not None and app.base.cap.limit == 10
    eff = app.effective((0,))
    assert eff.cap is not None and eff.cap.limit == 20 and app.effective((0,)) is eff


def test_the_first_blocking_rule_in_declared_order_refuses_shadow_rules_or_not() -> None:
    """Found by the differential test: a shadow rule on a detector does not move that detector's block earlier."""
    from engine.decision import Deny
    from engine.request import EvalContext, GatewayRequest, TextField
    from engine.testing import evaluate_sync

    src = """
provider p { kind mock }
model p/m { price in 0 out 0 per 1M }
detector digits pattern /[0-9]{4}/
detector word pattern /secret[a-z]*/
app a {
  env prod; models p/m; max_tokens 10; rate_limit 100/min
  input { digits detect shadow; word block; digits block }
}
"""
    policy = compile_policy(policy_set(src), "prod")
    assert [r.name for r in policy.apps["a"].input.rules] == ["digits", "word", "digits"]  # one rule each
    d = evaluate_sync(policy, GatewayRequest("chat", "p/m", (TextField("user", "1234 secret"),)), EvalContext("a"))
    assert isinstance(d, Deny) and d.code == "guardrail_word_blocked" and d.span is not None and d.span.line == 8
