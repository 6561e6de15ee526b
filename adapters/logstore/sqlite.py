"""The default log store: one embedded SQLite file in WAL mode.

Each record is one row: the columns `ghat logs` filters on (indexed, each
index led by the column and ending in time, since every query has a time
range and an order), plus the whole record as JSON in `body`, so the schema
need not change when the record grows. Schema changes go through numbered
migrations recorded in `schema_version`, applied in order on open.

WAL lets `ghat logs --follow` and `ghat usage` read while the gateway writes;
`synchronous=NORMAL` makes a commit an append to the WAL without an fsync
(a power cut may lose the last batches, a process crash loses nothing).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from adapters.jsonwire import dumps
from adapters.logstore.base import LogQuery, record_from_dict, record_to_dict, served_model
from engine.records import LogRecord

_COLUMNS = (
    "request_id", "time", "env", "app", "key_id", "endpoint", "requested_model", "served_model", "provider",
    "upstream_model", "stream", "status", "error_code", "policy_version",
    "workspace_id", "namespace_id", "source_service", "operation", "external_request_id",
    "prompt_tokens", "completion_tokens", "cost_usd", "total_ms", "body",
    "client_request_id", "usage_trusted", "sanitized",
)  # fmt: skip
# Columns a later migration added; a read-only reader of a file no gateway has migrated yet does without them.
_ADDED_COLUMNS = (
    ("client_request_id", "TEXT"),
    ("usage_trusted", "INTEGER NOT NULL DEFAULT 1"),
    ("sanitized", "INTEGER NOT NULL DEFAULT 0"),
)


def _migration_2(conn: sqlite3.Connection) -> None:
    """The caller's own request id beside the gateway's, the trust and sanitized marks, the writer's probe row.

    Columns are added only if missing, so a file some other build already extended migrates cleanly.
    """
    have = {str(row[1]) for row in conn.execute("PRAGMA table_info(requests)")}
    for name, decl in _ADDED_COLUMNS:
        if name not in have:
            conn.execute(f"ALTER TABLE requests ADD COLUMN {name} {decl}")
    conn.execute("CREATE INDEX IF NOT EXISTS requests_client ON requests(client_request_id, time)")
    conn.execute("CREATE TABLE IF NOT EXISTS writer_probe (id INTEGER PRIMARY KEY, time REAL NOT NULL)")


Migration = str | Callable[[sqlite3.Connection], None]
MIGRATIONS: tuple[Migration, ...] = (
    # 1: the request table and the indexes for `ghat logs` filters.
    """
    CREATE TABLE requests (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        request_id TEXT NOT NULL UNIQUE,
        time REAL NOT NULL,
        env TEXT NOT NULL,
        app TEXT,
        key_id TEXT,
        endpoint TEXT NOT NULL,
        requested_model TEXT,
        served_model TEXT,
        provider TEXT,
        upstream_model TEXT,
        stream INTEGER NOT NULL,
        status INTEGER NOT NULL,
        error_code TEXT,
        policy_version TEXT NOT NULL,
        workspace_id TEXT,
        namespace_id TEXT,
        source_service TEXT,
        operation TEXT,
        external_request_id TEXT,
        prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        cost_usd REAL NOT NULL,
        total_ms REAL,
        body TEXT NOT NULL
    );
    CREATE INDEX requests_time ON requests(time);
    CREATE INDEX requests_app ON requests(app, time);
    CREATE INDEX requests_env ON requests(env, time);
    CREATE INDEX requests_status ON requests(status, time);
    CREATE INDEX requests_code ON requests(error_code, time);
    CREATE INDEX requests_requested_model ON requests(requested_model, time);
    CREATE INDEX requests_served_model ON requests(served_model, time);
    CREATE INDEX requests_provider ON requests(provider, time);
    CREATE INDEX requests_workspace ON requests(workspace_id, time);
    CREATE INDEX requests_source_service ON requests(source_service, time);
    CREATE INDEX requests_operation ON requests(operation, time);
    CREATE INDEX requests_external ON requests(external_request_id);
    """,
    # 2: client_request_id, usage_trusted, sanitized (P14: the gateway's id is the key; nothing a client
    # or provider sends can merge, suppress or corrupt a record).
    _migration_2,
)
_INSERT = (
    f"INSERT OR IGNORE INTO requests ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})"
)
_META_COLUMNS = {"workspace_id", "namespace_id", "source_service", "operation", "external_request_id"}


def _row(r: LogRecord) -> tuple[Any, ...]:
    d = record_to_dict(r, compact=True)
    m = r.metadata
    return (
        r.request_id, r.time, r.env, r.app, r.key_id, r.endpoint, r.requested_model, served_model(r), r.provider,
        r.upstream_model, int(r.stream), r.status, r.error_code, r.policy_version,
        m.get("workspace_id"), m.get("namespace_id"), m.get("source_service"), m.get("operation"),
        m.get("external_request_id"), r.prompt_tokens, r.completion_tokens, r.cost_usd, r.timings_ms.get("total"),
        dumps(d).decode(),  # orjson: this runs once per request on the writer thread, holding the GIL
        r.client_request_id, int(r.usage_trusted), int(bool(r.sanitized)),
    )  # fmt: skip


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection in WAL mode with the schema migrated (read-only ones never write)."""
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False, timeout=10.0)
        if _version(conn) < len(MIGRATIONS):  # written by an older gateway: migrate it if we may
            with contextlib.suppress(sqlite3.Error):  # a read-only file or dir: read it as it is
                connect(path).close()
        return conn
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, check_same_thread=False, timeout=10.0, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _version(conn: sqlite3.Connection) -> int:
    try:
        row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    except sqlite3.OperationalError:  # no table yet
        return 0
    return int(row[0] or 0)


