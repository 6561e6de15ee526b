"""Background work in a thread that leaves the event loop the interpreter lock.

A reload compiles in a worker thread, but Python runs one thread at a time:
while the worker holds the interpreter lock, the event loop, woken by a
request, waits for it — up to the 5 ms switch interval at every wake-up. A
reload of 2,000 apps held it for ~0.5 s and took the median latency from 1.2 to
14 ms. Two things keep that from happening: the check runs in a child process
(engine/verdict.py), and what is left — loading the files and compiling the
apps that changed — calls `Pacer.checkpoint` between files and apps, which
sleeps `pause_s` after every `slice_s` of work, so the loop never waits long.
Measured in bench/RESULTS.md, "Large policy sets".
"""

from __future__ import annotations

import time

SLICE_S = 0.002
PAUSE_S = 0.004


class Pacer:
    """Call `checkpoint()` between units of work; it sleeps (releasing the lock) once a slice is used up."""

    def __init__(self, slice_s: float = SLICE_S, pause_s: float = PAUSE_S) -> None:
        self.slice_s, self.pause_s = slice_s, pause_s
        self.since = time.perf_counter()
        self.pauses = 0

    def checkpoint(self) -> None:
        now = time.perf_counter()
        if now - self.since >= self.slice_s:
            time.sleep(self.pause_s)
            self.pauses += 1
            self.since = time.perf_counter()
