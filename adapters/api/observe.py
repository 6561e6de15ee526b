"""Where finished requests go: the request log writer, the metrics registry, and (optionally) traces.

The server builds one `LogRecord` per request and hands it to `Observers.record`,
which must not block: the log writer queues it and writes off the hot path,
the metrics registry counts it, and the trace sink, when an OTLP endpoint is
configured, queues it for its spans (`adapters/tracing.py`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

from adapters.logstore import open_log_writer
from engine.metrics import Metrics
from engine.records import LogRecord

log = logging.getLogger("ghat.server")


class LogSink(Protocol):
    def submit(self, record: LogRecord) -> None: ...

    async def aclose(self) -> None: ...


class Observers:
    """The log sink, the metrics registry and any further sinks (traces) behind one non-blocking call."""

    def __init__(self, sink: LogSink, metrics: Metrics, extra: tuple[LogSink, ...] = ()) -> None:
        self.sink = sink
        self.metrics = metrics
        self.extra = extra

    def record(self, record: LogRecord) -> None:
        try:
            self.metrics.observe(record)
            self.sink.submit(record)
            for sink in self.extra:
                sink.submit(record)
        except Exception:  # observing must never fail a request that was answered
            log.exception("could not record request %s", record.request_id)

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
