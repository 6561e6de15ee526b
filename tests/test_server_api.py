"""End to end: the official `openai` client → `ghat serve` (own process) → the fake upstream (own process).

One gateway process serves the whole module; each test resets the fake
upstream's records and faults.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.fixtures_upstream import FakeUpstream
from tests.gateway_process import Gateway, start_gateway

AWS_KEY = "AKIAZ3MQ7R4TUV2WX9YB"
PROMPT = "Please check config: aws key " + AWS_KEY + " and ref ACME-12345678, thanks."


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, fake_upstream_server: FakeUpstream) -> Iterator[Gateway]:
    gw = start_gateway(tmp_path_factory.mktemp("gw"), fake_upstream_server.url)
    yield gw
    gw.stop()


@pytest.fixture
def client(gateway: Gateway, fake_upstream: FakeUpstream) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.v1, api_key=gateway.keys["gw-test"], max_retries=0, timeout=15)


def _sent(fake: FakeUpstream, path: str = "/v1/chat/completions") -> dict[str, object]:
    rows = fake.requests(path)
    assert rows, "the fake upstream received nothing"
    body: dict[str, object] = rows[-1]["body"]
    return body


def test_chat_answers_through_the_fake_upstream(client: openai.OpenAI, fake_upstream: FakeUpstream) -> None:
    r = client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hello there"}])
    assert r.choices[0].message.content == "fake: hello there"
    assert r.usage is not None and r.usage.prompt_tokens == 2
    assert _sent(fake_upstream)["model"] == "gpt-test"  # the concrete name, never the alias


def test_secret_never_reaches_upstream_plain(client: openai.OpenAI, fake_upstream: FakeUpstream) -> None:
    r = client.chat.completions.create(model="chat", messages=[
        {"role": "system", "content": "internal ACME-87654321"}, {"role": "user", "content": PROMPT}])
    raw = json.dumps(_sent(fake_upstream))
    assert AWS_KEY not in raw and "ACME-12345678" not in raw and "ACME-87654321" not in raw
    assert AWS_KEY not in (r.choices[0].message.content or "")  # the echo carries the placeholder back


def test_secret_never_reaches_upstream_streaming(client: openai.OpenAI, fake_upstream: FakeUpstream) -> None:
    stream = client.chat.completions.create(model="chat", stream=True, messages=[
        {"role": "user", "content": [{"type": "text", "text": PROMPT},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}])
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    body = _sent(fake_upstream)
    assert AWS_KEY not in json.dumps(body) and "ACME-12345678" not in json.dumps(body)
    assert body["messages"][0]["content"][1]["type"] == "image_url"  # type: ignore[index]  # other parts pass
    assert text.startswith("fake: Please check config") and AWS_KEY not in text


def test_stream_equals_plain_answer(client: openai.OpenAI) -> None:
    msgs: list[openai.types.chat.ChatCompletionMessageParam] = [{"role": "user", "content": "one two three four"}]
    plain = client.chat.completions.create(model="chat", messages=msgs).choices[0].message.content
    stream = client.chat.completions.create(model="chat", messages=msgs, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == plain
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5


def test_restore_returns_the_callers_own_pii(client: openai.OpenAI, fake_upstream: FakeUpstream) -> None:
    r = client.chat.completions.create(model="chat", messages=[
        {"role": "user", "content": "write to jane.doe@example.com"}])
    assert "jane.doe@example.com" not in json.dumps(_sent(fake_upstream))
    assert r.choices[0].message.content == "fake: write to jane.doe@example.com"


def test_output_guard_blocks_plain_and_stream(client: openai.OpenAI) -> None:
    msgs: list[openai.types.chat.ChatCompletionMessageParam] = [{"role": "user", "content": "say OUTBLOCK-1234"}]
    with pytest.raises(openai.PermissionDeniedError) as exc:
        client.chat.completions.create(model="chat", messages=msgs)
    assert exc.value.code == "guardrail_outblock_blocked"
    with pytest.raises(openai.APIError) as exc2:
        for _ in client.chat.completions.create(model="chat", messages=msgs, stream=True):
            pass
    assert "blocked" in str(exc2.value.message)


def test_ghat_fields_are_stripped_and_openai_metadata_is_forwarded(gateway: Gateway,
                                                                  fake_upstream: FakeUpstream) -> None:
    r = httpx.post(f"{gateway.v1}/chat/completions", headers={
        "authorization": f"Bearer {gateway.keys['gw-test']}", "x-ghat-source-service": "billing"},
        json={"model": "chat", "messages": [{"role": "user", "content": "hi"}], "metadata": {"purpose": "eval"},
              "store": True, "ghat_app": "gw-test",
              "ghat": {"documents": ["a retrieved passage"], "metadata": {"operation": "x"}}, "temperature": 0.2})
    assert r.status_code == 200, r.text
    body = _sent(fake_upstream)
    assert "ghat" not in body and "ghat_app" not in body
    assert body["metadata"] == {"purpose": "eval"} and body["store"] is True  # OpenAI's own `metadata` is theirs
    # unknown fields pass (scanned); the cap goes in the field every current OpenAI model accepts
    assert body["temperature"] == 0.2 and body["max_completion_tokens"] == 256 and "max_tokens" not in body
    headers = fake_upstream.requests()[-1]["headers"]
    assert not any(h.startswith("x-ghat") for h in headers)


def test_every_response_carries_the_ghat_headers(gateway: Gateway, client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="chat", messages=[{"role": "user", "content": "mail me at a.b@example.com"}],
        extra_headers={"x-request-id": "trace-123"})
    h = raw.headers
    assert h["x-request-id"] != "trace-123" and len(h["x-request-id"]) == 32  # always the gateway's own (P14)
    phases = [p.split(";")[0].strip() for p in h["server-timing"].split(",")]
    assert phases == ["total", "resolve", "guardrails", "provider", "log", "usage", "overhead"]
    assert (h["x-ghat-app"], h["x-ghat-model"], h["x-ghat-provider"], h["x-ghat-attempts"]) == (
        "gw-test", "fake/gpt-test", "fake", "1")
    assert h["x-ghat-guardrails"] == "pii" and "a.b@example.com" not in str(dict(h))
    assert len(h["x-ghat-policy"]) >= 8
    for resp in (httpx.get(f"{gateway.v1}/models"), httpx.get(f"{gateway.base}/nope"),
                 httpx.post(f"{gateway.v1}/chat/completions", content=b"{")):
        assert {"x-request-id", "server-timing", "x-ghat-policy", "x-ghat-guardrails"} <= set(resp.headers)
    long_id = "x" * 300  # not honoured: it would bloat every log line
    assert httpx.get(f"{gateway.v1}/models", headers={"x-request-id": long_id}).headers["x-request-id"] != long_id


def test_embeddings(client: openai.OpenAI, fake_upstream: FakeUpstream) -> None:
    r = client.embeddings.create(model="embed", input=["alpha", "key " + AWS_KEY])
    assert len(r.data) == 2 and len(r.data[0].embedding) == 8
    assert AWS_KEY not in json.dumps(_sent(fake_upstream, "/v1/embeddings"))


def test_models_lists_what_the_key_may_use(client: openai.OpenAI, gateway: Gateway) -> None:
    kinds = {m.id: getattr(m, "kind", None) for m in client.models.list()}
    assert kinds == {"chat": "chat", "embed": "embedding", "echo": "chat"}
    limited = openai.OpenAI(base_url=gateway.v1, api_key=gateway.keys["gw-limited"], max_retries=0)
    assert [m.id for m in limited.models.list()] == ["chat"]


def test_dry_run_dispatches_nothing(gateway: Gateway, fake_upstream: FakeUpstream) -> None:
    r = httpx.post(f"{gateway.v1}/ghat/evaluate", headers={"authorization": f"Bearer {gateway.keys['gw-test']}"},
                   json={"model": "chat", "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 9999})
    out = r.json()
    assert out["decision"] == "allow" and out["max_tokens"] == 256
    assert [c["model"] for c in out["candidates"]] == ["fake/gpt-test"]
    assert AWS_KEY not in json.dumps(out["forwarded"])
    assert [s["step"] for s in out["trace"]][:2] == ["authenticate", "resolve_app"]
    assert fake_upstream.requests() == []
    denied = httpx.post(f"{gateway.v1}/ghat/evaluate", json={"model": "chat", "messages": [
        {"role": "user", "content": "x"}]}).json()
    assert denied["decision"] == "deny" and denied["error"]["code"] == "unauthorized"


def test_body_limits(gateway: Gateway) -> None:
    auth = {"authorization": f"Bearer {gateway.keys['gw-test']}"}
    big = httpx.post(f"{gateway.v1}/chat/completions", headers=auth, content=b'{"x":"' + b"a" * (9 << 20) + b'"}')
    assert big.status_code == 413 and big.json()["error"]["code"] == "invalid_request"
    deep = httpx.post(f"{gateway.v1}/chat/completions", headers=auth, content=b"[" * 100 + b"]" * 100)
    assert deep.status_code == 400
    nested = {"model": "chat", "messages": [{"role": "user", "content": "x"}], "extra": {}}
    node = nested["extra"]
    for _ in range(40):
        node["a"] = {}  # type: ignore[index]
        node = node["a"]  # type: ignore[index]
    r = httpx.post(f"{gateway.v1}/chat/completions", headers=auth, json=nested)
    assert r.status_code == 400 and "nested deeper" in r.json()["error"]["message"]
    wrong = httpx.post(f"{gateway.v1}/chat/completions", headers=auth,
                       json={"model": "chat", "messages": [{"role": "user", "content": 5}]})
    assert wrong.status_code == 400 and wrong.json()["error"]["param"] == "messages[0].content"
    tokens = httpx.post(f"{gateway.v1}/chat/completions", headers=auth,
                        json={"model": "chat", "messages": [{"role": "user", "content": "x"}], "max_tokens": "5"})
    assert tokens.json()["error"]["param"] == "max_tokens"


def test_health_ready_metrics(gateway: Gateway, client: openai.OpenAI) -> None:
    client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "hi"}])
    assert httpx.get(f"{gateway.base}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{gateway.base}/readyz").json()["status"] == "ready"
    text = httpx.get(f"{gateway.base}/metrics").text
    lines = [ln for ln in text.splitlines() if ln.startswith("ghat_requests_total{")]
    assert any('app="gw-test"' in ln and 'endpoint="chat"' in ln for ln in lines), text


def test_mock_provider_answers_without_network(client: openai.OpenAI, fake_upstream: FakeUpstream) -> None:
    r = client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content == "echo: hi" and fake_upstream.requests() == []

