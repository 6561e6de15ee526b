"""Response shaping: OpenAI-shaped errors, the `x-ghat-*` and `Server-Timing` headers, raw ASGI sends.

Every response — success, deny, upstream failure, 404 — leaves through
`Exchange`, which owns the request's id, timings and ghat headers, so no path
can forget them (GUIDE §5: headers on every response).
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from adapters.codecs.anthropic_messages import error_body as anthropic_error_body
from adapters.jsonwire import dumps  # every response body and stream event: compact UTF-8 JSON (orjson)
from engine.errors import ERROR_TYPES
from engine.guards import Outcome
from engine.keys import KeyRecord
from engine.ports import Usage
from engine.records import PHASES, AttemptRecord
from engine.request import GatewayRequest

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_SANE_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_JSON_CT = (b"content-type", b"application/json")
_SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache"),
                (b"x-accel-buffering", b"no")]  # fmt: skip


def error_body(code: str, status: int, message: str, param: str | None = None) -> dict[str, Any]:
    """`{"error": {message, type, param, code}}`: the `type` makes OpenAI clients pick the right exception."""
    etype = ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": etype, "param": param, "code": code}}


def sane_request_id(incoming: str | None, fallback: str) -> str:
    """Honour a caller's id when it is short and plain (it lands in logs and headers), else ours."""
    if incoming and _SANE_ID.fullmatch(incoming):
        return incoming
    return fallback


class Exchange:
    """One request, start to end: what the response needs (timings, ghat headers, the send callable)
    and what its single log record needs, filled in as the request goes."""

    __slots__ = (
        "app", "attempt_records", "attempts", "body", "capture", "endpoint", "error_code", "fired", "key", "model",
        "no_retry", "outcomes", "policy", "provider", "request", "request_id", "response_text", "send", "started",
        "started_wall", "status", "stream", "t", "upstream_model", "usage",
    )  # fmt: skip

    def __init__(self, send: Send, request_id: str, policy: str, endpoint: str = "") -> None:
        self.send = send
        self.request_id = request_id
        self.endpoint = endpoint
        self.started = time.perf_counter()
        self.started_wall = time.time()
        self.t: dict[str, float] = {"resolve": 0.0, "guardrails": 0.0, "provider": 0.0, "log": 0.0, "usage": 0.0}
        self.app = ""
        self.model = ""
        self.provider = ""
        self.attempts = 0
        self.policy = policy
        self.fired: tuple[str, ...] = ()
        self.status = 0
        self.error_code: str | None = None
        self.no_retry = False  # ghat spent its own retries: tell SDKs not to multiply them
        # for the log record
        self.key: KeyRecord | None = None
        self.request: GatewayRequest | None = None
        self.body: dict[str, Any] | None = None  # the caller's body as decoded, for `capture prompts`
        self.upstream_model: str | None = None
        self.stream = False
        self.attempt_records: tuple[AttemptRecord, ...] = ()
        self.outcomes: list[tuple[str, Outcome]] = []
        self.usage: Usage | None = None
        self.capture: tuple[str, ...] = ()  # the app's `capture`, outside prod only
        self.response_text: str | None = None  # what the caller got, kept only when `capture responses`

    def fire(self, outcomes: list[Outcome] | tuple[Outcome, ...]) -> None:
        """Add what fired (names only, never values) to `x-ghat-guardrails`."""
        names = [o.detector for o in outcomes if o.action != "detect" or o.shadow]
        if names:
            self.fired = tuple(dict.fromkeys((*self.fired, *names)))

    def timings(self) -> dict[str, float]:
        """Phase times in ms; `overhead` is everything but the provider's own time."""
        total = (time.perf_counter() - self.started) * 1000.0
        out = {"total": total, **self.t}
        out["overhead"] = max(total - self.t["provider"], 0.0)
        return out

    def headers(self, extra: list[tuple[bytes, bytes]] | None = None) -> list[tuple[bytes, bytes]]:
        t = self.timings()
        timing = ", ".join(f"{k};dur={t[k]:.3f}" for k in PHASES)
        hs = [
            (b"x-request-id", self.request_id.encode()),
            (b"server-timing", timing.encode()),
            (b"x-ghat-app", self.app.encode()),
            (b"x-ghat-model", self.model.encode()),
            (b"x-ghat-provider", self.provider.encode()),
            (b"x-ghat-attempts", str(self.attempts).encode()),
            (b"x-ghat-policy", self.policy.encode()),
            (b"x-ghat-guardrails", ",".join(self.fired).encode()),
        ]
        if self.no_retry:
            hs.append((b"x-should-retry", b"false"))
        if extra:
            hs.extend(extra)
        return hs

    async def json(self, status: int, obj: Any, extra: list[tuple[bytes, bytes]] | None = None) -> None:
        data = obj if isinstance(obj, bytes) else dumps(obj)
        self.status = status
        hs = self.headers(extra)
        hs.append(_JSON_CT)
        hs.append((b"content-length", str(len(data)).encode()))
        await self.send({"type": "http.response.start", "status": status, "headers": hs})
        await self.send({"type": "http.response.body", "body": data})

    async def error(self, code: str, status: int, message: str, param: str | None = None,
                    retry_after: float | None = None) -> None:
        self.error_code = code
        extra = None
        if retry_after is not None:
            extra = [(b"retry-after", str(max(1, int(retry_after + 0.999))).encode())]
        shape = anthropic_error_body if self.endpoint == "messages" else error_body  # the caller's dialect
        await self.json(status, shape(code, status, message, param), extra)

    async def start_stream(self) -> None:
        self.status = 200
        await self.send({"type": "http.response.start", "status": 200, "headers": self.headers(_SSE_HEADERS)})

    async def event(self, obj: Any) -> None:
        await self.send({"type": "http.response.body", "body": b"data: " + dumps(obj) + b"\n\n", "more_body": True})

    async def named_event(self, name: str, obj: Any) -> None:
        """One SSE event with its `event:` line (Anthropic's streams name every event)."""
        data = b"event: " + name.encode() + b"\ndata: " + dumps(obj) + b"\n\n"
        await self.send({"type": "http.response.body", "body": data, "more_body": True})

    async def end_stream(self, done: bool = True) -> None:
        await self.send({"type": "http.response.body", "body": b"data: [DONE]\n\n" if done else b""})

    async def text(self, status: int, body: str, content_type: bytes = b"text/plain; charset=utf-8") -> None:
        data = body.encode()
        self.status = status
        hs = self.headers([(b"content-type", content_type), (b"content-length", str(len(data)).encode())])
        await self.send({"type": "http.response.start", "status": status, "headers": hs})
        await self.send({"type": "http.response.body", "body": data})
