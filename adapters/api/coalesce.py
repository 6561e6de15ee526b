"""One write for the events of a burst: a stream's body parts go out when the relay would wait anyway.

A provider often sends many chunks in one network read (a fast model, a
proxy that buffers, a cached answer); the relay handles them one after the
other without waiting, and each used to leave in its own ASGI send, which is
a socket write (a system call) each: the largest single cost of a stream in
the profile (bench/RESULTS.md, "Streams that stay streams"). `Coalescer.send`
stands in for the ASGI send during a stream: a body part with more to come is
appended to a buffer and a writer task beside the relay sends everything
buffered in one message as soon as the relay yields to the event loop —
which it does exactly when it waits for the upstream. A trickling provider
(one chunk per read) gets one write per chunk, as before, one task switch
later; a burst gets one write. The last part of the body (and anything that
is not a body part with more to come) waits for the buffer to be written
first, so order is kept; above `limit` buffered bytes the relay waits for the
writer, so a slow client still holds the relay back.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]


class Coalescer:
    """An ASGI send that merges the body parts produced between two waits of the relay."""

    def __init__(self, send: Send, limit: int = 256 * 1024) -> None:
        self._send = send
        self._limit = limit
        self._parts: list[bytes] = []
        self._size = 0
        self._wake = anyio.Event()
        self._written = anyio.Event()  # set when the buffer is empty and no write is in flight
        self._written.set()

    async def send(self, message: Message) -> None:
        """Buffer a body part with more to come; anything else goes out after what is buffered."""
        if message.get("type") == "http.response.body" and message.get("more_body"):
            body = message.get("body") or b""
            if body:
                self._parts.append(body)
                self._size += len(body)
                if self._written.is_set():
                    self._written = anyio.Event()
                self._wake.set()
                if self._size > self._limit:
                    await self.drain()
            return
        await self.drain()
        await self._send(message)

    async def drain(self) -> None:
        """Wait until everything buffered has been handed to the server."""
        while not self._written.is_set():
            await self._written.wait()

    async def run(self) -> None:
        """The writer: until cancelled, send what is buffered in one message whenever there is some."""
        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            while self._parts:
                parts, self._parts, self._size = self._parts, [], 0
                await self._send({"type": "http.response.body", "body": b"".join(parts), "more_body": True})
            self._written.set()
