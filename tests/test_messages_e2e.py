"""End to end: the official `anthropic` client → `ghat serve` (own process) → mock, OpenAI or Anthropic upstream.

`/v1/messages` is served three ways, all under one policy: natively by the
mock (`echo`), natively by an `anthropic` provider (`claude`, the fake
upstream's Anthropic side: the guarded body goes out as it is) and translated
to an `openai` provider (`gpt`, the fake upstream's chat side: the answer and
its stream come back as Messages). Each test resets the fake upstream.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from tests.fixtures_upstream import FakeUpstream
from tests.gateway_process import Gateway, start_gateway

AWS_KEY = "AKIAZ3MQ7R4TUV2WX9YB"
POLICY = """
provider fake   { kind openai     base_url "__UPSTREAM__"  api_key "sk-fake-upstream" }
provider claude { kind anthropic  base_url "__UPSTREAM__"  api_key "sk-ant-fake-upstream" }
provider local  { kind mock }

model fake/gpt-test       { price in 1 out 2 per 1M }
model claude/claude-test  { price in 3 out 15 per 1M }
model local/echo          { price in 0 out 0 per 1M }

alias gpt    { route fake/gpt-test retries 0 }
alias claude { route claude/claude-test retries 0 }
alias echo   { route local/echo }

detector acme-secret pattern /ACME-[0-9]{8}/ type acme
detector forbidden   pattern /FORBIDDEN-[0-9]{4}/ type forbidden
detector outblock    pattern /OUTBLOCK-[0-9]{4}/ type outblock

