"""What every HTTP wire protocol shares: the pooled client, SSE parsing, and failure mapping.

The OpenAI and Anthropic adapters differ in shapes, not in how they fail: a
timeout, a reset connection, a 429 with `Retry-After` or a 503 means the same
thing whoever sent it. Mapping those in one place keeps P8 (only retryable
failures retry or fall back) decided once.

The pool is aiohttp's, not httpx's. Measured against the fake upstream in one
run (bench/RESULTS.md, "Gateway overhead"), a POST through `httpx.AsyncClient`
cost ~1.2 ms of CPU and one through `aiohttp.ClientSession` ~0.25 ms (httpx
with an aiohttp transport: ~0.8 ms); httpcore's pool polls every idle
connection's socket on every request, aiohttp learns of closed connections
from the event loop and parses responses in C. `Upstream` keeps the rest of
the code free of either library: adapters hand it bytes and get bytes, SSE
events or a `ProviderError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import ssl
import time
import urllib.request
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import anyio
from yarl import URL

from adapters.jsonwire import loads
from engine.ports import JSON, RETRYABLE_STATUS, ProviderError

# Keep-alive pool per provider: enough connections for a busy worker, idle ones
# reaped before most upstream load balancers (60 s) drop them under us.
MAX_CONNECTIONS = 512
KEEPALIVE_S = 30.0
CONNECT_TIMEOUT_S = 10.0
DEFAULT_TIMEOUT_S = 60.0
MAX_HEADER_BYTES = 32_768  # one upstream header line (aiohttp's default, 8 190, is below what h11 allowed)
DRAIN_S = 0.5  # how long to wait for the end of a stream's body once its last event is in hand
_MAX_ERROR_MESSAGE = 500
MAX_RETRY_AFTER_S = 3600.0  # the longest wait a provider's Retry-After can ask of the router and the caller
# What the client must not be told apart by: a lost connection mid-body, a refused connect, a bad status line.
_TRANSPORT_ERRORS = (aiohttp.ClientError, OSError)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """`Retry-After` as seconds from now, within [0, MAX_RETRY_AFTER_S]: delta-seconds or an HTTP date (RFC 9110
    §10.2.3). A provider's header is not trusted: `inf`, `1e999`, a date in the year 9999 are clamped, a date in
    the past, a negative number or NaN mean at once, and what is neither form is ignored (None)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)  # delta-seconds; also `inf`, `nan`, `-5`, `1e999`, which are clamped below
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
            seconds = when.timestamp() - (time.time() if now is None else now)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if not seconds > 0:  # in the past, negative or NaN: at once
        return 0.0
    return min(seconds, MAX_RETRY_AFTER_S)


def _upstream_message(provider: str, status: int, reason: str, content: bytes) -> str:
    """The provider's own error message when it sent one (kept for the caller), else the status line."""
    text = content[:4000].decode("utf-8", "replace")
    try:
        data = loads(text)
    except ValueError:
        data = None
    msg = ""
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict):
            msg = str(err.get("message") or err.get("type") or "")
        elif isinstance(err, str):
            msg = err
        elif isinstance(data.get("message"), str):
            msg = data["message"]
    if not msg:
        msg = text.strip() or reason
    return f"{provider}: upstream {status}: {msg[:_MAX_ERROR_MESSAGE]}"


