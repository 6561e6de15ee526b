"""A scripted HTTP/1.1 server in the test's own event loop, for what the fake upstream cannot stage.

Each connection it accepts is counted; each request is answered with the next
canned reply (raw bytes, so a test controls framing to the byte), after which
the connection stays open (keep-alive) unless the reply says to close it.
Used over real sockets by the pool tests in tests/test_http_pool.py and the
Anthropic stream test in tests/test_adapters.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass, field


@dataclass
class Reply:
    """One answer: the bytes to write, then optionally stall or close the connection."""

    data: bytes
    close: bool = False  # close the connection after writing (no keep-alive)
    stall_s: float = 0.0  # wait this long after writing `data` (a stream that stops mid-way)


def http_reply(body: bytes, status: int = 200, content_type: str = "application/json",
               headers: dict[str, str] | None = None) -> bytes:
    """A complete HTTP/1.1 response with a content-length."""
    lines = [f"HTTP/1.1 {status} X", f"content-type: {content_type}", f"content-length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def sse_reply(chunks: list[bytes]) -> bytes:
    """A chunked text/event-stream response holding `chunks`, properly terminated."""
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    return head + b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"


@dataclass
class CannedServer:
    replies: list[Reply]
    tls: ssl.SSLContext | None = None  # serve HTTPS with this context
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None
    _writers: list[asyncio.StreamWriter] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/v1"

    async def start(self) -> CannedServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                self.requests.append(head + await reader.readexactly(length))
                reply = self.replies.pop(0)
                writer.write(reply.data)
                await writer.drain()
                if reply.stall_s:
                    await asyncio.sleep(reply.stall_s)
                if reply.close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    def drop_idle(self) -> None:
        """Close every connection from the server side (an upstream's idle timeout)."""
        for w in self._writers:
            w.close()

    async def close(self) -> None:
        self.drop_idle()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
