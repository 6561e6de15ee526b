"""The SQLite log store and the background writer: schema, filters, batches, overflow, shutdown."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from adapters.logstore import default_data_dir, default_log_path, open_log_writer
from adapters.logstore.base import LogQuery, record_from_dict, record_to_dict
from adapters.logstore.sqlite import MIGRATIONS, SQLiteLogStore
from adapters.logstore.writer import SPILL_PREFIX, LogWriter
from engine.records import AttemptRecord, LogRecord
from tests.logrecords import make_record


def test_codec_round_trips_every_field() -> None:
    r = make_record(3, env="dev", captured={"prompt": "hi"}, cached_tokens=5, reasoning_tokens=2)
    assert record_from_dict(json.loads(json.dumps(record_to_dict(r)))) == r


def test_captured_text_is_dropped_in_prod_whatever_the_caller_built() -> None:
    r = make_record(1, env="prod", captured={"prompt": "secret prompt"})
    assert record_to_dict(r)["captured"] is None


def test_default_paths_follow_flag_then_env_then_platform(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GHAT_DATA_DIR", str(tmp_path / "env"))
    assert default_log_path(tmp_path / "flag") == tmp_path / "flag" / "logs.sqlite3"
    assert default_log_path() == tmp_path / "env" / "logs.sqlite3"
    monkeypatch.delenv("GHAT_DATA_DIR")
    assert default_data_dir().name == "ghat"


def test_store_is_wal_with_migrations_recorded(tmp_path: Path) -> None:
    store = SQLiteLogStore(tmp_path / "logs.sqlite3")
    store.close()
    conn = sqlite3.connect(tmp_path / "logs.sqlite3")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT max(version) FROM schema_version").fetchone()[0] == len(MIGRATIONS)
    plans = " ".join(
        str(r) for r in conn.execute("EXPLAIN QUERY PLAN SELECT seq FROM requests WHERE app = 'x' AND time >= 1")
    )
    assert "requests_app" in plans
    SQLiteLogStore(tmp_path / "logs.sqlite3").close()  # reopening migrates nothing twice
    assert conn.execute("SELECT count(*) FROM schema_version").fetchone()[0] == len(MIGRATIONS)


@pytest.fixture
def store(tmp_path: Path) -> SQLiteLogStore:
    s = SQLiteLogStore(tmp_path / "logs.sqlite3")
    s.write([make_record(i) for i in range(30)])
    s.write([
        make_record(100, status=429, error_code="guardrail_rate_limit_exceeded", attempts=(), app="support-prod"),
        make_record(101, status=503, error_code="route_unavailable", provider="anthropic",
                    metadata={"operation": "bulk", "source_service": "billing"},
                    attempts=(AttemptRecord("openai/gpt-4o", "openai", 500, "upstream_error", 3.0),
                              AttemptRecord("anthropic/claude-sonnet-4", "anthropic", 503, "upstream_error", 4.0))),
    ])  # fmt: skip
    return s


def _ids(rows: Sequence[tuple[int, LogRecord]]) -> list[str]:
    return [r.request_id for _, r in rows]


def test_filters_narrow_as_documented(store: SQLiteLogStore) -> None:
    assert len(store.query(LogQuery(limit=None))) == 32
    assert len(store.query(LogQuery(app="batch-dev", limit=None))) == 10
    assert _ids(store.query(LogQuery(status="5xx"))) == ["req_00000101"]
    assert _ids(store.query(LogQuery(status="429"))) == ["req_00000100"]
    assert len(store.query(LogQuery(status="error", limit=None))) == 2
    assert len(store.query(LogQuery(status="ok", limit=None))) == 30
    assert _ids(store.query(LogQuery(code="route_unavailable"))) == ["req_00000101"]
    assert _ids(store.query(LogQuery(provider="anthropic"))) == ["req_00000101"]
    assert _ids(store.query(LogQuery(model="anthropic/claude-sonnet-4"))) == ["req_00000101"]
    assert len(store.query(LogQuery(model="smart-default", limit=None))) == 32
    assert _ids(store.query(LogQuery(metadata={"source_service": "billing"}))) == ["req_00000101"]
    assert len(store.query(LogQuery(metadata={"operation": "summarize"}, limit=None))) == 15
    assert len(store.query(LogQuery(since=1_800_000_010.0, until=1_800_000_020.0, limit=None))) == 10
    assert _ids(store.query(LogQuery(limit=2))) == ["req_00000101", "req_00000100"]
    with pytest.raises(ValueError):
        store.query(LogQuery(status="bad"))


def test_unknown_metadata_keys_filter_through_json(store: SQLiteLogStore) -> None:
    store.write([make_record(200, metadata={"team": "blue"})])
    assert _ids(store.query(LogQuery(metadata={"team": "blue"}))) == ["req_00000200"]


def test_get_by_request_id_or_external_id(store: SQLiteLogStore) -> None:
    store.write([make_record(300, metadata={"external_request_id": "ext-1"})])
    got = store.get("req_00000300")
    assert got is not None and got == store.get("ext-1")
    assert store.get("nope") is None


def test_repeated_request_ids_are_stored_once(store: SQLiteLogStore) -> None:
    store.write([make_record(1), make_record(1)])
    assert store.count() == 32


# -- the writer -------------------------------------------------------------------------


class SlowSink:
    """A sink that can be stalled or made to fail, to drive the writer's overflow paths."""

    def __init__(self, inner: SQLiteLogStore) -> None:
        self.inner = inner
        self.gate = threading.Event()
        self.gate.set()
        self.fail = False

    def write(self, records: Sequence[LogRecord]) -> None:
        self.gate.wait()
        if self.fail:
            raise sqlite3.OperationalError("disk I/O error")
        self.inner.write(records)

    def close(self) -> None:
        self.inner.close()


