"""P13 end to end for `/v1/messages`: `ghat serve` between raw HTTP and a hostile fake Anthropic upstream.

A canary planted in any string of a Messages request never reaches the
upstream under `redact` (the native route: the body goes out as it is, so a
forgotten field would go out too); one the provider plants in any string of
its Message, plain or streamed as events, or in its error message, never
reaches the caller.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.canary import EMAIL, SECRET, leaks
from tests.canary_messages import message_events, messages_request, messages_response
from tests.fixtures_upstream import FakeUpstream
from tests.gateway_process import Gateway, start_gateway

POLICY = """
provider claude { kind anthropic  base_url "__UPSTREAM__"  api_key "sk-ant-fake" }
model claude/claude-test { price in 3 out 15 per 1M }
alias claude { route claude/claude-test retries 0 }
app canary {
  env test
  models claude
  input  { secrets redact; pii redact }
  output { secrets redact; pii redact }
}
"""
E2E = settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, fake_upstream_server: FakeUpstream) -> Iterator[Gateway]:
    gw = start_gateway(tmp_path_factory.mktemp("canary-messages"), fake_upstream_server.url, apps=("canary",),
                       policy=POLICY)  # fmt: skip
    yield gw
    gw.stop()


def _post(gw: Gateway, body: Any) -> httpx.Response:
    return httpx.post(f"{gw.v1}/messages", json=body, timeout=15, headers={"x-api-key": gw.keys["canary"]})


def _events(raw: bytes) -> list[Any]:
    return [json.loads(line[6:]) for line in raw.split(b"\n") if line.startswith(b"data: ")]


@E2E
@given(body=messages_request(model="claude"))
def test_request_bodies_reach_the_upstream_without_a_canary(gateway: Gateway, fake_upstream_server: FakeUpstream,
                                                            body: dict[str, Any]) -> None:
    fake_upstream_server.reset()
    r = _post(gateway, body)
    assert r.status_code == 200, r.text
    rows = fake_upstream_server.requests("/v1/messages")
    assert rows and leaks(rows[-1]["body"]) == []
    assert leaks(_events(r.content) if body.get("stream") else r.json()) == []


@E2E
@given(answer=messages_response(), stream=st.booleans(), cuts=st.lists(st.integers(0, 120), max_size=4))
def test_a_planted_answer_never_reaches_the_caller(gateway: Gateway, fake_upstream_server: FakeUpstream,
                                                   answer: dict[str, Any], stream: bool, cuts: list[int]) -> None:
    fake_upstream_server.reset()
    if stream:
        events = [f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in message_events(answer, cuts)]
        fake_upstream_server.fault("events", events=events, stream=True)
    else:
        fake_upstream_server.fault("reply", body=answer, stream=False)
    r = _post(gateway, {"model": "claude", "max_tokens": 50, "stream": stream,
                        "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200, r.text
    got = _events(r.content) if stream else r.json()
    assert leaks(got) == []
    if stream:
        assert got[-1]["type"] == "message_stop"


def test_a_planted_error_message_never_reaches_the_caller(gateway: Gateway, fake_upstream: FakeUpstream) -> None:
    fake_upstream.fault("status", status=400, message=f"bad key {SECRET} for {EMAIL}")
    r = _post(gateway, {"model": "claude", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 400 and r.json()["type"] == "error"
    assert leaks(r.json()) == [] and "bad key" in r.json()["error"]["message"]
