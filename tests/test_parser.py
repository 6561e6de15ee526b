"""The parser: every construct reaches the typed AST, and mistakes become diagnostics."""

from __future__ import annotations

from dsl import ast
from dsl.parser import parse_text

FULL = """
provider openai {
  kind     openai
  base_url "https://api.openai.com/v1"
  api_key  env.OPENAI_API_KEY
  timeout  30s
}
provider local { kind mock }
model openai/gpt-4o { price in 2.50 out 10.00 cached 1.25 per 1M  context 128k }
model openai/embed-3 { kind embedding; price in 0.02 per 1M }
model local/echo
alias smart {
  route    openai/gpt-4o timeout 20s retries 2
  fallback local/echo
}
alias cheap { split { openai/gpt-4o weight 80; local/echo weight 20 timeout 500ms } }
detector ticket-id pattern /TICKET-[0-9]{6}/ type ticket
app support {
  env        prod
  models     smart, cheap
  providers  openai, local
  max_tokens 1024 reject
  rate_limit 600/min per key
  timeout    45s
  input {
    pii redact types email, iban; secrets block shadow
    topics ["legal advice", "medical diagnosis"] block message "no {{ topic }}"
    message "blocked"
  }
  output { groundedness detect threshold 0.6 }
  when operation == "bulk" and not (model in ["cheap"] or endpoint != "chat") { max_tokens 4096 }
  test "t" {
    request { model "smart"; user "hi"; max_tokens 10; metadata { operation "bulk" } }
    expect allow; expect forwarded not contains "x"; expect deny guardrail_pii_blocked
    expect route openai/gpt-4o; expect fired pii; expect max_tokens 10
  }
}
"""


def parse_ok(text: str) -> ast.PolicyFile:
    pf, diags = parse_text(text, "t.policy")
    assert diags == [], diags
    return pf


def test_every_construct_reaches_the_ast() -> None:
    items = parse_ok(FULL).items
    openai, local, gpt, embed, echo, smart, cheap, ticket, app = items
    assert isinstance(openai, ast.Provider) and openai.api_key_env == "OPENAI_API_KEY"
    assert openai.timeout_s == 30.0 and local == ast.Provider("local", "mock")
    assert isinstance(gpt, ast.Model) and gpt.price == ast.Price(2.5, 10.0, 1.25, 1_000_000)
    assert gpt.context == 128_000 and gpt.provider == "openai" and gpt.upstream_name == "gpt-4o"
    assert isinstance(embed, ast.Model) and embed.kind == "embedding"
    assert echo == ast.Model("local/echo")
    assert isinstance(smart, ast.Alias) and smart.route == ast.Target("openai/gpt-4o", None, 20.0, 2)
    assert smart.fallbacks == (ast.Target("local/echo"),)
    assert isinstance(cheap, ast.Alias)
    assert cheap.split == (ast.Target("openai/gpt-4o", 80.0), ast.Target("local/echo", 20.0, 0.5))
    assert ticket == ast.CustomDetector("ticket-id", "TICKET-[0-9]{6}", "ticket")
    assert isinstance(app, ast.App)
    assert app.settings.max_tokens == ast.MaxTokens(1024, "reject")
    assert app.settings.rate_limit == ast.RateLimit(600, 60.0, "key", "600/min")
    assert app.settings.timeout_s == 45.0 and app.providers == ("openai", "local")
    assert app.input is not None and app.input.message == "blocked"
    pii, secrets, topics = app.input.guards
    assert pii.types == ("email", "iban") and secrets.shadow and secrets.action == "block"
    assert topics.topics == ("legal advice", "medical diagnosis") and topics.message == "no {{ topic }}"
    assert app.output is not None and app.output.guards[0].threshold == 0.6
    cond = app.whens[0].condition
    assert isinstance(cond, ast.And) and isinstance(cond.operands[1], ast.Not)
    (case,) = app.tests
    assert case.request.get("model") == "smart" and case.request.metadata == (("operation", "bulk"),)
    kinds = [e.kind for e in case.expectations]
    assert kinds == ["allow", "forwarded", "deny", "route", "fired", "max_tokens"]
    assert case.expectations[1].negated and case.expectations[5].value == "10"


def test_spans_point_at_the_source() -> None:
    app = parse_ok(FULL).items[-1]
    assert isinstance(app, ast.App)
    assert (app.span.file, app.span.line, app.span.col) == ("t.policy", 18, 1)
    assert app.input is not None and app.input.guards[2].span.line == 27


def test_equality_ignores_layout() -> None:
    a = parse_ok("provider local { kind mock }\nmodel local/echo\n")
    b = parse_ok("provider local {\n  kind mock\n}\n\n\nmodel   local/echo")
    assert a.items == b.items


def test_every_broken_item_is_reported_in_one_run() -> None:
    text = "app a {\n  env prod\n  max_tokens: 12\n}\napp b {\n  models x y z = 1\n}\napp c { env dev }\n"
    pf, diags = parse_text(text, "b.policy")
    assert [(d.span.line, d.code) for d in diags] == [(3, "E007"), (6, "E001")]
    assert [i.name for i in pf.items if isinstance(i, ast.App)] == ["c"]
    assert diags[0].help and "max_tokens 1024" in diags[0].help


def test_bad_values_are_diagnostics_with_help() -> None:
    _, diags = parse_text("app a { timeout 20 ; rate_limit 5/fortnight; max_tokens 10.5 }", "v.policy")
    assert [d.code for d in diags] == ["E010"] * 3
    assert all(d.help for d in diags)


def test_unclosed_block_and_strings() -> None:
    _, diags = parse_text("app a {\n  env prod\n", "u.policy")
    assert diags[0].code == "E002" and diags[0].help == "add the missing '}'"
    _, diags = parse_text('app a { input { message "oops\n} }', "s.policy")
    assert diags[0].message == "unterminated string"


def test_binary_and_huge_input_are_refused_cleanly() -> None:
    _, diags = parse_text("app \x00", "x.policy")
    assert diags[0].code == "E004"
