"""Where finished requests go: the request log writer, the metrics registry, and (optionally) traces.

The server builds one `LogRecord` per request and hands it to `Observers.record`,
which must not block: the log writer queues it and writes off the hot path,
the metrics registry counts it, and the trace sink, when an OTLP endpoint is
configured, queues it for its spans (`adapters/tracing.py`).

Exactly one record per answered request (P14), whatever went wrong on the way:
the edge opens a `RequestTag` per request (`begin_request`, which also keeps
the caller's own `x-request-id` for the record); `record` marks it; and if a
handler fails before any record left, `record_failure` writes one for the
500 the client gets. The log goes first, so a metric or trace sink that
chokes on a record cannot cost the request its log entry.
"""

from __future__ import annotations

import logging
import time
from contextvars import ContextVar
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from adapters.logstore import open_log_writer
from engine.metrics import Metrics
from engine.records import LogRecord

log = logging.getLogger("ghat.server")

# The endpoint name a record carries, for the routes whose handler may fail before building one.
ENDPOINTS = {"/v1/chat/completions": "chat", "/v1/embeddings": "embeddings", "/v1/models": "models",
             "/v1/ghat/evaluate": "evaluate", "/v1/responses": "responses"}  # fmt: skip


class LogSink(Protocol):
    def submit(self, record: LogRecord) -> None: ...

    async def aclose(self) -> None: ...


class RecordSink(LogSink, Protocol):
    """The request log itself: also says when it cannot keep every record (readiness reports it)."""

    def problem(self) -> str | None: ...


class RequestTag:
    """One request as the edge saw it before any record: the caller's own id, and whether a record left."""

    __slots__ = ("client_request_id", "recorded")

    def __init__(self, client_request_id: str | None) -> None:
        self.client_request_id = client_request_id
        self.recorded = False


# Set once per request by the edge (each ASGI request runs in its own task, so its own context).
_TAG: ContextVar[RequestTag | None] = ContextVar("ghat_request_tag", default=None)


def begin_request(client_request_id: str | None) -> RequestTag:
    """Open this request's tag: the caller's `x-request-id` goes into its record, beside the gateway's id."""
    tag = RequestTag(client_request_id or None)
    _TAG.set(tag)
    return tag


class Exchanged(Protocol):
    """What `record_failure` reads of the request's response side (`adapters.api.responses.Exchange`)."""

    request_id: str
    app: str
    policy: str
    status: int
    started: float  # perf_counter at arrival


class Observers:
    """The log sink, the metrics registry and any further sinks (traces) behind one non-blocking call."""

    def __init__(self, sink: RecordSink, metrics: Metrics, extra: tuple[LogSink, ...] = ()) -> None:
        self.sink = sink
        self.metrics = metrics
        self.extra = extra

    def record(self, record: LogRecord) -> None:
        """Log, count and trace one finished request; never raises, never blocks."""
        tag = _TAG.get()
        if tag is not None:
            tag.recorded = True
            if tag.client_request_id is not None and record.client_request_id is None:
                record = replace(record, client_request_id=tag.client_request_id)
        try:
            self.sink.submit(record)
        except Exception:  # the writer's submit does not raise; if it ever did, say so loudly
            log.exception("could not hand request %s to the request log", record.request_id)
        try:
            self.metrics.observe(record)
            for sink in self.extra:
                sink.submit(record)
        except Exception:  # observing must never fail a request that was answered
            log.exception("could not count or trace request %s", record.request_id)

    def record_failure(self, ex: Exchanged, env: str, path: str) -> None:
        """The record of a request whose handler failed before it left one (the client gets a 500)."""
        tag = _TAG.get()
        if tag is not None and tag.recorded:
            return
        elapsed_ms = (time.perf_counter() - ex.started) * 1000.0
        self.record(LogRecord(
            request_id=ex.request_id, time=time.time() - elapsed_ms / 1000.0, env=env, app=ex.app or None,
            key_id=None, endpoint=getattr(ex, "endpoint", "") or ENDPOINTS.get(path, path), requested_model=None,
            provider=None, upstream_model=None, stream=False, status=ex.status or 500, error_code="internal_error",
            policy_version=ex.policy, timings_ms={"total": elapsed_ms},
        ))  # fmt: skip

    def problem(self) -> str | None:
        """Why the request log cannot keep every record now (a dead writer, an unwritable disk), or None."""
        try:
            return self.sink.problem()
        except Exception as exc:
            return f"the request log cannot say whether it works: {exc!r}"

    async def aclose(self) -> None:
        """Flush everything queued: the request log first (it is what must not be lost), then traces."""
        await self.sink.aclose()
        for sink in self.extra:
            await sink.aclose()


def open_observers(data_dir: Path, env: str, otlp_endpoint: str | None = None) -> Observers:
    """The SQLite log writer in `data_dir`, the metrics registry, and a trace sink if an endpoint is set."""
    writer = open_log_writer(data_dir)
    metrics = Metrics()
    metrics.bind_log_writer(writer)
    extra: tuple[LogSink, ...] = ()
    if otlp_endpoint:
        from adapters.tracing import open_trace_sink

        try:
            extra = (open_trace_sink(otlp_endpoint, env),)
        except ImportError as exc:
            raise RuntimeError(f"tracing to {otlp_endpoint} needs the OpenTelemetry SDK: "
                               f"pip install 'ghat[otel]' ({exc})") from exc
        log.info("tracing to %s", otlp_endpoint)
    return Observers(writer, metrics, extra)
