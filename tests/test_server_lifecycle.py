"""The server's life: hot reload of good and bad policy sets, SIGHUP, and graceful SIGTERM."""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.fixtures_upstream import FakeUpstream
from tests.gateway_process import POLICY_TEMPLATE, Gateway, start_gateway, write_policy

pytestmark = pytest.mark.slow
HI: list[openai.types.chat.ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]


@pytest.fixture
def gateway(tmp_path: Path, fake_upstream: FakeUpstream) -> Iterator[Gateway]:
    gw = start_gateway(tmp_path, fake_upstream.url)
    yield gw
    gw.stop()


def _policy(gw: Gateway) -> str:
    return httpx.get(f"{gw.base}/readyz").json()["policy"]  # type: ignore[no-any-return]


def _wait_for(pred: Callable[[], object], what: str) -> None:
    for _ in range(200):
        if pred():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def test_reload_good_then_bad_keeps_serving(gateway: Gateway, fake_upstream: FakeUpstream) -> None:
    c = openai.OpenAI(base_url=gateway.v1, api_key=gateway.keys["gw-test"], max_retries=0)
    v1 = _policy(gateway)
    text = POLICY_TEMPLATE.read_text().replace("__UPSTREAM__", fake_upstream.url)
    write_policy(gateway.policy_dir, "", text.replace("max_tokens 256", "max_tokens 128"))
    _wait_for(lambda: _policy(gateway) != v1, "the good policy to load")
    v2 = _policy(gateway)
    assert "checked in a child process" in gateway.log()  # the check ran off the serving process
    c.chat.completions.create(model="chat", messages=HI)
    assert fake_upstream.requests()[-1]["body"]["max_completion_tokens"] == 128
    write_policy(gateway.policy_dir, "", text.replace("models     chat, embed, echo", "models     nonexistent"))
    _wait_for(lambda: "policy reload (files changed) failed" in gateway.log(), "the bad policy to be rejected")
    assert _policy(gateway) == v2
    r = c.chat.completions.with_raw_response.create(model="chat", messages=HI)
    assert r.headers["x-ghat-policy"] == v2
    assert "nonexistent" in gateway.log()  # the diagnostics are logged


def test_sighup_reloads(tmp_path: Path, fake_upstream: FakeUpstream) -> None:
    gw = start_gateway(tmp_path, fake_upstream.url, extra=("--no-watch",))
    try:
        v1 = _policy(gw)
        text = POLICY_TEMPLATE.read_text().replace("__UPSTREAM__", fake_upstream.url)
        write_policy(gw.policy_dir, "", text.replace("max_tokens 256", "max_tokens 64"))
        time.sleep(1.5)
        assert _policy(gw) == v1  # --no-watch: files alone do not reload
        gw.proc.send_signal(signal.SIGHUP)
        _wait_for(lambda: _policy(gw) != v1, "SIGHUP to reload")
    finally:
        gw.stop()


def test_sigterm_finishes_in_flight_requests(gateway: Gateway, fake_upstream: FakeUpstream) -> None:
    fake_upstream.fault("delay", delay_s=1.0)
    c = openai.OpenAI(base_url=gateway.v1, api_key=gateway.keys["gw-test"], max_retries=0, timeout=10)
    results: list[object] = []

    def call() -> None:
        try:
            results.append(c.chat.completions.create(model="chat", messages=HI).choices[0].message.content)
        except Exception as exc:  # recorded for the assertion below
            results.append(exc)

    t = threading.Thread(target=call)
    t.start()
    _wait_for(lambda: fake_upstream.requests(), "the request to reach the upstream")
    assert gateway.stop(signal.SIGTERM) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once drained
    t.join(10)
    assert results == ["fake: hi"]
    with sqlite3.connect(gateway.data_dir / "logs.sqlite3") as db:  # the log queue was flushed on the way out
        assert db.execute("select count(*) from requests").fetchone()[0] >= 1