def _spills(d: Path) -> list[Path]:
    return list(d.glob(f"{SPILL_PREFIX}*.jsonl"))


def test_close_flushes_everything(tmp_path: Path) -> None:
    w = open_log_writer(tmp_path)
    for i in range(5000):
        w.submit(make_record(i))
    w.close()
    assert SQLiteLogStore(tmp_path / "logs.sqlite3").count() == 5000
    assert w.stats().written == 5000


def test_full_queue_spills_and_reloads_nothing_lost(tmp_path: Path) -> None:
    sink = SlowSink(SQLiteLogStore(tmp_path / "logs.sqlite3"))
    sink.gate.clear()  # the sink stalls: the queue fills
    w = LogWriter(sink, tmp_path, max_queue=100, batch_size=10)
    for i in range(1000):
        w.submit(make_record(i))  # returns at once although nothing can be written
    stats = w.stats()
    assert stats.spilled >= 1000 - 100 - 10
    assert _spills(tmp_path)
    sink.gate.set()
    assert w.flush()
    assert sink.inner.count() == 1000
    assert w.stats().reloaded == w.stats().spilled
    assert not _spills(tmp_path)
    w.close()


def test_sink_failure_spills_the_batch_and_recovers(tmp_path: Path) -> None:
    sink = SlowSink(SQLiteLogStore(tmp_path / "logs.sqlite3"))
    sink.fail = True
    w = LogWriter(sink, tmp_path, retry_s=0.01)
    for i in range(50):
        w.submit(make_record(i))
    assert not w.flush(timeout=0.3)  # cannot finish while the sink fails
    assert w.stats().sink_errors >= 1
    sink.fail = False
    assert w.flush()
    assert sink.inner.count() == 50
    w.close()


def test_spill_left_by_a_crashed_run_is_loaded_at_start(tmp_path: Path) -> None:
    lines = [json.dumps(record_to_dict(make_record(i))) for i in range(20)]
    (tmp_path / f"{SPILL_PREFIX}999999999-1.jsonl").write_text("\n".join(lines) + "\n{\"torn")
    w = open_log_writer(tmp_path)
    assert w.flush()
    w.close()
    assert SQLiteLogStore(tmp_path / "logs.sqlite3").count() == 20
    assert not _spills(tmp_path)


def test_close_with_a_stalled_sink_keeps_the_queue_on_disk(tmp_path: Path) -> None:
    sink = SlowSink(SQLiteLogStore(tmp_path / "logs.sqlite3"))
    sink.gate.clear()
    w = LogWriter(sink, tmp_path, batch_size=10)
    for i in range(100):
        w.submit(make_record(i))
    w.close(timeout=0.2)
    sink.gate.set()
    spilled = sum(len(p.read_text().splitlines()) for p in _spills(tmp_path))
    assert spilled >= 90  # the batch inside the stalled write is the sink's; the rest is on disk
    w2 = LogWriter(SQLiteLogStore(tmp_path / "logs.sqlite3"), tmp_path)
    w2.close()
    assert SQLiteLogStore(tmp_path / "logs.sqlite3").count() == 100


def test_concurrent_submitters_lose_nothing(tmp_path: Path) -> None:
    w = LogWriter(SQLiteLogStore(tmp_path / "logs.sqlite3"), tmp_path, max_queue=500, batch_size=50)

    def submit(base: int) -> None:
        for i in range(2000):
            w.submit(make_record(base + i))

    threads = [threading.Thread(target=submit, args=(k * 10_000,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    w.close()
    assert SQLiteLogStore(tmp_path / "logs.sqlite3").count() == 8000
    assert not _spills(tmp_path)


def test_submit_after_close_is_kept_for_the_next_run(tmp_path: Path) -> None:
    w = open_log_writer(tmp_path)
    w.close()
    w.submit(make_record(7))
    w2 = open_log_writer(tmp_path)
    w2.close()
    assert SQLiteLogStore(tmp_path / "logs.sqlite3").get("req_00000007") is not None


def test_prod_capture_never_reaches_any_byte_of_the_store_or_spill(tmp_path: Path) -> None:
    secret, email = "AKIAZ3MQ7R4TUV2WX9YB", "jane.doe.planted@example.com"
    sink = SlowSink(SQLiteLogStore(tmp_path / "logs.sqlite3"))
    sink.gate.clear()  # force the overflow path too
    w = LogWriter(sink, tmp_path, max_queue=10, batch_size=5)
    for i in range(100):
        w.submit(make_record(i, env="prod", captured={"prompt": f"{secret} {email}", "response": email}))
    assert _spills(tmp_path)
    spill_bytes = b"".join(p.read_bytes() for p in _spills(tmp_path))
    sink.gate.set()
    w.close()
    files = [p for p in tmp_path.iterdir() if p.name.startswith(("logs.sqlite3", SPILL_PREFIX))]
    assert SQLiteLogStore(tmp_path / "logs.sqlite3").count() == 100
    for raw in [spill_bytes, *(p.read_bytes() for p in files)]:
        assert secret.encode() not in raw and email.encode() not in raw
