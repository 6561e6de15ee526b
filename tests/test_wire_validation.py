"""The JSON boundary, provider reply checks and usage counts as properties, without sockets.

`loads` lets in only interoperable JSON (the server's and the adapters' one
door); `check_completion` / `check_chunk` either pass a reply through
untouched or raise `upstream_error`, never anything else; `reported_usage`
never raises and marks usage `untrusted` exactly when a count is not a count.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.http import MAX_RETRY_AFTER_S, parse_retry_after
from adapters.jsonwire import INT64_MAX, INT64_MIN, dumps, loads
from adapters.replies import check_chunk, check_completion, check_embeddings
from engine.ports import ProviderError
from engine.usage import MAX_TOKENS_REPORTED, reported_usage, token_count

_clean_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
_clean = st.recursive(
    st.none() | st.booleans() | st.integers(INT64_MIN, INT64_MAX) | st.floats(allow_nan=False, allow_infinity=False)
    | _clean_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_clean_text, inner, max_size=4), max_leaves=15,
)  # fmt: skip


@given(_clean)
def test_interoperable_json_round_trips(value: Any) -> None:
    assert loads(dumps(value)) == value
    assert loads(json.dumps(value, ensure_ascii=True)) == value


@given(st.integers(0xD800, 0xDFFF), _clean_text)
def test_a_lone_surrogate_escape_is_refused(code: int, around: str) -> None:
    text = json.dumps({"t": around + chr(code) + around}, ensure_ascii=True)
    with pytest.raises(ValueError, match="surrogate"):
        loads(text.encode())


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400", "-1e999", str(INT64_MAX + 1),
                                     str(INT64_MIN - 1), str(10**40)])  # fmt: skip
def test_numbers_json_cannot_carry_are_refused(literal: str) -> None:
    with pytest.raises(ValueError):
        loads(f'{{"n": [1, {literal}]}}'.encode())


def test_long_digit_runs_in_strings_are_not_numbers() -> None:
    assert loads(b'{"card": "41111111111111111111111"}') == {"card": "41111111111111111111111"}


_any_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(
        ["choices", "index", "message", "delta", "content", "role", "tool_calls", "function", "name", "arguments",
         "usage", "finish_reason", "data", "embedding", "id", "model", "text"]), inner, max_size=5),
    max_leaves=20,
)  # fmt: skip


@given(_any_json)
def test_reply_checks_raise_only_upstream_error(reply: Any) -> None:
    if not isinstance(reply, dict):
        return
    for check in (check_completion, check_chunk, check_embeddings):
        try:
            assert check("p", reply) is reply
        except ProviderError as err:
            assert err.code == "upstream_error" and err.status == 502 and not err.retryable


@given(st.dictionaries(st.sampled_from(["prompt_tokens", "completion_tokens"]), _any_json, max_size=2),
       st.one_of(st.none(), _any_json))
def test_usage_never_raises_and_is_untrusted_exactly_when_a_count_is_bad(usage: dict[str, Any], details: Any) -> None:
    bad = any(token_count(v) is None for v in usage.values()) or (
        details is not None and token_count(details) is None)
    if details is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": details}
    u = reported_usage({"usage": usage})
    assert u is not None
    assert (u.source == "untrusted") == bad
    for n in (u.prompt_tokens, u.completion_tokens, u.cached_tokens, u.reasoning_tokens):
        assert 0 <= n <= MAX_TOKENS_REPORTED


@pytest.mark.parametrize("value", ["abc", 1e30, -1, 2**31, True, 1.5, [], {}])
def test_values_that_are_not_counts(value: Any) -> None:
    assert token_count(value) is None


@given(st.text(max_size=40) | st.floats().map(str) | st.integers().map(str))
def test_retry_after_is_always_bounded(value: str) -> None:
    got = parse_retry_after(value)
    assert got is None or (math.isfinite(got) and 0.0 <= got <= MAX_RETRY_AFTER_S)


@pytest.mark.parametrize("arguments", ['{"a": "\\ud800"}', "[1, 2]", "NaN", '{"n": 1e400}'])
def test_tool_arguments_translated_for_anthropic_carry_nothing_unsendable(arguments: str) -> None:
    from adapters.anthropic import to_messages

    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": arguments}}
    out = to_messages({"model": "m", "messages": [{"role": "assistant", "content": None, "tool_calls": [call]}]})
    block = out["messages"][0]["content"][0]
    assert block["type"] == "tool_use" and block["input"] == {}
    dumps(out).decode("utf-8")  # orjson writes it: no lone surrogate, no NaN