def status_error(
    provider: str, status: int, content: bytes, headers: Mapping[str, str] | None = None, reason: str = ""
) -> ProviderError:
    """Map an upstream HTTP error to our vocabulary (P8: 408, 429 and 5xx are retryable).

    Retryable failures carry `route_unavailable`/503: that is what the caller
    sees if no candidate is left. A redirect (3xx) is never followed: it would
    send the body, prompts and all, to a host the policy's `providers` never
    named; it is `upstream_error`, not retried. A client-side 4xx (400, 404, 413, 422) is the
    request's fault and surfaces as `invalid_request` with its status; 401/403
    mean our provider key is wrong, which the caller cannot fix: 502.
    """
    if 300 <= status < 400:  # never followed: the body would go to a host the policy never named
        where = (headers or {}).get("location", "")[:200]
        return ProviderError(f"{provider}: upstream answered {status} (a redirect to {where or 'nowhere'}); "
                             "ghat does not follow redirects: set the provider's base_url to the final URL",
                             status=502, code="upstream_error", upstream_status=status)  # fmt: skip
    message = _upstream_message(provider, status, reason, content)
    if status in RETRYABLE_STATUS or status >= 500:
        return ProviderError(
            message,
            status=503,
            code="route_unavailable",
            retryable=True,
            retry_after=parse_retry_after((headers or {}).get("retry-after")),
            upstream_status=status,
        )
    if status in (401, 403):
        return ProviderError(message, status=502, code="upstream_error", upstream_status=status)
    return ProviderError(message, status=400 if status != 413 else 413, code="invalid_request", upstream_status=status)


def transport_error(provider: str, exc: BaseException) -> ProviderError:
    """Timeouts and broken connections are retryable; a protocol error mid-body too (the peer went away)."""
    if isinstance(exc, TimeoutError):
        return ProviderError(f"{provider}: upstream timed out", status=504, code="request_timeout", retryable=True)
    return ProviderError(
        f"{provider}: upstream connection failed: {type(exc).__name__}", status=503, code="route_unavailable",
        retryable=True,
    )


def malformed(provider: str, what: str) -> ProviderError:
    """Unparseable upstream output. Retryable: it is the upstream's fault, not the request's (a
    truncated body from an overloaded proxy is the usual cause), so another attempt or candidate may answer."""
    return ProviderError(
        f"{provider}: malformed response from upstream ({what})", status=502, code="upstream_malformed",
        retryable=True, upstream_status=200,
    )


def loads_object(provider: str, content: bytes) -> JSON:
    """A JSON object from an upstream body, or a `malformed` ProviderError."""
    try:
        data = loads(content, int64=False)
    except ValueError:
        raise malformed(provider, "invalid JSON") from None
    if not isinstance(data, dict):
        raise malformed(provider, "JSON is not an object")
    return data


def json_event(provider: str, data: str | bytes) -> dict[str, Any]:
    """One SSE data payload as a JSON object, or `malformed`."""
    try:
        obj = loads(data, int64=False)
    except ValueError:
        raise malformed(provider, "invalid JSON in stream event") from None
    if not isinstance(obj, dict):
        raise malformed(provider, "stream event is not an object")
    return obj


def stream_cut(provider: str) -> ProviderError:
    """The upstream stream ended without its terminator: retryable before the first chunk, an error event after."""
    return ProviderError(
        f"{provider}: upstream stream ended unexpectedly", status=502, code="upstream_stream_interrupted",
        retryable=True,
    )


class SSEDecoder:
    """Incremental text/event-stream parser over raw bytes (WHATWG rules: comments, multi-line data, CR/LF/CRLF).

    Fed whatever the socket delivered, it returns the events completed so far
    as (event, data) with `data` still UTF-8 bytes (JSON parsers take bytes),
    so a stream costs one split per network read instead of one async
    iteration per line. A field without a value, unknown fields and
    `id`/`retry` are ignored; an event is dispatched on a blank line, and one
    left pending at the end of the stream is dropped, as the spec says (it may
    be a cut-off fragment).
    """

    __slots__ = ("_buf", "_data", "_event")

    def __init__(self) -> None:
        self._buf = b""
        self._event = b""
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[tuple[str, bytes]]:
        """The events completed by `chunk`, in order."""
        buf = self._buf + chunk if self._buf else chunk
        if b"\r" in buf:
            hold = buf.endswith(b"\r")  # its \n may be in the next read: a CRLF must not count twice
            if hold:
                buf = buf[:-1]
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            if hold:
                buf += b"\r"
        lines = buf.split(b"\n")
        self._buf = lines.pop()  # the unfinished last line (empty when the read ended on a newline)
        out: list[tuple[str, bytes]] = []
        data = self._data
        for line in lines:
            if not line:
                if data:
                    out.append((self._event.decode("utf-8", "replace") or "message",
                                data[0] if len(data) == 1 else b"\n".join(data)))  # fmt: skip
                    data = self._data = []
                self._event = b""
                continue
            if line[0] == 58:  # b":": a comment
                continue
            name, sep, value = line.partition(b":")
            if sep and value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                data.append(value)
            elif name == b"event":
                self._event = value
        return out


