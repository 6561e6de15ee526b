"""`ghat logs`: list, filter and follow the request log; `ghat logs show ID` prints one record whole.

Reads the SQLite store the gateway writes (`<data dir>/logs.sqlite3`) through a
read-only connection, so it can run beside a serving gateway (WAL lets both).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from adapters.logstore.sqlite import SQLiteLogStore
    from engine.records import LogRecord

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d|w)$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time(text: str, now: float | None = None) -> float:
    """Unix seconds from `1h` / `30m` / `2d` (that long ago) or an ISO 8601 date or time (UTC unless zoned)."""
    now = time.time() if now is None else now
    s = text.strip()
    m = _RELATIVE.match(s)
    if m:
        return now - float(m.group(1)) * _UNIT_S[m.group(2)]
    if s == "now":
        return now
    try:
        dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a time: {text!r} (use 1h, 30m, 2d or ISO 8601)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def add_data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="the gateway's data dir (default: $GHAT_DATA_DIR, else the user data dir)")


def open_store(data_dir: str | None) -> SQLiteLogStore | None:
    """The store read-only, or None (with a message) when no gateway has written one there."""
    from adapters.logstore import default_log_path
    from adapters.logstore.sqlite import SQLiteLogStore

    path = default_log_path(data_dir)
    if not path.exists():
        print(f"ghat: no request log at {path} (serve some requests, or pass --data-dir)", file=sys.stderr)
        return None
    return SQLiteLogStore(path, readonly=True)


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "logs", help="list, filter and follow the request log",
        description="List, filter and follow the request log; `ghat logs show REQUEST_ID` prints one record.",
    )  # fmt: skip
    p.add_argument("action", nargs="*", metavar="show REQUEST_ID", help="print one record whole")
    add_data_dir(p)
    p.add_argument("--app")
    p.add_argument("--env")
    p.add_argument("--status", help="a code (429), a class (5xx), ok (< 400) or error (>= 400)")
    p.add_argument("--code", help="error code, e.g. guardrail_pii_blocked")
    p.add_argument("--model", help="requested model or alias, or the provider/model that served")
    p.add_argument("--provider")
    p.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE",
                   help="metadata field, e.g. operation=bulk-summarize (repeatable)")  # fmt: skip
    p.add_argument("--client-request-id", metavar="ID",
                   help="the x-request-id the caller sent (several requests may share one)")
    p.add_argument("--untrusted-usage", action="store_true",
                   help="only records whose usage could not be trusted (out of range, wrong type, inconsistent)")
    p.add_argument("--sanitized", action="store_true",
                   help="only records the log had to alter to store (their `sanitized` field says what)")
    p.add_argument("--since", type=parse_time, help="1h, 30m, 2d or ISO 8601")
    p.add_argument("--until", type=parse_time)
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new records")
    p.add_argument("--format", choices=("table", "jsonl"), default="table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from adapters.logstore.base import LogQuery

    if args.action:
        if args.action[0] != "show" or len(args.action) != 2:
            print("ghat logs: usage: ghat logs show REQUEST_ID", file=sys.stderr)
            return 2
        return _show(args.data_dir, args.action[1])
    meta: dict[str, str] = {}
    for item in args.meta:
        key, sep, value = item.partition("=")
        if not sep or not key:
            print(f"ghat logs: --meta wants KEY=VALUE, got {item!r}", file=sys.stderr)
            return 2
        meta[key.replace("-", "_")] = value
    store = open_store(args.data_dir)
    if store is None:
        return 1
    q = LogQuery(
        app=args.app, env=args.env, status=args.status, code=args.code, model=args.model, provider=args.provider,
        metadata=meta, since=args.since, until=args.until, limit=args.limit,
        client_request_id=args.client_request_id, usage_trusted=False if args.untrusted_usage else None,
        sanitized=True if args.sanitized else None,
    )  # fmt: skip
    _warn_quarantine(store)
    try:
        rows = store.query(q)
    except ValueError as exc:
        print(f"ghat logs: {exc}", file=sys.stderr)
        return 2
    rows.reverse()  # oldest first, as a terminal reads
    printer = _Printer(args.format)
    printer.header()
    for _, r in rows:
        printer.row(r)
    if not args.follow:
        return 0
    last = max((seq for seq, _ in rows), default=_last_seq(store))
    while True:  # ends with Ctrl-C (exit 130) or a closed pipe
        time.sleep(0.5)
        new = store.query(replace(q, after_seq=last, limit=1000, newest_first=False))
        for seq, r in new:
            printer.row(r)
            last = seq


def _last_seq(store: SQLiteLogStore) -> int:
    from adapters.logstore.base import LogQuery

    rows = store.query(LogQuery(limit=1))
    return rows[0][0] if rows else 0


def _show(data_dir: str | None, request_id: str) -> int:
    from adapters.logstore.base import record_to_dict

    store = open_store(data_dir)
    if store is None:
        return 1
    r = store.get(request_id)
    if r is None:
        print(f"ghat logs: no record with request id {request_id!r}", file=sys.stderr)
        return 1
    if r.request_id != request_id:  # found by an id the caller chose, which several requests may share
        from adapters.logstore.base import LogQuery

        n = len(store.query(LogQuery(client_request_id=request_id, limit=2)))
        if n > 1:
            print(f"ghat logs: several requests carry the caller's id {request_id!r}; this is the newest "
                  f"(list them: ghat logs --client-request-id {request_id})", file=sys.stderr)  # fmt: skip
    print(json.dumps(record_to_dict(r), indent=2, ensure_ascii=False))
    return 0


def _warn_quarantine(store: SQLiteLogStore) -> None:
    """Say on stderr when records were set aside (they are not in the store, so not in this output)."""
    from adapters.logstore.writer import QUARANTINE_PREFIX

    files = sorted(store.path.parent.glob(f"{QUARANTINE_PREFIX}*.jsonl"))
    if files:
        lines = sum(f.read_bytes().count(b"\n") for f in files)
        print(f"ghat logs: {lines} record(s) the store refused are set aside in {', '.join(str(f) for f in files)}",
              file=sys.stderr)  # fmt: skip


class _Printer:
    """One line per record: aligned columns for a terminal, or the record as JSON."""

    COLUMNS = (("time", 19), ("request_id", 36), ("app", 16), ("model", 28), ("status", 6), ("code", 28),
               ("tok in/out", 11), ("cost $", 10), ("ms", 8), ("att", 3))  # fmt: skip

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt

    def header(self) -> None:
        if self.fmt == "table":
            self._line([name for name, _ in self.COLUMNS])

    def row(self, r: LogRecord) -> None:
        from adapters.logstore.base import record_to_dict, served_model

        if self.fmt == "jsonl":
            print(json.dumps(record_to_dict(r), ensure_ascii=False, separators=(",", ":")), flush=True)
            return
        served = served_model(r)
        model = r.requested_model or "-"
        if served and served != model:
            model = f"{model}→{served}"
        self._line([
            datetime.fromtimestamp(r.time, tz=UTC).strftime("%Y-%m-%d %H:%M:%S"), r.request_id,
            r.app or "-", model, str(r.status), r.error_code or "-",
            f"{'' if r.usage_trusted else '?'}{r.prompt_tokens}/{r.completion_tokens}",  # first: cells get cut
            f"{r.cost_usd:.6f}", f"{r.timings_ms.get('total', 0.0):.1f}", str(len(r.attempts)),
        ])  # fmt: skip

    def _line(self, cells: list[str]) -> None:
        out = [c if len(c) <= w or name == "request_id" else c[: w - 1] + "…"
               for c, (name, w) in zip(cells, self.COLUMNS, strict=True)]
        print("  ".join(c.ljust(w) for c, (_, w) in zip(out, self.COLUMNS, strict=True)).rstrip(), flush=True)
