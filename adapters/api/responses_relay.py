"""Relay a started Responses event stream to the caller, with output guards on every slot of every event.

The typed stream (`response.created` … `response.output_text.delta` …
`response.completed`) carries the same answer several times: as deltas, in
each `.done` event, in `response.output_item.done` and in the final Response
object. Each text slot (an output text, a refusal, a reasoning summary or
reasoning text, keyed by output index, part index and kind) has its own
`StreamGuard` (bounded holdback, P6 per slot) and, for `restore`, its own
`StreamRestorer`; its deltas go out guarded, and every later copy of that
text — the `.done` events, the finished item, the final response — is
replaced by exactly what the caller was sent, so the copies cannot disagree
and none leaks what a delta hid. Function-call arguments are held until
`response.function_call_arguments.done` and guarded whole (they stay valid
JSON), then sent as one delta and the done event. Every other string of an
event (ids, names, annotations, echoed instructions and tools, fields ghat
does not know) is guarded as it comes, each distinct value once.

Sequence numbers are ghat's: events are held back, merged or added, so each
event sent is numbered in order from 0. A block, an upstream error or a
stream cut ends the stream with an `error` event (with an `error` object too,
which the `openai` SDK raises as `APIError`). No `[DONE]`: the Responses API
sends none.
"""

from __future__ import annotations

from typing import Any

import anyio
import orjson

from adapters.api.responses import Exchange, Receive, error_body
from adapters.api.streams import StreamOutcome
from adapters.codecs.openai_responses import ERROR_SHAPE, ITEM, PART, RESPONSE, strip_logprobs
from adapters.jsonwire import dumps
from engine.conversation import Free, JsonText, Shape, guard_tree, rewrite
from engine.detectors.base import ScanContext
from engine.errors import guardrail_blocked
from engine.guards import Blocked, GuardPipeline, Redactor
from engine.ports import JSON, ProviderError, Usage
from engine.request import BodyPath
from engine.router import StreamRoute, usage_of
from engine.streaming import StreamGuard, StreamRestorer

# delta event → (slot kind, its index field); done event → (kind, index field, text field, its delta event)
_DELTAS = {
    "response.output_text.delta": ("text", "content_index"),
    "response.refusal.delta": ("refusal", "content_index"),
    "response.reasoning_summary_text.delta": ("summary", "summary_index"),
    "response.reasoning_text.delta": ("reasoning", "content_index"),
}
_DONES = {
    "response.output_text.done": ("text", "content_index", "text", "response.output_text.delta"),
    "response.refusal.done": ("refusal", "content_index", "refusal", "response.refusal.delta"),
    "response.reasoning_summary_text.done": ("summary", "summary_index", "text",
                                             "response.reasoning_summary_text.delta"),
    "response.reasoning_text.done": ("reasoning", "content_index", "text", "response.reasoning_text.delta"),
}  # fmt: skip
_PARTS = {"response.content_part.added": "content_index", "response.content_part.done": "content_index",
          "response.reasoning_summary_part.added": "summary_index",
          "response.reasoning_summary_part.done": "summary_index"}  # fmt: skip
_LIFECYCLE = frozenset({"response.created", "response.in_progress", "response.queued"})
ENDS = frozenset({"response.completed", "response.incomplete", "response.failed"})
_STRUCTURAL = frozenset({"type", "sequence_number", "output_index", "content_index", "summary_index"})
_OTHER: Shape = Free("unknown")
_ARGS: Shape = JsonText("tool_arguments")
# which slot a part's text is, by the part's type (content parts and summary parts)
_PART_SLOT = {"output_text": ("text", "text"), "refusal": ("refusal", "refusal"),
              "reasoning_text": ("reasoning", "text"), "summary_text": ("summary", "text")}  # fmt: skip

Key = tuple[int, int, str]


