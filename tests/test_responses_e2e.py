"""`POST /v1/responses` end to end: the official `openai` SDK → `ghat serve` → mock, OpenAI or Anthropic upstream.

Three routes for the same dialect: the mock (native, no network), a fake
OpenAI upstream serving `/v1/responses` (native: the upstream must receive
exactly the guarded body) and a fake Anthropic upstream (translated through
chat and back, plain and streamed, with a 400 naming each field it cannot
honour). Plain, `stream=True` and `client.responses.stream(...)`, function
tools with a `function_call_output` turn, and the SDK's exception classes for
401, 403, 429 and 400.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.canary import EMAIL, SECRET
from tests.fixtures_upstream import FakeUpstream
from tests.gateway_process import ROOT, Gateway, start_gateway

POLICY = """
provider fake  { kind openai     base_url "__UPSTREAM__"  api_key "sk-fake" }
provider ant   { kind anthropic  base_url "__UPSTREAM__"  api_key "sk-ant-fake" }
provider local { kind mock }
model fake/gpt-test    { price in 1 out 2 per 1M }
model ant/claude-test  { price in 3 out 15 per 1M }
model local/echo       { price in 0 out 0 per 1M }
alias native   { route fake/gpt-test retries 0 }
alias claude   { route ant/claude-test retries 0 }
alias echo     { route local/echo }
alias codex    { route fake/gpt-test retries 0 }
detector forbidden pattern /FORBIDDEN-[0-9]{4}/ type forbidden
detector outblock  pattern /OUTBLOCK-[0-9]{4}/ type outblock
app agent {
  env test
  models native, claude, echo
  max_tokens 512
  input  { secrets redact; pii redact; forbidden block }
  output { secrets redact; pii redact; outblock block }
}
app narrow { env test  models echo  rate_limit 1/min }
app codex {
  env test
  models codex
  input  { secrets redact; pii redact; prompt_injection detect }
  output { secrets redact; pii redact }
}
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, fake_upstream_server: FakeUpstream) -> Iterator[Gateway]:
    gw = start_gateway(tmp_path_factory.mktemp("responses"), fake_upstream_server.url,
                       apps=("agent", "narrow", "codex"), policy=POLICY)
    yield gw
    gw.stop()


@pytest.fixture
def client(gateway: Gateway, fake_upstream: FakeUpstream) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.v1, api_key=gateway.keys["agent"], max_retries=0)


def _sent(fake: FakeUpstream, path: str) -> dict[str, Any]:
    rows = fake.requests(path)
    assert rows, f"the fake upstream received nothing on {path}"
    body: dict[str, Any] = rows[-1]["body"]
    return body


TOOLS: list[Any] = [{"type": "function", "name": "get_weather", "description": "Weather for a city",
                     "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                    "required": ["city"], "additionalProperties": False}, "strict": False}]


# ── the mock: native, no network ───────────────────────────────────────


def test_mock_answers_plain_with_usage_and_ghat_headers(gateway: Gateway, client: openai.OpenAI) -> None:
    raw = client.responses.with_raw_response.create(model="echo", input="hello there", instructions="be brief")
    r = raw.parse()
    assert r.output_text == "echo: hello there"
    assert r.status == "completed" and r.usage is not None and r.usage.output_tokens == 4  # echo : hello there
    assert raw.headers["x-ghat-app"] == "agent" and raw.headers["x-ghat-provider"] == "local"
    assert "overhead;dur=" in raw.headers["server-timing"]


def test_mock_streams_typed_events_in_order(client: openai.OpenAI) -> None:
    events = list(client.responses.create(model="echo", input="one two three", stream=True))
    kinds = [e.type for e in events]
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]  # fmt: skip
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.completed"]  # fmt: skip
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == "echo: one two three"
    assert events[-1].response.output_text == deltas  # type: ignore[union-attr]


def test_stream_helper_accumulates_the_redacted_answer(client: openai.OpenAI) -> None:
    with client.responses.stream(model="echo", input=f"mail {EMAIL} now") as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert EMAIL not in text and "[EMAIL_1]" in text
    assert final.output_text == text


# ── native OpenAI upstream: the guarded body, exactly ──────────────────


def test_native_upstream_receives_exactly_the_guarded_body(client: openai.OpenAI,
                                                           fake_upstream: FakeUpstream) -> None:
    r = client.responses.create(
        model="native", instructions=f"Deploy key {SECRET}.",
        input=[{"role": "user", "content": [{"type": "input_text", "text": f"write to {EMAIL}"}]}],
        tools=TOOLS, tool_choice="auto", temperature=0.2, metadata={"trace": "t1"},
        text={"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}, "strict": True}},
    )
    sent = _sent(fake_upstream, "/v1/responses")
    assert sent == {
        "model": "gpt-test", "instructions": "Deploy key [AWS_ACCESS_KEY_ID_1].",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "write to [EMAIL_1]"}]}],
        "tools": TOOLS, "tool_choice": "auto", "temperature": 0.2, "metadata": {"trace": "t1"},
        "text": {"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}, "strict": True}},
        "max_output_tokens": 512,
    }
    assert r.output_text == "fake: write to [EMAIL_1]"


