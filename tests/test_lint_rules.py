"""The new lint rules' decisions, case by case: which rules cover or overlap, which patterns match
everything or nothing, which envs read as typos, which fallbacks can never help."""

from __future__ import annotations

from collections import Counter

import pytest
import re2
from hypothesis import given, settings
from hypothesis import strategies as st

from dsl import ast
from dsl.lint import _near_env, edit_distance, lint
from dsl.overlap import DEFAULT_THRESHOLDS, covers, overlaps, reach
from dsl.parser import parse_text
from dsl.patterns import matches_everything, never_matches
from engine.detectors import groundedness, injection


def _guard(text: str) -> ast.Guard:
    pf, diags = parse_text(f"app a {{ env dev; input {{ {text} }} }}\n")
    assert diags == []
    app = pf.items[0]
    assert isinstance(app, ast.App) and app.input is not None
    return app.input.guards[0]


@pytest.mark.parametrize(
    ("a", "b", "a_covers_b", "they_overlap"),
    [
        ("pii block", "pii redact types email", True, True),
        ("pii block types email", "pii redact", False, True),
        ("pii block types credit_card", "pii redact types email, phone", False, False),
        ("pii block types person", "pii redact", False, False),  # person is not a default type
        ('topics ["Legal advice"] block', 'topics ["legal advice", "weather"] detect', False, True),
        ('topics ["legal advice"] block', 'topics ["weather"] detect', False, False),
        ("prompt_injection block threshold 0.9", "prompt_injection detect threshold 0.5", False, True),
        ("prompt_injection detect threshold 0.5", "prompt_injection block threshold 0.9", True, True),
        ("prompt_injection detect", "prompt_injection block threshold 0.7", True, True),  # default 0.5
        ("prompt_injection detect", "prompt_injection block model", False, True),  # the model finds more
        ("groundedness block threshold 0.8", "groundedness detect threshold 0.6", True, True),
        ("groundedness block threshold 0.5", "groundedness detect", False, True),  # default 0.6
        ("output_safety block categories hate", "output_safety detect", False, True),
        ("secrets block", "pii block", False, False),
    ],
)
def test_cover_and_overlap(a: str, b: str, a_covers_b: bool, they_overlap: bool) -> None:
    ra, rb = reach(_guard(a)), reach(_guard(b))
    assert covers(ra, rb) is a_covers_b
    assert overlaps(ra, rb) is they_overlap and overlaps(rb, ra) is they_overlap


def test_default_thresholds_are_the_engines() -> None:
    assert DEFAULT_THRESHOLDS["prompt_injection"] == injection.DEFAULT_THRESHOLD
    assert DEFAULT_THRESHOLDS["indirect_injection"] == injection.DEFAULT_THRESHOLD
    assert DEFAULT_THRESHOLDS["groundedness"] == groundedness.DEFAULT_THRESHOLD


HEAD = """provider openai { kind openai; api_key env.OPENAI_API_KEY }
provider local { kind mock }
model openai/gpt-4o { price in 2.5 out 10 per 1M }
model openai/gpt-4o-mini { price in 0.15 out 0.6 per 1M }
model local/echo { price in 0 per 1M }
"""


def _found(body: str) -> list[tuple[str, int]]:
    pf, diags = parse_text(HEAD + body, "t.policy")
    assert diags == []
    offset = HEAD.count("\n")
    return [(d.code, d.span.line - offset) for d in lint(ast.PolicySet((pf,)))]


def _app(rules: str, env: str = "dev", models: str = "openai/gpt-4o") -> str:
    return f"app a {{\n  env {env}; models {models}; max_tokens 100; rate_limit 60/min\n  input {{ {rules} }}\n}}\n"


def test_the_weaker_of_two_rules_is_the_one_reported() -> None:
    assert _found(_app("pii block; pii redact types email")) == [("W301", 3)]
    assert _found(_app("pii redact; pii redact")) == [("W301", 3)]  # one report for two equal rules
    assert _found(_app("pii redact restore; pii block types email")) == [("W304", 3)]  # restore still acts
    assert _found(_app('pii block message "a"; pii block message "b"')) == []  # either message may show
    assert _found(_app("pii redact; pii redact shadow")) == []  # a shadow rule decides nothing
    assert _found(_app("prompt_injection detect threshold 0.5; prompt_injection block threshold 0.9")) == [("W304", 3)]


def test_fallbacks_through_splits_and_nested_aliases() -> None:
    body = """alias inner { route openai/gpt-4o-mini; fallback local/echo }
alias ab { split { openai/gpt-4o weight 1; openai/gpt-4o-mini weight 1 }; fallback openai/gpt-4o }
alias both { route inner; fallback openai/gpt-4o }
alias twice { route openai/gpt-4o; fallback openai/gpt-4o-mini; fallback openai/gpt-4o-mini }
app a { env dev; models ab, both, twice; max_tokens 100; rate_limit 60/min }
"""
    # `ab`'s fallback helps when the split chose gpt-4o-mini; after `inner` (ending in the mock) nothing runs.
    assert _found(body) == [("W211", 3), ("W211", 4)]