async def iter_sse(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str, str]]:
    """(event, data) pairs from text already split into lines (tests, and sources that are not sockets)."""
    decoder = SSEDecoder()
    async for raw in lines:
        for event, data in decoder.feed(raw.encode()):
            yield event, data.decode("utf-8", "replace")


async def _drain(resp: aiohttp.ClientResponse) -> None:
    """Read what is left of a body whose last event is in hand (normally just the chunked terminator)."""
    if resp.content.at_eof():
        return
    with anyio.move_on_after(DRAIN_S):
        with contextlib.suppress(*_TRANSPORT_ERRORS, TimeoutError):
            while await resp.content.readany():
                pass


@functools.cache
def _tls() -> ssl.SSLContext:
    """The trust store httpx used, kept: certifi's bundle unless SSL_CERT_FILE / SSL_CERT_DIR name another
    (so slim images without system CA certificates still reach hosted providers)."""
    if os.environ.get("SSL_CERT_FILE") or os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context()
    try:
        import certifi
    except ImportError:  # pragma: no cover - certifi comes with httpx
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=certifi.where())


def _env_proxy(url: URL) -> str | None:
    """The proxy the environment names for `url` (HTTPS_PROXY, NO_PROXY…), resolved once, not per request."""
    host = url.host or ""
    if urllib.request.proxy_bypass(host):
        return None
    return urllib.request.getproxies().get(url.scheme)