def test_native_function_call_round_trip(client: openai.OpenAI, fake_upstream: FakeUpstream) -> None:
    call = {"id": "fc_1", "type": "function_call", "status": "completed", "call_id": "call_1",
            "name": "get_weather", "arguments": json.dumps({"city": "Paris", "note": f"cc {EMAIL}"})}
    fake_upstream.fault("reply", times=1, body={"id": "resp_1", "object": "response", "created_at": 0,
                                                "status": "completed", "model": "gpt-test", "output": [call],
                                                "usage": {"input_tokens": 5, "output_tokens": 7,
                                                          "total_tokens": 12}})  # fmt: skip
    r = client.responses.create(model="native", input="weather in Paris?", tools=TOOLS)
    out = r.output[0]
    assert out.type == "function_call" and out.name == "get_weather"
    args = json.loads(out.arguments)  # redaction keeps it valid JSON
    assert args == {"city": "Paris", "note": "cc [EMAIL_1]"}
    follow = client.responses.create(model="native", tools=TOOLS, input=[
        {"role": "user", "content": "weather in Paris?"},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": out.arguments},
        {"type": "function_call_output", "call_id": "call_1", "output": f"sunny; key {SECRET}"}])  # fmt: skip
    sent = _sent(fake_upstream, "/v1/responses")
    assert sent["input"][2] == {"type": "function_call_output", "call_id": "call_1",
                                "output": "sunny; key [AWS_ACCESS_KEY_ID_1]"}  # fmt: skip
    assert follow.output_text == "fake: weather in Paris?"


def test_native_stream_is_guarded_per_slot(client: openai.OpenAI, fake_upstream: FakeUpstream) -> None:
    events = list(client.responses.create(model="native", input=f"tell {EMAIL} hi", stream=True))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "fake: tell [EMAIL_1] hi"
    done = [e for e in events if e.type == "response.output_text.done"]
    assert done and done[0].text == text
    assert events[-1].type == "response.completed" and events[-1].response.output_text == text
    assert EMAIL not in json.dumps([e.model_dump(warnings=False) for e in events])
    assert _sent(fake_upstream, "/v1/responses")["stream"] is True


def test_native_streamed_function_call_arguments_are_guarded_whole(client: openai.OpenAI,
                                                                   fake_upstream: FakeUpstream) -> None:
    args = json.dumps({"to": EMAIL})
    item = {"id": "fc_1", "type": "function_call", "status": "in_progress", "call_id": "c1", "name": "send",
            "arguments": ""}
    resp = {"id": "resp_s", "object": "response", "created_at": 0, "status": "in_progress", "model": "gpt-test",
            "output": []}
    done_item = {**item, "status": "completed", "arguments": args}
    chunks = [{"type": "response.created", "response": resp},
              {"type": "response.output_item.added", "output_index": 0, "item": item},
              *({"type": "response.function_call_arguments.delta", "item_id": "fc_1", "output_index": 0,
                 "delta": args[k:k + 5]} for k in range(0, len(args), 5)),
              {"type": "response.function_call_arguments.done", "item_id": "fc_1", "output_index": 0,
               "arguments": args},
              {"type": "response.output_item.done", "output_index": 0, "item": done_item},
              {"type": "response.completed", "response": {**resp, "status": "completed", "output": [done_item],
                                                          "usage": {"input_tokens": 1, "output_tokens": 2}}}]
    fake_upstream.fault("reply", times=1, chunks=chunks)
    with client.responses.stream(model="native", input="send it", tools=TOOLS) as stream:
        events = list(stream)
        final = stream.get_final_response()
    deltas = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
    assert len(deltas) == 1 and json.loads(deltas[0]) == {"to": "[EMAIL_1]"}
    assert final.output[0].arguments == deltas[0]  # type: ignore[union-attr]
    assert EMAIL not in json.dumps([e.model_dump(warnings=False) for e in events])


