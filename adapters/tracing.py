"""OpenTelemetry traces: one trace per request, a span per phase and per attempt, sent over OTLP/HTTP.

Spans are built from the finished `LogRecord` on a background thread, not
while the request runs: the OpenTelemetry SDK costs tens of microseconds per
span, and a request has up to a dozen, so timing them live would cost more
than the whole gateway overhead budget. The record already holds what a trace
shows — arrival time, the seven phase durations, every attempt with its
duration, status and error code — so the spans are exact in duration and
order. The phases are accumulated times (input and output guardrails are one
`guardrails` phase), so phase spans are laid end to end in pipeline order
(resolve, guardrails, provider, usage, log) inside the request span, and
attempts end to end inside the provider span; the attribute
`ghat.layout = "accumulated"` says so.

The SDK and the OTLP exporter are an optional extra (`pip install ghat[otel]`);
`ghat serve --otlp-endpoint URL` (or the standard `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
/ `OTEL_EXPORTER_OTLP_ENDPOINT`) turns tracing on. Nothing of a prompt, a
response or a key is put in a span: the same fields as the request log.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from typing import Any

import anyio

from engine.records import LogRecord

log = logging.getLogger("ghat.tracing")
QUEUE_LIMIT = 10_000  # records waiting for the span thread; past it a record's trace is dropped and counted
PHASE_ORDER = ("resolve", "guardrails", "provider", "usage", "log")
_STOP = object()


def otlp_endpoint_from_env(environ: dict[str, str] | None = None) -> str | None:
    """The traces endpoint the standard OpenTelemetry variables name, if any (the signal one wins)."""
    env = os.environ if environ is None else environ
    traces = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if traces:
        return traces
    base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    return base.rstrip("/") + "/v1/traces" if base else None


def _attributes(record: LogRecord) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "ghat.request_id": record.request_id,
        "ghat.env": record.env,
        "ghat.endpoint": record.endpoint,
        "ghat.policy_version": record.policy_version,
        "ghat.stream": record.stream,
        "ghat.layout": "accumulated",
        "http.response.status_code": record.status,
        "gen_ai.usage.input_tokens": record.prompt_tokens,
        "gen_ai.usage.output_tokens": record.completion_tokens,
        "ghat.cost_usd": record.cost_usd,
        "ghat.usage_source": record.usage_source,
        "ghat.attempts": len(record.attempts),
    }
    optional = {
        "ghat.app": record.app, "ghat.key_id": record.key_id, "gen_ai.request.model": record.requested_model,
        "gen_ai.system": record.provider, "gen_ai.response.model": record.upstream_model,
        "error.type": record.error_code,
    }  # fmt: skip
    attrs.update({k: v for k, v in optional.items() if v})
    attrs.update({f"ghat.metadata.{k}": v for k, v in record.metadata.items()})
    fired = sorted({g.detector for g in record.guardrails})
    if fired:
        attrs["ghat.guardrails"] = fired
    return attrs


def open_trace_sink(endpoint: str, env: str) -> TraceSink:
    """A trace sink exporting over OTLP/HTTP (protobuf) to `endpoint`, e.g. http://collector:4318/v1/traces."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return TraceSink(OTLPSpanExporter(endpoint=endpoint), env=env)


class TraceSink:
    """A log sink that turns each record into spans on its own thread and exports them in batches."""

    def __init__(self, exporter: Any, env: str = "", service_name: str | None = None) -> None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        name = service_name or os.environ.get("OTEL_SERVICE_NAME") or "ghat"
        resource = Resource.create({"service.name": name, "deployment.environment.name": env})
        self.provider = TracerProvider(resource=resource)
        self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer("ghat")
        self.dropped = 0
        self._queue: queue.Queue[object] = queue.Queue(QUEUE_LIMIT)
        self._thread = threading.Thread(target=self._run, name="ghat-trace", daemon=True)
        self._thread.start()

    def submit(self, record: LogRecord) -> None:
        """Queue the record for its spans; never blocks the request (a full queue drops and counts)."""
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1

    async def aclose(self) -> None:
        """Turn what is queued into spans and export them all before the process ends."""
        await anyio.to_thread.run_sync(self.close)

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout=30)
        self.provider.shutdown()  # flushes the batch processor
        if self.dropped:
            log.warning("%d request traces were dropped (trace queue full)", self.dropped)

    def _run(self) -> None:
        while (item := self._queue.get()) is not _STOP:
            try:
                self.emit(item)  # type: ignore[arg-type]
            except Exception:  # a bad record must not stop tracing for the others
                log.exception("could not build the trace of a request")

    def emit(self, record: LogRecord) -> None:
        """The spans of one request: the request, its phases, and its attempts inside `provider`."""
        from opentelemetry import trace
        from opentelemetry.trace import SpanKind, Status, StatusCode

        t = record.timings_ms
        start = int(record.time * 1e9)
        end = start + int(t.get("total", 0.0) * 1e6)
        root = self.tracer.start_span(f"ghat {record.endpoint}", kind=SpanKind.SERVER, start_time=start,
                                      attributes=_attributes(record))  # fmt: skip
        if record.status >= 400:
            root.set_status(Status(StatusCode.ERROR, record.error_code or str(record.status)))
        parent = trace.set_span_in_context(root)
        at = start
        for phase in PHASE_ORDER:
            dur = int(t.get(phase, 0.0) * 1e6)
            span = self.tracer.start_span(f"ghat.{phase}", context=parent, start_time=at,
                                          attributes={"ghat.phase": phase})  # fmt: skip
            if phase == "provider":
                self._attempts(record, trace.set_span_in_context(span), at)
            span.end(end_time=at + dur)
            at += dur
        root.end(end_time=max(end, at))

    def _attempts(self, record: LogRecord, parent: Any, start: int) -> None:
        from opentelemetry.trace import SpanKind, Status, StatusCode

        at = start
        for i, a in enumerate(record.attempts, 1):
            attrs: dict[str, Any] = {"ghat.attempt": i, "gen_ai.system": a.provider, "gen_ai.request.model": a.model,
                     "http.response.status_code": a.status}  # fmt: skip
            if a.error_code:
                attrs["error.type"] = a.error_code
            span = self.tracer.start_span("ghat.attempt", context=parent, kind=SpanKind.CLIENT, start_time=at,
                                          attributes=attrs)  # fmt: skip
            if a.error_code:
                span.set_status(Status(StatusCode.ERROR, a.error_code))
            at += int(a.duration_ms * 1e6)
            span.end(end_time=at)
