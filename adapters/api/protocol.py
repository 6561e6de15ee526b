"""uvicorn's httptools protocol with a header timeout and a header size limit, and JSON for its refusals.

uvicorn closes idle keep-alive connections (`--keep-alive`) but arms no timer
while a request's headers arrive, so a client that trickles a header a minute
(slowloris) holds a connection and its buffers for ever. This protocol arms a
timer when a connection opens and when each request on it begins, and cancels
it when the headers are complete; when it fires, the client gets a 408 and the
connection closes, as nginx's `client_header_timeout` does. The body has its
own timeout in the server (`Settings.body_timeout_s`), where the ASGI app sees it.

httptools puts no bound on a request's head: a client could send a 200 MB
header and the parser would buffer all of it. Here the request line and
headers are counted as the parser reports them, and the raw bytes of a head
still incomplete after a read are counted too (so one endless header line is
caught while it arrives, not once it is whole); past `--max-header-bytes`
the client gets a 431 and the connection closes, before the request reaches
the application. Bytes httptools cannot parse as HTTP get a 400 in the same
OpenAI error shape, not uvicorn's plain text: every refusal is JSON.

Both limits come from the settings `ghat serve` passes to its workers
(`GHAT_SERVE_SETTINGS`), read once when uvicorn imports this module.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from adapters.api.state import Settings
from adapters.jsonwire import dumps

DEFAULT_HEADER_TIMEOUT_S = 10.0
DEFAULT_MAX_HEADER_BYTES = 32_768  # request line + headers; nginx's default buffers allow 4 × 8 KiB


def _refusal(status: int, reason: str, message: str) -> bytes:
    """A complete HTTP/1.1 response closing the connection, with an OpenAI-shaped `invalid_request` body."""
    body = dumps({"error": {"message": message, "type": "invalid_request_error", "param": None,
                            "code": "invalid_request"}})  # fmt: skip
    head = (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\nconnection: close\r\n"
            f"content-length: {len(body)}\r\n\r\n")  # fmt: skip
    return head.encode() + body


_RESPONSE_408 = _refusal(408, "Request Timeout", "The request headers did not arrive in time.")
_RESPONSE_400 = _refusal(400, "Bad Request", "The request is not valid HTTP/1.1.")


class _HeadTooLarge(Exception):
    """Raised from a parser callback to stop parsing a head past the limit."""


def _configured() -> tuple[float, int]:
    settings = Settings.from_env()
    if settings is None:
        return DEFAULT_HEADER_TIMEOUT_S, DEFAULT_MAX_HEADER_BYTES
    return settings.header_timeout_s, settings.max_header_bytes


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """`http="adapters.api.protocol:HeaderTimeoutProtocol"` in uvicorn's config."""

    header_timeout_s, max_header_bytes = _configured()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._in_head = False  # between a request's first byte and the end of its headers
        self._head_bytes = 0  # its request line and complete headers, as parsed
        self._raw_bytes = 0  # bytes of reads that were head from their first byte to their last
        self._too_large = False

    def data_received(self, data: bytes) -> None:
        if self._too_large:
            return
        counting = self._in_head
        super().data_received(data)
        if counting and self._in_head and not self._too_large:  # every byte of this read belongs to the head
            self._raw_bytes += len(data)
            if self._raw_bytes > self.max_header_bytes:
                self._refuse_head()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def _count(self, n: int) -> None:
        self._head_bytes += n
        if self._head_bytes > self.max_header_bytes:
            self._too_large = True
            raise _HeadTooLarge  # httptools turns it into HttpParserCallbackError: uvicorn calls send_400_response

    def send_400_response(self, msg: str) -> None:
        if self._too_large:
            self._refuse_head()
            return
        if not self.transport.is_closing():
            self.transport.write(_RESPONSE_400)
            self.transport.close()

    def _refuse_head(self) -> None:
        self._too_large = True
        self._disarm()
        if not self.transport.is_closing():
            limit = self.max_header_bytes
            self.transport.write(_refusal(431, "Request Header Fields Too Large",
                                          f"The request line and headers exceed {limit} bytes."))  # fmt: skip
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._head_bytes, self._raw_bytes = True, 0, 0
        self._arm()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request is being answered on this connection (its headers were complete)
        if not self.transport.is_closing():
            self.transport.write(_RESPONSE_408)
            self.transport.close()
