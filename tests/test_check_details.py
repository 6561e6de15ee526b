"""Checker details the mutation run found unpinned: where a diagnostic points, and what it checks.

Each test names the behaviour a surviving mutant changed without any test
failing (a dropped branch, a flipped comparison, a changed constant).
"""

from __future__ import annotations

import dataclasses

import pytest

from dsl import ast, rules
from dsl.checker import Config, _internal, _located, check_policy_set
from dsl.diagnostics import Diagnostic
from dsl.parser import parse_text
from dsl.template import parse as parse_template

HEAD = "provider p { kind mock }\nmodel p/m { price in 0 out 0 per 1M }\n"


def diagnose(body: str) -> list[Diagnostic]:
    pf, diags = parse_text(HEAD + body, "t.policy")
    assert not diags, diags
    return check_policy_set(ast.PolicySet((pf,)))


def test_types_on_a_detector_without_types_is_an_option_error() -> None:
    out = diagnose("app a { env dev; models p/m; max_tokens 9; rate_limit 5/min\n"
                   "  input { prompt_injection block types email } }")  # fmt: skip
    assert [(d.rule, d.message) for d in out if d.level == "error"] == [
        ("guardrail/unsupported-option", "'prompt_injection' has no types to select"),
    ]  # fmt: skip


def test_a_rules_own_message_template_is_checked() -> None:
    out = diagnose("app a { env dev; models p/m; max_tokens 9; rate_limit 5/min\n"
                   '  input { pii block message "no {{ nope }}" } }')  # fmt: skip
    assert [d.rule for d in out if d.level == "error"] == ["template/unknown-variable"]


def test_raise_on_the_apps_own_limit_is_reported_at_the_limit() -> None:
    out = diagnose("app a {\n  env dev; models p/m; max_tokens 9\n  rate_limit 5/min raise\n}")
    [d] = [d for d in out if d.rule == rules.RAISE_OUTSIDE_WHEN.name]
    assert (d.span.line, d.span.col) == (5, 3)


def test_a_diagnostic_without_a_place_gets_line_and_column_one() -> None:
    empty = rules.GUARD_OPTION.at(ast.Span("f", 0, 0, 0, 0), "m")
    assert _located(empty).span == ast.Span("f", 1, 1, 1, 1)
    half = rules.GUARD_OPTION.at(ast.Span("f", 3, 0, 3, 0), "m")
    assert _located(half).span == ast.Span("f", 3, 1, 3, 1)
    for placed in (rules.GUARD_OPTION.at(ast.Span("f", 2, 4, 2, 9), "m"),
                   rules.GUARD_OPTION.at(ast.Span("f", 1, 1, 1, 1), "m")):  # fmt: skip
        assert _located(placed) is placed


def test_an_internal_error_points_at_the_first_line_of_the_first_file() -> None:
    d = _internal(ast.PolicySet((ast.PolicyFile("a.policy", ()),)), ValueError("x"))
    assert d.span == ast.Span("a.policy", 1, 1, 1, 1) and "ValueError: x" in d.message


def test_message_templates_render_text_not_html() -> None:
    """The engine renders block messages with the checker's environment: an API error is text."""
    assert parse_template("can't {{ x }}").render({"x": "<b>"}) == "can't <b>"


def test_a_config_is_an_immutable_value() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Config().fail_level = "never"  # type: ignore[misc]
