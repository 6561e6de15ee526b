"""End to end: requests through `ghat serve` land in the request log as the client saw them.

Each outcome (plain, streamed, failed, blocked, fallen back) is found by the
`x-request-id` the client got, with its attempts, tokens and cost; `ghat
usage` adds up to the records; planted secrets and PII are nowhere in the
store's bytes; SIGTERM under load loses no answered request.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.logstore.writer import SPILL_PREFIX
from tests.fixtures_upstream import FakeUpstream
from tests.gateway_process import ROOT, Gateway, start_gateway

APP = "logs-e2e"
POLICY = """
provider fake {
  kind     openai
  base_url "__UPSTREAM__"
  api_key  "sk-fake-upstream"
}
provider local { kind mock }

model fake/gpt-test { price in 1 out 2 per 1M }
model local/echo    { price in 0.5 out 1 per 1M }

alias chat { route fake/gpt-test retries 0 }
alias chat-fb {
  route    fake/gpt-test retries 0
  fallback local/echo
}
alias echo { route local/echo }

detector forbidden pattern /FORBIDDEN-[0-9]{4}/ type forbidden

app logs-e2e {
  env        test
  models     chat, chat-fb, echo
  rate_limit 1000000/min
  input { secrets redact; pii redact; forbidden block }
}
"""
SECRET = "AKIAZ3MQ7R4TUV2WX9YB"
EMAIL = "jane.doe.planted@example.com"


def start(tmp: Path, upstream: str) -> Gateway:
    return start_gateway(tmp, upstream, apps=(APP,), policy=POLICY)


def ghat_json(*args: str, data_dir: Path) -> Any:
    out = subprocess.run([sys.executable, "-m", "cli.main", *args, "--data-dir", str(data_dir)], cwd=ROOT,
                         capture_output=True, text=True, timeout=30)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout


def chat(gw: Gateway, model: str, text: str, stream: bool = False, **headers: str) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": text}], "stream": stream}
    return httpx.post(f"{gw.v1}/chat/completions", json=body, timeout=20,
                      headers={"authorization": f"Bearer {gw.keys[APP]}",
                               **{k.replace("_", "-"): v for k, v in headers.items()}})  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, fake_upstream_server: FakeUpstream) -> Iterator[dict[str, Any]]:
    """One gateway run with every outcome, stopped with SIGTERM; yields the responses and the data dir."""
    up = fake_upstream_server
    up.reset()
    gw = start(tmp_path_factory.mktemp("logs-e2e"), up.url)
    try:
        seen: dict[str, httpx.Response] = {}
        seen["plain"] = chat(gw, "chat", f"summarise this {SECRET} for {EMAIL}", x_ghat_operation="digest")
        seen["stream"] = chat(gw, "chat", f"summarise this {SECRET} for {EMAIL}", stream=True)
        seen["blocked"] = chat(gw, "chat", "please use FORBIDDEN-1234")
        up.fault("status", status=503, model="gpt-test", times=2)
        seen["fallback"] = chat(gw, "chat-fb", "hello there")
        seen["failed"] = chat(gw, "chat", "hello there")
        up.reset()
    finally:
        code = gw.stop(signal.SIGTERM)
    yield {"seen": seen, "data_dir": gw.data_dir, "exit": code, "key": gw.keys[APP]}


def _record(run: dict[str, Any], name: str) -> dict[str, Any]:
    rid = run["seen"][name].headers["x-request-id"]
    return dict(json.loads(ghat_json("logs", "show", rid, data_dir=run["data_dir"])))


def test_plain_request_is_logged_with_tokens_and_cost(run: dict[str, Any]) -> None:
    resp = run["seen"]["plain"]
    assert resp.status_code == 200
    rec = _record(run, "plain")
    usage = resp.json()["usage"]
    assert (rec["status"], rec["app"], rec["requested_model"], rec["stream"]) == (200, APP, "chat", False)
    assert [a[0] for a in rec["attempts"]] == ["fake/gpt-test"] and rec["attempts"][0][2] == 200
    assert (rec["prompt_tokens"], rec["completion_tokens"]) == (usage["prompt_tokens"], usage["completion_tokens"])
    assert rec["usage_source"] == "provider"
    assert rec["cost_usd"] == pytest.approx((usage["prompt_tokens"] * 1 + usage["completion_tokens"] * 2) / 1e6)
    assert rec["metadata"].get("operation") == "digest"
    assert {g[1] for g in rec["guardrails"]} >= {"secrets", "pii"}
    assert set(rec["timings_ms"]) >= {"total", "provider", "overhead"}


def test_streamed_request_is_accounted_as_the_plain_one(run: dict[str, Any]) -> None:
    plain, streamed = _record(run, "plain"), _record(run, "stream")
    assert streamed["stream"] is True and streamed["status"] == 200
    for f in ("prompt_tokens", "completion_tokens", "cost_usd", "usage_source"):
        assert streamed[f] == plain[f], f


def test_blocked_request_is_logged_with_its_code(run: dict[str, Any]) -> None:
    resp = run["seen"]["blocked"]
    rec = _record(run, "blocked")
    assert resp.status_code == 403 and rec["status"] == 403
    assert rec["error_code"] == resp.json()["error"]["code"] == "guardrail_forbidden_blocked"
    assert rec["attempts"] == [] and rec["cost_usd"] == 0


def test_fallback_is_logged_with_every_attempt(run: dict[str, Any]) -> None:
    assert run["seen"]["fallback"].status_code == 200
    rec = _record(run, "fallback")
    assert [(a[0], a[2]) for a in rec["attempts"]] == [("fake/gpt-test", 503), ("local/echo", 200)]
    assert rec["provider"] == "local"


def test_failed_request_is_logged_with_the_code_the_client_got(run: dict[str, Any]) -> None:
    resp = run["seen"]["failed"]
    rec = _record(run, "failed")
    assert resp.status_code >= 500 and rec["status"] == resp.status_code
    assert rec["error_code"] == resp.json()["error"]["code"]
    assert [(a[0], a[2]) for a in rec["attempts"]] == [("fake/gpt-test", 503)]


def test_usage_sums_match_the_logged_records(run: dict[str, Any]) -> None:
    recs = [json.loads(x) for x in ghat_json("logs", "--format", "jsonl", "--limit", "1000",
                                             data_dir=run["data_dir"]).splitlines()]  # fmt: skip
    assert {r["request_id"] for r in recs} == {resp.headers["x-request-id"] for resp in run["seen"].values()}
    report = json.loads(ghat_json("usage", "--by", "model", "--format", "json", data_dir=run["data_dir"]))
    total = next(g["current"] for g in report["groups"] if g["key"] == "(all)")
    assert total["requests"] == len(recs) == 5
    assert total["tokens_in"] == sum(r["prompt_tokens"] for r in recs)
    assert total["tokens_out"] == sum(r["completion_tokens"] for r in recs)
    assert total["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in recs))
    assert total["fallback_rate"] == pytest.approx(1 / 5) and total["block_rate"] == pytest.approx(1 / 5)


def test_planted_secret_and_pii_are_in_no_byte_of_the_store(run: dict[str, Any]) -> None:
    data_dir: Path = run["data_dir"]
    files = [p for p in data_dir.iterdir() if p.name.startswith(("logs.sqlite3", SPILL_PREFIX))]
    assert any(p.name == "logs.sqlite3" for p in files)
    for p in files:
        raw = p.read_bytes()
        for planted in (SECRET, EMAIL, run["key"]):
            assert planted.encode() not in raw, (planted, p.name)
            assert planted.encode("utf-16-le") not in raw, (planted, p.name)


@pytest.mark.slow
def test_sigterm_under_load_loses_no_answered_request(tmp_path: Path, fake_upstream: FakeUpstream) -> None:
    gw = start(tmp_path, fake_upstream.url)
    answered: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(timeout=10) as c:
            while not stop.is_set():
                try:
                    r = c.post(f"{gw.v1}/chat/completions", headers={"authorization": f"Bearer {gw.keys[APP]}"},
                               json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]})
                except httpx.HTTPError:
                    return  # the server is going away
                if r.status_code == 200:
                    with lock:
                        answered.append(r.headers["x-request-id"])

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    while len(answered) < 200:
        time.sleep(0.01)
    gw.proc.send_signal(signal.SIGTERM)
    assert gw.proc.wait(30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after a graceful stop
    stop.set()
    for t in threads:
        t.join(10)
    logged = {json.loads(x)["request_id"] for x in ghat_json("logs", "--format", "jsonl", "--limit", "1000000",
                                                             data_dir=gw.data_dir).splitlines()}  # fmt: skip
    assert set(answered) <= logged
