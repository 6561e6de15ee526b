"""Relay a started upstream stream to the caller as OpenAI SSE, with output guards applied on the way.

Every string of every chunk passes the output guards (P13): each text slot of
each choice (content, refusal, reasoning) gets its own `StreamGuard`
(bounded holdback, P6 per slot) and, for `restore`, its own `StreamRestorer`;
tool calls are held and guarded whole; any other field is guarded as it comes;
`logprobs` are dropped when output rules enforce. Held-back text is released
before the chunk that carries the choice's `finish_reason`. A block ends the stream with
an OpenAI-format error event (`data: {"error": {...}}`), which the `openai`
client raises as an `APIError`; so does an upstream cut after the first chunk.
A client that disconnects cancels the relay, which closes the upstream stream.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import orjson

from adapters.api.coalesce import Coalescer
from adapters.api.holdback import Ticker
from adapters.api.responses import Exchange, Receive, error_body
from adapters.codecs.openai_chat import CHUNK_STRUCTURAL, DELTA_CALLS, DELTA_ROLES, ERROR_SHAPE
from engine.conversation import Free, guard_tree
from engine.detectors.base import ScanContext
from engine.errors import guardrail_blocked
from engine.guards import Blocked, GuardPipeline, Outcome, Redactor
from engine.ports import JSON, ProviderError
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


_TEXT_FIELDS = ("content", "refusal", "reasoning_content", "reasoning")  # streamed text slots of a delta
_BUFFERED = ("tool_calls", "function_call")  # released whole, when the choice finishes
_DELTA_OTHER = Free("unknown")  # any other delta field: guarded whole, chunk by chunk


class _Choice:
    """One choice of the stream: a `StreamGuard` (and restorer) per text slot, the tool calls held whole.

    Content, refusal and reasoning text are guarded incrementally, each slot on
    its own (P6 per slot). Tool calls arrive as argument fragments of a JSON
    text; they are held until the choice finishes and then guarded whole, like
    a plain answer's, so redaction keeps them valid JSON and a value split over
    fragments cannot slip through. Clients act on a tool call only once it is
    complete, so holding it costs them nothing.
    """

    __slots__ = ("calls", "finished", "function_call", "guards", "make")

    def __init__(self, make: Callable[[], tuple[StreamGuard | None, StreamRestorer | None]]) -> None:
        self.make = make
        self.guards: dict[str, tuple[StreamGuard | None, StreamRestorer | None]] = {}
        self.calls: dict[int, JSON] = {}
        self.function_call: JSON | None = None
        self.finished = False

    def feed(self, name: str, text: str, at: float = 0.0) -> tuple[str, Blocked | None]:
        pair = self.guards.get(name)
        if pair is None:
            pair = self.guards[name] = self.make()
        guard, restorer = pair
        out = guard.feed(text, at) if guard is not None else text
        if guard is not None and guard.blocked is not None:
            return "", guard.blocked
        return (restorer.feed(out) if restorer is not None and out else out), None

    def hold(self, delta: JSON) -> None:
        """Take the tool-call fragments out of `delta`, merged per call index."""
        for frag in delta.pop("tool_calls", None) or ():
            if not isinstance(frag, dict):
                continue
            i = frag.get("index")
            call = self.calls.setdefault(i if isinstance(i, int) else len(self.calls), {})
            _merge(call, frag)
        fc = delta.pop("function_call", None)
        if isinstance(fc, dict):
            self.function_call = _merge(self.function_call or {}, fc)

    def finish(self) -> tuple[dict[str, str], Blocked | None]:
        """What each text slot still holds, scanned as the end of its text."""
        if self.finished:
            return {}, None
        self.finished = True
        tails: dict[str, str] = {}
        for name, (guard, restorer) in self.guards.items():
            out = guard.finish() if guard is not None else ""
            if guard is not None and guard.blocked is not None:
                return {}, guard.blocked
            if restorer is not None:
                out = restorer.feed(out) + restorer.finish() if out else restorer.finish()
            if out:
                tails[name] = out
        return tails, None

    def outcomes(self) -> list[Outcome]:
        return [o for guard, _ in self.guards.values() if guard is not None for o in guard.outcomes]

    def due(self, wait: float) -> float | None:
        """When the oldest text any slot holds must go out (`holdback` time bound); None: nothing held."""
        times = [s for g, _ in self.guards.values() if g is not None and (s := g.held_since) is not None]
        return min(times) + wait if times else None

    def flush(self, now: float, wait: float) -> tuple[dict[str, str], Blocked | None]:
        """What each slot that has held text `wait` seconds sends now, scanned as if its text ended here."""
        out: dict[str, str] = {}
        for name, (guard, restorer) in self.guards.items():
            since = guard.held_since if guard is not None else None
            if guard is None or since is None or since + wait > now:
                continue
            text = guard.flush()
            if guard.blocked is not None:
                return {}, guard.blocked
            text = restorer.feed(text) if restorer is not None and text else text
            if text:
                out[name] = text
        return out, None


def _merge(into: JSON, frag: JSON) -> JSON:
    """Merge a stream fragment into what is held: strings concatenate, objects merge, the rest is replaced."""
    for key, value in frag.items():
        held = into.get(key)
        if isinstance(value, str) and isinstance(held, str) and key not in ("type", "index"):
            into[key] = held + value
        elif isinstance(value, dict) and isinstance(held, dict):
            _merge(held, value)
        else:
            into[key] = value
    return into


async def relay(
    ex: Exchange,
    route: StreamRoute,
    receive: Receive,
    *,
    pipeline: GuardPipeline,
    redactor: Redactor,
    grounding: tuple[str, ...],
    restore: frozenset[str],
    include_usage: bool,
    capture: bool = False,
) -> StreamOutcome:
    """Send the stream; returns what the log needs. Headers must not have been sent yet."""
    result = StreamOutcome(sent=[] if capture else None)
    guarded = bool(pipeline.rules)
    active = guarded or bool(restore)
    strip = pipeline.enforcing
    choices: dict[int, _Choice] = {}
    context = ScanContext("output", grounding)
    seen: dict[tuple[str, str], str | None] = {}  # chunk-level strings repeat on every chunk: guard each once

    def make() -> tuple[StreamGuard | None, StreamRestorer | None]:
        return (StreamGuard(pipeline, redactor, context) if guarded else None,
                StreamRestorer(redactor, restore) if restore else None)  # fmt: skip

    def choice(i: int) -> _Choice:
        c = choices.get(i)
        if c is None:
            c = choices[i] = _Choice(make)
        return c

    async def blocked(b: Blocked) -> None:
        code, status = guardrail_blocked(b.rule.name)
        result.error_code, result.status = code, status
        ex.fire(result.outcomes)
        await ex.event(error_body(code, status, b.message))

    def whole(node: Any, shape: Any) -> tuple[Any, Blocked | None]:
        g = guard_tree(node, shape, pipeline, redactor, grounding, restore)
        result.outcomes.extend(g.outcomes)
        return g.body, g.blocked

    def top_level(chunk: JSON) -> Blocked | None:
        """Guard the chunk's own strings (id, model, unknown fields), each distinct value once."""
        for key, value in list(chunk.items()):
            if key in ("choices", "usage", "object", "created"):
                continue
            mark = (key, value if isinstance(value, str) else orjson.dumps(value).decode())
            if mark not in seen:
                node, b = whole({key: value}, _DELTA_OTHER)
                if b is not None:
                    return b
                seen[mark] = None if node == {key: value} else orjson.dumps(node).decode()
            changed = seen[mark]
            if changed is not None:  # rewritten (a redacted value or key): put the guarded version in its place
                chunk.pop(key)
                chunk.update(orjson.loads(changed))
        return None

    async def release(c: _Choice, delta: JSON) -> bool:
        """At a choice's end: held text and tool calls into `delta`; False when a block ended the stream."""
        tails, b = c.finish()
        if b is None and (c.calls or c.function_call is not None):
            held: JSON = {}
            if c.calls:
                held["tool_calls"] = [c.calls[k] for k in sorted(c.calls)]
            if c.function_call is not None:
                held["function_call"] = c.function_call
            node, b = whole(held, DELTA_CALLS)
            if b is None:
                delta.update(node)
            c.calls, c.function_call = {}, None
        if b is not None:
            await blocked(b)
            return False
        for name, tail in tails.items():
            delta[name] = (delta.get(name) or "") + tail
        return True

    wait = pipeline.holdback.seconds if guarded and pipeline.holdback is not None else None
    ticker = Ticker(wait, lambda: min((d for c in choices.values() if (d := c.due(wait)) is not None),
                                      default=None), lambda now: flush(now)) if wait else None  # fmt: skip
    pumping = anyio.CancelScope()  # one per stream: a block found by the ticker's flush ends the pump

    async def flush(now: float) -> bool:
        """The time bound: send what has waited too long; False when a block ended the stream."""
        assert ticker is not None and wait is not None
        for i, c in choices.items():
            delta, b = c.flush(now, wait)
            if b is not None:
                await blocked(b)
                pumping.cancel()
                return False
            if delta:
                if result.sent is not None and "content" in delta:
                    result.sent.append(delta["content"])
                await ex.event({**ticker.head, "object": "chat.completion.chunk",
                                "choices": [{"index": i, "delta": delta, "finish_reason": None}]})  # fmt: skip
        return True

    async def pump() -> None:
        await ex.start_stream()
        async for chunk in route if ticker is None else ticker.gate(route):
            if active and (b := top_level(chunk)) is not None:
                await blocked(b)
                return
            parts: list[JSON] = chunk.get("choices") or []
            if not parts:
                if include_usage or not chunk.get("usage"):
                    await ex.event(chunk)
                continue
            if not active:
                if result.sent is not None:
                    result.sent.extend(d["content"] for p in parts
                                       if isinstance(d := p.get("delta"), dict) and isinstance(d.get("content"), str))
                await ex.event(chunk)
                continue
            keep: list[JSON] = []
            for part in parts:
                i = part.get("index")
                c = choice(i if isinstance(i, int) else 0)
                delta = part.get("delta")
                if not isinstance(delta, dict):
                    delta = part["delta"] = {}
                if strip and part.get("logprobs") is not None:
                    part["logprobs"] = None
                if guarded:
                    c.hold(delta)
                for name in list(delta):
                    value = delta[name]
                    if name == "role" and value in DELTA_ROLES:
                        continue
                    if name in _TEXT_FIELDS and isinstance(value, str):
                        out, b = c.feed(name, value, ticker.now if ticker is not None else 0.0)
                    elif name in _TEXT_FIELDS and value is None:
                        continue
                    else:  # any other field: guarded whole, written back under its guarded key
                        node, b = whole({name: value}, _DELTA_OTHER)
                        delta.pop(name)
                        if b is None:
                            delta.update(node)
                        out = None
                    if b is not None:
                        await blocked(b)
                        return
                    if isinstance(out, str) and name in _TEXT_FIELDS:
                        delta[name] = out
                extra = [k for k in part if k not in CHUNK_STRUCTURAL]
                for key in extra:
                    node, b = whole({key: part[key]}, _DELTA_OTHER)
                    if b is not None:
                        await blocked(b)
                        return
                    part.pop(key)
                    part.update(node)
                if part.get("finish_reason") is not None and not await release(c, delta):
                    return
                if part.get("finish_reason") is None and not any(delta.get(k) for k in delta if k != "role") \
                        and "role" not in delta:  # fmt: skip
                    continue  # everything held back: nothing to say yet
                if result.sent is not None and isinstance(delta.get("content"), str):
                    result.sent.append(delta["content"])
                keep.append(part)
            if keep:
                chunk["choices"] = keep
                await ex.event(chunk)
        if ticker is not None:  # the rest is the relay's alone
            ticker.busy = True
            await ticker.idle()
        for i, c in choices.items():  # upstream ended without a finish_reason: release what is held
            rest: JSON = {}
            if not await release(c, rest):
                return
            if rest:
                if result.sent is not None and isinstance(rest.get("content"), str):
                    result.sent.append(rest["content"])
                await ex.event({"object": "chat.completion.chunk", "choices": [
                    {"index": i, "delta": rest, "finish_reason": None}]})  # fmt: skip
        await ex.end_stream()

    async def watch_disconnect(scope: anyio.CancelScope) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                result.disconnected = True
                scope.cancel()
                return

    direct, writer = ex.send, Coalescer(ex.send)
    ex.send = writer.send  # a burst of events leaves in one write (adapters/api/coalesce.py)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch_disconnect, tg.cancel_scope)
            tg.start_soon(writer.run)
            if ticker is not None:
                tg.start_soon(ticker.run)
            try:
                left = route.time_left()  # one scope for the request's deadline over the whole stream
                with anyio.move_on_after(None if left is None else max(left, 0.0)) as deadline, pumping:
                    await pump()
                if deadline.cancelled_caught:
                    raise route.expired()
            except ProviderError as err:
                result.error_code, result.status = err.code, err.status
                message, b = whole(err.message, ERROR_SHAPE) if guarded else (err.message, None)
                if b is not None:
                    message = (f"The provider's stream failed ({err.status}); "
                               "its message was withheld by the output guardrails.")
                await ex.event(error_body(err.code, err.status, message))
            if result.error_code is not None:
                await ex.end_stream(done=False)
            tg.cancel_scope.cancel()
    finally:
        ex.send = direct
        await route.aclose()
        for c in choices.values():
            result.outcomes.extend(c.outcomes())
    return result
