"""Relay a started stream of Anthropic events to the caller, with output guards on every slot.

The same guarantees as the chat relay (adapters/api/streams.py), in
Anthropic's event grammar: each text and thinking block gets its own
`StreamGuard` (bounded holdback, P6 per block) and `StreamRestorer`, its held
tail released before its `content_block_stop`; a thinking block's
`signature_delta` is held until its text is released, then passed on
unchanged. A `tool_use` block's `input_json_delta` fragments are held until
the block stops, guarded whole as JSON (so a value split across fragments
cannot slip through) and sent as one `input_json_delta` that is valid JSON
after redaction. Every other string — the message's id and model, a
`stop_sequence`, citations, blocks and events this was written before — is
guarded whole as it comes. A block ends the stream with an `error` event in
Anthropic's shape, which the `anthropic` client raises as an `APIStatusError`;
so does an upstream failure after the first event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import anyio
import orjson

from adapters.api.responses import Exchange, Receive
from adapters.api.streams import StreamOutcome
from adapters.codecs.anthropic_messages import OUT_BLOCK, RESPONSE, STOP_REASONS, error_body
from engine.conversation import Enum, Free, Obj, Shape, Text, guard_tree
from engine.detectors.base import ScanContext
from engine.errors import guardrail_blocked
from engine.guards import Blocked, GuardPipeline, Redactor
from engine.ports import JSON, ProviderError
from engine.router import StreamRoute
from engine.streaming import StreamGuard, StreamRestorer

_MESSAGE_DELTA: Shape = Obj({"type": Enum(frozenset({"message_delta"})),
                             "delta": Obj({"stop_reason": Enum(STOP_REASONS), "stop_sequence": Text("text")},
                                          rest=Free("unknown")),
                             "usage": Free("usage")}, rest=Free("unknown"))  # fmt: skip
_STRUCTURAL_EVENT: Shape = Obj({"type": Enum(frozenset({"message_stop", "ping", "content_block_stop"})),
                                "index": Free("unknown")}, rest=Free("unknown"))  # fmt: skip
_TEXT_FIELD = {"text": "text", "thinking": "thinking"}  # streamed block kinds → their text field
_HELD = frozenset({"tool_use", "server_tool_use"})  # blocks whose input arrives as JSON fragments


class _Invalid(Exception):
    """The upstream's events do not make a valid stream (a fragment of JSON that is not JSON)."""


@dataclass
class _Block:
    """One content block in flight: its guard (text, thinking) or what is held (tool input, signature)."""

    kind: str
    start: JSON
    guard: StreamGuard | None = None
    restorer: StreamRestorer | None = None
    json: list[str] = field(default_factory=list)
    signature: str | None = None