app gw-test {
  env        test
  models     gpt, claude, echo
  max_tokens 256
  rate_limit 100000/min
  timeout    20s
  input  { secrets redact; acme-secret redact; forbidden block }
  output { acme-secret redact; outblock block }
}
app gw-limited {
  env        test
  models     echo
  rate_limit 1/min
}
app gw-agent {
  env    test
  models claude, gpt, echo
  input  { secrets redact; pii redact }
  output { secrets redact; pii redact }
}
"""
SESSION = Path(__file__).parent / "data" / "claude_code_session.json"
TOOLS: list[Any] = [{"name": "get_weather", "description": "Weather for a city",
                     "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, fake_upstream_server: FakeUpstream) -> Iterator[Gateway]:
    gw = start_gateway(tmp_path_factory.mktemp("gw"), fake_upstream_server.url, policy=POLICY,
                       apps=("gw-test", "gw-limited", "gw-agent"))
    yield gw
    gw.stop()


@pytest.fixture
def client(gateway: Gateway, fake_upstream: FakeUpstream) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.base, api_key=gateway.keys["gw-test"], max_retries=0, timeout=15)


def _sent(fake: FakeUpstream, path: str) -> dict[str, Any]:
    rows = fake.requests(path)
    assert rows, f"the fake upstream received nothing on {path}"
    body: dict[str, Any] = rows[-1]["body"]
    return body


def _events(*events: dict[str, Any]) -> list[str]:
    return [f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events]


# ── the mock: native, no key ───────────────────────────────────────────


def test_create_plain_and_headers_against_the_mock(client: anthropic.Anthropic) -> None:
    raw = client.messages.with_raw_response.create(model="echo", max_tokens=100, system="be brief",
                                                   messages=[{"role": "user", "content": "hello there"}])
    msg = raw.parse()
    assert msg.content[0].type == "text" and msg.content[0].text == "echo: hello there"
    assert msg.stop_reason == "end_turn" and msg.usage.input_tokens == 4 and msg.usage.output_tokens == 4
    h = raw.headers
    assert (h["x-ghat-app"], h["x-ghat-model"], h["x-ghat-provider"], h["x-ghat-attempts"]) == (
        "gw-test", "local/echo", "local", "1")
    assert "provider;dur=" in h["server-timing"] and len(h["x-ghat-policy"]) >= 8


def test_the_key_is_read_from_x_api_key_and_from_bearer(gateway: Gateway) -> None:
    body = {"model": "echo", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    key = gateway.keys["gw-test"]
    for headers in ({"x-api-key": key}, {"authorization": f"Bearer {key}"}):
        r = httpx.post(f"{gateway.v1}/messages", json=body, headers={**headers, "anthropic-version": "2023-06-01"})
        assert r.status_code == 200, r.text
        assert r.json()["type"] == "message"


def test_stream_against_the_mock_equals_the_plain_answer(client: anthropic.Anthropic) -> None:
    args: dict[str, Any] = {"model": "echo", "max_tokens": 100, "messages": [{"role": "user", "content": "one two"}]}
    plain = client.messages.create(**args)
    kinds = [e.type for e in client.messages.create(**args, stream=True)]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop" and "content_block_delta" in kinds
    with client.messages.stream(**args) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == plain.content[0].text == "echo: one two"  # type: ignore[union-attr]
    assert final.usage.output_tokens == plain.usage.output_tokens and final.usage.input_tokens == 2


def test_tool_use_then_tool_result_against_the_mock(client: anthropic.Anthropic) -> None:
    first = client.messages.create(model="echo", max_tokens=200, tools=TOOLS,
                                   messages=[{"role": "user", "content": "weather in Paris"}])
    assert first.stop_reason == "tool_use"
    call = next(b for b in first.content if b.type == "tool_use")
    assert call.name == "get_weather" and call.input == {"text": "weather in Paris"}
    second = client.messages.create(model="echo", max_tokens=200, tools=TOOLS, messages=[
        {"role": "user", "content": "weather in Paris"},
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},  # type: ignore[misc]
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny, 21C"}]}])
    assert second.stop_reason == "end_turn" and second.content[0].text == "echo: sunny, 21C"  # type: ignore[union-attr]
    with client.messages.stream(model="echo", max_tokens=200, tools=TOOLS,
                                messages=[{"role": "user", "content": "weather in Rome"}]) as stream:
        final = stream.get_final_message()
    streamed = next(b for b in final.content if b.type == "tool_use")
    assert streamed.input == {"text": "weather in Rome"}  # input_json_delta reassembled into valid JSON


def test_count_tokens(client: anthropic.Anthropic, fake_upstream: FakeUpstream) -> None:
    counted = client.messages.count_tokens(model="claude", system="you are terse",
                                           messages=[{"role": "user", "content": "count these four words"}])
    assert counted.input_tokens == 7  # ghat's tokenizer; nothing went upstream
    assert fake_upstream.requests() == []
    with pytest.raises(anthropic.PermissionDeniedError):
        client.messages.count_tokens(model="claude", messages=[{"role": "user", "content": "FORBIDDEN-1234"}])


def test_exception_classes(gateway: Gateway, client: anthropic.Anthropic) -> None:
    msgs: list[Any] = [{"role": "user", "content": "hi"}]
    bad = anthropic.Anthropic(base_url=gateway.base, api_key="ghat_test_nope", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as e401:
        bad.messages.create(model="echo", max_tokens=10, messages=msgs)
    assert e401.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    with pytest.raises(anthropic.PermissionDeniedError) as e403:
        client.messages.create(model="echo", max_tokens=10, messages=[{"role": "user", "content": "FORBIDDEN-1234"}])
    assert e403.value.body["error"]["details"]["error_code"] == "guardrail_forbidden_blocked"  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError) as e400:
        client.messages.create(model="no-such-model", max_tokens=10, messages=msgs)
    assert e400.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(model="echo", max_tokens=0, messages=msgs)
    limited = anthropic.Anthropic(base_url=gateway.base, api_key=gateway.keys["gw-limited"], max_retries=0)
    limited.messages.create(model="echo", max_tokens=10, messages=msgs)
    with pytest.raises(anthropic.RateLimitError) as e429:
        limited.messages.create(model="echo", max_tokens=10, messages=msgs)
    assert int(e429.value.response.headers["retry-after"]) >= 1


def test_output_block_ends_the_stream_with_an_error_event(client: anthropic.Anthropic) -> None:
    msgs: list[Any] = [{"role": "user", "content": "say OUTBLOCK-1234"}]
    with pytest.raises(anthropic.PermissionDeniedError):
        client.messages.create(model="echo", max_tokens=50, messages=msgs)
    with pytest.raises(anthropic.APIStatusError) as exc:
        for _ in client.messages.create(model="echo", max_tokens=50, messages=msgs, stream=True):
            pass
    assert "blocked" in str(exc.value.message)


# ── an Anthropic upstream: native, the guarded body exactly ────────────


def test_native_route_sends_exactly_the_guarded_body(client: anthropic.Anthropic, fake_upstream: FakeUpstream) -> None:
    msg = client.messages.create(
        model="claude", max_tokens=100, extra_body={"temperature": 0.3}, stop_sequences=["END"],
        metadata={"user_id": "u-1"},
        system=[{"type": "text", "text": "internal ACME-87654321", "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": [{"type": "text", "text": f"key {AWS_KEY} please"},
                                               {"type": "image", "source": {"type": "base64",
                                                                            "media_type": "image/png",
                                                                            "data": "iVBORw0KGgo="}}]}],
        extra_headers={"anthropic-beta": "prompt-caching-2024-07-31"})
    row = fake_upstream.requests("/v1/messages")[-1]
    sent = row["body"]
    assert sent == {
        "model": "claude-test", "max_tokens": 100, "temperature": 0.3, "stop_sequences": ["END"],
        "metadata": {"user_id": "u-1"},
        "system": [{"type": "text", "text": "internal [ACME_1]", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "key [AWS_ACCESS_KEY_ID_1] please"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]}]}
    assert row["headers"]["anthropic-beta"] == "prompt-caching-2024-07-31"
    assert row["headers"]["x-api-key"] == "sk-ant-fake-upstream"
    assert msg.content[0].text.startswith("fake: key [AWS_ACCESS_KEY_ID_1]")  # type: ignore[union-attr]


def test_native_thinking_and_signatures_pass_unchanged(client: anthropic.Anthropic,
                                                       fake_upstream: FakeUpstream) -> None:
    answer = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-test",
              "content": [{"type": "thinking", "thinking": "The user wants a greeting.", "signature": "EqQBCkYIARgC"},
                          {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"},
                          {"type": "text", "text": "hello, ref ACME-11112222"}],
              "stop_reason": "end_turn", "stop_sequence": None, "usage": {"input_tokens": 5, "output_tokens": 7}}
    fake_upstream.fault("reply", body=answer, stream=False)
    msg = client.messages.create(model="claude", max_tokens=100, thinking={"type": "enabled", "budget_tokens": 64},
                                 messages=[{"role": "user", "content": "hi"}])
    assert msg.content[0].type == "thinking" and msg.content[0].signature == "EqQBCkYIARgC"
    assert msg.content[1].type == "redacted_thinking" and msg.content[1].data == "EmwKAhgBEgy3va3pzix"
    assert msg.content[2].text == "hello, ref [ACME_1]"  # type: ignore[union-attr]  # output guards still apply
    fake_upstream.reset()
    events = _events(
        {"type": "message_start", "message": {**answer, "content": [], "stop_reason": None,
                                              "usage": {"input_tokens": 5, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "",
                                                                      "signature": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "The user "}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "wants hi."}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "EqQBCkYIARgC"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_1",
                                                                      "name": "get_weather", "input": {}}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta",
                                                              "partial_json": '{"city": "Paris ACME-1'}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta",
                                                              "partial_json": '1112222"}'}},
        {"type": "content_block_stop", "index": 1},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
         "usage": {"output_tokens": 12}},
        {"type": "message_stop"})
    fake_upstream.fault("events", events=events, stream=True)
    with client.messages.stream(model="claude", max_tokens=100, tools=TOOLS,
                                thinking={"type": "enabled", "budget_tokens": 64},
                                messages=[{"role": "user", "content": "hi"}]) as stream:
        final = stream.get_final_message()
    assert final.content[0].type == "thinking" and final.content[0].signature == "EqQBCkYIARgC"
    assert final.content[0].thinking == "The user wants hi."
    tool = final.content[1]
    assert tool.type == "tool_use" and tool.input == {"city": "Paris [ACME_1]"}  # split value redacted, valid JSON
    assert final.usage.output_tokens == 12 and final.stop_reason == "tool_use"


def test_native_upstream_errors_keep_their_class(client: anthropic.Anthropic, fake_upstream: FakeUpstream) -> None:
    fake_upstream.fault("status", status=429, retry_after="3", times=1)
    with pytest.raises(anthropic.RateLimitError) as exc:
        client.messages.create(model="claude", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert exc.value.response.headers.get("x-should-retry") == "false"
    fake_upstream.fault("status", status=400, times=1, message="messages: bad turn order")
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(model="claude", max_tokens=10, messages=[{"role": "user", "content": "hi"}])


# ── an OpenAI upstream: translated both ways ───────────────────────────


def test_translated_plain_stream_and_tool_turn(client: anthropic.Anthropic, fake_upstream: FakeUpstream) -> None:
    msg = client.messages.create(model="gpt", max_tokens=50, system="be brief", stop_sequences=["END"],
                                 messages=[{"role": "user", "content": f"hello {AWS_KEY}"}])
    assert msg.content[0].text == "fake: hello [AWS_ACCESS_KEY_ID_1]"  # type: ignore[union-attr]
    assert msg.stop_reason == "end_turn" and msg.usage.output_tokens == 3
    sent = _sent(fake_upstream, "/v1/chat/completions")
    assert sent["messages"] == [{"role": "system", "content": "be brief"},
                                {"role": "user", "content": "hello [AWS_ACCESS_KEY_ID_1]"}]
    assert sent["max_completion_tokens"] == 50 and sent["stop"] == ["END"] and sent["model"] == "gpt-test"
    with client.messages.stream(model="gpt", max_tokens=50, messages=[{"role": "user", "content": "a b c"}]) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == "fake: a b c" and final.usage.input_tokens == 3 and final.usage.output_tokens == 4
    fake_upstream.reset()
    client.messages.create(model="gpt", max_tokens=50, tools=TOOLS, tool_choice={"type": "any"}, messages=[
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [{"type": "text", "text": "Checking."},
                                          {"type": "tool_use", "id": "call_1", "name": "get_weather",
                                           "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"},
                                     {"type": "text", "text": "and tomorrow?"}]}])
    sent = _sent(fake_upstream, "/v1/chat/completions")
    assert sent["tools"] == [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a "
                              "city", "parameters": TOOLS[0]["input_schema"]}}]  # fmt: skip
    assert sent["tool_choice"] == "required"
    assert sent["messages"][1] == {"role": "assistant", "content": "Checking.", "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]}
    assert sent["messages"][2] == {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}
    assert sent["messages"][3] == {"role": "user", "content": [{"type": "text", "text": "and tomorrow?"}]}


def test_translated_tool_call_answer_and_stream(client: anthropic.Anthropic, fake_upstream: FakeUpstream) -> None:
    call = {"id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}
    fake_upstream.fault("reply", stream=False, body={
        "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "gpt-test",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": None, "tool_calls": [call]},
                     "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}})
    msg = client.messages.create(model="gpt", max_tokens=50, tools=TOOLS, messages=[{"role": "user", "content": "?"}])
    assert msg.stop_reason == "tool_use" and msg.content[0].type == "tool_use"
    assert msg.content[0].input == {"city": "Oslo"} and msg.content[0].id == "call_9"
    fake_upstream.reset()
    base = {"id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 0, "model": "gpt-test"}
    chunks = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [
                  {"index": 0, "id": "call_9", "type": "function",
                   "function": {"name": "get_weather", "arguments": '{"ci'}}]}, "finish_reason": None}]},
              {**base, "choices": [{"index": 0, "delta": {"tool_calls": [
                  {"index": 0, "function": {"arguments": 'ty":"Oslo"}'}}]}, "finish_reason": None}]},
              {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
              {**base, "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}}]
    fake_upstream.fault("reply", stream=True, chunks=chunks)
    with client.messages.stream(model="gpt", max_tokens=50, tools=TOOLS,
                                messages=[{"role": "user", "content": "?"}]) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use" and final.content[0].input == {"city": "Oslo"}  # type: ignore[union-attr]
    assert final.usage.input_tokens == 9 and final.usage.output_tokens == 4


@pytest.mark.parametrize(("extra", "field"), [
    ({"thinking": {"type": "enabled", "budget_tokens": 1024}}, "thinking"),
    ({"extra_body": {"top_k": 5}}, "top_k"),
    ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools[0]"),
])
def test_translation_refuses_what_chat_cannot_honour(client: anthropic.Anthropic, fake_upstream: FakeUpstream,
                                                     extra: dict[str, Any], field: str) -> None:
    with pytest.raises(anthropic.BadRequestError) as exc:
        client.messages.create(model="gpt", max_tokens=50, messages=[{"role": "user", "content": "hi"}], **extra)
    assert f"'{field}'" in exc.value.message
    assert fake_upstream.requests() == []  # refused before anything went out


def test_translation_refuses_an_errored_tool_result(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as exc:
        client.messages.create(model="gpt", max_tokens=50, messages=[
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "boom",
                                          "is_error": True}]}])
    assert "messages[2].content[0].is_error" in exc.value.message


# ── a coding agent's session (recorded in Claude Code's shape) ─────────


def _sse(body: bytes) -> list[dict[str, Any]]:
    out = []
    for piece in body.split(b"\n\n"):
        lines = dict(line.split(b": ", 1) for line in piece.split(b"\n") if b": " in line)
        if b"data" in lines:
            out.append(json.loads(lines[b"data"]))
    return out


def test_a_claude_code_session_goes_through_unchanged_but_for_what_policy_redacts(
        gateway: Gateway, fake_upstream: FakeUpstream) -> None:
    """System blocks with cache_control, tools, thinking with signatures, tool_use/tool_result turns, streaming:
    the upstream receives each body exactly as the agent sent it, but for the secret in a tool result."""
    session = json.loads(SESSION.read_text())
    secret = session["secret"]
    headers = {**session["headers"], "x-api-key": gateway.keys["gw-agent"]}
    for n, body in enumerate(session["requests"]):
        fake_upstream.reset()
        r = httpx.post(f"{gateway.v1}/messages", json=body, headers=headers, timeout=15)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "text/event-stream" and r.headers["x-ghat-provider"] == "claude"
        events = _sse(r.content)
        assert events[0]["type"] == "message_start" and events[-1]["type"] == "message_stop"
        row = fake_upstream.requests("/v1/messages")[-1]
        expected = json.loads(json.dumps({**body, "model": "claude-test"}).replace(secret, "[AWS_ACCESS_KEY_ID_1]"))
        assert row["body"] == expected, f"request {n}"
        assert secret not in json.dumps(row["body"])
        assert row["headers"]["anthropic-beta"] == session["headers"]["anthropic-beta"]
        assert not any(h.startswith("x-ghat") for h in row["headers"])
        assert r.headers["x-ghat-guardrails"] == ("secrets" if secret in json.dumps(body) else "")


# ── chat through the anthropic provider: no silent drops ───────────────


@pytest.mark.parametrize(("extra", "field"), [
    ({"n": 2}, "n"),
    ({"response_format": {"type": "json_object"}}, "response_format"),
    ({"logprobs": True}, "logprobs"),
])
def test_chat_to_an_anthropic_provider_refuses_what_it_would_drop(gateway: Gateway, fake_upstream: FakeUpstream,
                                                                  extra: dict[str, Any], field: str) -> None:
    r = httpx.post(f"{gateway.v1}/chat/completions", headers={"authorization": f"Bearer {gateway.keys['gw-test']}"},
                   json={"model": "claude", "messages": [{"role": "user", "content": "hi"}], **extra})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["type"] == "invalid_request_error" and f"'{field}'" in r.json()["error"]["message"]
    assert fake_upstream.requests() == []
    ok = httpx.post(f"{gateway.v1}/chat/completions", headers={"authorization": f"Bearer {gateway.keys['gw-test']}"},
                    json={"model": "claude", "messages": [{"role": "user", "content": "hi"}], "n": 1,
                          "response_format": {"type": "text"}})
    assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"] == "fake: hi"


def test_model_by_id(gateway: Gateway) -> None:
    auth = {"authorization": f"Bearer {gateway.keys['gw-test']}"}
    r = httpx.get(f"{gateway.v1}/models/claude", headers=auth)
    assert r.status_code == 200 and r.json() == {"id": "claude", "object": "model", "created": 0, "owned_by": "ghat",
                                                 "kind": "chat"}
    missing = httpx.get(f"{gateway.v1}/models/gpt-9", headers=auth)
    assert missing.status_code == 404
    assert missing.json()["error"] == {"message": "The model 'gpt-9' does not exist or is not served to this app.",
                                       "type": "not_found_error", "param": "model", "code": "model_not_found"}
    assert httpx.get(f"{gateway.v1}/models/claude").status_code == 401


def test_a_900_kb_image_fits_the_default_body_limit_and_a_larger_body_gets_413(client: anthropic.Anthropic) -> None:
    import base64
    import os

    image = base64.b64encode(os.urandom(900_000)).decode()  # 1.2 MB as base64, as clients send it
    msg = client.messages.create(model="echo", max_tokens=20, messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": image}},
        {"type": "text", "text": "what is this?"}]}])
    assert msg.content[0].text == "echo: what is this?"  # type: ignore[union-attr]
    with pytest.raises(anthropic.ContentTooLargeError) as exc:
        client.messages.create(model="echo", max_tokens=20, messages=[{"role": "user", "content": "x" * (9 << 20)}])
    assert exc.value.body["error"]["type"] == "request_too_large"  # type: ignore[index]


def _logged(gateway: Gateway, rid: str) -> dict[str, Any]:
    import subprocess
    import sys
    import time

    deadline = time.monotonic() + 10
    while True:  # records are written off the hot path: poll briefly
        out = subprocess.run([sys.executable, "-m", "cli.main", "logs", "show", rid, "--data-dir",
                              str(gateway.data_dir)], capture_output=True, text=True, timeout=30,
                             cwd=Path(__file__).resolve().parent.parent)  # fmt: skip
        if out.returncode == 0 or time.monotonic() > deadline:
            assert out.returncode == 0, out.stderr
            return dict(json.loads(out.stdout))
        time.sleep(0.2)


def test_messages_are_logged_with_usage_cost_and_metadata_like_chat(client: anthropic.Anthropic,
                                                                     gateway: Gateway) -> None:
    args: dict[str, Any] = {"model": "claude", "max_tokens": 50,
                            "messages": [{"role": "user", "content": "one two three"}],
                            "extra_headers": {"x-ghat-operation": "review"}}
    plain = client.messages.with_raw_response.create(**args)
    with client.messages.with_streaming_response.create(**args, stream=True) as streamed:
        streamed.read()
    for raw, stream in ((plain, False), (streamed, True)):
        record = _logged(gateway, raw.headers["x-request-id"])
        assert (record["endpoint"], record["stream"], record["status"]) == ("messages", stream, 200)
        assert (record["provider"], record["upstream_model"], record["usage_source"]) == (
            "claude", "claude-test", "provider")
        assert (record["prompt_tokens"], record["completion_tokens"]) == (3, 4)  # "fake: one two three"
        assert record["cost_usd"] == pytest.approx((3 * 3 + 4 * 15) / 1e6)
        assert record["metadata"] == {"operation": "review"} and record["max_tokens"] == 50


# ── a hostile or broken Anthropic upstream ─────────────────────────────


@pytest.mark.parametrize("body", [
    {"type": "error", "error": {"type": "api_error", "message": "x"}},
    {"type": "message", "content": "not a list"},
    {"type": "message", "content": [1, 2]},
    [1, 2, 3],
])  # fmt: skip
def test_a_native_answer_of_the_wrong_shape_is_a_502(client: anthropic.Anthropic, fake_upstream: FakeUpstream,
                                                     body: Any) -> None:
    fake_upstream.fault("reply", body=body, stream=False)
    with pytest.raises(anthropic.InternalServerError) as exc:
        client.messages.create(model="claude", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    # malformed is retryable (P8: 503 once no candidate is left), a wrong field type is not (502)
    assert exc.value.status_code in (502, 503)
    assert exc.value.body["error"]["type"] in ("api_error", "overloaded_error")  # type: ignore[index]


def test_a_native_stream_that_breaks_ends_with_an_error_event(client: anthropic.Anthropic,
                                                              fake_upstream: FakeUpstream) -> None:
    start = {"type": "message_start", "message": {"id": "m", "type": "message", "role": "assistant", "model": "c",
                                                  "content": [], "usage": {"input_tokens": 1, "output_tokens": 1}}}
    broken = [
        [start, {"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "t",
                                                                             "name": "f", "input": {}}},
         {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{oops"}},
         {"type": "content_block_stop", "index": 0}],  # tool input that is not JSON
        [start, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}],
        [start, {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}],  # cut
    ]
    for events in broken:
        fake_upstream.reset()
        fake_upstream.fault("events", events=_events(*events), stream=True)
        with pytest.raises(anthropic.APIStatusError), client.messages.stream(
                model="claude", max_tokens=10, messages=[{"role": "user", "content": "hi"}]) as stream:
            for _ in stream:
                pass


def test_an_overloaded_anthropic_upstream_stays_a_529(client: anthropic.Anthropic, fake_upstream: FakeUpstream) -> None:
    fake_upstream.fault("status", status=529, times=1, message="Overloaded")
    with pytest.raises(anthropic.OverloadedError) as exc:
        client.messages.create(model="claude", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert exc.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
    assert exc.value.response.headers["x-should-retry"] == "false"  # ghat spent its own retries


# ── the same client calls on every route: mock, translated, native ─────


@pytest.mark.parametrize("model", ["echo", "gpt", "claude"])
def test_the_sdk_surface_on_every_route(gateway: Gateway, client: anthropic.Anthropic, fake_upstream: FakeUpstream,
                                        model: str) -> None:
    """create (plain and stream=True), messages.stream, count_tokens, a tool_use/tool_result turn and the
    exception classes, against the mock, an OpenAI upstream (translated) and an Anthropic upstream (native)."""
    prefix = "echo: " if model == "echo" else "fake: "
    msgs: list[Any] = [{"role": "user", "content": "two words"}]
    plain = client.messages.create(model=model, max_tokens=50, messages=msgs)
    assert plain.content[0].text == prefix + "two words"  # type: ignore[union-attr]
    streamed = "".join(e.delta.text for e in client.messages.create(model=model, max_tokens=50, messages=msgs,
                                                                    stream=True)
                       if e.type == "content_block_delta" and e.delta.type == "text_delta")  # fmt: skip
    assert streamed.strip() == prefix + "two words"
    with client.messages.stream(model=model, max_tokens=50, messages=msgs) as s:
        assert s.get_final_message().content[0].text.strip() == prefix + "two words"  # type: ignore[union-attr]
    assert client.messages.count_tokens(model=model, messages=msgs).input_tokens == 2
    turn: list[Any] = [*msgs, {"role": "assistant", "content": [
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "snow"}]}]
    fake_upstream.reset()
    answer = client.messages.create(model=model, max_tokens=50, tools=TOOLS, messages=turn)
    assert answer.stop_reason == "end_turn"
    if model == "gpt":
        assert _sent(fake_upstream, "/v1/chat/completions")["messages"][-1] == {
            "role": "tool", "tool_call_id": "toolu_1", "content": "snow"}
    elif model == "claude":
        assert _sent(fake_upstream, "/v1/messages")["messages"] == turn
    bad = anthropic.Anthropic(base_url=gateway.base, api_key="ghat_test_wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        bad.messages.create(model=model, max_tokens=10, messages=msgs)
    with pytest.raises(anthropic.PermissionDeniedError):
        client.messages.create(model=model, max_tokens=10, messages=[{"role": "user", "content": "FORBIDDEN-1234"}])
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(model=model, max_tokens=0, messages=msgs)
    if model != "echo":  # the mock has no rate limit of its own: gw-limited's limit is tested above
        fake_upstream.fault("status", status=429, retry_after="2", times=1)
        with pytest.raises(anthropic.RateLimitError) as e429:
            client.messages.create(model=model, max_tokens=10, messages=msgs)
        assert e429.value.response.headers["retry-after"] == "2"


def test_dry_run_of_a_messages_body(gateway: Gateway, fake_upstream: FakeUpstream) -> None:
    auth = {"authorization": f"Bearer {gateway.keys['gw-test']}"}
    body = {"model": "claude", "max_tokens": 999, "system": "s", "messages": [
        {"role": "user", "content": [{"type": "text", "text": f"key {AWS_KEY}"}]}]}
    out = httpx.post(f"{gateway.v1}/ghat/evaluate?endpoint=messages", headers=auth, json=body).json()
    assert out["decision"] == "allow" and out["max_tokens"] == 256
    assert out["forwarded"]["messages"][0]["content"][0]["text"] == "key [AWS_ACCESS_KEY_ID_1]"
    assert out["forwarded"]["max_tokens"] == 256 and out["candidates"][0]["model"] == "claude/claude-test"
    assert fake_upstream.requests() == []
    bad = httpx.post(f"{gateway.v1}/ghat/evaluate?endpoint=completions", headers=auth, json=body)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "endpoint"
