"""The request log's cost on the hot path and the writer's sustained throughput.

`python -m bench.bench_logging` prints what bench/RESULTS.md records:
- the logging phase per request, as the server runs it (`Observers.record`:
  `Metrics.observe` + `LogWriter.submit`), each timed per call while the
  writer thread drains into SQLite beside it (median, p99);
- `Metrics.observe` beside the same metrics built with `prometheus_client`
  (why engine/metrics.py hand-rolls its registry);
- the writer's sustained records/s into SQLite (submit → committed), and the
  sink's own rate with batches of 500.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from adapters.logstore import open_log_writer
from adapters.logstore.sqlite import SQLiteLogStore
from engine.metrics import Metrics
from engine.records import AttemptRecord, GuardrailRecord, LogRecord

N_HOT = 50_000
N_SUSTAINED = 200_000


def record(i: int) -> LogRecord:
    return LogRecord(
        request_id=f"req_{i:012d}", time=1_800_000_000.0 + i / 1000, env="prod", app=("support-prod", "batch")[i % 2],
        key_id="ghat_prod_ab12…", endpoint="chat", requested_model="smart-default", provider="openai",
        upstream_model="gpt-4o-2024-08-06", stream=bool(i % 3 == 0), status=200, error_code=None,
        policy_version="3f9a1c2e", metadata={"operation": "summarize", "workspace_id": "ws-42"},
        attempts=(AttemptRecord("openai/gpt-4o", "openai", 200, None, 412.5),),
        guardrails=(GuardrailRecord("input", "pii", "email", 1, "redact", False),
                    GuardrailRecord("input", "secrets", "aws_access_key", 1, "redact", False)),
        prompt_tokens=812, completion_tokens=164, cached_tokens=256, usage_source="provider", cost_usd=0.003,
        timings_ms={"total": 415.2, "resolve": 0.02, "guardrails": 0.03, "provider": 412.5, "log": 0.004,
                    "usage": 0.002, "overhead": 2.7},
    )  # fmt: skip


def per_call_us(fn: Callable[[LogRecord], None], records: list[LogRecord]) -> tuple[float, float]:
    """(median, p99) microseconds of `fn(record)`, each call timed on its own."""
    clock = time.perf_counter_ns
    samples = []
    for r in records:
        t0 = clock()
        fn(r)
        samples.append(clock() - t0)
    samples.sort()
    return statistics.median(samples) / 1000, samples[int(len(samples) * 0.99)] / 1000


def prometheus_client_observe() -> Callable[[LogRecord], None]:
    """The same counters and histograms as `Metrics.observe`, with prometheus_client."""
    from prometheus_client import CollectorRegistry, Counter, Histogram

    from engine.metrics import BUCKETS

    reg = CollectorRegistry()
    req = Counter("r", "", ["app", "env", "endpoint", "model", "provider", "status_class", "code"], registry=reg)
    tok = Counter("t", "", ["app", "env", "model", "provider", "kind"], registry=reg)
    cost = Counter("c", "", ["app", "env", "model", "provider"], registry=reg)
    src = Counter("s", "", ["source"], registry=reg)
    guard = Counter("g", "", ["app", "env", "direction", "detector", "type", "action", "shadow"], registry=reg)
    att = Counter("a", "", ["model", "provider", "outcome"], registry=reg)
    phase = Histogram("p", "", ["app", "env", "phase"], buckets=BUCKETS, registry=reg)
    att_s = Histogram("as", "", ["model", "provider"], buckets=BUCKETS, registry=reg)

    def observe(r: LogRecord) -> None:
        a = r.attempts[-1]
        app = r.app or ""
        req.labels(app, r.env, r.endpoint, a.model, a.provider, "2xx", "").inc()
        for kind, n in (("prompt", r.prompt_tokens), ("completion", r.completion_tokens),
                        ("cached", r.cached_tokens)):  # fmt: skip
            tok.labels(app, r.env, a.model, a.provider, kind).inc(n)
        cost.labels(app, r.env, a.model, a.provider).inc(r.cost_usd)
        src.labels(r.usage_source).inc()
        for g in r.guardrails:
            guard.labels(app, r.env, g.direction, g.detector, g.type, g.action, "false").inc(g.count)
        for x in r.attempts:
            att.labels(x.model, x.provider, "ok").inc()
            att_s.labels(x.model, x.provider).observe(x.duration_ms / 1000)
        for p, ms in r.timings_ms.items():
            phase.labels(app, r.env, p).observe(ms / 1000)

    return observe


def main() -> None:
    records = [record(i) for i in range(max(N_HOT, N_SUSTAINED))]
    with tempfile.TemporaryDirectory() as d:
        writer = open_log_writer(d)
        metrics = Metrics()
        metrics.bind_log_writer(writer)

        def logging_phase(r: LogRecord) -> None:  # what adapters/api/observe.py's Observers.record does
            metrics.observe(r)
            writer.submit(r)

        hot = records[:N_HOT]
        submit = per_call_us(writer.submit, hot)
        writer.flush(60)
        observe = per_call_us(Metrics().observe, hot)
        prom = per_call_us(prometheus_client_observe(), hot)
        fresh = [record(i + 10_000_000) for i in range(N_HOT)]
        both = per_call_us(logging_phase, fresh)
        writer.close()
        print(f"submit            median {submit[0]:.2f} µs  p99 {submit[1]:.2f} µs")
        print(f"Metrics.observe   median {observe[0]:.2f} µs  p99 {observe[1]:.2f} µs")
        print(f"prometheus_client median {prom[0]:.2f} µs  p99 {prom[1]:.2f} µs (same metrics)")
        print(f"logging phase     median {both[0]:.2f} µs  p99 {both[1]:.2f} µs (observe + submit)")
        render_t0 = time.perf_counter()
        text = metrics.render()
        print(f"render            {(time.perf_counter() - render_t0) * 1000:.2f} ms, {len(text)} bytes")

    with tempfile.TemporaryDirectory() as d:
        writer = open_log_writer(d, max_queue=N_SUSTAINED + 1)
        t0, cpu0 = time.perf_counter(), time.process_time()
        for r in records[:N_SUSTAINED]:
            writer.submit(r)
        t_submit = time.perf_counter() - t0
        writer.flush(600)
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        stats = writer.stats()
        writer.close()
        assert stats.written == N_SUSTAINED and stats.spilled == 0, stats
        print(f"writer sustained  {N_SUSTAINED / elapsed:,.0f} records/s ({N_SUSTAINED} records, submit loop "
              f"{t_submit:.2f} s, committed after {elapsed:.2f} s); CPU {cpu / N_SUSTAINED * 1e6:.1f} µs/record "
              f"(process time: wall time on a shared machine says little)")

    with tempfile.TemporaryDirectory() as d:
        store = SQLiteLogStore(Path(d) / "logs.sqlite3")
        t0 = time.perf_counter()
        for i in range(0, N_SUSTAINED, 500):
            store.write(records[i : i + 500])
        elapsed = time.perf_counter() - t0
        size = (Path(d) / "logs.sqlite3").stat().st_size + (Path(d) / "logs.sqlite3-wal").stat().st_size
        store.close()
        print(f"sink alone        {N_SUSTAINED / elapsed:,.0f} records/s (batches of 500), "
              f"{size / N_SUSTAINED:.0f} bytes/record on disk")

    safe_record = _safe_record()
    if safe_record is not None:  # the writer's per-record check that every field can be stored (P14)
        sample = records[:N_HOT]
        t0 = time.process_time()
        for r in sample:
            safe_record(r)
        plain = (time.process_time() - t0) / len(sample) * 1e6
        hostile = [replace(r, metadata={"operation": "\ud800"}, prompt_tokens=10**30) for r in sample[:10_000]]
        t0 = time.process_time()
        for r in hostile:
            safe_record(r)
        fixed = (time.process_time() - t0) / len(hostile) * 1e6
        print(f"safe_record       {plain:.2f} µs CPU for a plain record, {fixed:.1f} µs for one it must fix")


def _safe_record() -> Callable[[LogRecord], LogRecord] | None:
    """The sanitizer, where this version of the code has one (so the bench also runs on code before it)."""
    try:
        from adapters.logstore.safe import safe_record
    except ImportError:
        return None
    return safe_record


if __name__ == "__main__":
    main()
