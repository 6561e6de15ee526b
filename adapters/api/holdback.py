"""The time bound of `holdback 400ms`: text a stream's output guards hold is sent once it has waited that long.

The relay reads the upstream in a loop; when the provider pauses, no chunk
arrives to give the guards a turn. A `Ticker` task beside the relay sleeps
until the oldest held character's deadline and then asks the relay to flush
(`StreamGuard.flush`: scan as if the stream ended there). It needs no cancel
scope per chunk (one costs ~13 µs, and a stream has ~175 chunks): the relay
marks itself busy while it handles a chunk and the ticker acts only while
the relay waits for the upstream; if a chunk arrives while the ticker is
sending, the relay waits for that send (`Ticker.idle`) before its own, so
events never interleave. Streams without a time bound start no ticker.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio


class Ticker:
    """Calls `flush(now)` whenever held text has waited `wait` seconds and the relay is between chunks.

    `due()` returns the earliest time held text must go out (None: nothing held).
    """

    def __init__(self, wait: float, due: Callable[[], float | None], flush: Callable[[float], Awaitable[bool]]) -> None:
        self.wait = wait
        self._due = due
        self._flush = flush
        self.busy = False  # the relay is handling a chunk: the guards are not the ticker's to touch
        self._sending: anyio.Event | None = None
        self.now = 0.0  # when the chunk the relay is handling arrived
        self.head: dict[str, Any] = {}  # the last chunk's id, created and model, as the relay sent them

    async def gate(self, chunks: AsyncIterator[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
        """The upstream's chunks, with the relay marked busy from each one's arrival until it asks for the next."""
        async for chunk in chunks:
            self.busy = True
            self.now = anyio.current_time()
            if self._sending is not None:
                await self._sending.wait()
            yield chunk
            self.head = {k: chunk[k] for k in ("id", "created", "model") if k in chunk}  # guarded in place by now
            self.busy = False

    async def idle(self) -> None:
        """Wait until a flush the ticker is sending has been sent (the relay calls this before it sends)."""
        if self._sending is not None:
            await self._sending.wait()

    async def run(self) -> None:
        """Until cancelled, or until a flush ends the stream (a block): sleep to the next deadline, flush."""
        while True:
            due = self._due()
            now = anyio.current_time()
            if due is None or due > now or self.busy:
                await anyio.sleep(self.wait if due is None else max(due - now, 0.001))
                continue
            self._sending = anyio.Event()
            try:
                going_on = await self._flush(now)
            finally:
                self._sending.set()
                self._sending = None
            if not going_on:
                return
