"""Hypothesis strategies for what a hostile client or provider can put into a request's log record (P14).

- `hostile_text()`: text with lone surrogates, NUL, control characters, non-BMP characters, very long runs;
- `hostile_number()`: counts a provider could report — huge ints, 1e30, NaN, ±inf, negatives, fractions,
  booleans, digit strings, words, null, containers;
- `hostile_records()`: whole `LogRecord`s whose every field may be any of those (including the wrong type);
- `usage_json()`: the raw JSON text of a provider's `usage` object, non-standard literals included
  (`NaN`, `Infinity`, `1e400`, 400-digit integers), for the fake upstream's `usage` fault;
- `header_ids()`: `x-request-id` values a client can send (any visible latin-1, up to a few KB).
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from engine.records import AttemptRecord, GuardrailRecord, LogRecord

_NASTY_CHARS = st.sampled_from(["\ud800", "\udfff", "\x00", "\x1b", "\u2028", "\ufeff", "\U0001f600", "é", "\\", '"'])


def hostile_text(max_size: int = 40) -> st.SearchStrategy[str]:
    """Any text, biased to what cannot be encoded or stored as it is."""
    return st.one_of(
        st.text(st.one_of(st.characters(), _NASTY_CHARS), max_size=max_size),
        st.builds(lambda c, n: c * n, _NASTY_CHARS, st.sampled_from([1, 2, 1100, 3000])),
        st.just("\ud800"),
    )


def hostile_number() -> st.SearchStrategy[Any]:
    """A value where a count or an amount belongs, as a hostile provider or a bug could make it."""
    return st.one_of(
        st.integers(min_value=-(10**40), max_value=10**40),
        st.integers(min_value=0, max_value=1000),
        st.just(10**400),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from([1e30, -1.0, 0.5, float("nan"), float("inf"), float("-inf"), True, False, None]),
        st.sampled_from(["abc", "12", "", "1e30", "NaN"]),
        st.just([1, 2]),
        st.just({"n": 1}),
    )


def _any_value() -> st.SearchStrategy[Any]:
    return st.one_of(hostile_text(), hostile_number())


@st.composite
def hostile_records(draw: st.DrawFn) -> LogRecord:
    """A record whose fields may hold anything: the writer must store it (P14)."""

    def text_or_any(optional: bool = True) -> Any:
        base = st.one_of(hostile_text(), st.text(max_size=20))
        choices = [base, base, _any_value()]
        if optional:
            choices.append(st.none())
        return draw(st.one_of(*choices))

    attempts = draw(st.lists(st.one_of(
        st.builds(AttemptRecord, hostile_text(), hostile_text(), hostile_number(), st.none() | hostile_text(),
                  hostile_number()),
        _any_value(),
    ), max_size=3))  # fmt: skip
    guardrails = draw(st.lists(st.one_of(
        st.builds(GuardrailRecord, hostile_text(), hostile_text(), hostile_text(), hostile_number(),
                  hostile_text(), st.one_of(st.booleans(), hostile_number())),
        _any_value(),
    ), max_size=3))  # fmt: skip
    mapping = st.dictionaries(st.one_of(hostile_text(10), st.integers()), _any_value(), max_size=6)
    return LogRecord(
        request_id=draw(st.one_of(st.uuids().map(lambda u: u.hex), hostile_text(), st.just(""))),
        time=draw(st.one_of(st.floats(1.7e9, 1.9e9), hostile_number())),
        env=text_or_any(False), app=text_or_any(), key_id=text_or_any(), endpoint=text_or_any(False),
        requested_model=text_or_any(), provider=text_or_any(), upstream_model=text_or_any(),
        stream=draw(st.one_of(st.booleans(), hostile_number())), status=draw(hostile_number()),
        error_code=text_or_any(), policy_version=text_or_any(False),
        metadata=draw(st.one_of(mapping, st.dictionaries(st.sampled_from(["operation", "workspace_id"]),
                                                         hostile_text()), _any_value())),
        attempts=draw(st.one_of(st.just(tuple(attempts)), st.just(attempts), _any_value())),
        guardrails=tuple(guardrails),
        prompt_tokens=draw(hostile_number()), completion_tokens=draw(hostile_number()),
        cached_tokens=draw(hostile_number()), reasoning_tokens=draw(hostile_number()),
        usage_source=text_or_any(False), cost_usd=draw(hostile_number()),
        timings_ms=draw(st.one_of(st.dictionaries(hostile_text(10), hostile_number(), max_size=8), _any_value())),
        captured=draw(st.one_of(st.none(), mapping)), max_tokens=draw(st.one_of(st.none(), hostile_number())),
        client_request_id=text_or_any(), usage_trusted=draw(st.one_of(st.booleans(), hostile_number())),
        sanitized=draw(st.one_of(st.just({}), mapping)),
    )  # fmt: skip


def _number_json() -> st.SearchStrategy[str]:
    return st.one_of(
        hostile_number().map(lambda v: json.dumps(v)),  # NaN, Infinity, -Infinity, big ints as Python writes them
        st.sampled_from(["1e400", "-1e400", "1e30", "9" * 400, "-0", "0.0", "1E2"]),
    )


@st.composite
def usage_json(draw: st.DrawFn) -> str:
    """The raw text of a provider's `usage` member: usually an object of hostile counts, sometimes not one."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from(['"nonsense"', "null", "[]", "7", "NaN", '{"prompt_tokens": {"x": 1}}']))
    fields = draw(st.lists(st.sampled_from(["prompt_tokens", "completion_tokens", "total_tokens"]),
                           unique=True, min_size=1))  # fmt: skip
    parts = [f'"{f}": {draw(_number_json())}' for f in fields]
    if draw(st.booleans()):
        parts.append(f'"prompt_tokens_details": {{"cached_tokens": {draw(_number_json())}}}')
    if draw(st.booleans()):
        parts.append(f'"completion_tokens_details": {{"reasoning_tokens": {draw(_number_json())}}}')
    return "{" + ", ".join(parts) + "}"


def header_ids() -> st.SearchStrategy[str]:
    """An `x-request-id` a client can send: visible latin-1 (no CR, LF or NUL), short or several KB."""
    visible = st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f")
    return st.one_of(
        st.text(visible, min_size=1, max_size=80).map(str.strip).filter(bool),
        st.sampled_from(["same-id", "trace-123", "x" * 300, "ü" * 2000]),
    )