def test_output_block_ends_the_stream_with_an_sdk_error(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIError) as exc:
        list(client.responses.create(model="echo", input="say OUTBLOCK-1234 please", stream=True))
    assert "outblock" in str(exc.value).lower() or "guardrail" in str(exc.value).lower()


# ── errors, as the SDK's exception classes ─────────────────────────────


def test_errors_raise_the_sdk_exception_classes(gateway: Gateway, client: openai.OpenAI) -> None:
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=gateway.v1, api_key="ghat_test_nope", max_retries=0).responses.create(
            model="echo", input="hi")
    with pytest.raises(openai.PermissionDeniedError) as denied:
        client.responses.create(model="echo", input="FORBIDDEN-1234")
    assert denied.value.code == "guardrail_forbidden_blocked"
    narrow = openai.OpenAI(base_url=gateway.v1, api_key=gateway.keys["narrow"], max_retries=0)
    narrow.responses.create(model="echo", input="first")
    with pytest.raises(openai.RateLimitError):
        narrow.responses.create(model="echo", input="second")
    with pytest.raises(openai.BadRequestError) as bad:
        client.responses.create(model="echo", input="hi", previous_response_id="resp_123")
    assert bad.value.param == "previous_response_id"
    with pytest.raises(openai.BadRequestError) as tool:
        client.responses.create(model="echo", input="hi", tools=[{"type": "web_search"}])
    assert tool.value.param == "tools[0].type" and "web_search" in tool.value.message
    with pytest.raises(openai.BadRequestError) as item:
        client.responses.create(model="echo", input=[{"type": "item_reference", "id": "msg_1"}])
    assert item.value.param == "input[0].type"


# ── translated: a fake Anthropic upstream ──────────────────────────────


def test_translated_to_anthropic_plain(client: openai.OpenAI, fake_upstream: FakeUpstream) -> None:
    raw = client.responses.with_raw_response.create(model="claude", instructions="be brief",
                                                    input=f"hello {EMAIL}", max_output_tokens=100)
    r = raw.parse()
    sent = _sent(fake_upstream, "/v1/messages")
    assert sent["system"] == "be brief" and sent["max_tokens"] == 100
    assert sent["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hello [EMAIL_1]"}]}]
    assert r.output_text == "fake: hello [EMAIL_1]" and r.usage is not None and r.usage.input_tokens == 4
    assert raw.headers["x-ghat-provider"] == "ant"


def test_translated_to_anthropic_streamed(client: openai.OpenAI, fake_upstream: FakeUpstream) -> None:
    with client.responses.stream(model="claude", input="stream this") as stream:
        events = list(stream)
        final = stream.get_final_response()
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text.strip() == "fake: stream this" and final.output_text == text
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert final.usage is not None and final.usage.output_tokens > 0