class _Slot:
    __slots__ = ("guard", "restorer", "sent")

    def __init__(self, guard: StreamGuard | None, restorer: StreamRestorer | None) -> None:
        self.guard, self.restorer = guard, restorer
        self.sent: list[str] = []

    def feed(self, text: str) -> tuple[str, Blocked | None]:
        out = self.guard.feed(text) if self.guard is not None else text
        if self.guard is not None and self.guard.blocked is not None:
            return "", self.guard.blocked
        if self.restorer is not None and out:
            out = self.restorer.feed(out)
        self.sent.append(out)
        return out, None

    def finish(self) -> tuple[str, Blocked | None]:
        out = self.guard.finish() if self.guard is not None else ""
        if self.guard is not None and self.guard.blocked is not None:
            return "", self.guard.blocked
        if self.restorer is not None:
            out = (self.restorer.feed(out) if out else "") + self.restorer.finish()
        self.sent.append(out)
        return out, None


def _index(event: JSON, name: str) -> int:
    value = event.get(name)
    return value if type(value) is int else 0


def _item_fills(item: JSON, oi: int, finals: dict[Key, str]) -> list[tuple[BodyPath, str]]:
    """Where the finished texts of output item `oi` sit in `item`, and what the caller was sent for each."""
    fills: list[tuple[BodyPath, str]] = []
    if item.get("type") == "function_call" and (oi, 0, "args") in finals:
        fills.append((("arguments",), finals[(oi, 0, "args")]))
    for field in ("content", "summary"):
        parts = item.get(field)
        for k, part in enumerate(parts if isinstance(parts, list) else ()):
            slot = _PART_SLOT.get(str(part.get("type"))) if isinstance(part, dict) else None
            if slot is None:
                continue
            kind = "summary" if field == "summary" else slot[0]
            if (oi, k, kind) in finals and isinstance(part.get(slot[1]), str):
                fills.append(((field, k, slot[1]), finals[(oi, k, kind)]))
    return fills