def test_mock_in_prod_is_reported_once_at_the_target_to_change() -> None:
    body = """alias smart { route openai/gpt-4o; fallback local/echo }
app a { env prod; models smart; max_tokens 100; rate_limit 60/min; input { pii redact } }
app b { env prod-eu; models smart, local/echo; max_tokens 100; rate_limit 60/min; input { pii redact } }
app c { env prod; models smart; providers openai; max_tokens 100; rate_limit 60/min; input { pii redact } }
app d { env dev; models smart; max_tokens 100; rate_limit 60/min }
"""
    assert _found(body) == [("W212", 1), ("W212", 3)]  # c excludes the mock's provider: E206's to report


@pytest.mark.parametrize(
    ("env", "counts", "meant"),
    [
        ("prdo", {"prod": 3, "prdo": 1}, "prod"),
        ("prdo", {"prod": 1, "prdo": 1}, "prod"),
        ("prod", {"prod": 1, "prdo": 1}, None),  # the usual name is not the typo
        ("production", {"prod": 1, "production": 1}, "prod"),
        ("Prod", {"prod": 2, "Prod": 1}, "prod"),
        ("stagng", {"stagng": 1}, "staging"),  # a usual name nobody uses yet
        ("staging", {"staging": 1}, None),
        ("eu-west-2", {"eu-west-1": 1, "eu-west-2": 1}, None),  # regions, not typos
        ("demo", {"demo": 1, "dev": 1}, None),
        ("prod-eu", {"prod-eu": 1, "prod": 1}, None),
    ],
)
def test_env_typos(env: str, counts: dict[str, int], meant: str | None) -> None:
    assert _near_env(env, Counter(counts)) == meant


@given(st.text("abcd", max_size=6), st.text("abcd", max_size=6))
@settings(max_examples=200, deadline=None)
def test_edit_distance_is_a_symmetric_bound(a: str, b: str) -> None:
    d = edit_distance(a, b)
    assert d == edit_distance(b, a) and (d == 0) == (a == b)
    assert abs(len(a) - len(b)) <= d <= max(len(a), len(b))


@pytest.mark.parametrize(
    ("pattern", "everything"),
    [(".+", True), (r"\w+", True), ("[a-z]", True), (r"\S", True), (r"TICKET-\d+", False), (r"\d+", False),
     ("[A-Z]{2,}", False), (r"\w+@\w+\.\w+", False)],
)  # fmt: skip
def test_matches_everything(pattern: str, everything: bool) -> None:
    assert matches_everything(re2.compile(pattern).search) is everything


@pytest.mark.parametrize(
    ("pattern", "nothing"),
    [
        (r"id:$[0-9]+", "no text"),
        (r"a^b", "no text"),
        (r"[^\s\S]", "no text"),
        (r"(x|[^\d\D])$y", "no text"),
        (r"^TICKET-[0-9]{6}$", "anchored at both ends"),
        (r"\ATICKET$", "anchored at both ends"),
        (r"TICKET-[0-9]{6}", None),
        (r"^TICKET", None),
        (r"TICKET$", None),
        (r"(^|\s)#[0-9]+", None),
        (r"(?m)^a$", None),  # multi-line: a line may be the whole match
        (r"a{0,3}^b", None),  # the repeat may be empty
        (r"\pL+", None),  # RE2 syntax Python does not read: no claim
    ],
)
def test_never_matches(pattern: str, nothing: str | None) -> None:
    why = never_matches(pattern)
    assert (why is None) if nothing is None else (why is not None and nothing in why)


@given(st.from_regex(r"[a-c^$|()*?]{1,8}", fullmatch=True))
@settings(max_examples=300, deadline=None)
def test_a_pattern_said_to_match_nothing_matches_no_text(pattern: str) -> None:
    """Soundness: whenever the analysis claims "no text can match", RE2 agrees on every short text."""
    try:
        compiled = re2.compile(pattern)
    except re2.error:
        return
    why = never_matches(pattern)
    if why is None or "no text" not in why:
        return
    texts = ["", "a", "b", "c", "ab", "ba", "abc", "cab", "aa", "a\nb", "xax"]
    assert all(compiled.search(t) is None for t in texts), (pattern, why)


def _output(rules: str) -> str:
    return f"app a {{\n  env dev; models openai/gpt-4o; max_tokens 100; rate_limit 60/min\n  output {{ {rules} }}\n}}\n"


def test_a_whole_text_rule_that_redacts_output_is_noted_as_buffering_streams() -> None:
    assert _found(_output("pii redact; groundedness redact")) == [("W308", 3)]
    assert _found(_output("prompt_injection redact threshold 0.8")) == [("W308", 3)]
    assert _found(_output("groundedness detect; prompt_injection block; pii redact")) == []  # run at the end
    assert _found(_output("groundedness redact shadow")) == []  # shadow changes nothing: the stream flows
    assert _found(_app("prompt_injection redact")) == []  # input is never streamed
    custom = "detector long-id pattern /ID-[0-9]+/\ndetector short-id pattern /ID-[0-9]{6}/\n"
    assert _found(custom + _output("long-id redact; short-id redact")) == [("W308", 5)]


def test_the_catalog_knows_which_builtins_read_the_whole_text() -> None:
    """dsl cannot import engine: the catalog's flag must agree with each built detector's max_span."""
    from dsl.catalog import BUILTINS
    from engine.detectors.registry import build

    for name, spec in BUILTINS.items():
        guard = ast.Guard(name, "detect", topics=("weather",) if name == "topics" else ())
        assert spec.whole_text is (build(guard, {}).max_span is None), name
