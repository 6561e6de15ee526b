"""Prometheus metrics for `/metrics`, fed by the same `LogRecord` the request log stores.

A tiny registry rather than `prometheus_client`: `observe` runs once per
request on the event loop, and plain dicts keyed by label tuples cost a few
microseconds for the whole record where the client library's per-child locks
and label lookups cost several times that (measured in `bench/bench_logging.py`).
The output is the text exposition format 0.0.4; the tests parse it with
`prometheus_client`'s own parser.

Labels are low-cardinality by construction: app, env, endpoint and model come
from the policy (the model that answered, never the name the client sent),
codes from the error catalogue, status as a class (2xx, 4xx, 5xx). Request
ids, keys and metadata values never become labels.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from engine.records import PHASES, LogRecord

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Seconds: from the gateway's own microsecond phases up to long generations.
BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
           1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)  # fmt: skip
Sample = tuple[str, dict[str, str], float]  # name, labels, value: what extra collectors yield


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


class Counter:
    __slots__ = ("help", "labelnames", "name", "values")

    def __init__(self, name: str, help: str, labelnames: Sequence[str]) -> None:
        self.name, self.help, self.labelnames = name, help, tuple(labelnames)
        self.values: dict[tuple[str, ...], float] = {}

    def inc(self, key: tuple[str, ...], amount: float = 1.0) -> None:
        self.values[key] = self.values.get(key, 0.0) + amount

    def render(self, out: list[str]) -> None:
        out.append(f"# HELP {self.name} {self.help}\n# TYPE {self.name} counter\n")
        for key, v in sorted(self.values.items()):
            out.append(f"{self.name}{_labels(self.labelnames, key)} {_num(v)}\n")


class Histogram:
    __slots__ = ("buckets", "help", "labelnames", "name", "values")

    def __init__(self, name: str, help: str, labelnames: Sequence[str], buckets: Sequence[float] = BUCKETS) -> None:
        self.name, self.help, self.labelnames, self.buckets = name, help, tuple(labelnames), tuple(buckets)
        self.values: dict[tuple[str, ...], list[float]] = {}  # per bucket (not cumulative), +Inf, sum

    def observe(self, key: tuple[str, ...], v: float) -> None:
        row = self.values.get(key)
        if row is None:
            row = self.values[key] = [0.0] * (len(self.buckets) + 2)
        row[bisect_left(self.buckets, v)] += 1
        row[-1] += v

    def render(self, out: list[str]) -> None:
        out.append(f"# HELP {self.name} {self.help}\n# TYPE {self.name} histogram\n")
        for key, row in sorted(self.values.items()):
            acc = 0.0
            for le, n in zip((*self.buckets, float("inf")), row, strict=False):
                acc += n
                bound = 'le="+Inf"' if le == float("inf") else f'le="{le!r}"'
                out.append(f"{self.name}_bucket{_labels(self.labelnames, key, bound)} {_num(acc)}\n")
            out.append(f"{self.name}_sum{_labels(self.labelnames, key)} {_num(row[-1])}\n")
            out.append(f"{self.name}_count{_labels(self.labelnames, key)} {_num(acc)}\n")


def _status_class(status: int) -> str:
    return f"{status // 100}xx" if 100 <= status < 600 else "other"


class Metrics:
    """The gateway's registry: `observe(record)` per request, `render()` per scrape."""

    def __init__(self) -> None:
        app_env = ("app", "env")
        served = ("app", "env", "model", "provider")
        self.requests = Counter("ghat_requests_total", "Requests answered, by outcome.",
                                (*app_env, "endpoint", "model", "provider", "status_class", "code"))
        self.errors = Counter("ghat_request_errors_total", "Requests answered with an error status, by code.",
                              (*app_env, "code"))
        self.tokens = Counter("ghat_tokens_total", "Tokens used, by kind (prompt, completion, cached, reasoning).",
                              (*served, "kind"))
        self.cost = Counter("ghat_cost_usd_total", "Estimated cost in USD from the policy's price table.", served)
        self.usage_source = Counter("ghat_usage_source_total", "Where token counts came from.", ("source",))
        self.guardrails = Counter("ghat_guardrail_findings_total", "Guardrail findings (counts, never values).",
                                  (*app_env, "direction", "detector", "type", "action", "shadow"))
        self.blocked = Counter("ghat_guardrail_blocks_total", "Requests refused by policy, by code.",
                               (*app_env, "code"))
        self.fallbacks = Counter("ghat_fallbacks_total", "Requests on which another candidate was tried.", app_env)
        self.attempts = Counter("ghat_upstream_attempts_total", "Upstream attempts, by outcome (ok or error code).",
                                ("model", "provider", "outcome"))
        self.phases = Histogram("ghat_request_phase_seconds", "Time per request phase (Server-Timing phases).",
                                (*app_env, "phase"))
        self.attempt_seconds = Histogram("ghat_upstream_attempt_seconds", "Duration of each upstream attempt.",
                                         ("model", "provider"))
        self._all: tuple[Counter | Histogram, ...] = (
            self.requests, self.errors, self.tokens, self.cost, self.usage_source, self.guardrails, self.blocked,
            self.fallbacks, self.attempts, self.phases, self.attempt_seconds,
        )  # fmt: skip
        self._collectors: list[Callable[[], Iterable[tuple[str, str, str, float]]]] = []
        self._lock = threading.Lock()

    def add_collector(self, fn: Callable[[], Iterable[tuple[str, str, str, float]]]) -> None:
        """Extra unlabelled samples read at scrape time: (name, type, help, value), e.g. the log writer's."""
        self._collectors.append(fn)

    def bind_log_writer(self, writer: Any) -> None:
        """Expose a `LogWriter`'s counters (written, spilled, reloaded, queue depth, sink errors)."""
        self.add_collector(lambda: log_writer_samples(writer.stats()))

    def observe(self, r: LogRecord) -> None:
        """Count one finished request; a few dict updates, no I/O."""
        app, env = r.app or "", r.env
        last = r.attempts[-1] if r.attempts else None
        model = last.model if last else ""
        provider = last.provider if last else (r.provider or "")
        code = r.error_code or ""
        with self._lock:
            self.requests.inc((app, env, r.endpoint, model, provider, _status_class(r.status), code))
            if r.status >= 400:
                self.errors.inc((app, env, code))
                if code.startswith("guardrail_"):
                    self.blocked.inc((app, env, code))
            served = (app, env, model, provider)
            for kind, n in (("prompt", r.prompt_tokens), ("completion", r.completion_tokens),
                            ("cached", r.cached_tokens), ("reasoning", r.reasoning_tokens)):  # fmt: skip
                if n:
                    self.tokens.inc((*served, kind), n)
            if r.cost_usd:
                self.cost.inc(served, r.cost_usd)
            self.usage_source.inc((r.usage_source,))
            for g in r.guardrails:
                self.guardrails.inc((app, env, g.direction, g.detector, g.type, g.action, str(g.shadow).lower()),
                                    g.count)
            if r.attempts:
                first = r.attempts[0].model
                if any(a.model != first for a in r.attempts):
                    self.fallbacks.inc((app, env))
                for a in r.attempts:
                    self.attempts.inc((a.model, a.provider, a.error_code or "ok"))
                    self.attempt_seconds.observe((a.model, a.provider), a.duration_ms / 1000.0)
            for phase, ms in r.timings_ms.items():
                if phase in PHASES:
                    self.phases.observe((app, env, phase), ms / 1000.0)

    def render(self) -> str:
        """The text exposition of everything observed so far."""
        out: list[str] = []
        with self._lock:
            for m in self._all:
                m.render(out)
        for fn in self._collectors:
            for name, kind, help, value in fn():
                out.append(f"# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {_num(value)}\n")
        return "".join(out)

    def render_bytes(self) -> bytes:
        return self.render().encode()