async def relay_responses(
    ex: Exchange,
    route: StreamRoute,
    receive: Receive,
    *,
    pipeline: GuardPipeline,
    redactor: Redactor,
    grounding: tuple[str, ...],
    restore: frozenset[str],
    capture: bool = False,
) -> tuple[StreamOutcome, Usage | None, str | None]:
    """Send the event stream; returns what the log needs, the final response's usage and its id (as sent)."""
    result = StreamOutcome(sent=[] if capture else None)
    guarded = bool(pipeline.rules)
    active = guarded or bool(restore)
    strip = pipeline.enforcing
    context = ScanContext("output", grounding)
    slots: dict[Key, _Slot] = {}
    finals: dict[Key, str] = {}
    held_args: dict[int, list[str]] = {}
    done_items: dict[int, JSON] = {}
    seen: dict[str, str | None] = {}
    seq = [0]
    usage: list[Usage | None] = [None]
    final_id: list[str | None] = [None]  # the completed response's id, when the caller got it as upstream sent it

    async def emit(event: JSON) -> None:
        event["sequence_number"] = seq[0]
        seq[0] += 1
        kind = event.get("type")
        head = b"event: " + (kind.encode() if isinstance(kind, str) and kind.isprintable() else b"message")
        await ex.send({"type": "http.response.body", "body": head + b"\ndata: " + dumps(event) + b"\n\n",
                       "more_body": True})  # fmt: skip

    async def fail(code: str, status: int, message: str) -> None:
        result.error_code, result.status = code, status
        err = error_body(code, status, message)["error"]
        await emit({"type": "error", "code": code, "message": message, "param": None, "error": err})

    async def blocked(b: Blocked) -> None:
        code, status = guardrail_blocked(b.rule.name)
        ex.fire(result.outcomes)
        await fail(code, status, b.message)

    def whole(node: Any, shape: Shape) -> tuple[Any, Blocked | None]:
        g = guard_tree(node, shape, pipeline, redactor, grounding, restore)
        result.outcomes.extend(g.outcomes)
        return g.body, g.blocked

    def filled(node: JSON, shape: Shape, fills: list[tuple[BodyPath, str]]) -> tuple[Any, Blocked | None]:
        """`node` guarded, its already-streamed texts replaced by what the caller was sent (not scanned twice)."""
        if not fills:
            return whole(node, shape)
        body, b = whole(rewrite(node, [(p, "") for p, _ in fills]), shape)
        return (None, b) if b is not None else (rewrite(body, fills), None)

    def others(event: JSON, skip: frozenset[str] | tuple[str, ...]) -> Blocked | None:
        """Guard every field of `event` not handled elsewhere, each distinct value once (ids repeat)."""
        for key in [k for k in event if k not in _STRUCTURAL and k not in skip]:
            value = event[key]
            if value is None or isinstance(value, bool | float) or (type(value) is int and abs(value) < 100_000):
                continue
            mark = orjson.dumps({key: value}).decode()
            if mark not in seen:
                node, b = whole({key: value}, _OTHER)
                if b is not None:
                    return b
                seen[mark] = None if node == {key: value} else orjson.dumps(node).decode()
            changed = seen[mark]
            if changed is not None:
                event.pop(key)
                event.update(orjson.loads(changed))
        return None

    def slot(key: Key) -> _Slot:
        s = slots.get(key)
        if s is None:
            s = slots[key] = _Slot(StreamGuard(pipeline, redactor, context) if guarded else None,
                                   StreamRestorer(redactor, restore) if restore else None)  # fmt: skip
        return s

    def final_response(response: JSON) -> tuple[JSON | None, Blocked | None]:
        output = response.get("output")
        items = output if isinstance(output, list) else []
        body, b = whole({**response, "output": []}, RESPONSE)
        if b is not None:
            return None, b
        out: list[Any] = []
        for i, item in enumerate(items):
            if i in done_items:
                out.append(done_items[i])
                continue
            node, b = filled(item, ITEM, _item_fills(item, i, finals)) if isinstance(item, dict) else whole(item, ITEM)
            if b is not None:
                return None, b
            out.append(node)
        body["output"] = out
        return body, None

    async def handle(event: JSON) -> bool:
        """Guard and send one event (or hold it); False once the stream has ended."""
        kind = event.get("type")
        oi = _index(event, "output_index")
        if kind in _DELTAS:
            name, index = _DELTAS[kind]
            if (b := others(event, ("delta", "logprobs"))) is not None:
                await blocked(b)
                return False
            text = event.get("delta")
            out, b = slot((oi, _index(event, index), name)).feed(text if isinstance(text, str) else "")
            if b is not None:
                await blocked(b)
                return False
            if out:
                event["delta"] = out
                if result.sent is not None and name == "text":
                    result.sent.append(out)
                await emit(event)
            return True
        if kind in _DONES:
            name, index, field, delta_kind = _DONES[kind]
            key = (oi, _index(event, index), name)
            if (b := others(event, (field, "logprobs"))) is not None:
                await blocked(b)
                return False
            s = slots.get(key)
            if s is None:  # no deltas came: the done event's text is the whole slot
                s = slot(key)
                whole_text = event.get(field)
                _, b = s.feed(whole_text if isinstance(whole_text, str) else "")
                if b is not None:
                    await blocked(b)
                    return False
            tail, b = s.finish()
            if b is not None:
                await blocked(b)
                return False
            if tail:
                if result.sent is not None and name == "text":
                    result.sent.append(tail)
                extra = {k: event[k] for k in ("item_id", "output_index", index) if k in event}
                if name == "text":
                    extra["logprobs"] = []  # the held pieces' token logprobs do not fit a merged tail
                await emit({"type": delta_kind, **extra, "delta": tail})
            finals[key] = event[field] = "".join(s.sent)
            await emit(event)
            return True
        if kind == "response.function_call_arguments.delta":
            piece = event.get("delta")
            held_args.setdefault(oi, []).append(piece if isinstance(piece, str) else "")
            return True
        if kind == "response.function_call_arguments.done":
            if (b := others(event, ("arguments",))) is not None:
                await blocked(b)
                return False
            raw = event.get("arguments")
            args = raw if isinstance(raw, str) else "".join(held_args.pop(oi, []))
            node, b = whole(args, _ARGS)
            if b is not None:
                await blocked(b)
                return False
            finals[(oi, 0, "args")] = event["arguments"] = node
            extra = {k: event[k] for k in ("item_id", "output_index") if k in event}
            await emit({"type": "response.function_call_arguments.delta", **extra, "delta": node})
            await emit(event)
            return True
        if kind in _PARTS:
            if (b := others(event, ("part",))) is not None:
                await blocked(b)
                return False
            part = event.get("part")
            if isinstance(part, dict):
                k = _index(event, _PARTS[kind])
                slot_of = _PART_SLOT.get(str(part.get("type")))
                fills: list[tuple[BodyPath, str]] = []
                if slot_of is not None:
                    name = "summary" if kind.startswith("response.reasoning_summary") else slot_of[0]
                    if (oi, k, name) in finals and isinstance(part.get(slot_of[1]), str):
                        fills = [((slot_of[1],), finals[(oi, k, name)])]
                node, b = filled(part, PART, fills)
                if b is not None:
                    await blocked(b)
                    return False
                event["part"] = node
            await emit(event)
            return True
        if kind in ("response.output_item.added", "response.output_item.done"):
            if (b := others(event, ("item",))) is not None:
                await blocked(b)
                return False
            item = event.get("item")
            if isinstance(item, dict):
                done = kind == "response.output_item.done"
                if done and item.get("type") == "function_call" and (oi, 0, "args") not in finals \
                        and oi in held_args:  # fmt: skip
                    item = {**item, "arguments": "".join(held_args.pop(oi))}
                node, b = filled(item, ITEM, _item_fills(item, oi, finals) if done else [])
                if b is not None:
                    await blocked(b)
                    return False
                event["item"] = node
                if done:
                    done_items[oi] = node
            await emit(event)
            return True
        if kind in _LIFECYCLE or kind in ENDS:
            if (b := others(event, ("response",))) is not None:
                await blocked(b)
                return False
            response = event.get("response")
            if isinstance(response, dict):
                if kind in ENDS:
                    usage[0] = usage_of(response)
                node, b = final_response(response) if kind in ENDS else whole(response, RESPONSE)
                if b is not None:
                    await blocked(b)
                    return False
                if kind == "response.completed" and isinstance(response.get("id"), str) \
                        and isinstance(node, dict) and node.get("id") == response["id"]:  # fmt: skip
                    final_id[0] = response["id"]
                event["response"] = node
            if kind == "response.failed":
                result.error_code, result.status = "upstream_error", 502
            await emit(event)
            return kind not in ENDS
        if isinstance(kind, str):  # an event type ghat does not know is an open value: scanned like text
            event["type"], b = whole(kind, _OTHER)
            if b is not None:
                await blocked(b)
                return False
        if (b := others(event, ())) is not None:  # any other event: every field guarded
            await blocked(b)
            return False
        await emit(event)
        return True

    async def pump() -> None:
        await ex.start_stream()
        async for event in route:
            if not active:
                kind = event.get("type")
                if result.sent is not None and kind == "response.output_text.delta" \
                        and isinstance(event.get("delta"), str):  # fmt: skip
                    result.sent.append(event["delta"])
                if kind in ENDS and isinstance(event.get("response"), dict):
                    usage[0] = usage_of(event["response"])
                    if kind == "response.completed" and isinstance(event["response"].get("id"), str):
                        final_id[0] = event["response"]["id"]
                await emit(event)
                if kind in ENDS:
                    if kind == "response.failed":
                        result.error_code, result.status = "upstream_error", 502
                    return
                continue
            if strip:
                _strip(event)
            if not await handle(event):
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
            except ProviderError as err:
                message, b = whole(err.message, ERROR_SHAPE) if guarded else (err.message, None)
                if b is not None:
                    message = (f"The provider's stream failed ({err.status}); "
                               "its message was withheld by the output guardrails.")
                await fail(err.code, err.status, message)
            await ex.end_stream(done=False)
            tg.cancel_scope.cancel()
    finally:
        await route.aclose()
        for s in slots.values():
            if s.guard is not None:
                result.outcomes.extend(s.guard.outcomes)
    return result, usage[0], final_id[0]


def _strip(event: JSON) -> None:
    """Token pieces (logprobs) of every kind of event: they would spell out what redaction hid."""
    if event.get("logprobs"):
        event["logprobs"] = []
    for key in ("part",):
        part = event.get(key)
        if isinstance(part, dict) and part.get("logprobs"):
            part["logprobs"] = []
    item = event.get("item")
    if isinstance(item, dict):
        strip_logprobs({"output": [item]})
    response = event.get("response")
    if isinstance(response, dict):
        strip_logprobs(response)

