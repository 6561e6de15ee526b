"""Guards on large texts run off the event loop, in a bounded pool of worker threads (P15).

A guard pipeline is CPU work: microseconds on a chat prompt, but up to seconds on a
megabyte of adversarial text. On the event loop that froze every other connection
(`/healthz` took 10 s while one 1 MB prompt was scanned). Small texts still run
inline — a thread hop costs more than scanning a few kilobytes — and larger ones run
in a worker thread. Workers are bounded by one `CapacityLimiter` for the process, so
a burst of large prompts queues for a worker instead of starting a thread each.

The GIL still serialises Python bytecode, so a worker does not make scanning faster;
it makes it preemptible: the interpreter switches threads every few milliseconds, so
the loop keeps answering while a worker scans.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread

from engine.detectors.base import ScanContext
from engine.guards import GuardPipeline, GuardResult, Redactor

# Characters (summed over the texts) up to which a pipeline runs inline. Measured: the
# worst adversarial text costs ~5 µs per character in the shipped policies' input guards,
# so 8 K characters hold the loop at most ~40 ms; a chat prompt (~2 K) takes ~50 µs.
T = TypeVar("T")
INLINE_CHARS = 8192


def default_threads() -> int:
    """One worker per CPU (at least one, at most eight): the GIL makes more useless."""
    return max(1, min(8, os.cpu_count() or 1))


_limiter = anyio.CapacityLimiter(default_threads())


def set_threads(threads: int) -> None:
    """Resize the worker pool (the server calls it once at start, from its settings)."""
    if threads < 1:
        raise ValueError("guard worker threads must be at least 1")
    _limiter.total_tokens = threads


def threads() -> int:
    """The pool's current size."""
    return int(_limiter.total_tokens)


async def run_guards(
    pipeline: GuardPipeline,
    texts: list[tuple[ScanContext, str]],
    redactor: Redactor,
    inline_chars: int = INLINE_CHARS,
) -> GuardResult:
    """`pipeline.run(texts, redactor)`, inline for small texts, else in a worker thread.

    The redactor is mutated by the run; the caller awaits it, so nothing else touches it
    meanwhile. Detectors are immutable after compilation and safe to share between threads.
    """
    if sum(len(text) for _context, text in texts) <= inline_chars or not _on_event_loop():
        return pipeline.run(texts, redactor)
    return await anyio.to_thread.run_sync(pipeline.run, texts, redactor, limiter=_limiter)


async def run_off_loop(fn: Callable[..., T], *args: Any, size: int, inline_chars: int = INLINE_CHARS) -> T:
    """`fn(*args)`, inline when `size` (characters to scan) is small, else in a worker thread (P15).

    For guard work that is not one `pipeline.run` call: a whole answer's slots (`guard_tree`).
    """
    if size <= inline_chars or not _on_event_loop():
        return fn(*args)
    return await anyio.to_thread.run_sync(fn, *args, limiter=_limiter)


def _on_event_loop() -> bool:
    """False when `evaluate` is driven without a loop (`ghat test`, `explain`, `replay`): nothing to keep free."""
    try:
        anyio.lowlevel.current_token()
    except RuntimeError:
        return False
    return True
