"""Relay a started upstream stream to the caller as OpenAI SSE, with output guards applied on the way.

Each choice gets its own `StreamGuard` (bounded holdback, P6) and, for
`restore`, its own `StreamRestorer`. Held-back text is released before the
chunk that carries the choice's `finish_reason`. A block ends the stream with
an OpenAI-format error event (`data: {"error": {...}}`), which the `openai`
client raises as an `APIError`; so does an upstream cut after the first chunk.
A client that disconnects cancels the relay, which closes the upstream stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import anyio

from adapters.api.responses import Exchange, Receive, error_body
from adapters.base import JSON, ProviderError
from engine.detectors.base import ScanContext
from engine.errors import guardrail_blocked
from engine.guards import Outcome, Redactor
from engine.router import StreamRoute
from engine.streaming import StreamGuard, StreamRestorer


@dataclass
class StreamOutcome:
    """What the relay saw, for the request log."""

    outcomes: list[Outcome] = field(default_factory=list)
    error_code: str | None = None
    status: int = 200
    disconnected: bool = False
    sent: list[str] | None = None  # the text the caller got, kept only when the app captures responses


class _Choice:
    __slots__ = ("finished", "guard", "restorer")

    def __init__(self, guard: StreamGuard | None, restorer: StreamRestorer | None) -> None:
        self.guard = guard
        self.restorer = restorer
        self.finished = False

    def feed(self, text: str) -> str:
        out = self.guard.feed(text) if self.guard is not None else text
        return self.restorer.feed(out) if self.restorer is not None and out else out

    def finish(self) -> str:
        if self.finished:
            return ""
        self.finished = True
        out = self.guard.finish() if self.guard is not None else ""
        if self.restorer is not None:
            out = self.restorer.feed(out) + self.restorer.finish() if out else self.restorer.finish()
        return out


async def relay(
    ex: Exchange,
    route: StreamRoute,
    receive: Receive,
    *,
    guarded: bool,
    pipeline: Any,
    redactor: Redactor,
    grounding: tuple[str, ...],
    restore: frozenset[str],
    include_usage: bool,
    capture: bool = False,
) -> StreamOutcome:
    """Send the stream; returns what the log needs. Headers must not have been sent yet."""
    result = StreamOutcome(sent=[] if capture else None)
    choices: dict[int, _Choice] = {}
    context = ScanContext("output", grounding)

    def choice(i: int) -> _Choice:
        c = choices.get(i)
        if c is None:
            guard = StreamGuard(pipeline, redactor, context) if guarded else None
            c = choices[i] = _Choice(guard, StreamRestorer(redactor, restore) if restore else None)
        return c

    async def blocked(c: _Choice) -> None:
        assert c.guard is not None and c.guard.blocked is not None
        b = c.guard.blocked
        code, status = guardrail_blocked(b.rule.name)
        result.error_code, result.status = code, status
        await ex.event(error_body(code, status, b.message))

    async def pump() -> None:
        await ex.start_stream()
        async for chunk in route:
            parts: list[JSON] = chunk.get("choices") or []
            if not parts:
                if include_usage or not chunk.get("usage"):
                    await ex.event(chunk)
                continue
            keep: list[JSON] = []
            for part in parts:
                c = choice(int(part.get("index") or 0))
                delta = part.get("delta")
                if not isinstance(delta, dict):
                    delta = part["delta"] = {}
                text = delta.get("content")
                if isinstance(text, str) and text:
                    delta["content"] = c.feed(text)
                    if c.guard is not None and c.guard.blocked is not None:
                        await blocked(c)
                        return
                if part.get("finish_reason") is not None:
                    tail = c.finish()
                    if c.guard is not None and c.guard.blocked is not None:
                        await blocked(c)
                        return
                    if tail:
                        delta["content"] = (delta.get("content") or "") + tail
                if delta.get("content") == "" and len(delta) == 1 and part.get("finish_reason") is None:
                    continue  # everything held back: nothing to say yet
                if result.sent is not None and delta.get("content"):
                    result.sent.append(delta["content"])
                keep.append(part)
            if keep:
                chunk["choices"] = keep
                await ex.event(chunk)
        for i, c in choices.items():  # upstream ended without a finish_reason: release what is held
            tail = c.finish()
            if c.guard is not None and c.guard.blocked is not None:
                await blocked(c)
                return
            if tail:
                if result.sent is not None:
                    result.sent.append(tail)
                await ex.event({"object": "chat.completion.chunk", "choices": [
                    {"index": i, "delta": {"content": tail}, "finish_reason": None}]})  # fmt: skip
        await ex.end_stream()

    async def watch_disconnect(scope: anyio.CancelScope) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                result.disconnected = True
                scope.cancel()
                return

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch_disconnect, tg.cancel_scope)
            try:
                left = route.time_left()  # one scope for the request's deadline over the whole stream
                with anyio.move_on_after(None if left is None else max(left, 0.0)) as deadline:
                    await pump()
                if deadline.cancelled_caught:
                    raise route.expired()
            except ProviderError as err:
                result.error_code, result.status = err.code, err.status
                await ex.event(error_body(err.code, err.status, err.message))
            if result.error_code is not None:
                await ex.end_stream(done=False)
            tg.cancel_scope.cancel()
    finally:
        await route.aclose()
        for c in choices.values():
            if c.guard is not None:
                result.outcomes.extend(c.guard.outcomes)
    return result
