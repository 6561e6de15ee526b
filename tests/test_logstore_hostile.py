"""P14 at the record and writer level: no value in a record can stop it, or the records behind it, being stored.

The regressions named after issue 11's breaks fail on the code before it:
a lone surrogate in metadata killed the writer thread (and the spill with it);
1e30 prompt tokens overflowed the insert and stranded the spill file for good;
the caller's `x-request-id` was the key, so one id stored one row.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.logstore.base import LogQuery, record_from_dict, record_to_dict
from adapters.logstore.safe import MAX_TEXT, MAX_TOKENS, safe_record, storable_text
from adapters.logstore.sqlite import MIGRATIONS, SQLiteLogStore
from adapters.logstore.writer import QUARANTINE_PREFIX, SPILL_PREFIX, LogWriter, spill_line
from engine.records import LogRecord
from tests.hostile_values import hostile_records
from tests.logrecords import make_record


def _spills(d: Path) -> list[Path]:
    return sorted(d.glob(f"{SPILL_PREFIX}*.jsonl"))


def _quarantined(d: Path) -> list[bytes]:
    return [line for p in d.glob(f"{QUARANTINE_PREFIX}*.jsonl") for line in p.read_bytes().splitlines()]


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _strings(v)]
    return []


# -- the record: made storable, never raising ---------------------------------------------------


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_records())
def test_safe_record_is_storable_whatever_the_fields_hold(r: LogRecord) -> None:
    safe = safe_record(r)
    d = record_to_dict(safe)
    for s in _strings(d):
        assert storable_text(s), s  # every text encodes as UTF-8 and holds no NUL
    for name in ("prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens", "status"):
        assert type(d[name]) is int and 0 <= d[name] <= MAX_TOKENS, name
    assert type(d["cost_usd"]) is float and 0.0 <= d["cost_usd"] <= 1e9
    assert all(type(v) is float and 0.0 <= v <= 1e9 for v in d["timings_ms"].values())
    assert safe.request_id and len(safe.request_id) <= MAX_TEXT
    if {k.split(".")[0] for k in safe.sanitized} & {"prompt_tokens", "completion_tokens", "cached_tokens",
                                                     "reasoning_tokens", "cost_usd"}:
        assert safe.usage_trusted is False  # a usage figure the log had to change is not trusted
    assert safe_record(safe) == safe  # idempotent: a reloaded record is not altered twice
    text = json.dumps(d, allow_nan=False)  # strict JSON
    back = record_from_dict(json.loads(text))  # the spill and the row body read back as stored
    assert back == replace(safe, captured=d["captured"])  # (the codec drops captured text in prod, and {})


def test_a_plain_record_is_returned_as_it_is() -> None:
    r = make_record(3)
    assert safe_record(r) is r
    dev = make_record(4, captured={"prompt": "hi"}, env="dev")
    assert safe_record(dev) == dev


def test_originals_are_kept_as_bounded_text() -> None:
    r = safe_record(make_record(1, prompt_tokens=10**30, metadata={"operation": "\ud800" * 5000},
                                cost_usd=float("nan"), client_request_id="a\x00b"))  # fmt: skip
    assert r.prompt_tokens == MAX_TOKENS and r.cost_usd == 0.0 and r.usage_trusted is False
    assert r.sanitized["prompt_tokens"] == str(10**30)
    assert r.metadata["operation"].startswith("\\ud800") and len(r.metadata["operation"]) <= MAX_TEXT
    assert len(r.sanitized["metadata.operation"]) < 300
    assert r.client_request_id == "a\\x00b"


def test_inconsistent_usage_is_untrusted_but_unchanged() -> None:
    r = safe_record(make_record(1, prompt_tokens=5, cached_tokens=50))
    assert (r.prompt_tokens, r.cached_tokens, r.usage_trusted, r.sanitized) == (5, 50, False, {})


def test_spill_line_is_ascii_json_for_any_record() -> None:
    line = spill_line(make_record(1, metadata={"operation": "\ud800"}, prompt_tokens=float("inf")))
    assert line.endswith(b"\n") and line.isascii()
    back = record_from_dict(json.loads(line))
    assert back.metadata["operation"] == "\\ud800" and back.usage_trusted is False


# -- the writer: one record per request, whatever it holds --------------------------------------


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(hostile_records(), min_size=1, max_size=12), st.integers(1, 5))
def test_writer_stores_exactly_one_row_per_record_whatever_it_holds(records: list[LogRecord], batch: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        # distinct ids, as the gateway makes them: the property is "one row per request", not per value
        records = [_with_id(r, f"req-{i}") for i, r in enumerate(records)]
        w = LogWriter(SQLiteLogStore(Path(d) / "logs.sqlite3"), d, batch_size=batch, linger_s=0)
        for r in records:
            w.submit(r)
        w.close()
        stats = w.stats()
        store = SQLiteLogStore(Path(d) / "logs.sqlite3", readonly=True)
        assert store.count() == len(records)
        assert {r.request_id for _, r in store.query(LogQuery(limit=None))} == {r.request_id for r in records}
        assert (stats.quarantined, stats.lost, stats.writer_errors, stats.alive) == (0, 0, 0, True)
        assert not _spills(Path(d))
        store.close()


def _with_id(r: LogRecord, rid: str) -> LogRecord:
    return replace(r, request_id=rid)


def test_issue11_surrogate_in_metadata_no_longer_kills_the_writer(tmp_path: Path) -> None:
    w = LogWriter(SQLiteLogStore(tmp_path / "logs.sqlite3"), tmp_path, linger_s=0)
    w.submit(make_record(0, metadata={"operation": "\ud800"}))
    for i in range(1, 21):
        w.submit(make_record(i))
    assert w.flush(10)
    assert w.problem() is None and w.stats().alive
    w.close()
    store = SQLiteLogStore(tmp_path / "logs.sqlite3")
    assert store.count() == 21
    got = store.get("req_00000000")
    assert got is not None and got.metadata["operation"] == "\\ud800" and "metadata.operation" in got.sanitized


def test_issue11_huge_usage_is_stored_clamped_and_marked(tmp_path: Path) -> None:
    w = LogWriter(SQLiteLogStore(tmp_path / "logs.sqlite3"), tmp_path, linger_s=0)
    w.submit(make_record(0, prompt_tokens=int(1e30), cost_usd=1e24))
    for i in range(1, 100):
        w.submit(make_record(i))
    w.close()
    assert w.stats().sink_errors == 0 and not _spills(tmp_path)
    store = SQLiteLogStore(tmp_path / "logs.sqlite3")
    assert store.count() == 100
    got = store.get("req_00000000")
    assert got is not None and got.prompt_tokens == MAX_TOKENS and got.usage_trusted is False
    assert len(store.query(LogQuery(usage_trusted=False))) == 1 and len(store.query(LogQuery(sanitized=True))) == 1


def test_issue11_a_spill_file_with_a_record_the_old_writer_could_not_store_loads(tmp_path: Path) -> None:
    """What the old writer left: a spilled 1e30 record, retried every second forever, and good ones behind it."""
    bad = record_to_dict(make_record(0))
    bad["prompt_tokens"] = 10**30
    lines = [json.dumps(bad), *(json.dumps(record_to_dict(make_record(i))) for i in range(1, 401))]
    (tmp_path / f"{SPILL_PREFIX}999999999-1.jsonl").write_text("\n".join(lines) + "\n")
    w = LogWriter(SQLiteLogStore(tmp_path / "logs.sqlite3"), tmp_path)
    assert w.flush(10)
    w.close()
    assert SQLiteLogStore(tmp_path / "logs.sqlite3").count() == 401
    assert not _spills(tmp_path) and w.stats().quarantined == 0


def test_unreadable_spill_lines_are_quarantined_once_and_block_nothing(tmp_path: Path) -> None:
    good = [json.dumps(record_to_dict(make_record(i))).encode() for i in range(10)]
    junk = [b"\xff\xfe not utf-8", b"[1, 2, 3]", b'{"torn": ', b"[" * 100_000 + b"]" * 100_000, b"NaN"]
    body = b"\n".join([good[0], *junk[:2], *good[1:5], *junk[2:], *good[5:]]) + b"\n"
    (tmp_path / f"{SPILL_PREFIX}999999999-1.jsonl").write_bytes(body)
    w = LogWriter(SQLiteLogStore(tmp_path / "logs.sqlite3"), tmp_path, batch_size=3)
    assert w.flush(10)
    w.close()
    assert SQLiteLogStore(tmp_path / "logs.sqlite3").count() == 10
    assert not _spills(tmp_path)
    assert len(_quarantined(tmp_path)) == len(junk) == w.stats().quarantined


class PickySink:
    """A store that refuses one record for its own sake (as a sink with a stricter schema could), or fails whole."""

    def __init__(self, inner: SQLiteLogStore, poison: str = "req_00000007") -> None:
        self.inner = inner
        self.poison = poison
        self.down = False
        self.writes = 0

    def write(self, records: Sequence[LogRecord]) -> None:
        self.writes += 1
        if self.down:
            raise sqlite3.OperationalError("database is locked")
        if any(r.request_id == self.poison for r in records):
            raise sqlite3.IntegrityError("CHECK constraint failed")
        self.inner.write(records)

    def probe(self) -> None:
        if self.down:
            raise sqlite3.OperationalError("database is locked")
        self.inner.probe()

    def close(self) -> None:
        self.inner.close()


def test_a_record_the_sink_refuses_is_quarantined_and_the_batch_stored(tmp_path: Path,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    sink = PickySink(SQLiteLogStore(tmp_path / "logs.sqlite3"))
    w = LogWriter(sink, tmp_path, batch_size=64, linger_s=0.05)
    with caplog.at_level(logging.ERROR, logger="ghat.logwriter"):
        for i in range(64):
            w.submit(make_record(i))
        assert w.flush(10)
        writes = sink.writes
        assert w.flush(1) and sink.writes == writes  # not retried: nothing is left to retry
        w.close()
    assert sink.inner.path.exists() and SQLiteLogStore(tmp_path / "logs.sqlite3").count() == 63
    q = _quarantined(tmp_path)
    assert len(q) == 1 and json.loads(q[0])["request_id"] == "req_00000007"
    assert w.stats().quarantined == 1 and "quarantined" in caplog.text
    assert writes <= 2 * 7 + 1  # found by halving: a handful of writes, not one per record


def test_a_store_that_is_down_quarantines_nothing_and_loses_nothing(tmp_path: Path) -> None:
    sink = PickySink(SQLiteLogStore(tmp_path / "logs.sqlite3"), poison="none")
    sink.down = True
    w = LogWriter(sink, tmp_path, batch_size=10, retry_s=0.01, linger_s=0)
    for i in range(50):
        w.submit(make_record(i))
    assert not w.flush(0.3)
    assert _spills(tmp_path) and w.stats().quarantined == 0
    sink.down = False
    assert w.flush(10)
    w.close()
    assert SQLiteLogStore(tmp_path / "logs.sqlite3").count() == 50 and not _quarantined(tmp_path)


def test_a_store_going_down_mid_reload_keeps_the_rest_and_quarantines_once(tmp_path: Path) -> None:
    lines = [json.dumps(record_to_dict(make_record(i))).encode() for i in range(30)]
    lines.insert(3, b"garbage")
    (tmp_path / f"{SPILL_PREFIX}999999999-1.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    sink = PickySink(SQLiteLogStore(tmp_path / "logs.sqlite3"), poison="none")
    calls = [0]
    real_write = sink.write

    def flaky(records: Sequence[LogRecord]) -> None:
        calls[0] += 1
        if calls[0] == 2:  # the second batch of the reload: the store goes away for a while
            sink.down = True
        real_write(records)

    sink.write = flaky  # type: ignore[method-assign]
    w = LogWriter(sink, tmp_path, batch_size=10, retry_s=0.01)
    deadline = 50
    while not _quarantined(tmp_path) and deadline:
        threading.Event().wait(0.02)
        deadline -= 1
    sink.down = False
    assert w.flush(10)
    w.close()
    assert SQLiteLogStore(tmp_path / "logs.sqlite3").count() == 30
    assert len(_quarantined(tmp_path)) == 1 and not _spills(tmp_path)


class Doomed:
    """A sink whose write ends the thread the way nothing in `Exception` does (SystemExit is silent in a thread)."""

    def __init__(self, inner: SQLiteLogStore) -> None:
        self.inner = inner

    def write(self, records: Sequence[LogRecord]) -> None:
        raise SystemExit("the writer thread is gone")

    def probe(self) -> None:
        self.inner.probe()

    def close(self) -> None:
        self.inner.close()


def test_a_writer_thread_that_ends_says_so_and_records_still_reach_disk(tmp_path: Path,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.CRITICAL, logger="ghat.logwriter"):
        w = LogWriter(Doomed(SQLiteLogStore(tmp_path / "logs.sqlite3")), tmp_path, linger_s=0)
        w.submit(make_record(0))
        for _ in range(200):
            if w.problem():
                break
            threading.Event().wait(0.01)
    assert w.problem() is not None and "stopped" in (w.problem() or "")
    assert not w.stats().alive and "request log writer stopped" in caplog.text
    for i in range(1, 10):
        w.submit(make_record(i))  # straight to the spill file
    w.close()
    w2 = LogWriter(SQLiteLogStore(tmp_path / "logs.sqlite3"), tmp_path)
    w2.close()
    assert SQLiteLogStore(tmp_path / "logs.sqlite3").count() == 10


def test_a_failing_writer_step_is_survived(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import adapters.logstore.writer as writer_mod

    real = writer_mod.safe_record
    calls = [0]

    def once_broken(r: LogRecord) -> LogRecord:
        calls[0] += 1
        if calls[0] == 1:
            raise RuntimeError("a bug in a step")
        return real(r)

    monkeypatch.setattr(writer_mod, "safe_record", once_broken)
    w = LogWriter(SQLiteLogStore(tmp_path / "logs.sqlite3"), tmp_path, linger_s=0, retry_s=0.01)
    for i in range(5):
        w.submit(make_record(i))
    assert w.flush(10)
    w.close()
    assert w.stats().writer_errors == 1 and w.problem() is None
    assert SQLiteLogStore(tmp_path / "logs.sqlite3").count() == 5


def test_an_unwritable_spill_counts_the_loss_and_fails_readiness(tmp_path: Path) -> None:
    sink = PickySink(SQLiteLogStore(tmp_path / "logs.sqlite3"), poison="none")
    spill_dir = tmp_path / "spill"
    w = LogWriter(sink, spill_dir, max_queue=1, linger_s=0)
    sink.down = True
    spill_dir.rmdir()
    spill_dir.write_text("not a directory any more")  # every spill write now fails, even as root
    for i in range(20):
        w.submit(make_record(i))
    assert w.stats().lost > 0
    assert "neither be stored nor spilled" in (w.problem() or "")
    w.close(timeout=1)


# -- the key: the gateway's id; the caller's id beside it --------------------------------------


def test_issue11_twenty_requests_with_one_client_id_leave_twenty_rows(tmp_path: Path) -> None:
    store = SQLiteLogStore(tmp_path / "logs.sqlite3")
    store.write([make_record(i, client_request_id="same-id") for i in range(20)])
    store.write([make_record(99, app="other-app", client_request_id="same-id")])
    assert store.count() == 21
    assert len(store.query(LogQuery(client_request_id="same-id", limit=None))) == 21
    newest = store.get("same-id")
    assert newest is not None and newest.request_id == "req_00000099"
    assert store.get("req_00000003") is not None  # the gateway's id finds exactly its record


# -- migration ----------------------------------------------------------------------------------


def _v1_file(path: Path, extra_column: bool = False) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    first = MIGRATIONS[0]
    assert isinstance(first, str)
    for stmt in first.split(";"):
        if stmt.strip():
            conn.execute(stmt)
    if extra_column:  # another build already added one of the columns
        conn.execute("ALTER TABLE requests ADD COLUMN client_request_id TEXT")
    conn.execute("INSERT INTO schema_version VALUES (1)")
    d = record_to_dict(make_record(5))
    for k in ("client_request_id", "usage_trusted", "sanitized"):
        d.pop(k)
    conn.execute(
        "INSERT INTO requests (request_id, time, env, endpoint, stream, status, policy_version, prompt_tokens,"
        " completion_tokens, cost_usd, body) VALUES (?, ?, 'prod', 'chat', 0, 200, 'v1', 1, 2, 0.0, ?)",
        ("old-client-id", d["time"], json.dumps(d | {"request_id": "old-client-id"})),
    )
    conn.close()


@pytest.mark.parametrize("extra_column", [False, True])
def test_an_old_log_file_is_migrated_and_keeps_its_records(tmp_path: Path, extra_column: bool) -> None:
    path = tmp_path / "logs.sqlite3"
    _v1_file(path, extra_column)
    store = SQLiteLogStore(path)
    cols = {r[1] for r in sqlite3.connect(path).execute("PRAGMA table_info(requests)")}
    assert {"client_request_id", "usage_trusted", "sanitized"} <= cols
    old = store.get("old-client-id")
    assert old is not None and old.usage_trusted and old.client_request_id is None
    store.write([make_record(6, client_request_id="c-6")])
    assert [r.request_id for _, r in store.query(LogQuery(client_request_id="c-6"))] == ["req_00000006"]
    assert len(store.query(LogQuery(usage_trusted=True, limit=None))) == 2


def test_an_old_log_file_that_cannot_be_migrated_is_read_as_it_is(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import adapters.logstore.sqlite as sqlite_mod

    path = tmp_path / "logs.sqlite3"
    _v1_file(path)

    def readonly_file(conn: sqlite3.Connection) -> int:
        raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr(sqlite_mod, "migrate", readonly_file)  # what a read-only file or dir does
    store = SQLiteLogStore(path, readonly=True)
    assert not store._has_client_column
    assert store.get("old-client-id") is not None
    assert store.query(LogQuery(client_request_id="x")) == []
    assert len(store.query(LogQuery(usage_trusted=True, sanitized=False))) == 1
    assert store.query(LogQuery(usage_trusted=False)) == []
