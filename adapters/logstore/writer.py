"""The background log writer: the request hands its record over and moves on.

`submit` is the only call on the hot path. It appends to a bounded deque
(atomic under the GIL, no lock) and wakes the writer thread if it sleeps:
well under a microsecond. The thread makes each record storable
(`safe.safe_record`) and drains the deque in batches into the sink, one
transaction per batch.

Nothing is lost, and no record can stop the others (P14):
- queue full (the sink is slow or stalled): the request still succeeds; its
  record is appended to a JSONL spill file in the data dir (one `os.write`
  per batch of lines, so a crash after it keeps them) and counted in `spilled`;
  the spill line is escaped ASCII JSON, so any record can be spilled;
- a batch the sink refuses: the sink is probed with one small write. If the
  probe fails the store is down (disk full, locked too long) and the batch is
  spilled to be retried later; if it succeeds a record in the batch is the
  trouble, and the batch is halved until that record is found, stored alone
  into a quarantine file (`logs-quarantine-*.jsonl`, counted, logged) while the
  rest is stored;
- spill files — this run's and any a crashed run left — are loaded back into
  the sink by the writer thread when the queue is short again, and on close;
  a line that cannot be read is quarantined, never retried; the sink ignores a
  request id it already holds, so a reload that is cut short and repeated
  stores nothing twice;
- the thread survives every error of its own steps (the batch in hand is
  spilled); should it end anyway, `problem()` says why (the server's
  readiness fails on it), it is logged as critical, and records go straight
  to the spill file for the next run;
- `close()` drains the queue and the spill files before it returns.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from adapters.logstore.base import LogSink, record_from_dict, record_to_dict
from adapters.logstore.safe import describe, safe_record
from engine.records import LogRecord

log = logging.getLogger("ghat.logwriter")
SPILL_PREFIX = "logs-spill-"
QUARANTINE_PREFIX = "logs-quarantine-"


@dataclass(frozen=True, slots=True)
class WriterStats:
    """Counters for `/metrics`: every record submitted ends up written, queued, spilled or quarantined."""

    submitted: int
    written: int
    spilled: int  # records that went to a spill file (queue full or sink failure)
    reloaded: int  # spilled records loaded back into the sink
    queued: int
    sink_errors: int
    spill_pending: bool
    quarantined: int = 0  # records or spill lines the sink refused on their own, set aside in a quarantine file
    lost: int = 0  # records neither stored nor spilled (the spill file could not be written: disk full?)
    writer_errors: int = 0  # failed steps of the writer thread itself (it carried on)
    alive: bool = True


def spill_line(record: LogRecord) -> bytes:
    """One spill/quarantine line for any record: escaped ASCII JSON, so no value can make it fail."""
    try:
        d = record_to_dict(safe_record(record), compact=True)
        return json.dumps(d, separators=(",", ":"), default=describe).encode("ascii") + b"\n"
    except Exception as exc:  # safe_record makes this unreachable; still, the line must be written
        rid = describe(getattr(record, "request_id", None))
        return json.dumps({"request_id": rid, "time": time.time(),
                           "sanitized": {"record": f"unencodable: {describe(exc)}"}}).encode("ascii") + b"\n"


class LogWriter:
    """Batches `LogRecord`s from any thread into a `LogSink` on a thread of its own."""

    def __init__(
        self,
        sink: LogSink,
        spill_dir: Path | str,
        *,
        max_queue: int = 50_000,
        batch_size: int = 500,
        idle_s: float = 0.2,
        linger_s: float = 0.025,
        retry_s: float = 1.0,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._sink = sink
        self._spill_dir = Path(spill_dir)
        self._spill_dir.mkdir(parents=True, exist_ok=True)
        self._max_queue = max_queue
        self._batch_size = batch_size
        self._idle_s = idle_s
        self._linger_s = linger_s
        self._retry_s = retry_s
        self._on_error = on_error
        self._queue: deque[LogRecord] = deque()
        self._wake = threading.Event()
        self._closing = False
        self._closed = False
        self._spill_lock = threading.Lock()
        self._spill_fd: int | None = None
        self._spill_path: Path | None = None
        self._submitted = 0
        self._written = 0
        self._spilled = 0
        self._reloaded = 0
        self._sink_errors = 0
        self._quarantined = 0
        self._lost = 0
        self._writer_errors = 0
        self._last_failure = 0.0
        self._dead: str | None = None  # why the writer thread ended, if it ended before close()
        self._spill_broken: str | None = None  # why the last spill write failed, until one succeeds
        self._thread = threading.Thread(target=self._run, name="ghat-log-writer", daemon=True)
        self._thread.start()

    # -- the hot path -------------------------------------------------------------------

    def submit(self, record: LogRecord) -> None:
        """Hand a record over; never blocks on the sink, never raises for a full queue or a dead writer."""
        self._submitted += 1
        if self._closing or self._dead is not None or len(self._queue) >= self._max_queue:
            self._spill((record,))
            return
        self._queue.append(record)
        if self._idle and not self._wake.is_set():  # a busy or lingering writer will see it anyway
            self._wake.set()

    # -- shutdown and introspection -----------------------------------------------------

    def close(self, timeout: float | None = None) -> None:
        """Write everything queued and spilled, then close the sink (graceful shutdown)."""
        if self._closed:
            return
        self._closing = True
        self._wake.set()
        self._thread.join(timeout)
        if self._thread.is_alive() or self._queue:  # the sink hangs, or the thread ended: keep the rest on disk
            self._drain_to_spill()
        self._close_spill()
        self._closed = True
        with contextlib.suppress(Exception):
            self._sink.close()

    async def aclose(self) -> None:
        """`close()` from async code (the server's lifespan shutdown), off the event loop."""
        import anyio

        await anyio.to_thread.run_sync(self.close)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until the queue is empty and no spill is pending (tests, `ghat` tooling); False if it cannot."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._dead is None:
            if not self._queue and not self._has_spill() and self._idle:
                return True
            self._wake.set()
            time.sleep(0.005)
        return False

    def problem(self) -> str | None:
        """Why records cannot all be kept right now, or None: the server's readiness fails while it is set."""
        if self._dead is not None:
            return self._dead
        if not self._closing and not self._thread.is_alive():
            return "the request log writer thread is not running"
        return self._spill_broken

    def stats(self) -> WriterStats:
        return WriterStats(
            submitted=self._submitted, written=self._written, spilled=self._spilled, reloaded=self._reloaded,
            queued=len(self._queue), sink_errors=self._sink_errors, spill_pending=self._has_spill(),
            quarantined=self._quarantined, lost=self._lost, writer_errors=self._writer_errors,
            alive=self._dead is None and (self._closing or self._thread.is_alive()),
        )  # fmt: skip

    # -- the writer thread --------------------------------------------------------------

    _idle = True
    _spill_pending = True  # until the first pass has looked for files a previous run left

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # the loop contains every Exception; this is SystemExit and the like
            self._die(exc)

    def _loop(self) -> None:
        self._step(self._reload_spills)  # what a previous run left behind
        while True:
            if not self._queue:
                self._idle = True
                if self._closing:
                    break
                self._wake.wait(self._idle_s)
                self._wake.clear()
            self._idle = False
            if self._linger_s and 0 < len(self._queue) < self._batch_size and not self._closing:
                # let a batch gather: one transaction per linger_s, not one per request (a commit
                # and a thread wake-up per record cost the server more CPU than the request itself)
                time.sleep(self._linger_s)
            batch = self._take(self._batch_size)
            if batch:
                self._step(self._write, batch)
            if self._spill_pending and len(self._queue) < self._max_queue // 4 and self._may_retry():
                self._step(self._reload_spills)
        self._step(self._reload_spills)
        self._idle = True

    def _step(self, fn: Callable[..., object], batch: list[LogRecord] | None = None) -> None:
        """Run one step of the thread; an error in it spills the batch in hand and the thread carries on."""
        try:
            fn() if batch is None else fn(batch)
        except Exception:
            self._writer_errors += 1
            log.exception("request log writer step failed; its records are kept in the spill file")
            if batch:
                self._spill(batch)
            self._last_failure = time.monotonic()  # back off as after a sink failure
        except BaseException:  # the thread is ending (see `_die`): the batch in hand goes to disk first
            if batch:
                self._spill(batch)
            raise

    def _die(self, exc: BaseException) -> None:
        self._dead = f"the request log writer stopped: {describe(exc)}; records go to the spill file"
        self._idle = True
        log.critical("%s (in %s)", self._dead, self._spill_dir, exc_info=exc)
        with contextlib.suppress(Exception):
            self._drain_to_spill()

    def _take(self, n: int) -> list[LogRecord]:
        batch: list[LogRecord] = []
        pop = self._queue.popleft
        try:
            for _ in range(n):
                batch.append(pop())
        except IndexError:
            pass
        return batch

    def _may_retry(self) -> bool:
        return self._closing or not self._last_failure or time.monotonic() - self._last_failure >= self._retry_s

    def _write(self, batch: list[LogRecord]) -> None:
        safe = [safe_record(r) for r in batch]
        if not self._may_retry():
            self._spill(safe)  # the sink failed a moment ago: don't hammer it
            return
        left = self._store(safe)
        if left:
            self._spill(left)

    def _store(self, records: Sequence[LogRecord]) -> list[LogRecord]:
        """Store storable records; returns those left unstored because the sink is down (the rest are in it or
        quarantined). A refused batch is halved until the record the sink refuses on its own is found."""
        try:
            self._sink.write(records)
        except Exception as exc:
            self._sink_errors += 1
            if not self._sink_takes_writes():
                self._last_failure = time.monotonic()
                log.warning("log sink failed (%s); %d records spilled to disk", exc, len(records))
                if self._on_error is not None:
                    self._on_error(exc)
                return list(records)
            if len(records) == 1:
                self._quarantine([spill_line(records[0])], f"the sink refused it: {describe(exc)}")
                return []
            mid = len(records) // 2
            left = self._store(records[:mid])
            return [*left, *records[mid:]] if left else self._store(records[mid:])
        self._last_failure = 0.0
        self._written += len(records)
        return []

    def _sink_takes_writes(self) -> bool:
        probe = getattr(self._sink, "probe", None)
        if probe is None:
            return False  # a sink that cannot tell: treat every failure as the sink's, as before
        try:
            probe()
        except Exception:
            return False
        return True

    # -- spill and quarantine files -----------------------------------------------------

    def _spill(self, records: Iterable[LogRecord]) -> None:
        lines = [spill_line(r) for r in records]
        self._spill_bytes(b"".join(lines), len(lines))

    def _spill_bytes(self, data: bytes, n: int) -> None:
        """Append lines to this run's spill file; never raises (a failure counts the records lost)."""
        if not n:
            return
        with self._spill_lock:
            try:
                if self._spill_fd is None:
                    self._spill_path = self._spill_dir / f"{SPILL_PREFIX}{os.getpid()}-{time.time_ns()}.jsonl"
                    self._spill_fd = os.open(self._spill_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                view = memoryview(data)
                while view:
                    view = view[os.write(self._spill_fd, view):]
            except OSError as exc:
                self._lost += n
                if self._spill_broken is None:
                    log.critical("cannot write the log spill file in %s (%s): %d request records lost",
                                 self._spill_dir, exc, n)  # fmt: skip
                self._spill_broken = f"the request log can neither be stored nor spilled: {exc}"
                return
            self._spill_broken = None
            self._spill_pending = True
            self._spilled += n

    def _quarantine(self, lines: list[bytes], reason: str) -> None:
        """Set lines the sink will never take aside, once, so they block nothing and stay readable."""
        path = self._spill_dir / f"{QUARANTINE_PREFIX}{os.getpid()}.jsonl"
        try:
            with open(path, "ab") as f:
                f.write(b"".join(line if line.endswith(b"\n") else line + b"\n" for line in lines))
        except OSError as exc:
            self._lost += len(lines)
            log.critical("cannot write the quarantine file %s (%s): %d request records lost", path, exc, len(lines))
            return
        self._quarantined += len(lines)
        log.error("%d request log record(s) quarantined in %s: %s", len(lines), path, reason)

    def _close_spill(self) -> None:
        with self._spill_lock:
            if self._spill_fd is not None:
                os.close(self._spill_fd)
                self._spill_fd = None

    def _has_spill(self) -> bool:
        return self._spill_fd is not None or any(
            _ours_or_orphaned(p) for p in self._spill_dir.glob(f"{SPILL_PREFIX}*.jsonl")
        )

    def _drain_to_spill(self) -> None:
        self._spill(self._take(len(self._queue) + 1))

    def _reload_spills(self) -> None:
        """Load every spill file back into the sink and delete it once each line is stored or quarantined."""
        with self._spill_lock:  # new overflow starts a new file, which this pass leaves alone
            if self._spill_fd is not None:
                os.close(self._spill_fd)
                self._spill_fd = None
            paths = sorted(p for p in self._spill_dir.glob(f"{SPILL_PREFIX}*.jsonl") if _ours_or_orphaned(p))
            self._spill_pending = False
        if paths and getattr(self._sink, "probe", None) is not None and not self._sink_takes_writes():
            self._spill_pending = True  # the store is down: try again later, reading nothing
            self._last_failure = time.monotonic()
            return
        for path in paths:
            if not self._reload_file(path):
                self._spill_pending = True
                return

    def _reload_file(self, path: Path) -> bool:
        """Store a spill file's lines, quarantining those that can never load; False if the sink went down."""
        pending: list[LogRecord] = []
        touched = False  # whether any line of this file is stored or quarantined yet
        try:
            with path.open("rb") as f:
                for line in f:
                    if not line.strip():
                        continue
                    try:
                        pending.append(record_from_dict(json.loads(line)))
                    except Exception as exc:  # not JSON, not an object, too deep: it will never load
                        self._quarantine([line], f"unreadable line in {path.name}: {describe(exc)}")
                        touched = True
                        continue
                    if len(pending) >= self._batch_size:
                        left = self._store_reloaded(pending)
                        if left:
                            return self._set_back(path, touched, left, f.read())
                        touched, pending = True, []
                if pending and (left := self._store_reloaded(pending)):
                    return self._set_back(path, touched, left, b"")
        except OSError as exc:
            log.warning("cannot read spill file %s: %s", path, exc)
            return False
        path.unlink(missing_ok=True)
        return True

    def _set_back(self, path: Path, touched: bool, left: list[LogRecord], rest: bytes) -> bool:
        """The sink went down part-way through a spill file: keep what is not stored yet, once.

        Untouched, the file stays as it is. Otherwise what is left moves to a new spill file and this one
        goes, so a quarantined line is never quarantined again and no file is read from the top forever.
        """
        if touched:
            self._spill(left)
            if rest.strip():
                self._spill_bytes(rest if rest.endswith(b"\n") else rest + b"\n",
                                  sum(1 for line in rest.splitlines() if line.strip()))  # fmt: skip
            path.unlink(missing_ok=True)
        return False

    def _store_reloaded(self, batch: list[LogRecord]) -> list[LogRecord]:
        left = self._store(batch)
        self._reloaded += len(batch) - len(left)
        return left


def _ours_or_orphaned(path: Path) -> bool:
    """A spill file this process wrote, or one whose writer is gone; never a live neighbour's."""
    try:
        pid = int(path.name[len(SPILL_PREFIX):].split("-", 1)[0])
    except ValueError:
        return True
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