def migrate(conn: sqlite3.Connection) -> int:
    """Apply the migrations this file has not seen yet; returns the schema version now in force."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    current = int(row[0] or 0)
    for version, script in enumerate(MIGRATIONS, start=1):
        if version <= current:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            again = conn.execute("SELECT max(version) FROM schema_version").fetchone()
            if int(again[0] or 0) >= version:  # another process migrated meanwhile
                conn.execute("ROLLBACK")
                continue
            if callable(script):
                script(conn)
            else:
                for stmt in script.split(";"):
                    if stmt.strip():
                        conn.execute(stmt)
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        current = version
    return current


class SQLiteLogStore:
    """A `LogSink` and `LogReader` over one SQLite file."""

    def __init__(self, path: Path | str, *, readonly: bool = False) -> None:
        self.path = Path(path)
        self._conn = connect(self.path, readonly=readonly)
        self._lock = threading.Lock()  # one connection, shared by the writer thread and readers in tests
        cols = {str(row[1]) for row in self._conn.execute("PRAGMA table_info(requests)")}
        self._has_client_column = "client_request_id" in cols  # False only for an unmigrated, read-only file

    def write(self, records: Sequence[LogRecord]) -> None:
        """One transaction per batch: the batch is stored whole or not at all; repeats are ignored."""
        rows = [_row(r) for r in records]
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                self._conn.executemany(_INSERT, rows)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def probe(self) -> None:
        """Rewrite one row of `writer_probe`: fails exactly when a batch would fail for the store's sake."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute("INSERT OR REPLACE INTO writer_probe (id, time) VALUES (1, ?)", (time.time(),))
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM requests").fetchone()[0])

    def get(self, request_id: str) -> LogRecord | None:
        """One record by the gateway's request id (the `x-request-id` the client got back), else the newest
        whose caller-sent `x-request-id` or `external_request_id` is this (those need not be unique)."""
        others = "external_request_id = ?" + (" OR client_request_id = ?" if self._has_client_column else "")
        with self._lock:
            row = self._conn.execute("SELECT body FROM requests WHERE request_id = ?", (request_id,)).fetchone()
            if row is None:
                row = self._conn.execute(
                    f"SELECT body FROM requests WHERE {others} ORDER BY seq DESC LIMIT 1",
                    (request_id,) * others.count("?"),
                ).fetchone()
        return record_from_dict(json.loads(row[0])) if row else None

    def query(self, q: LogQuery) -> list[tuple[int, LogRecord]]:
        where, params = _where(q, self._has_client_column)
        order = "DESC" if q.newest_first else "ASC"
        sql = f"SELECT seq, body FROM requests {where} ORDER BY seq {order}"
        if q.limit is not None:
            sql += " LIMIT ?"
            params.append(q.limit)
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
        return [(int(seq), record_from_dict(json.loads(body))) for seq, body in rows]

    def iter_range(self, since: float | None, until: float | None) -> Iterator[LogRecord]:
        where, params = _where(LogQuery(since=since, until=until, limit=None), self._has_client_column)
        with self._lock:
            rows = self._conn.execute(f"SELECT body FROM requests {where} ORDER BY time", params).fetchall()
        for (body,) in rows:
            yield record_from_dict(json.loads(body))

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _where(q: LogQuery, migrated: bool = True) -> tuple[str, list[Any]]:
    """The WHERE clause for a query: column filters only, so every one can use an index.

    `migrated` False: the file predates the added columns, so no record in it has a client request id,
    and every record has trusted, unsanitized usage.
    """
    clauses: list[str] = []
    params: list[Any] = []
    if q.client_request_id is not None:
        clauses.append("client_request_id = ?" if migrated else "0")
        params += [q.client_request_id] if migrated else []
    if q.usage_trusted is not None:
        clauses.append("usage_trusted = ?" if migrated else "1 = ?")
        params.append(int(q.usage_trusted))
    if q.sanitized is not None:
        clauses.append("sanitized = ?" if migrated else "0 = ?")
        params.append(int(q.sanitized))
    for column, value in (("app", q.app), ("env", q.env), ("error_code", q.code), ("provider", q.provider)):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if q.model is not None:
        clauses.append("(requested_model = ? OR served_model = ? OR upstream_model = ?)")
        params += [q.model, q.model, q.model]
    if q.status is not None:
        clause, args = _status_clause(q.status)
        clauses.append(clause)
        params += args
    for key, value in q.metadata.items():
        if key in _META_COLUMNS:
            clauses.append(f"{key} = ?")
            params.append(value)
        else:
            clauses.append("json_extract(body, '$.metadata.' || json_quote(?)) = ?")
            params += [key, value]
    if q.since is not None:
        clauses.append("time >= ?")
        params.append(q.since)
    if q.until is not None:
        clauses.append("time < ?")
        params.append(q.until)
    if q.after_seq is not None:
        clauses.append("seq > ?")
        params.append(q.after_seq)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), params


def _status_clause(status: str) -> tuple[str, list[Any]]:
    s = status.strip().lower()
    if s == "ok":
        return "status < 400", []
    if s == "error":
        return "status >= 400", []
    if len(s) == 3 and s[0].isdigit() and s[1:] == "xx":
        base = int(s[0]) * 100
        return "status >= ? AND status < ?", [base, base + 100]
    if s.isdigit():
        return "status = ?", [int(s)]
    raise ValueError(f"unknown status filter {status!r}: use a code (429), a class (5xx), ok or error")
