"""OpenTelemetry traces: a span per request, per phase and per attempt, exported over real OTLP/HTTP.

The unit tests build spans from records into the SDK's in-memory exporter;
the end-to-end test runs `ghat serve --otlp-endpoint` against a small OTLP
collector (an HTTP server that decodes the protobuf export requests) and finds
the trace of a fallen-back request by the `x-request-id` the client saw.
"""

from __future__ import annotations

import http.server
import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from adapters.tracing import TraceSink, otlp_endpoint_from_env
from engine.records import AttemptRecord, GuardrailRecord, LogRecord
from tests.fixtures_upstream import FakeUpstream
from tests.gateway_process import start_gateway

POLICY = """
provider fake {
  kind     openai
  base_url "__UPSTREAM__"
  api_key  "sk-fake-upstream"
}
provider local { kind mock }
model fake/gpt-test { price in 1 out 2 per 1M }
model local/echo    { price in 0 out 0 per 1M }
alias chat-fb {
  route    fake/gpt-test retries 0
  fallback local/echo
}
app traced {
  env        test
  models     chat-fb
  max_tokens 256
  rate_limit 1000/min
}
"""
TIMINGS = {"total": 12.0, "resolve": 0.5, "guardrails": 1.0, "provider": 9.0, "log": 0.1, "usage": 0.2,
           "overhead": 3.0}  # fmt: skip


def _record(**kw: Any) -> LogRecord:
    base: dict[str, Any] = dict(
        request_id="req-1", time=1_700_000_000.0, env="prod", app="support", key_id="ghat_prod_ab12…",
        endpoint="chat", requested_model="smart-default", provider="local", upstream_model="echo", stream=False,
        status=200, error_code=None, policy_version="v1", metadata={"operation": "triage"},
        attempts=(AttemptRecord("openai/gpt-4o", "openai", 503, "upstream_unavailable", 4.0),
                  AttemptRecord("local/echo", "local", 200, None, 5.0)),
        guardrails=(GuardrailRecord("input", "secrets", "aws_access_key_id", 1, "redact", False),),
        prompt_tokens=10, completion_tokens=5, timings_ms=TIMINGS,
    )  # fmt: skip
    base.update(kw)
    return LogRecord(**base)


def _spans(*records: LogRecord) -> list[Any]:
    exporter = InMemorySpanExporter()
    sink = TraceSink(exporter, env="prod")
    for r in records:
        sink.submit(r)
    sink.close()
    return list(exporter.get_finished_spans())


def test_one_request_becomes_a_root_span_with_phases_and_attempts() -> None:
    spans = _spans(_record())
    by_name: dict[str, list[Any]] = {}
    for s in spans:
        by_name.setdefault(s.name, []).append(s)
    (root,) = by_name["ghat chat"]
    assert root.parent is None
    assert root.attributes["ghat.request_id"] == "req-1"
    assert root.attributes["ghat.metadata.operation"] == "triage"
    assert root.attributes["ghat.guardrails"] == ("secrets",)
    assert root.end_time - root.start_time == 12_000_000
    phases = [by_name[f"ghat.{p}"][0] for p in ("resolve", "guardrails", "provider", "usage", "log")]
    assert all(p.parent.span_id == root.context.span_id for p in phases)
    for a, b in itertools.pairwise(phases):  # end to end, in pipeline order
        assert a.end_time == b.start_time
    provider = by_name["ghat.provider"][0]
    attempts = sorted(by_name["ghat.attempt"], key=lambda s: s.attributes["ghat.attempt"])
    assert [a.attributes["gen_ai.request.model"] for a in attempts] == ["openai/gpt-4o", "local/echo"]
    assert all(a.parent.span_id == provider.context.span_id for a in attempts)
    assert attempts[0].attributes["error.type"] == "upstream_unavailable"
    assert attempts[0].status.status_code.name == "ERROR"
    assert attempts[1].status.status_code.name == "UNSET"


def test_spans_carry_no_prompt_or_key_and_errors_mark_the_root() -> None:
    spans = _spans(_record(status=403, error_code="guardrail_secrets_blocked", attempts=()))
    root = next(s for s in spans if s.parent is None)
    assert root.status.status_code.name == "ERROR"
    assert root.attributes["error.type"] == "guardrail_secrets_blocked"
    text = repr([dict(s.attributes) for s in spans])
    assert "AKIA" not in text and "ghat_prod_ab12…" in text  # only the truncated key id


def test_endpoint_from_standard_variables() -> None:
    assert otlp_endpoint_from_env({}) is None
    assert otlp_endpoint_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/"}) == "http://c:4318/v1/traces"
    both = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t/x"}
    assert otlp_endpoint_from_env(both) == "http://t/x"


class _Collector(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[ExportTraceServiceRequest]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        req = ExportTraceServiceRequest()
        req.ParseFromString(body)
        type(self).received.append(req)
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def collector() -> Iterator[tuple[str, list[ExportTraceServiceRequest]]]:
    received: list[ExportTraceServiceRequest] = []
    handler = type("Collector", (_Collector,), {"received": received})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces", received
    server.shutdown()


@pytest.mark.slow
def test_serve_exports_the_trace_of_a_fallen_back_request(
        tmp_path: Path, fake_upstream: FakeUpstream, collector: tuple[str, list[ExportTraceServiceRequest]],
        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    endpoint, received = collector
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    gw = start_gateway(tmp_path, fake_upstream.url, apps=("traced",), policy=POLICY,
                       extra=("--otlp-endpoint", endpoint))  # fmt: skip
    try:
        fake_upstream.fault("status", status=503, times=None)
        r = httpx.post(f"{gw.v1}/chat/completions", headers={"authorization": f"Bearer {gw.keys['traced']}"},
                       json={"model": "chat-fb", "messages": [{"role": "user", "content": "hi"}]},
                       timeout=30)  # fmt: skip
        assert r.status_code == 200, r.text
        rid = r.headers["x-request-id"]
        deadline = time.monotonic() + 15
        spans: list[Any] = []
        while time.monotonic() < deadline:
            spans = [s for req in list(received) for rs in req.resource_spans for ss in rs.scope_spans
                     for s in ss.spans]  # fmt: skip
            if any(s.name == "ghat.attempt" for s in spans):
                break
            time.sleep(0.1)
    finally:
        gw.stop()
    attrs = {s.name: {a.key: a.value for a in s.attributes} for s in spans}
    root = next(s for s in spans if s.name == "ghat chat")
    assert attrs["ghat chat"]["ghat.request_id"].string_value == rid
    attempts = [s for s in spans if s.name == "ghat.attempt"]
    assert len(attempts) == int(r.headers["x-ghat-attempts"]) >= 2
    mine = [s for s in spans if s.trace_id == root.trace_id]
    assert {s.name for s in mine} >= {"ghat chat", "ghat.resolve", "ghat.guardrails", "ghat.provider", "ghat.attempt"}
    assert [s for s in attempts if s.trace_id == root.trace_id] == attempts
