"""The background log writer: the request hands its record over and moves on.

`submit` is the only call on the hot path. It appends to a bounded deque
(atomic under the GIL, no lock) and wakes the writer thread if it sleeps:
well under a microsecond. The thread drains the deque in batches into the
sink, one transaction per batch.

Nothing is lost:
- queue full (the sink is slow or stalled): the request still succeeds; its
  record is appended to a JSONL spill file in the data dir (one `os.write`
  per line, so a crash after it keeps the line) and counted in `spilled`;
- a batch the sink refuses (disk full, database locked too long) is spilled
  the same way instead of dropped;
- spill files — this run's and any a crashed run left — are loaded back into
  the sink by the writer thread when the queue is short again, and on close;
  the sink ignores a request id it already holds, so a reload that is cut
  short and repeated stores nothing twice;
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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from adapters.logstore.base import LogSink, record_from_dict, record_to_dict
from engine.records import LogRecord

log = logging.getLogger("ghat.logwriter")
SPILL_PREFIX = "logs-spill-"


@dataclass(frozen=True, slots=True)
class WriterStats:
    """Counters for `/metrics`: every record submitted ends up written, queued or spilled-then-written."""

    submitted: int
    written: int
    spilled: int  # records that went to a spill file (queue full or sink failure)
    reloaded: int  # spilled records loaded back into the sink
    queued: int
    sink_errors: int
    spill_pending: bool


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
        self._last_failure = 0.0
        self._thread = threading.Thread(target=self._run, name="ghat-log-writer", daemon=True)
        self._thread.start()

    # -- the hot path -------------------------------------------------------------------

    def submit(self, record: LogRecord) -> None:
        """Hand a record over; never blocks on the sink, never raises for a full queue."""
        self._submitted += 1
        if self._closing or len(self._queue) >= self._max_queue:
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
        if self._thread.is_alive():  # the sink hangs: keep what is queued on disk
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
        """Wait until the queue is empty and no spill is pending (tests, `ghat` tooling)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._queue and not self._has_spill() and self._idle:
                return True
            self._wake.set()
            time.sleep(0.005)
        return False

    def stats(self) -> WriterStats:
        return WriterStats(
            submitted=self._submitted, written=self._written, spilled=self._spilled, reloaded=self._reloaded,
            queued=len(self._queue), sink_errors=self._sink_errors, spill_pending=self._has_spill(),
        )  # fmt: skip

    # -- the writer thread --------------------------------------------------------------

    _idle = True
    _spill_pending = True  # until the first pass has looked for files a previous run left

    def _run(self) -> None:
        self._reload_spills()  # what a previous run left behind
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
                self._write(batch)
            if self._spill_pending and len(self._queue) < self._max_queue // 4 and self._may_retry():
                self._reload_spills()
        self._reload_spills()
        self._idle = True

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

    def _write(self, batch: list[LogRecord]) -> bool:
        if not self._may_retry():
            self._spill(batch)  # the sink failed a moment ago: don't hammer it
            return False
        try:
            self._sink.write(batch)
        except Exception as exc:
            self._sink_errors += 1
            self._last_failure = time.monotonic()
            log.warning("log sink failed (%s); %d records spilled to disk", exc, len(batch))
            if self._on_error is not None:
                self._on_error(exc)
            self._spill(batch)
            return False
        self._last_failure = 0.0
        self._written += len(batch)
        return True

    # -- spill files --------------------------------------------------------------------

    def _spill(self, records: Iterable[LogRecord]) -> None:
        data = b"".join(
            json.dumps(record_to_dict(r), separators=(",", ":"), ensure_ascii=False).encode() + b"\n" for r in records
        )
        with self._spill_lock:
            if self._spill_fd is None:
                self._spill_path = self._spill_dir / f"{SPILL_PREFIX}{os.getpid()}-{time.time_ns()}.jsonl"
                self._spill_fd = os.open(self._spill_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.write(self._spill_fd, data)
            self._spill_pending = True
            self._spilled += data.count(b"\n")

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
        """Load every spill file back into the sink and delete it once stored."""
        with self._spill_lock:  # new overflow starts a new file, which this pass leaves alone
            if self._spill_fd is not None:
                os.close(self._spill_fd)
                self._spill_fd = None
            paths = sorted(p for p in self._spill_dir.glob(f"{SPILL_PREFIX}*.jsonl") if _ours_or_orphaned(p))
            self._spill_pending = False
        for path in paths:
            if not self._reload_file(path):
                self._spill_pending = True
                return  # the sink still fails: try again later

    def _reload_file(self, path: Path) -> bool:
        batch: list[LogRecord] = []
        try:
            with path.open("rb") as f:
                for line in f:
                    if not line.strip():
                        continue
                    try:
                        batch.append(record_from_dict(json.loads(line)))
                    except (ValueError, KeyError, TypeError, IndexError):
                        log.warning("skipping an unreadable line in %s", path)  # a torn last line
                        continue
                    if len(batch) >= self._batch_size:
                        if not self._store_reloaded(batch):
                            return False
                        batch = []
            if batch and not self._store_reloaded(batch):
                return False
        except OSError as exc:
            log.warning("cannot read spill file %s: %s", path, exc)
            return False
        path.unlink(missing_ok=True)
        return True

    def _store_reloaded(self, batch: list[LogRecord]) -> bool:
        try:
            self._sink.write(batch)
        except Exception as exc:
            self._sink_errors += 1
            self._last_failure = time.monotonic()
            log.warning("log sink failed while reloading spilled records: %s", exc)
            return False
        self._reloaded += len(batch)
        self._written += len(batch)
        return True


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