async def relay_messages(
    ex: Exchange,
    route: StreamRoute,
    receive: Receive,
    *,
    pipeline: GuardPipeline,
    redactor: Redactor,
    grounding: tuple[str, ...],
    restore: frozenset[str],
    capture: bool = False,
) -> StreamOutcome:
    """Send the stream as Anthropic SSE; returns what the log needs. Headers must not have been sent yet."""
    result = StreamOutcome(sent=[] if capture else None)
    guarded = bool(pipeline.rules)
    active = guarded or bool(restore)
    context = ScanContext("output", grounding)
    blocks: dict[int, _Block] = {}

    def whole(node: Any, shape: Shape) -> tuple[Any, Blocked | None]:
        g = guard_tree(node, shape, pipeline, redactor, grounding, restore)
        result.outcomes.extend(g.outcomes)
        return g.body, g.blocked

    async def blocked(b: Blocked) -> None:
        code, status = guardrail_blocked(b.rule.name)
        result.error_code, result.status = code, status
        ex.fire(result.outcomes)
        await ex.named_event("error", error_body(code, status, b.message))

    def feed(block: _Block, text: str, final: bool = False) -> tuple[str, Blocked | None]:
        guard, restorer = block.guard, block.restorer
        out = (guard.finish() if final else guard.feed(text)) if guard is not None else text
        if guard is not None and guard.blocked is not None:
            return "", guard.blocked
        if restorer is not None:
            out = (restorer.feed(out) if out else "") + (restorer.finish() if final else "")
        return out, None

    async def text_delta(index: int, block: _Block, text: str) -> None:
        if not text:
            return
        name = _TEXT_FIELD[block.kind]
        if result.sent is not None and block.kind == "text":
            result.sent.append(text)
        await ex.named_event("content_block_delta", {"type": "content_block_delta", "index": index,
                                                     "delta": {"type": f"{name}_delta", name: text}})  # fmt: skip

    async def start(index: int, block: JSON) -> Blocked | None:
        kind = str(block.get("type"))
        if kind in _HELD:
            blocks[index] = _Block(kind, block)
            return None
        if kind not in _TEXT_FIELD:  # arrives whole (redacted thinking, server tool results): guarded whole
            node, b = whole(block, OUT_BLOCK)
            if b is None:
                await ex.named_event("content_block_start", {"type": "content_block_start", "index": index,
                                                             "content_block": node})  # fmt: skip
            blocks[index] = _Block(kind, node)
            return b
        name = _TEXT_FIELD[kind]
        first = block.get(name)
        empty, b = whole({**block, name: ""}, OUT_BLOCK)
        if b is not None:
            return b
        state = blocks[index] = _Block(kind, empty, StreamGuard(pipeline, redactor, context) if guarded else None,
                                       StreamRestorer(redactor, restore) if restore else None)  # fmt: skip
        await ex.named_event("content_block_start", {"type": "content_block_start", "index": index,
                                                     "content_block": empty})  # fmt: skip
        if isinstance(first, str) and first:
            out, b = feed(state, first)
            await text_delta(index, state, out)
        return b

    async def delta(index: int, event: JSON) -> Blocked | None:
        state = blocks.get(index)
        body = event.get("delta")
        kind = body.get("type") if isinstance(body, dict) else None
        if state is not None and isinstance(body, dict):
            if state.kind in _TEXT_FIELD and kind == f"{_TEXT_FIELD[state.kind]}_delta":
                text = body.get(_TEXT_FIELD[state.kind])
                out, b = feed(state, text if isinstance(text, str) else "")
                await text_delta(index, state, out)
                return b
            if kind == "input_json_delta" and state.kind in _HELD:
                state.json.append(str(body.get("partial_json", "")))
                return None
            if kind == "signature_delta" and state.kind == "thinking":
                state.signature = (state.signature or "") + str(body.get("signature", ""))
                return None
        node, b = whole(event, Free("unknown"))  # citations and deltas added later: guarded whole
        if b is None:
            await ex.named_event("content_block_delta", node)
        return b

    async def stop(index: int, event: JSON) -> Blocked | None:
        state = blocks.pop(index, None)
        if state is not None and state.kind in _TEXT_FIELD:
            tail, b = feed(state, "", final=True)
            if state.guard is not None:
                result.outcomes.extend(state.guard.outcomes)
            if b is not None:
                return b
            await text_delta(index, state, tail)
            if state.signature is not None:
                sig, b = whole(state.signature, Text("signature"))
                if b is not None:
                    return b
                await ex.named_event("content_block_delta", {"type": "content_block_delta", "index": index,
                                                             "delta": {"type": "signature_delta", "signature": sig}})
        elif state is not None and state.kind in _HELD:
            raw = "".join(state.json)
            try:
                value = orjson.loads(raw) if raw.strip() else state.start.get("input", {})
            except orjson.JSONDecodeError:
                raise _Invalid(f"a {state.kind} block's input is not JSON") from None
            node, b = whole({**state.start, "input": value}, OUT_BLOCK)
            if b is not None:
                return b
            await ex.named_event("content_block_start", {"type": "content_block_start", "index": index,
                                                         "content_block": {**node, "input": {}}})  # fmt: skip
            await ex.named_event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": {
                "type": "input_json_delta", "partial_json": orjson.dumps(node.get("input", {})).decode()}})
        await ex.named_event("content_block_stop", {"type": "content_block_stop", "index": index})
        return None

    async def guarded_event(event: JSON) -> Blocked | None:
        kind = event.get("type")
        index = event.get("index")
        index = index if type(index) is int else 0
        if kind == "message_start" and isinstance(event.get("message"), dict):
            node, b = whole(event["message"], RESPONSE)
            if b is None:
                await ex.named_event("message_start", {**event, "message": node})
                await ex.named_event("ping", {"type": "ping"})
            return b
        if kind == "content_block_start" and isinstance(event.get("content_block"), dict):
            return await start(index, event["content_block"])
        if kind == "content_block_delta":
            return await delta(index, event)
        if kind == "content_block_stop":
            return await stop(index, event)
        if kind in ("message_delta", "message_stop"):  # a block the upstream never stopped: release it first
            for open_index in sorted(blocks):
                if (b := await stop(open_index, {})) is not None:
                    return b
        node, b = whole(event, _MESSAGE_DELTA if kind == "message_delta" else _STRUCTURAL_EVENT)
        if b is None:
            await ex.named_event(str(node.get("type", "unknown")), node)
        return b

    async def pump() -> None:
        await ex.start_stream()
        async for event in route:
            if not active:
                kind = str(event.get("type"))
                if result.sent is not None and kind == "content_block_delta":
                    d = event.get("delta")
                    if isinstance(d, dict) and isinstance(d.get("text"), str):
                        result.sent.append(d["text"])
                await ex.named_event(kind, event)
                if kind == "message_start":
                    await ex.named_event("ping", {"type": "ping"})
                continue
            b = await guarded_event(event)
            if b is not None:
                await blocked(b)
                return

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
                left = route.time_left()
                with anyio.move_on_after(None if left is None else max(left, 0.0)) as deadline:
                    await pump()
                if deadline.cancelled_caught:
                    raise route.expired()
            except (ProviderError, _Invalid) as exc:
                err = exc if isinstance(exc, ProviderError) else ProviderError(
                    f"{route.candidate.provider}: invalid reply from upstream: {exc}", status=502,
                    code="upstream_error")
                result.error_code, result.status = err.code, err.status
                message, b = whole(err.message, Text("error")) if guarded else (err.message, None)
                if b is not None:
                    message = (f"The provider's stream failed ({err.status}); "
                               "its message was withheld by the output guardrails.")
                await ex.named_event("error", error_body(err.code, err.status, message))
            await ex.end_stream(done=False)
            tg.cancel_scope.cancel()
    finally:
        await route.aclose()
        for state in blocks.values():
            if state.guard is not None:
                result.outcomes.extend(state.guard.outcomes)
    return result


__all__ = ["relay_messages"]
