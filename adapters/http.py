"""What every HTTP wire protocol shares: the pooled client, SSE parsing, and failure mapping.

The OpenAI and Anthropic adapters differ in shapes, not in how they fail: a
timeout, a reset connection, a 429 with `Retry-After` or a 503 means the same
thing whoever sent it. Mapping those in one place keeps P8 (only retryable
failures retry or fall back) decided once.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from adapters.base import JSON, RETRYABLE_STATUS, ProviderError

# Keep-alive pool per provider: enough connections for a busy worker, idle ones
# reaped before most upstream load balancers (60 s) drop them under us.
POOL_LIMITS = httpx.Limits(max_connections=512, max_keepalive_connections=128, keepalive_expiry=30.0)
CONNECT_TIMEOUT_S = 10.0
DEFAULT_TIMEOUT_S = 60.0
_MAX_ERROR_MESSAGE = 500


def make_client(
    base_url: str,
    headers: dict[str, str],
    timeout_s: float | None,
    params: dict[str, str] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """One pooled client per provider, so every request reuses warm TLS connections."""
    read = timeout_s if timeout_s is not None else DEFAULT_TIMEOUT_S
    return httpx.AsyncClient(
        base_url=base_url.rstrip("/"),
        headers=headers,
        params=params,
        transport=transport,
        limits=POOL_LIMITS,
        timeout=httpx.Timeout(read, connect=min(CONNECT_TIMEOUT_S, read)),
        follow_redirects=False,
    )


def request_timeout(timeout_s: float | None, default: httpx.Timeout) -> httpx.Timeout:
    """A per-attempt httpx timeout; the router's cancel scope is the authority, this is the backstop."""
    if timeout_s is None:
        return default
    return httpx.Timeout(timeout_s, connect=min(CONNECT_TIMEOUT_S, timeout_s))


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """`Retry-After` as seconds from now: either delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds or seconds < 0:  # NaN or in the past: retry at once
        return 0.0
    return seconds


def _upstream_message(provider: str, response: httpx.Response) -> str:
    """The provider's own error message when it sent one (kept for the caller), else the status line."""
    text = response.text[:4000]
    try:
        data = json.loads(text)
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
        msg = text.strip() or response.reason_phrase
    return f"{provider}: upstream {response.status_code}: {msg[:_MAX_ERROR_MESSAGE]}"


def status_error(provider: str, response: httpx.Response) -> ProviderError:
    """Map an upstream HTTP error to our vocabulary (P8: 408, 429 and 5xx are retryable).

    Retryable failures carry `route_unavailable`/503: that is what the caller
    sees if no candidate is left. A client-side 4xx (400, 404, 413, 422) is the
    request's fault and surfaces as `invalid_request` with its status; 401/403
    mean our provider key is wrong, which the caller cannot fix: 502.
    """
    status = response.status_code
    message = _upstream_message(provider, response)
    if status in RETRYABLE_STATUS or status >= 500:
        return ProviderError(
            message,
            status=503,
            code="route_unavailable",
            retryable=True,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
            upstream_status=status,
        )
    if status in (401, 403):
        return ProviderError(message, status=502, code="upstream_error", upstream_status=status)
    return ProviderError(message, status=400 if status != 413 else 413, code="invalid_request", upstream_status=status)


def transport_error(provider: str, exc: httpx.HTTPError) -> ProviderError:
    """Timeouts and broken connections are retryable; a protocol error mid-body too (the peer went away)."""
    if isinstance(exc, httpx.TimeoutException):
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
        data = json.loads(content)
    except ValueError:
        raise malformed(provider, "invalid JSON") from None
    if not isinstance(data, dict):
        raise malformed(provider, "JSON is not an object")
    return data


async def iter_sse(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str, str]]:
    """(event, data) pairs from a text/event-stream (WHATWG rules: comments, multi-line data, CR/LF).

    A field without a value, unknown fields and `id`/`retry` are ignored; an
    event is dispatched on a blank line, and one left pending at the end of
    the stream is dropped, as the spec says (it may be a cut-off fragment).
    """
    event = ""
    data: list[str] = []
    async for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                yield event or "message", "\n".join(data)
            event, data = "", []
            continue
        if line[0] == ":":
            continue
        name, sep, value = line.partition(":")
        if sep and value[:1] == " ":
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value


def json_event(provider: str, data: str) -> dict[str, Any]:
    """One SSE data payload as a JSON object, or `malformed`."""
    try:
        obj = json.loads(data)
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
