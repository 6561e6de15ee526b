"""The Anthropic Messages codec and its chat bridge, piece by piece: what each field becomes, and what is refused.

The end-to-end tests (tests/test_messages_e2e.py) drive these through a real
server with the official client; these pin the rules one at a time.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from adapters.codecs import BadRequest, decode, upstream_body
from adapters.codecs.anthropic_messages import decode_count_tokens, error_body, fold_usage, usage_of_response
from adapters.messages_bridge import chat_events, from_chat, to_chat
from dsl import ast
from dsl.parser import parse_text
from engine.compiler import compile_policy
from engine.decision import Allow
from engine.ports import ProviderError, Usage
from engine.request import EvalContext
from engine.testing import evaluate_sync

POLICY = """
provider p { kind mock }
model p/chat { price in 0 out 0 per 1M }
app a { env prod  models p/chat
  max_tokens 100
  input { secrets redact }
  when endpoint == "messages" { max_tokens 50 } }
"""


def _body(**extra: Any) -> dict[str, Any]:
    return {"model": "p/chat", "max_tokens": 500, "messages": [{"role": "user", "content": "hi"}], **extra}


def test_decoding_names_the_field_that_is_wrong() -> None:
    for body, param in (({"model": "p/chat", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
                        (_body(messages=[{"role": "system", "content": "x"}]), "messages[0].role"),
                        (_body(messages=[]), "messages"),
                        (_body(max_tokens="5"), "max_tokens")):  # fmt: skip
        with pytest.raises(BadRequest) as exc:
            decode(body, {}, "messages")
        assert exc.value.param == param, body
    counted = decode_count_tokens({"model": "p/chat", "messages": [{"role": "user", "content": "x"}]}, {})
    assert counted.max_tokens is None and counted.endpoint == "messages"  # count_tokens needs no max_tokens


def test_slots_carry_the_role_of_where_they_sit() -> None:
    req = decode(_body(system=[{"type": "text", "text": "S"}], tools=[{"name": "T", "input_schema": {}}], messages=[
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "id1", "content": "R"},
                                     {"type": "document", "source": {"type": "text", "data": "D"}}]},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "TH", "signature": "SIG"}]}]),
        {}, "messages")  # fmt: skip
    roles = {t.text: (t.role, t.kind) for t in req.texts}
    assert roles["S"] == ("system", "text") and roles["T"] == ("system", "tool_definition")
    assert roles["R"] == ("tool", "text") and roles["D"] == ("document", "document")
    assert roles["TH"] == ("assistant", "reasoning") and roles["SIG"] == ("assistant", "signature")
    assert "p/chat" not in roles and "user" not in roles and "tool_result" not in roles  # structural


def test_when_endpoint_is_messages_and_the_cap_goes_in_max_tokens() -> None:
    pf, diags = parse_text(POLICY, "t.policy")
    assert not [d for d in diags if d.level == "error"], diags
    policy = compile_policy(ast.PolicySet((pf,)), "prod")
    body = _body(messages=[{"role": "user", "content": "key AKIAZ3MQ7R4TUV2WX9YB"}], ghat={"metadata": {}})
    req = decode(body, {"x-ghat-operation": "op"}, "messages")
    decision = evaluate_sync(policy, req, EvalContext("a", "k", "seed"))
    assert isinstance(decision, Allow) and decision.request.max_tokens == 50
    sent = upstream_body(body, req, decision.request)
    assert sent["max_tokens"] == 50 and "ghat" not in sent
    assert sent["messages"][0]["content"] == "key [AWS_ACCESS_KEY_ID_1]"
    assert req.metadata == {"operation": "op"}


def test_errors_have_the_type_the_sdk_maps_each_status_to() -> None:
    types = {s: error_body("c", s, "m")["error"]["type"] for s in (400, 401, 403, 404, 413, 429, 500, 503, 504, 529)}
    assert types == {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                     404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
                     503: "overloaded_error", 504: "timeout_error", 529: "overloaded_error"}  # fmt: skip
    assert error_body("guardrail_pii_blocked", 403, "no")["error"]["details"] == {"error_code": "guardrail_pii_blocked"}
    assert error_body("invalid_request", 400, "bad", "messages[0]")["error"]["message"] == "bad (param: messages[0])"


def test_usage_prompt_includes_cache_reads_and_a_stream_folds_to_the_same_count() -> None:
    usage = {"input_tokens": 10, "cache_read_input_tokens": 30, "cache_creation_input_tokens": 5, "output_tokens": 7}
    plain = usage_of_response({"usage": usage})
    assert plain == Usage(prompt_tokens=45, completion_tokens=7, cached_tokens=30)
    u = Usage(source="none")
    for event in ({"type": "message_start", "message": {"usage": {**usage, "output_tokens": 1}}},
                  {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "x"}},
                  {"type": "message_delta", "delta": {}, "usage": {"output_tokens": 7}}):  # fmt: skip
        u = fold_usage(event, u)
    assert u == plain
    assert usage_of_response({"usage": {"input_tokens": "lots", "output_tokens": 2}}).source == "untrusted"


# ── the bridge to chat ─────────────────────────────────────────────────


def test_blocks_translate_to_chat_parts() -> None:
    chat = to_chat("p", _body(metadata={"user_id": "u"}, messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
        {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "doc text"}},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}},
        {"type": "text", "text": "and?", "cache_control": {"type": "ephemeral"}}]}]))  # fmt: skip
    assert chat["user"] == "u" and chat["max_completion_tokens"] == 500
    assert chat["messages"] == [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
        {"type": "text", "text": "doc text"},
        {"type": "file", "file": {"filename": "document.pdf", "file_data": "data:application/pdf;base64,JVBE"}},
        {"type": "text", "text": "and?"}]}]  # fmt: skip


def test_earlier_thinking_is_omitted_and_tool_blocks_become_calls() -> None:
    chat = to_chat("p", _body(messages=[
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm", "signature": "s"},
                                          {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                      "content": [{"type": "text", "text": "r"}]}]}]))  # fmt: skip
    assert chat["messages"][1] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "t1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}]}
    assert chat["messages"][2] == {"role": "tool", "tool_call_id": "t1", "content": [{"type": "text", "text": "r"}]}


@pytest.mark.parametrize(("body", "field"), [
    (_body(thinking={"type": "enabled", "budget_tokens": 1000}), "'thinking'"),
    (_body(service_tier="auto"), "'service_tier'"),
    (_body(metadata={"user_id": "u", "team": "x"}), "'metadata.team'"),
    (_body(stop_sequences=["a", "b", "c", "d", "e"]), "'stop_sequences'"),
    (_body(tool_choice={"type": "magic"}), "'tool_choice.type'"),
    (_body(system=[{"type": "image"}]), "'system[0]'"),
    (_body(messages=[{"role": "user", "content": [{"type": "document", "title": "T", "source": {
        "type": "text", "data": "d"}}]}]), "'messages[0].content[0].title'"),
    (_body(messages=[{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [
        {"type": "image", "source": {"type": "url", "url": "u"}}]}]}]), "'messages[0].content[0].content'"),
    (_body(messages=[{"role": "assistant", "content": [{"type": "server_tool_use", "id": "s", "name": "web",
                                                       "input": {}}]}]), "'messages[0].content[0]'"),
])  # fmt: skip
def test_what_chat_cannot_honour_is_refused_by_name(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ProviderError) as exc:
        to_chat("p", body)
    assert exc.value.status == 400 and not exc.value.retryable and field in exc.value.message


def test_a_chat_answer_comes_back_as_a_message() -> None:
    msg = from_chat("p", {"id": "c1", "model": "m", "choices": [{"index": 0, "finish_reason": "length", "message": {
        "role": "assistant", "content": "partial", "reasoning_content": "why"}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 4}}})
    assert msg["content"] == [{"type": "thinking", "thinking": "why", "signature": ""},
                              {"type": "text", "text": "partial"}]
    assert msg["stop_reason"] == "max_tokens"
    assert msg["usage"] == {"input_tokens": 6, "cache_read_input_tokens": 4, "cache_creation_input_tokens": 0,
                            "output_tokens": 3}
    with pytest.raises(ProviderError):
        from_chat("p", {"choices": [{"message": {"tool_calls": [{"id": "x", "function": {"name": "f",
                                                                                          "arguments": "[1]"}}]}}]})


def test_chat_chunks_become_typed_events_in_order() -> None:
    base = {"id": "c", "model": "m", "object": "chat.completion.chunk"}
    chunks = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "He"}}]},
              {**base, "choices": [{"index": 0, "delta": {"content": "llo"}}]},
              {**base, "choices": [{"index": 0, "delta": {"tool_calls": [
                  {"index": 0, "id": "t", "function": {"name": "f", "arguments": "{}"}}]}}]},
              {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
              {**base, "choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 3}}]

    async def run() -> list[dict[str, Any]]:
        async def gen() -> Any:
            for c in chunks:
                yield c

        return [e async for e in chat_events("p", gen())]

    events = anyio.run(run)
    assert [e["type"] for e in events] == [
        "message_start", "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_stop", "message_delta", "message_stop"]
    assert [e.get("index") for e in events[1:8]] == [0, 0, 0, 0, 1, 1, 1]
    assert events[-2]["delta"]["stop_reason"] == "tool_use" and events[-2]["usage"]["output_tokens"] == 3


@pytest.mark.parametrize(("extra", "field"), [
    ({"n": 3}, "'n'"), ({"response_format": {"type": "json_schema", "json_schema": {}}}, "'response_format'"),
    ({"seed": 7}, "'seed'"), ({"presence_penalty": 0.5}, "'presence_penalty'"), ({"logit_bias": {"1": 2}},
                                                                                 "'logit_bias'"),
    ({"modalities": ["text", "audio"]}, "'modalities'"), ({"tools": [{"type": "custom", "custom": {}}]}, "'tools[0]'"),
])  # fmt: skip
def test_chat_to_anthropic_refuses_what_messages_cannot_express(extra: dict[str, Any], field: str) -> None:
    from adapters.anthropic import to_messages

    with pytest.raises(ProviderError) as exc:
        to_messages({"model": "m", "messages": [{"role": "user", "content": "x"}], **extra})
    assert exc.value.status == 400 and field in exc.value.message
    fine = to_messages({"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 1, "seed": None,
                        "presence_penalty": 0, "modalities": ["text"], "store": True, "parallel_tool_calls": False,
                        "tools": [{"type": "function", "function": {"name": "f"}}]})
    assert fine["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
