"""P13 end to end: `ghat serve` between the official `openai` client (or raw HTTP) and a hostile fake provider.

A canary planted in any string of a request never reaches the fake upstream
under `redact`; one planted by the provider in any string of its answer,
plain or streamed, or in its error message, never reaches the caller. Also
the client-compatibility faults of the same issue: an upstream 429 stays a
429 with its Retry-After, ghat tells SDKs not to retry what it already
retried, a cap ghat adds goes in `max_completion_tokens`, and OpenAI's own
`metadata` is forwarded.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.canary import EMAIL, SECRET, chat_request, chat_response, embeddings_request, leaks, stream_chunks
from tests.fixtures_upstream import FakeUpstream
from tests.gateway_process import Gateway, start_gateway

POLICY = """
provider fake { kind openai  base_url "__UPSTREAM__"  api_key "sk-fake" }
model fake/gpt-test   { price in 1 out 2 per 1M }
model fake/embed-test { kind embedding price in 0.1 per 1M }
alias chat  { route fake/gpt-test retries 1 }
alias embed { route fake/embed-test retries 0 }
app canary {
  env test
  models chat, embed
  max_tokens 256
  input  { secrets redact; pii redact }
  output { secrets redact; pii redact }
}
app canary-block {
  env test
  models chat, embed
  input  { secrets block; pii block }
  output { secrets block; pii block }
}
"""
E2E = settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, fake_upstream_server: FakeUpstream) -> Iterator[Gateway]:
    gw = start_gateway(tmp_path_factory.mktemp("canary"), fake_upstream_server.url, apps=("canary", "canary-block"),
                       policy=POLICY)  # fmt: skip
    yield gw
    gw.stop()


def _post(gw: Gateway, path: str, body: Any, app: str = "canary", **headers: str) -> httpx.Response:
    return httpx.post(f"{gw.v1}{path}", json=body, timeout=15,
                      headers={"authorization": f"Bearer {gw.keys[app]}", **headers})  # fmt: skip


def _sent(fake: FakeUpstream, path: str = "/v1/chat/completions") -> dict[str, Any]:
    rows = fake.requests(path)
    assert rows, "the fake upstream received nothing"
    body: dict[str, Any] = rows[-1]["body"]
    return body


@pytest.mark.slow
@E2E
@given(body=st.one_of(chat_request(), embeddings_request()))
def test_raw_bodies_reach_the_provider_without_a_canary(gateway: Gateway, fake_upstream_server: FakeUpstream,
                                                         body: dict[str, Any]) -> None:
    fake_upstream_server.reset()
    path = "/embeddings" if "input" in body else "/chat/completions"
    r = _post(gateway, path, body)
    assert r.status_code == 200, r.text
    assert leaks(_sent(fake_upstream_server, f"/v1{path}")) == []
    if leaks(body):
        refused = _post(gateway, path, body, app="canary-block")
        assert refused.status_code == 403 and refused.json()["error"]["code"].startswith("guardrail_")


def test_the_openai_client_with_tool_history_sends_no_canary(gateway: Gateway, fake_upstream: FakeUpstream) -> None:
    client = openai.OpenAI(base_url=gateway.v1, api_key=gateway.keys["canary"], max_retries=0)
    client.chat.completions.create(
        model="chat", user=f"user {EMAIL}", stop=[f"stop {SECRET}"],
        messages=[
            {"role": "system", "content": f"You help {EMAIL}."},
            {"role": "user", "content": [{"type": "text", "text": f"key {SECRET}"},
                                         {"type": "image_url", "image_url": {"url": f"https://i.test/?u={EMAIL}"}}]},
            {"role": "assistant", "content": None, "refusal": f"no {SECRET}", "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "send", "arguments": json.dumps({"to": EMAIL, "token": SECRET})}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": f"sent to {EMAIL}"},
        ],
        tools=[{"type": "function", "function": {"name": "send", "description": f"mails {EMAIL}", "parameters": {
            "type": "object", "properties": {"to": {"type": "string", "default": EMAIL}}}}}],
        extra_body={"x_vendor_field": {"note": f"key {SECRET}"}, "ghat": {"metadata": {"operation": "t"}}},
    )  # fmt: skip
    sent = _sent(fake_upstream)
    assert leaks(sent) == []
    args = json.loads(sent["messages"][2]["tool_calls"][0]["function"]["arguments"])  # still valid JSON
    assert set(args) == {"to", "token"} and args["to"].startswith("[EMAIL_")
    assert "ghat" not in sent and sent["max_completion_tokens"] == 256 and "max_tokens" not in sent


@pytest.mark.slow
@E2E
@given(response=chat_response(), cuts=st.lists(st.integers(0, 120), max_size=4))
def test_a_hostile_answer_reaches_the_caller_without_a_canary(gateway: Gateway, fake_upstream_server: FakeUpstream,
                                                              response: dict[str, Any], cuts: list[int]) -> None:
    fake_upstream_server.reset()
    fake_upstream_server.fault("reply", body=response, stream=False)
    fake_upstream_server.fault("reply", chunks=stream_chunks(response, cuts), stream=True)
    ask = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
    plain = _post(gateway, "/chat/completions", ask)
    assert plain.status_code == 200, plain.text
    assert leaks(plain.json()) == []
    streamed = _post(gateway, "/chat/completions", {**ask, "stream": True})
    assert streamed.status_code == 200 and SECRET not in streamed.text and EMAIL not in streamed.text
    blocked = _post(gateway, "/chat/completions", ask, app="canary-block")
    assert blocked.status_code == 403 and SECRET not in blocked.text and EMAIL not in blocked.text


def test_the_openai_client_streams_redacted_tool_calls(gateway: Gateway, fake_upstream: FakeUpstream) -> None:
    call = {"id": "call_9", "type": "function", "function": {"name": "lookup",
                                                             "arguments": json.dumps({"email": EMAIL})}}
    response = {"id": "c", "object": "chat.completion", "created": 0, "model": "m", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": f"Mail {EMAIL} now", "tool_calls": [call]},
         "finish_reason": "tool_calls"}]}  # fmt: skip
    fake_upstream.fault("reply", chunks=stream_chunks(response, [3, 9, 14, 21]), stream=True)
    client = openai.OpenAI(base_url=gateway.v1, api_key=gateway.keys["canary"], max_retries=0)
    with client.chat.completions.stream(model="chat", messages=[{"role": "user", "content": "go"}]) as stream:
        final = stream.get_final_completion()
    message = final.choices[0].message
    assert message.content == "Mail [EMAIL_1] now"
    assert message.tool_calls and json.loads(message.tool_calls[0].function.arguments) == {"email": "[EMAIL_1]"}


def test_provider_error_text_is_guarded_and_its_status_kept(gateway: Gateway, fake_upstream: FakeUpstream) -> None:
    fake_upstream.fault("status", status=400, message=f"bad request from {EMAIL}: key {SECRET}")
    r = _post(gateway, "/chat/completions", {"model": "chat", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 400 and SECRET not in r.text and EMAIL not in r.text
    assert "[EMAIL_" in r.json()["error"]["message"]


def test_an_upstream_rate_limit_reaches_sdks_as_429_and_is_not_retried_twice(gateway: Gateway,
                                                                              fake_upstream: FakeUpstream) -> None:
    fake_upstream.fault("status", status=429, retry_after="2")
    client = openai.OpenAI(base_url=gateway.v1, api_key=gateway.keys["canary"], max_retries=2)
    with pytest.raises(openai.RateLimitError) as exc:
        client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
    assert exc.value.response.headers["retry-after"] == "2"
    assert exc.value.response.headers["x-should-retry"] == "false"
    assert len(fake_upstream.requests("/v1/chat/completions")) == 2  # ghat's own retry, and no SDK retry on top


def test_a_5xx_after_ghat_retried_is_not_retried_by_the_sdk(gateway: Gateway, fake_upstream: FakeUpstream) -> None:
    fake_upstream.fault("status", status=503)
    client = openai.OpenAI(base_url=gateway.v1, api_key=gateway.keys["canary"], max_retries=3)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
    assert len(fake_upstream.requests("/v1/chat/completions")) == 2  # `retries 1`: two calls, not eight


def test_openai_metadata_is_forwarded_and_ghat_metadata_is_not(gateway: Gateway, fake_upstream: FakeUpstream) -> None:
    client = openai.OpenAI(base_url=gateway.v1, api_key=gateway.keys["canary"], max_retries=0)
    client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}], store=True,
                                   metadata={"purpose": "eval"}, max_completion_tokens=50,
                                   extra_headers={"x-ghat-operation": "digest"})  # fmt: skip
    sent = _sent(fake_upstream)
    assert sent["metadata"] == {"purpose": "eval"} and sent["max_completion_tokens"] == 50 and "max_tokens" not in sent


def test_token_id_embeddings_are_decoded_guarded_and_refused_when_unreadable(gateway: Gateway,
                                                                               fake_upstream: FakeUpstream) -> None:
    from engine.usage import encoding

    enc = encoding("cl100k_base")
    assert enc is not None
    client = openai.OpenAI(base_url=gateway.v1, api_key=gateway.keys["canary"], max_retries=0)
    client.embeddings.create(model="embed", input=[list(enc.encode_ordinary(f"my key is {SECRET}"))])
    sent = _sent(fake_upstream, "/v1/embeddings")
    assert leaks(sent) == [] and isinstance(sent["input"][0][0], int)
    r = _post(gateway, "/embeddings", {"model": "embed", "input": [10**9, 5]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "input"


def test_a_provider_error_mid_stream_is_guarded_too(gateway: Gateway, fake_upstream: FakeUpstream) -> None:
    first = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
             "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hello"}, "finish_reason": None}]}
    fake_upstream.fault("reply", chunks=[first, {"error": {"message": f"overloaded, ask {EMAIL} ({SECRET})"}}],
                        stream=True)  # fmt: skip
    r = _post(gateway, "/chat/completions", {"model": "chat", "stream": True,
                                             "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
    assert r.status_code == 200 and '"error"' in r.text
    assert SECRET not in r.text and EMAIL not in r.text and "[EMAIL_" in r.text