def log_writer_samples(stats: Any) -> list[tuple[str, str, str, float]]:
    """A `WriterStats` as samples (duck-typed: engine does not import adapters)."""
    return [
        ("ghat_log_records_written_total", "counter", "Request log records stored.", stats.written),
        ("ghat_log_records_spilled_total", "counter",
         "Records spilled to a local file because the queue was full or the store failed.", stats.spilled),
        ("ghat_log_records_reloaded_total", "counter", "Spilled records loaded back into the store.", stats.reloaded),
        ("ghat_log_queue_depth", "gauge", "Records waiting for the log writer.", stats.queued),
        ("ghat_log_sink_errors_total", "counter", "Failed writes to the log store.", stats.sink_errors),
        ("ghat_log_records_quarantined_total", "counter",
         "Records the log store refused on their own, set aside in a quarantine file.",
         getattr(stats, "quarantined", 0)),
        ("ghat_log_records_lost_total", "counter",
         "Records neither stored nor spilled (the spill file could not be written).", getattr(stats, "lost", 0)),
        ("ghat_log_writer_errors_total", "counter", "Failed steps of the log writer thread (it carried on).",
         getattr(stats, "writer_errors", 0)),
        ("ghat_log_writer_up", "gauge", "1 while the request log writer thread runs.",
         int(getattr(stats, "alive", True))),
    ]
