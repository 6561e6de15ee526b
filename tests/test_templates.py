"""Block messages are substitution only: hostile templates are check errors, rendering is bounded.

Each hostile message here was accepted by `ghat check` and run on the request
path: a 300 MB body per blocked request, two nested 99,999-step loops that
hung the gateway, a recursive macro that raised on every render. Now each is
E309 at check time, and no message can render past MAX_RENDERED_CHARS.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dsl.ast import PolicySet
from dsl.catalog import MESSAGE_VARIABLES
from dsl.checker import check_policy_set
from dsl.parser import parse_text
from dsl.template import MAX_RENDERED_CHARS, TemplateError, parse

HOSTILE = {
    "huge_body": '{{ \\"x\\" * 300000000 }}',
    "nested_loops": "{% for i in range(99999) %}{% for j in range(99999) %}x{% endfor %}{% endfor %}",
    "recursive_macro": "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
    "filter": "{{ topic | upper }}",
    "attribute": "{{ topic.__class__ }}",
    "comment": "{# hi #}{{ topic }}",
}


def _policy(message: str) -> str:
    return f"""provider local {{ kind mock }}
model local/echo {{ price in 0 out 0 per 1M }}
app chat {{
  env dev; models local/echo; max_tokens 1024; rate_limit 60/min
  input {{ topics ["legal advice"] block; message "{message}" }}
}}
"""


def _codes(message: str) -> list[str]:
    policy_file, parse_diags = parse_text(_policy(message), "t.policy")
    diags = check_policy_set(PolicySet((policy_file,)), parse_diagnostics=parse_diags)
    return [d.code for d in diags if d.level == "error"]


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_messages_are_check_errors(name: str) -> None:
    assert _codes(HOSTILE[name]) == ["E309"]


def test_plain_substitution_is_clean() -> None:
    assert _codes("Sorry, {{ app }} cannot help with {{topic}}.") == []


@pytest.mark.parametrize("message, code", [("No {{ topic , sorry.", "E308"), ("{{ }}", "E308"),
                                           ("No {{ subject }}", "E307")])  # fmt: skip
def test_broken_messages_keep_their_codes(message: str, code: str) -> None:
    assert _codes(message) == [code]


@given(st.text(max_size=200))
def test_parse_either_succeeds_or_says_why(source: str) -> None:
    try:
        t = parse(source)
    except TemplateError as exc:
        assert exc.problem in ("syntax", "not-substitution") and exc.message
        return
    assert t.render({}) == "".join(t.pieces[0::2])  # no values: the literal text (200 chars is below the cap)


@given(st.lists(st.sampled_from(MESSAGE_VARIABLES), min_size=1, max_size=400),
       st.dictionaries(st.sampled_from(MESSAGE_VARIABLES), st.text(max_size=5000)))
def test_rendering_is_bounded_whatever_the_values(names: list[str], values: dict[str, str]) -> None:
    t = parse(" ".join("{{ " + n + " }}" for n in names))
    assert len(t.render(values)) <= MAX_RENDERED_CHARS


def test_rendering_substitutes_and_leaves_other_braces_alone() -> None:
    t = parse("No {{topic}} for {{ app }}; {single} braces and }} stay.")
    want = "No legal advice for chat; {single} braces and }} stay."
    assert t.render({"topic": "legal advice", "app": "chat"}) == want