class Upstream:
    """One provider's keep-alive pool: POST bytes, get bytes or SSE events, or a mapped `ProviderError`.

    The aiohttp session is made in the event loop that first uses it (policies
    are compiled in a worker thread, and tests run a loop per test), and made
    again if a later call runs in another loop. `timeout_s` bounds connecting
    and each read from the socket — for a stream, the wait between two pieces
    (an idle timeout: a long answer is not a slow one); the router's deadline
    scope is the authority over a whole attempt.
    """

    def __init__(
        self,
        provider: str,
        base_url: str,
        headers: Mapping[str, str],
        timeout_s: float | None,
        params: Mapping[str, str] | None = None,
    ) -> None:
        self.provider = provider
        self._base = base_url.rstrip("/")
        self._params = dict(params or {})
        self._headers = {**{k.lower(): v for k, v in headers.items()}, "content-type": "application/json"}
        self._default_s = timeout_s if timeout_s is not None else DEFAULT_TIMEOUT_S
        self._urls: dict[str, URL] = {}
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._proxy = _env_proxy(URL(self._base))

    def _url(self, path: str) -> URL:
        url = self._urls.get(path)
        if url is None:
            url = URL(self._base + path)
            if self._params:
                url = url.update_query(self._params)  # Azure's ?api-version=… rides on every request
            self._urls[path] = url
        return url

    def _timeout(self, timeout_s: float | None) -> aiohttp.ClientTimeout:
        read = self._default_s if timeout_s is None else max(timeout_s, 0.001)
        t = self._timeouts.get(read)
        if t is None:
            if len(self._timeouts) > 256:  # deadline-bound limits vary per request: keep the cache small
                self._timeouts.clear()
            t = self._timeouts[read] = aiohttp.ClientTimeout(
                total=None, connect=min(CONNECT_TIMEOUT_S, read), sock_read=read
            )
        return t

    def _client(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        s = self._session
        if s is None or self._loop is not loop or s.closed:
            if s is not None and not s.closed:
                self._abandon(s)
            tls = _tls() if self._base.startswith("https:") else True
            connector = aiohttp.TCPConnector(
                limit=MAX_CONNECTIONS, keepalive_timeout=KEEPALIVE_S, ttl_dns_cache=60, ssl=tls
            )
            s = self._session = aiohttp.ClientSession(
                connector=connector, headers=self._headers, auto_decompress=True, trust_env=False,
                raise_for_status=False, cookie_jar=aiohttp.DummyCookieJar(),
                max_line_size=MAX_HEADER_BYTES, max_field_size=MAX_HEADER_BYTES,
            )  # fmt: skip
            self._loop = loop
        return s

    @staticmethod
    def _abandon(s: aiohttp.ClientSession) -> None:
        """Drop a session whose event loop is gone: its sockets went with that loop, nothing is left to close."""
        s.detach()

    async def post(self, path: str, body: bytes, timeout_s: float | None,
                   headers: Mapping[str, str] | None = None) -> bytes:
        """The body of a 2xx answer; an error status, a timeout or a broken connection as `ProviderError`.

        `headers` are added to this request only (a caller's `anthropic-beta` flags).
        """
        try:
            async with self._client().post(
                self._url(path), data=body, timeout=self._timeout(timeout_s), proxy=self._proxy,
                allow_redirects=False, headers=headers,
            ) as resp:
                content = await resp.read()
                status = resp.status
                if status >= 300:
                    raise status_error(self.provider, status, content, resp.headers, resp.reason or "")
                return content
        except (*_TRANSPORT_ERRORS, TimeoutError) as exc:
            raise transport_error(self.provider, exc) from None

    async def events(
        self, path: str, body: bytes, timeout_s: float | None, end: Callable[[str, bytes], bool] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncGenerator[tuple[str, bytes], None]:
        """SSE events of a streamed answer as they arrive; closing the iterator releases the connection.

        A failure before the answer's headers, or an error status, is a
        transport or status error; a connection lost mid-stream is
        `stream_cut`; a stall longer than `timeout_s` is `request_timeout`.
        `end(event, data)` names the protocol's last event (OpenAI's `[DONE]`,
        Anthropic's `message_stop`): before it is handed over, the few bytes
        that close the HTTP body are read (for at most DRAIN_S), so the
        connection goes back to the pool instead of being closed — a consumer
        stops at that event and never asks for them.
        """
        try:
            resp = await self._client().post(
                self._url(path), data=body, timeout=self._timeout(timeout_s), proxy=self._proxy,
                allow_redirects=False, headers=headers,
            )
        except (*_TRANSPORT_ERRORS, TimeoutError) as exc:
            raise transport_error(self.provider, exc) from None
        try:
            if resp.status >= 300:
                try:
                    content = await resp.read()
                except (*_TRANSPORT_ERRORS, TimeoutError) as exc:
                    raise transport_error(self.provider, exc) from None
                raise status_error(self.provider, resp.status, content, resp.headers, resp.reason or "")
            feed = SSEDecoder().feed
            try:
                async for chunk in resp.content.iter_any():
                    for event in feed(chunk):
                        if end is not None and end(*event):
                            await _drain(resp)
                        yield event
            except TimeoutError as exc:
                raise transport_error(self.provider, exc) from None
            except _TRANSPORT_ERRORS:
                raise stream_cut(self.provider) from None
        finally:
            resp.release()  # back to the pool when the body was read to its end, else the connection is closed

    async def aclose(self) -> None:
        """Close the pool (idle keep-alive connections go at once)."""
        s, self._session = self._session, None
        if s is None or s.closed:
            return
        if self._loop is asyncio.get_running_loop():
            await s.close()
        else:
            self._abandon(s)
