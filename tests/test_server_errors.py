"""Every error code of GUIDE §5 arrives as the `openai` client's matching exception class, with our `code`."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.fixtures_upstream import FakeUpstream
from tests.gateway_process import Gateway, create_key, ghat, start_gateway

HI: list[openai.types.chat.ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, fake_upstream_server: FakeUpstream) -> Iterator[Gateway]:
    gw = start_gateway(tmp_path_factory.mktemp("gw"), fake_upstream_server.url)
    yield gw
    gw.stop()


def _client(gw: Gateway, app: str = "gw-test", key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.v1, api_key=key or gw.keys[app], max_retries=0, timeout=15)


@pytest.mark.parametrize("key", ["", "ghat_test_unknownunknownunknown", "ghat_prod_x", "sk-not-ours"])
def test_unauthorized(gateway: Gateway, key: str) -> None:
    with pytest.raises(openai.AuthenticationError) as exc:
        _client(gateway, key=key or "missing").chat.completions.create(model="chat", messages=HI)
    assert exc.value.code == "unauthorized" and exc.value.status_code == 401


def test_app_mismatch_by_header_and_body(gateway: Gateway) -> None:
    c = _client(gateway)
    with pytest.raises(openai.PermissionDeniedError) as exc:
        c.chat.completions.create(model="chat", messages=HI, extra_headers={"x-ghat-app": "gw-limited"})
    assert exc.value.code == "app_mismatch"
    with pytest.raises(openai.PermissionDeniedError) as exc:
        c.chat.completions.create(model="chat", messages=HI, extra_body={"ghat_app": "someone-else"})
    assert exc.value.code == "app_mismatch"


def test_invalid_model_unknown_and_wrong_endpoint(gateway: Gateway) -> None:
    c = _client(gateway)
    with pytest.raises(openai.BadRequestError) as exc:
        c.chat.completions.create(model="no-such-model", messages=HI)
    assert exc.value.code == "invalid_model" and exc.value.param == "model"
    with pytest.raises(openai.BadRequestError) as exc:
        c.embeddings.create(model="chat", input="x")
    assert exc.value.code == "invalid_model"


def test_model_blocked(gateway: Gateway) -> None:
    with pytest.raises(openai.PermissionDeniedError) as exc:
        _client(gateway, "gw-limited").chat.completions.create(model="echo", messages=HI)
    assert exc.value.code == "guardrail_model_blocked"


def test_max_tokens_reject(gateway: Gateway) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        _client(gateway, "gw-limited").chat.completions.create(model="chat", messages=HI, max_tokens=500)
    assert exc.value.code == "guardrail_max_tokens_exceeded" and exc.value.param == "max_tokens"


def test_input_guardrail_block(gateway: Gateway, fake_upstream: FakeUpstream) -> None:
    with pytest.raises(openai.PermissionDeniedError) as exc:
        _client(gateway).chat.completions.create(model="chat", messages=[
            {"role": "tool", "tool_call_id": "t1", "content": "result: FORBIDDEN-1234"}])
    assert exc.value.code == "guardrail_forbidden_blocked"
    assert fake_upstream.requests() == []


def test_route_unavailable(gateway: Gateway, fake_upstream: FakeUpstream) -> None:
    fake_upstream.fault("status", status=500)
    with pytest.raises(openai.InternalServerError) as exc:
        _client(gateway).chat.completions.create(model="chat", messages=HI)
    assert exc.value.code == "route_unavailable" and exc.value.status_code == 503
    assert exc.value.response.headers["x-ghat-attempts"] == "1"


def test_request_timeout(gateway: Gateway, fake_upstream: FakeUpstream) -> None:
    fake_upstream.fault("delay", delay_s=3)
    with pytest.raises(openai.InternalServerError) as exc:
        _client(gateway).chat.completions.create(model="chat", messages=HI, extra_headers={"x-ghat-operation": "slow"})
    assert exc.value.code == "request_timeout" and exc.value.status_code == 504


def test_stream_stalled_past_the_deadline_ends_with_a_timeout_event(
    gateway: Gateway, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.fault("stall", stream=True, after_chunks=3, delay_s=5)
    got: list[str] = []
    with pytest.raises(openai.APIError) as exc:
        for chunk in _client(gateway).chat.completions.create(model="chat", messages=HI, stream=True,
                                                              extra_headers={"x-ghat-operation": "slow"}):
            got.extend(c.delta.content or "" for c in chunk.choices)
    assert exc.value.code == "request_timeout"
    assert len(fake_upstream.requests()) == 1  # bytes had reached the caller: no fallback, no retry


def test_invalid_request(gateway: Gateway) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        _client(gateway).chat.completions.create(model="chat", messages=[{"role": "wizard", "content": "x"}])  # type: ignore[misc,list-item]
    assert exc.value.code == "invalid_request" and exc.value.param == "messages[0].role"
    r = httpx.post(f"{gateway.v1}/chat/completions", content=b"{not json",
                   headers={"authorization": f"Bearer {gateway.keys['gw-test']}"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request"


def test_rate_limit_with_retry_after(gateway: Gateway, fake_upstream: FakeUpstream) -> None:
    # `fake_upstream` resets fault rules an earlier test may have left on this worker's upstream
    c = _client(gateway, "gw-limited")
    for _ in range(2):  # the limit is 2/min (earlier denials in this module stop before the rate-limit step)
        c.chat.completions.create(model="chat", messages=HI)
    with pytest.raises(openai.RateLimitError) as exc:
        c.chat.completions.create(model="chat", messages=HI)
    assert exc.value.code == "guardrail_rate_limit_exceeded"
    assert int(exc.value.response.headers["retry-after"]) >= 1


def test_revoked_key_is_refused(gateway: Gateway) -> None:
    key = create_key("gw-test", gateway.data_dir)
    c = _client(gateway, key=key)
    for _ in range(100):  # the server notices the key file within its poll interval
        try:
            c.models.list()
            break
        except openai.AuthenticationError:
            time.sleep(0.05)
    assert c.models.list().data
    ghat("keys", "revoke", key, data_dir=gateway.data_dir)
    for _ in range(100):
        try:
            c.models.list()
        except openai.AuthenticationError as exc:
            assert exc.code == "unauthorized"
            return
        time.sleep(0.05)
    pytest.fail("a revoked key kept working")
