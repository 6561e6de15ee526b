"""End to end: a hostile or broken provider, over real sockets, gets the caller a clean answer and a log record.

The fake upstream plays the provider (`reply` and `events` faults script its
bytes). Each case was a break before: `Retry-After: inf` a plain-text 500;
usage `"abc"` or `1e30` a 500 after a billed call; a stream chunk whose
`choices` or `index` had the wrong type a dropped connection with no error
event and no record; a 307 sent the body to another host. Now each is JSON in
the OpenAI error shape (or an error event ending the stream), each leaves a
record, and counts that are not counts are logged as `untrusted`.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fixtures_upstream import FakeUpstream
from tests.gateway_process import ROOT, Gateway, start_gateway

pytestmark = pytest.mark.xdist_group("hostile-provider")

APP = "hostile"
POLICY = """
provider fake { kind openai; base_url "__UPSTREAM__"; api_key "sk-fake-upstream" }
provider anth { kind anthropic; base_url "__UPSTREAM__"; api_key "sk-fake-upstream" }
model fake/gpt-test     { price in 1 out 2 per 1M }
model fake/embed-test   { kind embedding price in 0.1 per 1M }
model anth/claude-test  { price in 1 out 2 per 1M }
alias chat   { route fake/gpt-test retries 0 }
alias embed  { route fake/embed-test retries 0 }
alias claude { route anth/claude-test retries 0 }
app hostile {
  env        test
  models     chat, embed, claude
  rate_limit 1000000/min
}
"""

OK_CHOICE = {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}


def _completion(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"id": "x", "object": "chat.completion", "created": 0, "model": "gpt-test",
                            "choices": [OK_CHOICE], "usage": {"prompt_tokens": 3, "completion_tokens": 1}}
    body.update(over)
    return body


def _sse(obj: Any) -> str:
    return f"data: {json.dumps(obj)}\n\n"


def _chunk(choices: Any, **over: Any) -> dict[str, Any]:
    return {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "gpt-test", "choices": choices,
            **over}


FIRST = _chunk([{"index": 0, "delta": {"role": "assistant", "content": "Hel"}, "finish_reason": None}])
LAST = _chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}])


def _message(**usage: Any) -> dict[str, Any]:
    return {"id": "msg", "type": "message", "role": "assistant", "model": "claude-test",
            "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn",
            "usage": {"input_tokens": 3, "output_tokens": 1, **usage}}


# name → (model, stream, fault rule for the fake upstream)
CASES: dict[str, tuple[str, bool, dict[str, Any]]] = {
    "retry_after_inf": ("chat", False, {"kind": "status", "status": 503, "retry_after": "inf"}),
    "retry_after_date": ("chat", False, {"kind": "status", "status": 429,
                                         "retry_after": "Fri, 31 Dec 9999 23:59:59 GMT"}),
    "usage_abc": ("chat", False, {"kind": "reply", "body": _completion(usage={"prompt_tokens": "abc",
                                                                                "completion_tokens": 1})}),
    "usage_huge": ("chat", False, {"kind": "reply", "body": _completion(usage={"prompt_tokens": 1e30,
                                                                                 "completion_tokens": 1})}),
    "usage_nan": ("chat", False, {"kind": "reply", "raw": json.dumps(_completion()).replace('"prompt_tokens": 3',
                                                                                           '"prompt_tokens": NaN')}),
    "usage_not_object": ("chat", False, {"kind": "reply", "body": _completion(usage="lots")}),
    "choices_string": ("chat", False, {"kind": "reply", "body": _completion(choices="none")}),
    "index_string": ("chat", False, {"kind": "reply", "body": _completion(choices=[{**OK_CHOICE, "index": "0"}])}),
    "content_number": ("chat", False, {"kind": "reply", "body": _completion(
        choices=[{**OK_CHOICE, "message": {"role": "assistant", "content": 12}}])}),
    "redirect": ("chat", False, {"kind": "reply", "status": 307, "body": {},
                                 "headers": {"location": "/v1/elsewhere"}}),
    "embed_data_items": ("embed", False, {"kind": "reply", "body": {"object": "list", "data": [1, 2]}}),
    "stream_usage_huge": ("chat", True, {"kind": "events", "events": [
        _sse(FIRST), _sse(LAST), _sse(_chunk([], usage={"prompt_tokens": 1e30, "completion_tokens": 2})),
        "data: [DONE]\n\n"]}),
    "stream_choices_mid": ("chat", True, {"kind": "events", "events": [
        _sse(FIRST), _sse(_chunk("lo")), _sse(LAST), "data: [DONE]\n\n"]}),
    "stream_index_mid": ("chat", True, {"kind": "events", "events": [
        _sse(FIRST), _sse(_chunk([{"index": [0], "delta": {"content": "lo"}, "finish_reason": None}])),
        _sse(LAST), "data: [DONE]\n\n"]}),
    "stream_first_bad": ("chat", True, {"kind": "events", "events": [_sse(_chunk({"index": 0})), _sse(LAST)]}),
    "claude_usage_abc": ("claude", False, {"kind": "reply", "body": _message(input_tokens="abc")}),
    "claude_content_string": ("claude", False, {"kind": "reply", "body": {**_message(), "content": "hi"}}),
    "claude_stream_index": ("claude", True, {"kind": "events", "events": [
        'event: message_start\ndata: {"type":"message_start","message":{"id":"m","model":"c","usage":'
        '{"input_tokens":3,"output_tokens":1}}}\n\n',
        'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
        '"content_block":{"type":"text","text":"Hel"}}\n\n',
        'event: content_block_delta\ndata: {"type":"content_block_delta","index":"abc",'
        '"delta":{"type":"text_delta","text":"lo"}}\n\n',
        'event: message_stop\ndata: {"type":"message_stop"}\n\n']}),
}


def _send(gw: Gateway, model: str, stream: bool) -> httpx.Response:
    auth = {"authorization": f"Bearer {gw.keys[APP]}"}
    if model == "embed":
        return httpx.post(f"{gw.v1}/embeddings", json={"model": model, "input": "hello"}, headers=auth, timeout=20)
    body = {"model": model, "messages": [{"role": "user", "content": "hello"}], "stream": stream}
    return httpx.post(f"{gw.v1}/chat/completions", json=body, headers=auth, timeout=20)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, fake_upstream_server: FakeUpstream) -> Iterator[dict[str, Any]]:
    """One gateway; each case sent once behind its fault; then a healthy request; then SIGTERM (flushes the log)."""
    up = fake_upstream_server
    up.reset()
    gw = start_gateway(tmp_path_factory.mktemp("hostile"), up.url, apps=(APP,), policy=POLICY)
    seen: dict[str, httpx.Response | httpx.TransportError] = {}
    try:
        for name, (model, stream, rule) in CASES.items():
            up.fault(times=1, **rule)
            try:
                seen[name] = _send(gw, model, stream)
            except httpx.TransportError as exc:  # the break this file guards against: a dropped connection
                seen[name] = exc
        up.reset()
        seen["after"] = _send(gw, "chat", False)
        redirected = up.requests(path="/v1/elsewhere")
    finally:
        code = gw.stop(signal.SIGTERM)
    yield {"seen": seen, "data_dir": gw.data_dir, "exit": code, "redirected": redirected, "log": gw.log()}


def _got(run: dict[str, Any], name: str) -> httpx.Response:
    r = run["seen"][name]
    assert isinstance(r, httpx.Response), f"no complete answer: {r!r}"
    return r


def _record(run: dict[str, Any], name: str) -> dict[str, Any]:
    rid = _got(run, name).headers["x-request-id"]
    out = subprocess.run([sys.executable, "-m", "cli.main", "logs", "show", rid, "--data-dir",
                          str(run["data_dir"])], cwd=ROOT, capture_output=True, text=True, timeout=30)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout))


def _error(r: httpx.Response) -> dict[str, Any]:
    assert r.headers["content-type"].startswith("application/json"), r.text[:200]
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    return dict(err)


@pytest.mark.parametrize("name", ["retry_after_inf", "retry_after_date"])
def test_retry_after_from_a_provider_is_clamped(run: dict[str, Any], name: str) -> None:
    r = _got(run, name)
    assert r.status_code in (429, 503) and _error(r)["code"] in ("route_unavailable", "upstream_rate_limited")
    assert 1 <= int(r.headers["retry-after"]) <= 3600
    assert _record(run, name)["status"] == r.status_code


@pytest.mark.parametrize("name", ["usage_abc", "usage_huge", "claude_usage_abc", "stream_usage_huge"])
def test_counts_that_are_not_counts_are_served_and_logged_untrusted(run: dict[str, Any], name: str) -> None:
    r = _got(run, name)
    assert r.status_code == 200, r.text[:300]
    rec = _record(run, name)
    assert rec["status"] == 200 and rec["usage_source"] == "untrusted"
    assert 0 <= rec["prompt_tokens"] < 2**31 and 0 <= rec["cost_usd"] < 1.0


def test_nan_from_a_provider_is_invalid_json_not_null(run: dict[str, Any]) -> None:
    r = _got(run, "usage_nan")  # refused as any unparseable body is: retryable, so no candidate is left
    assert r.status_code == 503 and _error(r)["code"] == "route_unavailable"
    assert "invalid JSON" in _error(r)["message"]
    assert _record(run, "usage_nan")["status"] == 503


@pytest.mark.parametrize("name", ["usage_not_object", "choices_string", "index_string",
                                  "content_number", "embed_data_items", "claude_content_string",
                                  "stream_first_bad"])  # fmt: skip
def test_a_malformed_reply_is_a_clean_502(run: dict[str, Any], name: str) -> None:
    r = _got(run, name)
    assert r.status_code == 502, r.text[:300]
    assert _error(r)["code"] in ("upstream_error", "upstream_malformed")
    rec = _record(run, name)
    assert rec["status"] == 502 and rec["error_code"] == _error(r)["code"]


@pytest.mark.parametrize("name", ["stream_choices_mid", "stream_index_mid", "claude_stream_index"])
def test_a_malformed_chunk_mid_stream_ends_it_with_an_error_event(run: dict[str, Any], name: str) -> None:
    r = _got(run, name)
    assert r.status_code == 200
    events = [line[6:] for line in r.text.splitlines() if line.startswith("data: ")]
    assert events, r.text
    payloads = [json.loads(e) for e in events if e != "[DONE]"]
    assert "error" in payloads[-1], r.text  # the stream ends with an error event, not a dropped connection
    assert payloads[-1]["error"]["code"] == "upstream_error"
    rec = _record(run, name)
    assert rec["error_code"] == "upstream_error"


def test_a_redirect_is_not_followed(run: dict[str, Any]) -> None:
    r = _got(run, "redirect")
    assert r.status_code == 502 and _error(r)["code"] == "upstream_error"
    assert "redirect" in _error(r)["message"]
    assert run["redirected"] == []  # the body never went where the provider pointed
    assert _record(run, "redirect")["status"] == 502


def test_the_gateway_keeps_serving_and_shuts_down_cleanly(run: dict[str, Any]) -> None:
    assert _got(run, "after").status_code == 200
    assert "Traceback" not in run["log"], run["log"][-3000:]


def test_ghat_usage_reports_the_untrusted_requests(run: dict[str, Any]) -> None:
    def usage(*args: str) -> str:
        out = subprocess.run([sys.executable, "-m", "cli.main", "usage", *args, "--data-dir", str(run["data_dir"])],
                             cwd=ROOT, capture_output=True, text=True, timeout=30)  # fmt: skip
        assert out.returncode == 0, out.stderr
        return out.stdout

    report = json.loads(usage("--format", "json"))
    overall = report["groups"][-1]["current"]
    assert overall["untrusted_usage"] == 4  # usage_abc, usage_huge, claude_usage_abc, stream_usage_huge
    assert overall["tokens_in"] < 2**31 and overall["cost_usd"] < 1.0
    assert "4 request(s) with usage that could not be trusted" in usage()
