"""uvicorn's httptools protocol with a header timeout: a client must finish its request headers in time.

uvicorn closes idle keep-alive connections (`--keep-alive`) but arms no timer
while a request's headers arrive, so a client that trickles a header a minute
(slowloris) holds a connection and its buffers for ever. This protocol arms a
timer when a connection opens and when each request on it begins, and cancels
it when the headers are complete; when it fires, the client gets a 408 and the
connection closes, as nginx's `client_header_timeout` does. The body has its
own timeout in the server (`Settings.body_timeout_s`), where the ASGI app sees it.

The timeout comes from the settings `ghat serve` passes to its workers
(`GHAT_SERVE_SETTINGS`), read once when uvicorn imports this module.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from adapters.api.state import Settings

DEFAULT_HEADER_TIMEOUT_S = 10.0
_BODY_408 = (b'{"error":{"message":"The request headers did not arrive in time.","type":"invalid_request_error",'
             b'"param":null,"code":"invalid_request"}}')  # fmt: skip
_RESPONSE_408 = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
                 b"content-length: %d\r\n\r\n%s" % (len(_BODY_408), _BODY_408))  # fmt: skip


def _configured_timeout() -> float:
    settings = Settings.from_env()
    return settings.header_timeout_s if settings is not None else DEFAULT_HEADER_TIMEOUT_S


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """`http="adapters.api.protocol:HeaderTimeoutProtocol"` in uvicorn's config."""

    header_timeout_s = _configured_timeout()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
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