def test_translated_tool_turn_reaches_anthropic_as_tool_use_and_result(client: openai.OpenAI,
                                                                       fake_upstream: FakeUpstream) -> None:
    client.responses.create(model="claude", tools=TOOLS, tool_choice="required", input=[
        {"role": "user", "content": "weather?"},
        {"type": "function_call", "call_id": "toolu_1", "name": "get_weather", "arguments": '{"city":"Oslo"}'},
        {"type": "function_call_output", "call_id": "toolu_1", "output": "rain"}])  # fmt: skip
    sent = _sent(fake_upstream, "/v1/messages")
    assert sent["tools"][0]["name"] == "get_weather" and sent["tool_choice"] == {"type": "any"}
    assert sent["messages"][1]["content"] == [{"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                                               "input": {"city": "Oslo"}}]  # fmt: skip
    assert sent["messages"][2]["content"][0]["type"] == "tool_result"


@pytest.mark.parametrize(("extra", "param"), [
    ({"text": {"format": {"type": "json_schema", "name": "o", "schema": {"type": "object"}}}}, "text.format"),
    ({"store": True}, "store"),
    ({"reasoning": {"effort": "low"}}, "reasoning"),
    ({"tools": [{**TOOLS[0], "strict": True}]}, "tools[0].strict"),
    ({"input": [{"type": "reasoning", "id": "rs_1", "summary": []}, {"role": "user", "content": "hi"}]},
     "input[0].type"),
    ({"top_logprobs": 2}, "top_logprobs"),
])  # fmt: skip
def test_translation_refuses_what_anthropic_cannot_honour(client: openai.OpenAI, fake_upstream: FakeUpstream,
                                                          extra: dict[str, Any], param: str) -> None:
    body: dict[str, Any] = {"model": "claude", "input": "hi", **extra}
    with pytest.raises(openai.BadRequestError) as exc:
        client.responses.create(**body)
    assert f"'{param}'" in exc.value.message
    assert fake_upstream.requests("/v1/messages") == []  # refused before anything left


def test_upstream_rate_limit_reaches_the_caller_as_429(client: openai.OpenAI, fake_upstream: FakeUpstream) -> None:
    fake_upstream.fault("status", status=429, retry_after="3", times=1)
    with pytest.raises(openai.RateLimitError) as exc:
        client.responses.create(model="native", input="hi")
    assert exc.value.response.headers["retry-after"] == "3"


def test_raw_http_stream_has_event_lines_and_no_done(gateway: Gateway) -> None:
    with httpx.stream("POST", f"{gateway.v1}/responses", timeout=10,
                      json={"model": "echo", "input": "hi", "stream": True},
                      headers={"authorization": f"Bearer {gateway.keys['agent']}"}) as r:
        body = r.read().decode()
    assert r.headers["content-type"].startswith("text/event-stream")
    assert body.startswith("event: response.created\ndata: ")
    assert "[DONE]" not in body


# ── a coding agent's session (Codex CLI's request shape), through ghat unchanged but for redaction ──

SESSION = json.loads((Path(__file__).parent / "data" / "codex_session.json").read_text())["requests"]


def _agent_events(turn: int, final_text: str | None) -> list[dict[str, Any]]:
    """What an OpenAI upstream streams for one agent turn: a reasoning item, then a tool call (or the last answer)."""
    rid = f"resp_{turn}"
    head = {"id": rid, "object": "response", "created_at": 1, "status": "in_progress", "model": "gpt-test",
            "output": [], "usage": None}
    reasoning = {"id": f"rs_{turn}", "type": "reasoning", "summary": [], "encrypted_content": "gAAAAB" + "x" * 40}
    summary = {"type": "summary_text", "text": f"**Step {turn}** thinking"}
    at_r = {"item_id": f"rs_{turn}", "output_index": 0}
    evs: list[dict[str, Any]] = [
        {"type": "response.created", "response": head}, {"type": "response.in_progress", "response": head},
        {"type": "response.output_item.added", "output_index": 0, "item": reasoning},
        {"type": "response.reasoning_summary_part.added", **at_r, "summary_index": 0,
         "part": {"type": "summary_text", "text": ""}},
        {"type": "response.reasoning_summary_text.delta", **at_r, "summary_index": 0, "delta": "**Step "},
        {"type": "response.reasoning_summary_text.delta", **at_r, "summary_index": 0, "delta": f"{turn}** thinking"},
        {"type": "response.reasoning_summary_text.done", **at_r, "summary_index": 0, "text": summary["text"]},
        {"type": "response.reasoning_summary_part.done", **at_r, "summary_index": 0, "part": summary},
        {"type": "response.output_item.done", "output_index": 0, "item": {**reasoning, "summary": [summary]}},
    ]
    if final_text is None:
        args = json.dumps({"command": ["bash", "-lc", f"echo step {turn}"], "workdir": "/home/dev/billing"})
        item = {"id": f"fc_{turn}", "type": "function_call", "status": "in_progress", "arguments": "",
                "call_id": f"call_{turn}", "name": "shell"}
        done = {**item, "status": "completed", "arguments": args}
        at = {"item_id": f"fc_{turn}", "output_index": 1}
        evs += [{"type": "response.output_item.added", "output_index": 1, "item": item},
                {"type": "response.function_call_arguments.delta", **at, "delta": args},
                {"type": "response.function_call_arguments.done", **at, "arguments": args},
                {"type": "response.output_item.done", "output_index": 1, "item": done}]
    else:
        msg = {"id": f"msg_{turn}", "type": "message", "status": "in_progress", "role": "assistant", "content": []}
        part = {"type": "output_text", "text": final_text, "annotations": [], "logprobs": []}
        done = {**msg, "status": "completed", "content": [part]}
        at = {"item_id": f"msg_{turn}", "output_index": 1, "content_index": 0}
        evs += [{"type": "response.output_item.added", "output_index": 1, "item": msg},
                {"type": "response.content_part.added", **at, "part": {**part, "text": ""}},
                {"type": "response.output_text.delta", **at, "delta": final_text, "logprobs": []},
                {"type": "response.output_text.done", **at, "text": final_text, "logprobs": []},
                {"type": "response.content_part.done", **at, "part": part},
                {"type": "response.output_item.done", "output_index": 1, "item": done}]
    usage = {"input_tokens": 900 + turn, "input_tokens_details": {"cached_tokens": 512}, "output_tokens": 40,
             "output_tokens_details": {"reasoning_tokens": 16}, "total_tokens": 940 + turn}
    evs.append({"type": "response.completed", "response": {**head, "status": "completed", "usage": usage,
                                                          "output": [evs[8]["item"], done]}})
    return [{**e, "sequence_number": n} for n, e in enumerate(evs)]


def _events_of(text: str) -> list[dict[str, Any]]:
    out = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        event = json.loads(lines["data"])
        assert lines["event"] == event["type"]
        out.append(event)
    return out


def _redacted(value: Any, email: str = "[EMAIL_1]") -> Any:
    """The recording with only what the policy redacts changed: the key and the email the `.env` holds.

    The answer's placeholders are numbered after the input's: an email the model writes is a new value to
    the caller (`restore` could never put it back), so it is `[EMAIL_2]` there.
    """
    if isinstance(value, dict):
        return {k: _redacted(v, email) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v, email) for v in value]
    if isinstance(value, str):
        return value.replace(SECRET, "[AWS_ACCESS_KEY_ID_1]").replace(EMAIL, email)
    return value


def test_a_coding_agent_session_goes_through_unchanged_but_for_redaction(gateway: Gateway,
                                                                         fake_upstream: FakeUpstream) -> None:
    for turn, body in enumerate(SESSION):
        last = turn == len(SESSION) - 1
        upstream = _agent_events(turn, f"The contact is {EMAIL}." if last else None)
        fake_upstream.fault("reply", times=1, chunks=upstream)
        with httpx.stream("POST", f"{gateway.v1}/responses", json=body, timeout=15,
                          headers={"authorization": f"Bearer {gateway.keys['codex']}"}) as r:
            got = _events_of(r.read().decode())
        assert r.status_code == 200
        sent = _sent(fake_upstream, "/v1/responses")
        expected = _redacted({**body, "model": "gpt-test"})
        # a tool output that holds JSON is guarded leaf by leaf and serialised again where it changed
        for k, item in enumerate(sent["input"]):
            if item.get("type") == "function_call_output" and item != expected["input"][k]:
                assert json.loads(item["output"]) == json.loads(expected["input"][k]["output"])
                sent["input"][k] = expected["input"][k]
        assert sent == expected
        assert (SECRET in json.dumps(body)) == (turn >= 2)  # the key entered the history with the .env output
        # every event and id as the upstream sent it; only the cuts between deltas move (output guards hold text
        # back until a span is whole), so deltas of one slot are compared joined, and events numbered again
        assert _joined(got) == _joined(_redacted(upstream, "[EMAIL_2]"))
        assert [e["sequence_number"] for e in got] == list(range(len(got)))


def _joined(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for e in events:
        e = {k: v for k, v in e.items() if k != "sequence_number"}
        prev = out[-1] if out else None
        if prev is not None and e["type"].endswith(".delta") and prev["type"] == e["type"] \
                and prev.get("item_id") == e.get("item_id"):  # fmt: skip
            prev["delta"] += e["delta"]
        else:
            out.append(e)
    return out


# ── one log record per request, with usage and cost, whatever the dialect; hostile upstreams ──


def _logged(gw: Gateway, rid: str) -> dict[str, Any]:
    """The request's log record, once the writer (off the hot path) has put it down."""
    deadline = time.monotonic() + 20
    while True:
        out = subprocess.run([sys.executable, "-m", "cli.main", "logs", "show", rid, "--data-dir", str(gw.data_dir)],
                             capture_output=True, text=True, timeout=30, cwd=ROOT)  # fmt: skip
        if out.returncode == 0:
            return dict(json.loads(out.stdout))
        assert time.monotonic() < deadline, out.stderr
        time.sleep(0.5)


def test_requests_are_logged_with_usage_cost_and_metadata(gateway: Gateway, client: openai.OpenAI) -> None:
    plain = client.responses.with_raw_response.create(model="native", input=f"mail {EMAIL}",
                                                      extra_headers={"x-ghat-operation": "triage"})
    with client.responses.with_streaming_response.create(model="native", input="hi there", stream=True) as s:
        s.read()
        streamed_id = s.headers["x-request-id"]
    rec = _logged(gateway, plain.headers["x-request-id"])
    assert (rec["endpoint"], rec["requested_model"], rec["provider"], rec["status"]) == ("responses", "native",
                                                                                          "fake", 200)
    assert rec["metadata"] == {"operation": "triage"} and rec["usage_source"] == "provider"
    assert rec["prompt_tokens"] == 2 and rec["completion_tokens"] == 3  # the fake counts words
    assert rec["cost_usd"] == pytest.approx((2 * 1 + 3 * 2) / 1e6)
    assert ["input", "pii", "email", 1, "redact", False] in rec["guardrails"]
    rec = _logged(gateway, streamed_id)
    assert rec["endpoint"] == "responses" and rec["stream"] is True and rec["completion_tokens"] == 3


def test_a_malformed_or_cut_upstream_is_an_error_not_a_crash(client: openai.OpenAI,
                                                             fake_upstream: FakeUpstream) -> None:
    fake_upstream.fault("reply", times=1, body={"object": "response", "output": "not a list"})
    with pytest.raises(openai.APIStatusError) as exc:
        client.responses.create(model="native", input="hi")
    assert exc.value.status_code == 502 and "output is not a list" in exc.value.message
    fake_upstream.fault("cut", times=1, after_chunks=4)
    with pytest.raises(openai.APIError):
        list(client.responses.create(model="native", input="one two three", stream=True))
    fake_upstream.fault("reply", times=1, chunks=[{"type": "response.created", "response": {
        "id": "r", "object": "response", "status": "in_progress", "output": []}},
        {"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "delta": 42}])  # fmt: skip
    with pytest.raises(openai.APIError) as cut:
        list(client.responses.create(model="native", input="hi", stream=True))
    assert "delta is not a string" in str(cut.value)


def test_the_dry_run_decides_a_responses_body_as_the_server_does(gateway: Gateway) -> None:
    body = {"model": "native", "instructions": f"key {SECRET}", "input": [{"role": "user", "content": "hi"}]}
    dry = httpx.post(f"{gateway.v1}/ghat/evaluate", json=body, timeout=10,
                     headers={"authorization": f"Bearer {gateway.keys['agent']}"}).json()  # fmt: skip
    assert dry["decision"] == "allow" and dry["max_tokens"] == 512
    assert dry["forwarded"]["instructions"] == "key [AWS_ACCESS_KEY_ID_1]"
    assert dry["forwarded"]["max_output_tokens"] == 512


@st.composite
def _hostile(draw: st.DrawFn) -> dict[str, Any]:
    """A Responses body shaped like the schema, with any field possibly of any type or value (P2)."""
    scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=30)
    v = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                           max_size=3), max_leaves=8)
    part = st.fixed_dictionaries({"type": st.sampled_from(["input_text", "input_image", "output_text"]) | v,
                                  "text": v}, optional={"image_url": v, "detail": v})  # fmt: skip
    item = st.fixed_dictionaries({}, optional={
        "type": st.sampled_from(["message", "function_call", "function_call_output", "reasoning"]) | v,
        "role": st.sampled_from(["user", "assistant", "system", "developer"]) | v,
        "content": st.text(max_size=20) | st.lists(part, max_size=2) | v, "call_id": v, "name": v,
        "arguments": v, "output": v, "summary": v})  # fmt: skip
    tool = st.fixed_dictionaries({"type": st.just("function") | v}, optional={
        "name": v, "parameters": v, "strict": st.just(False) | v, "description": v})
    return draw(st.fixed_dictionaries({"model": st.sampled_from(["echo", "claude", "nope"]) | v,
                                       "input": st.text(max_size=30) | st.lists(item, max_size=3) | v},
                                      optional={"instructions": v, "tools": st.lists(tool, max_size=2) | v,
                                                "tool_choice": v, "text": v, "max_output_tokens": v,
                                                "stream": st.booleans(), "metadata": v, "temperature": v,
                                                "store": v, "include": v, "reasoning": v}))  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=_hostile())
def test_hostile_responses_bodies_never_get_a_5xx(gateway: Gateway, fake_upstream_server: FakeUpstream,
                                                  body: dict[str, Any]) -> None:
    r = httpx.post(f"{gateway.v1}/responses", content=json.dumps(body, allow_nan=True), timeout=15,
                   headers={"authorization": f"Bearer {gateway.keys['agent']}", "content-type": "application/json"})
    assert r.status_code < 500, (r.status_code, r.text[:300])
    if r.status_code >= 400:
        assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    elif "text/event-stream" in r.headers.get("content-type", ""):
        assert '"type":"response.completed"' in r.text or '"type":"error"' in r.text, r.text[-300:]
    else:
        assert r.json()["object"] == "response"


def test_the_gateway_logged_no_traceback(gateway: Gateway) -> None:
    assert "Traceback" not in gateway.log(), gateway.log()[-3000:]


# ── previous_response_id: honoured only for a response this gateway served, to the same app ──


def _stored(fake: FakeUpstream, rid: str) -> None:
    fake.fault("reply", times=1, body={"id": rid, "object": "response", "created_at": 0, "status": "completed",
                                       "model": "gpt-test", "output": [], "usage": {"input_tokens": 1,
                                                                                      "output_tokens": 1}})


def test_a_follow_up_to_a_response_ghat_served_goes_to_the_provider_holding_it(
        gateway: Gateway, client: openai.OpenAI, fake_upstream: FakeUpstream) -> None:  # fmt: skip
    _stored(fake_upstream, "resp_served_1")
    first = client.responses.create(model="native", input="remember: the code is blue")
    assert first.id == "resp_served_1"
    second = client.responses.create(model="native", previous_response_id=first.id, input=f"and mail {EMAIL}")
    sent = _sent(fake_upstream, "/v1/responses")
    assert sent["previous_response_id"] == "resp_served_1" and sent["input"] == "and mail [EMAIL_1]"
    assert second.output_text == "fake: and mail [EMAIL_1]"
    # streamed answers are remembered too
    chunks = [{"type": "response.created", "response": {"id": "resp_streamed_1", "object": "response",
                                                        "status": "in_progress", "output": []}},
              {"type": "response.completed", "response": {"id": "resp_streamed_1", "object": "response",
                                                          "status": "completed", "output": []}}]  # fmt: skip
    fake_upstream.fault("reply", times=1, chunks=chunks)
    list(client.responses.create(model="native", input="go", stream=True))
    client.responses.create(model="native", previous_response_id="resp_streamed_1", input="next")
    assert _sent(fake_upstream, "/v1/responses")["previous_response_id"] == "resp_streamed_1"


def test_a_follow_up_ghat_cannot_stand_behind_is_refused(gateway: Gateway, client: openai.OpenAI,
                                                         fake_upstream: FakeUpstream) -> None:
    _stored(fake_upstream, "resp_not_stored")
    client.responses.create(model="native", input="hi", store=False)  # the provider keeps nothing
    _stored(fake_upstream, "resp_agents_own")
    client.responses.create(model="native", input="hi")
    mock_id = client.responses.create(model="echo", input="hi").id  # the mock keeps no state
    codex = openai.OpenAI(base_url=gateway.v1, api_key=gateway.keys["codex"], max_retries=0)
    fake_upstream.reset()
    cases = [(client, "native", "resp_not_stored", "did not serve"), (client, "native", "resp_never_seen",
             "did not serve"), (client, "echo", mock_id, "did not serve"),
             (codex, "codex", "resp_agents_own", "did not serve"),  # another app's response
             (client, "claude", "resp_agents_own", "held by provider 'fake'")]  # fmt: skip
    for who, model, rid, why in cases:
        with pytest.raises(openai.BadRequestError) as exc:
            who.responses.create(model=model, input="more", previous_response_id=rid)
        assert exc.value.param == "previous_response_id" and why in exc.value.message, (model, rid)
    assert fake_upstream.requests() == []  # none of them left the gateway


# ── translated answers with tool calls: Anthropic tool_use blocks become function_call items ──


def _anthropic_sse(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


def test_an_anthropic_tool_use_answer_becomes_a_function_call(client: openai.OpenAI,
                                                              fake_upstream: FakeUpstream) -> None:
    fake_upstream.fault("reply", times=1, body={
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-test", "stop_reason": "tool_use",
        "content": [{"type": "text", "text": "Let me check."},
                    {"type": "tool_use", "id": "toolu_9", "name": "get_weather",
                     "input": {"city": "Oslo", "notify": EMAIL}}],
        "usage": {"input_tokens": 10, "output_tokens": 5}})  # fmt: skip
    r = client.responses.create(model="claude", input="weather?", tools=TOOLS)
    assert r.output[0].type == "message" and r.output_text == "Let me check."
    call = r.output[1]
    assert call.type == "function_call" and call.call_id == "toolu_9" and call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Oslo", "notify": "[EMAIL_1]"}


def test_an_anthropic_streamed_tool_use_becomes_typed_function_call_events(client: openai.OpenAI,
                                                                           fake_upstream: FakeUpstream) -> None:
    start = {"type": "message_start", "message": {"id": "msg_2", "type": "message", "role": "assistant",
                                                  "model": "claude-test", "content": [],
                                                  "usage": {"input_tokens": 12, "output_tokens": 1}}}
    args = json.dumps({"city": "Oslo", "notify": EMAIL})
    events = [_anthropic_sse("message_start", start),
              _anthropic_sse("content_block_start", {"type": "content_block_start", "index": 0,
                                                     "content_block": {"type": "text", "text": ""}}),
              _anthropic_sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                     "delta": {"type": "text_delta", "text": "Checking"}}),
              _anthropic_sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
              _anthropic_sse("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {
                  "type": "tool_use", "id": "toolu_7", "name": "get_weather", "input": {}}}),
              *(_anthropic_sse("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {
                  "type": "input_json_delta", "partial_json": args[k:k + 7]}}) for k in range(0, len(args), 7)),
              _anthropic_sse("content_block_stop", {"type": "content_block_stop", "index": 1}),
              _anthropic_sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use"},
                                               "usage": {"output_tokens": 9}}),
              _anthropic_sse("message_stop", {"type": "message_stop"})]  # fmt: skip
    fake_upstream.fault("events", times=1, events=events)
    with client.responses.stream(model="claude", input="weather?", tools=TOOLS) as stream:
        got = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in got]
    assert "response.function_call_arguments.done" in kinds and kinds[-1] == "response.completed"
    assert final.output_text == "Checking"
    call = final.output[1]
    assert call.type == "function_call" and call.call_id == "toolu_7"
    assert json.loads(call.arguments) == {"city": "Oslo", "notify": "[EMAIL_1]"}
    assert EMAIL not in json.dumps([e.model_dump(warnings=False) for e in got])
    assert final.usage is not None and (final.usage.input_tokens, final.usage.output_tokens) == (12, 9)
