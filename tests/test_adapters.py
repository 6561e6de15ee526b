"""Wire translation and failure mapping of each adapter, over real sockets where the wire matters."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from email.utils import formatdate

import pytest

from adapters.anthropic import AnthropicProvider, from_message, to_messages
from adapters.http import iter_sse, parse_retry_after
from adapters.mock import MockProvider, count_tokens
from adapters.openai import OpenAIProvider
from adapters.registry import build_providers, close_providers
from dsl import ast
from engine.decision import Candidate
from engine.ports import JSON, ProviderError
from tests.canned_upstream import CannedServer, Reply, sse_reply
from tests.fixtures_upstream import FakeUpstream

pytestmark = pytest.mark.anyio
C = Candidate("p/m", "p", "m", 5.0, 0, ())
BODY: JSON = {"model": "m", "messages": [{"role": "system", "content": "be brief"},
                                         {"role": "user", "content": "hello there"}]}


async def _lines(text: str) -> AsyncIterator[str]:
    for line in text.splitlines(keepends=True):
        yield line


async def test_sse_parser_handles_comments_multiline_data_crlf_and_a_cut_tail() -> None:
    raw = ": hi\r\n\r\nevent: delta\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\ndata:x\n\nid: 3\nretry: 9\n\ndata: cut"
    got = [ev async for ev in iter_sse(_lines(raw))]
    assert got == [("delta", '{"a":\n1}'), ("message", "x")]


def test_retry_after_in_seconds_or_http_date() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(formatdate(1000.0 + 30, usegmt=True), now=1000.0) == pytest.approx(30.0)
    assert parse_retry_after("-5") == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


# ── OpenAI wire, against the fake upstream ───────────────────────────────
@pytest.fixture
async def openai(fake_upstream: FakeUpstream) -> AsyncIterator[OpenAIProvider]:
    p = OpenAIProvider("up", fake_upstream.url, "sk-secret", {"x-team": "core"})
    yield p
    await p.aclose()


async def test_openai_chat_passes_the_body_through_with_bearer_auth(
    openai: OpenAIProvider, fake_upstream: FakeUpstream
) -> None:
    res = await openai.chat({**BODY, "seed": 7, "logprobs": True}, C, 5.0)
    assert res["choices"][0]["message"]["content"] == "fake: hello there"
    req = fake_upstream.requests()[0]
    assert req["headers"]["authorization"] == "Bearer sk-secret" and req["headers"]["x-team"] == "core"
    assert req["body"] == {**BODY, "seed": 7, "logprobs": True}


async def test_openai_stream_asks_for_usage_and_yields_chunks(
    openai: OpenAIProvider, fake_upstream: FakeUpstream
) -> None:
    chunks = [c async for c in openai.chat_stream({**BODY, "stream": True}, C, 5.0)]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == "fake: hello there"
    assert chunks[-1]["usage"]["completion_tokens"] == 3
    assert fake_upstream.requests()[0]["body"]["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(
    ("fault", "code", "status", "retryable"),
    [
        ({"kind": "status", "status": 429, "retry_after": "7"}, "route_unavailable", 503, True),
        ({"kind": "status", "status": 500}, "route_unavailable", 503, True),
        ({"kind": "status", "status": 408}, "route_unavailable", 503, True),
        ({"kind": "status", "status": 400, "message": "bad temperature"}, "invalid_request", 400, False),
        ({"kind": "status", "status": 401}, "upstream_error", 502, False),
        ({"kind": "reset"}, "route_unavailable", 503, True),
        ({"kind": "malformed"}, "upstream_malformed", 502, True),
    ],
)
async def test_openai_failures_map_to_our_codes(
    openai: OpenAIProvider, fake_upstream: FakeUpstream, fault: JSON, code: str, status: int, retryable: bool
) -> None:
    kind = fault.pop("kind")
    fake_upstream.fault(kind, **fault)
    for stream in (False, True):
        with pytest.raises(ProviderError) as info:
            if stream:
                async for _ in openai.chat_stream({**BODY, "stream": True}, C, 5.0):
                    pass
            else:
                await openai.chat(BODY, C, 5.0)
        e = info.value
        assert (e.code, e.retryable) == (code, retryable)
        if kind == "status":
            assert e.status == status and e.upstream_status == fault["status"]
            assert "sk-secret" not in e.message
    if fault.get("retry_after"):
        assert e.retry_after == 7.0
    if fault.get("message"):
        assert "bad temperature" in e.message


async def test_openai_stream_cut_mid_way_raises_after_the_chunks_it_got(
    openai: OpenAIProvider, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.fault("cut", after_chunks=3)
    got = []
    with pytest.raises(ProviderError) as info:
        async for c in openai.chat_stream({**BODY, "stream": True}, C, 5.0):
            got.append(c)
    assert len(got) == 2 and info.value.code == "upstream_stream_interrupted" and info.value.retryable


async def test_openai_timeout_is_retryable(openai: OpenAIProvider, fake_upstream: FakeUpstream) -> None:
    fake_upstream.fault("delay", delay_s=3)
    with pytest.raises(ProviderError) as info:
        await openai.chat(BODY, C, 0.2)
    assert info.value.code == "request_timeout" and info.value.retryable


async def test_azure_style_key_header_and_query_ride_on_every_request(fake_upstream: FakeUpstream) -> None:
    p = OpenAIProvider("az", fake_upstream.url + "?api-version=2024-06-01", "k", {"api-key": "az-key"})
    try:
        await p.chat(BODY, C, 5.0)
    finally:
        await p.aclose()
    req = fake_upstream.requests()[0]
    assert req["headers"]["api-key"] == "az-key" and "authorization" not in req["headers"]


# ── Anthropic ────────────────────────────────────────────────────────────
def test_to_messages_moves_system_defaults_max_tokens_and_translates_tools() -> None:
    body = {
        "model": "claude", "stop": "END", "user": "u1",
        "messages": [
            {"role": "system", "content": "rule one"}, {"role": "developer", "content": "rule two"},
            {"role": "user", "content": [{"type": "text", "text": "weather?"}]},
            {"role": "assistant", "content": None,
             "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "wx", "arguments": '{"c":"Oslo"}'}}]},
            {"role": "tool", "tool_call_id": "t1", "content": "rain"},
            {"role": "user", "content": "and tomorrow?"},
        ],
        "tools": [{"type": "function", "function": {"name": "wx", "parameters": {"type": "object"}}}],
        "tool_choice": "required",
    }
    out = to_messages(body)
    assert out["system"] == "rule one\n\nrule two" and out["max_tokens"] == 4096
    assert out["stop_sequences"] == ["END"] and out["metadata"] == {"user_id": "u1"}
    assert [t["role"] for t in out["messages"]] == ["user", "assistant", "user"]
    assert out["messages"][1]["content"] == [{"type": "tool_use", "id": "t1", "name": "wx", "input": {"c": "Oslo"}}]
    assert out["messages"][2]["content"][0] == {"type": "tool_result", "tool_use_id": "t1", "content": "rain"}
    assert out["tools"][0]["input_schema"] == {"type": "object"} and out["tool_choice"] == {"type": "any"}
    assert to_messages({**body, "max_tokens": 50})["max_tokens"] == 50


def test_from_message_maps_stop_reasons_tool_use_and_cached_usage() -> None:
    res = from_message({
        "id": "msg_1", "type": "message", "model": "claude", "stop_reason": "tool_use",
        "content": [{"type": "text", "text": "checking"}, {"type": "tool_use", "id": "t", "name": "wx", "input": {}}],
        "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 90,
                  "cache_creation_input_tokens": 0},
    })
    choice = res["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] == "checking"
    assert choice["message"]["tool_calls"][0]["function"] == {"name": "wx", "arguments": "{}"}
    assert res["usage"] == {"prompt_tokens": 100, "completion_tokens": 5, "total_tokens": 105,
                            "prompt_tokens_details": {"cached_tokens": 90}}


async def test_anthropic_over_the_wire_plain_and_streaming(fake_upstream: FakeUpstream) -> None:
    p = AnthropicProvider("an", fake_upstream.url, "ak-secret")
    try:
        res = await p.chat(BODY, C, 5.0)
        chunks = [c async for c in p.chat_stream({**BODY, "stream": True}, C, 5.0)]
    finally:
        await p.aclose()
    assert res["choices"][0]["message"]["content"] == "fake: hello there"
    assert res["choices"][0]["finish_reason"] == "stop"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text.strip() == "fake: hello there"
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
    assert chunks[-1]["usage"]["completion_tokens"] == 3 and chunks[-1]["usage"]["prompt_tokens"] == 4
    req = fake_upstream.requests()[0]
    assert req["path"] == "/v1/messages" and req["headers"]["x-api-key"] == "ak-secret"
    assert req["headers"]["anthropic-version"] and req["body"]["system"] == "be brief"


def _sse(events: list[tuple[str, JSON]]) -> bytes:
    return b"".join(f"event: {n}\ndata: {json.dumps(d)}\n\n".encode() for n, d in events)


async def test_anthropic_stream_tool_calls_and_overload_error() -> None:
    events: list[tuple[str, JSON]] = [
        ("message_start", {"type": "message_start",
                           "message": {"id": "m", "model": "c", "usage": {"input_tokens": 4}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "tool_use", "id": "t1", "name": "wx", "input": {}}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "input_json_delta", "partial_json": '{"c":'}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "input_json_delta", "partial_json": '"Oslo"}'}}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use"},
                           "usage": {"output_tokens": 9}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    bodies = [_sse(events), _sse([*events[:2], ("error", {"type": "error", "error": {"type": "overloaded_error"}})])]
    server = await CannedServer([Reply(sse_reply([b])) for b in bodies]).start()
    p = AnthropicProvider("an", server.url, "k")
    try:
        chunks = [c async for c in p.chat_stream({**BODY, "stream": True}, C, 5.0)]
        with pytest.raises(ProviderError) as info:
            async for _ in p.chat_stream({**BODY, "stream": True}, C, 5.0):
                pass
    finally:
        await p.aclose()
        await server.close()
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    calls = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    assert calls[0]["id"] == "t1" and "".join(c["function"]["arguments"] for c in calls) == '{"c":"Oslo"}'
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"]["completion_tokens"] == 9
    assert info.value.retryable
    assert server.connections == 1  # the body's end was read at message_stop: the second stream reused it


# ── mock and registry ────────────────────────────────────────────────────
async def test_mock_is_deterministic_and_counts_usage_honestly() -> None:
    m = MockProvider("local")
    a, b = await m.chat(BODY, C, None), await m.chat(BODY, C, None)
    assert a == b and a["choices"][0]["message"]["content"] == "echo: hello there"
    assert a["usage"]["prompt_tokens"] == count_tokens("be brief") + count_tokens("hello there")
    chunks = [c async for c in m.chat_stream(BODY, C, None)]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == "echo: hello there"
    assert chunks[-1]["usage"] == a["usage"]
    capped = await m.chat({**BODY, "max_tokens": 2}, C, None)
    assert capped["choices"][0]["finish_reason"] == "length" and capped["usage"]["completion_tokens"] <= 2


async def test_mock_embeddings_are_unit_vectors_equal_for_equal_inputs() -> None:
    m = MockProvider("local")
    res = await m.embeddings({"model": "e", "input": ["a", "b", "a"]}, C, None)
    vecs = [d["embedding"] for d in res["data"]]
    assert vecs[0] == vecs[2] and vecs[0] != vecs[1] and len(vecs[0]) == 256
    assert math.isclose(sum(x * x for x in vecs[1]), 1.0)


async def test_build_providers_reads_keys_from_the_environment_once(fake_upstream: FakeUpstream) -> None:
    specs = {
        "up": ast.Provider(name="up", kind="openai", base_url=fake_upstream.url, api_key_env="UP_KEY",
                           headers=(("x-org", "env.UP_ORG"),)),
        "local": ast.Provider(name="local", kind="mock"),
    }
    providers = build_providers(specs, environ={"UP_KEY": "sk-env", "UP_ORG": "org-9"})
    try:
        assert isinstance(providers["local"], MockProvider)
        await providers["up"].chat(BODY, C, 5.0)
    finally:
        await close_providers(providers.values())
    headers = fake_upstream.requests()[0]["headers"]
    assert headers["authorization"] == "Bearer sk-env" and headers["x-org"] == "org-9"
