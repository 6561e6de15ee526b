"""Where finished requests go: the request log writer and the metrics registry.

The server builds one `LogRecord` per request and hands it to `Observers.record`,
which must not block: the log writer queues it and writes off the hot path,
the metrics registry counts it. Both are found at start: the SQLite writer
from `adapters/logstore` and `engine/metrics` when they are installed, else the
fallbacks here (no log, request counters only), so the server runs either way.
"""

from __future__ import annotations

import importlib
import logging
from collections import Counter
from pathlib import Path
from typing import Any, Protocol

from engine.records import LogRecord

log = logging.getLogger("ghat.server")


class LogSink(Protocol):
    def submit(self, record: LogRecord) -> None: ...

    async def aclose(self) -> None: ...


class MetricsSink(Protocol):
    def observe(self, record: LogRecord) -> None: ...

    def render(self) -> str: ...


class NullSink:
    """No request log (the log store is not installed): records are counted, not kept."""

    def submit(self, record: LogRecord) -> None:
        return None

    async def aclose(self) -> None:
        return None


class RequestCounters:
    """Minimal Prometheus metrics until `engine/metrics.py` provides the full set."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str, int, str]] = Counter()
        self.seconds: dict[str, float] = {}
        self.guardrails: Counter[tuple[str, str, str]] = Counter()

    def observe(self, record: LogRecord) -> None:
        self.requests[(record.endpoint, record.app or "", record.status, record.error_code or "")] += 1
        spent = record.timings_ms.get("total", 0.0) / 1000.0
        self.seconds[record.endpoint] = self.seconds.get(record.endpoint, 0.0) + spent
        for g in record.guardrails:
            self.guardrails[(g.direction, g.detector, g.action)] += g.count

    def render(self) -> str:
        lines = ["# HELP ghat_requests_total Requests by endpoint, app, status and error code.",
                 "# TYPE ghat_requests_total counter"]  # fmt: skip
        for (endpoint, app, status, code), n in sorted(self.requests.items()):
            lines.append(f'ghat_requests_total{{endpoint="{endpoint}",app="{app}",status="{status}",'
                         f'code="{code}"}} {n}')  # fmt: skip
        lines += ["# HELP ghat_request_seconds_total Time spent answering, by endpoint.",
                  "# TYPE ghat_request_seconds_total counter"]  # fmt: skip
        lines += [f'ghat_request_seconds_total{{endpoint="{e}"}} {s:.6f}' for e, s in sorted(self.seconds.items())]
        lines += ["# HELP ghat_guardrail_findings_total Findings by direction, detector and action.",
                  "# TYPE ghat_guardrail_findings_total counter"]  # fmt: skip
        for (direction, det, action), n in sorted(self.guardrails.items()):
            lines.append(f'ghat_guardrail_findings_total{{direction="{direction}",detector="{det}",'
                         f'action="{action}"}} {n}')  # fmt: skip
        return "\n".join(lines) + "\n"


class Observers:
    """The log sink and the metrics registry behind one non-blocking call."""

    def __init__(self, sink: LogSink, metrics: MetricsSink) -> None:
        self.sink = sink
        self.metrics = metrics

    def record(self, record: LogRecord) -> None:
        try:
            self.metrics.observe(record)
            self.sink.submit(record)
        except Exception:  # observing must never fail a request that was answered
            log.exception("could not record request %s", record.request_id)

    async def aclose(self) -> None:
        await self.sink.aclose()


def _optional(module: str) -> Any:
    """The module, or None when it is absent or broken (logged): the gateway must start either way."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):
            return None
        log.exception("could not import %s; using the fallback", module)
    except Exception:
        log.exception("could not import %s; using the fallback", module)
    return None


def open_observers(data_dir: Path, env: str) -> Observers:
    """The installed log writer and metrics, or the fallbacks (see the module docstring)."""
    sink: LogSink = NullSink()
    store = _optional("adapters.logstore")
    opener = getattr(store, "open_writer", None) if store is not None else None
    if opener is not None:
        sink = opener(data_dir)
    else:
        log.warning("request log store not available: requests are counted in /metrics but not logged")
    metrics_mod = _optional("engine.metrics")
    registry = getattr(metrics_mod, "Metrics", None) if metrics_mod is not None else None
    metrics: MetricsSink = registry() if registry is not None else RequestCounters()
    binder = getattr(metrics, "bind_log_writer", None)
    if binder is not None and not isinstance(sink, NullSink):
        binder(sink)
    return Observers(sink, metrics)
