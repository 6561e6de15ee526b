"""A fake LLM upstream in its own process: OpenAI wire format (and Anthropic's), with faults on demand.

Tests talk to it over real sockets, so the adapters, the router and the
server are exercised with real HTTP, keep-alive, chunked streams and broken
connections — not with mocks of httpx.

Fixture API (`tests/fixtures_upstream.py`, registered in `tests/conftest.py`):

    def test_x(fake_upstream):             # function scope: state reset before the test
        fake_upstream.url                  # "http://127.0.0.1:PORT/v1" — a provider base_url
        fake_upstream.fault("status", status=429, retry_after="2", times=1)
        fake_upstream.fault("reset", model="gpt-4o")          # every request for that model
        fake_upstream.fault("delay", delay_s=0.5, times=2)
        ...                                # send requests (through the gateway or an adapter)
        fake_upstream.requests()           # what it received: [{"path","headers","body","fault"}]
        fake_upstream.requests(path="/v1/chat/completions")

`fake_upstream_server` is the same handle at session scope (no reset).

Fault rules (`fault(kind, **options)` or POST /admin/faults with the same
JSON): the first rule that matches a request, and has `times` left (None:
forever), applies. Matching options: `model` (the body's model), `path`,
`stream` (bool). Kinds:

    status     answer `status` (default 500) with an OpenAI error body; `retry_after` sets that header
    delay      wait `delay_s`, then answer normally
    usage      answer normally (OpenAI chat, plain or streamed), but with `raw` — JSON text sent as it is,
               so `{"prompt_tokens": 1e400}`, `NaN` or a 400-digit integer are possible — as the usage
    reset      abort the TCP connection before any response (RST)
    malformed  200 with a truncated JSON body (streams: an event whose data is not JSON)
    cut        streams: send `after_chunks` (default 2) chunks, then drop the connection;
               plain: send half the body, then drop it
    stall      streams: send `after_chunks` chunks, then wait `delay_s` (default 3600) before the rest
    reply      answer exactly `body` (plain, status `status`, default 200) or the events `chunks` (streams,
               each JSON-encoded as one SSE event, then [DONE]): a hostile provider's own words
    reply      a scripted answer, for a hostile provider: `status` (default 200), `headers` ({name: value}),
               and `body` (any JSON value, sent as JSON) or `raw` (text sent as it is, e.g. "[1, NaN]")
    events     streams: `events`, a list of raw SSE texts ("data: {...}\n\n") sent in order, then the end

Any rule may add `delay_s` before it acts; a streamed one `interval_s`, a pause between its events
(a provider that trickles its answer), and `pause_at` / `pause_s`, a longer pause before one event.
A single request can also carry its rule as JSON in the `x-fake-fault` header. Answers: chat echoes the last
user message as "fake: <text>" with usage counted in words; embeddings are
hash-seeded 8-dimensional vectors; `/v1/messages` speaks Anthropic's API; `/v1/responses` OpenAI's
Responses API (an echo as a Response object, or its typed events; `reply` with `body` or `chunks` as events).

Run by hand: `python -m tests.fake_upstream --port 9999`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import socket
import struct
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

RECORDS: list[dict[str, Any]] = []
RULES: list[dict[str, Any]] = []


def _words(text: str) -> list[str]:
    return text.split()


def _last_user(body: dict[str, Any]) -> str:
    for m in reversed(body.get("messages") or []):
        if isinstance(m, dict) and m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, list):
                return " ".join(str(p.get("text", "")) for p in c if isinstance(p, dict))
            return str(c or "")
    return ""


def _prompt_words(body: dict[str, Any]) -> int:
    n = len(_words(str(body.get("system") or "")))
    for m in body.get("messages") or []:
        if isinstance(m, dict):
            c = m.get("content")
            if isinstance(c, list):  # content parts or blocks: count their text
                c = " ".join(str(p.get("text", "")) for p in c if isinstance(p, dict))
            n += len(_words(str(c or "")))
    return n


def _match(rule: dict[str, Any], path: str, body: dict[str, Any]) -> bool:
    if rule.get("times") is not None and rule["times"] <= 0:
        return False
    if rule.get("model") is not None and body.get("model") != rule["model"]:
        return False
    if rule.get("path") is not None and path != rule["path"]:
        return False
    return not (rule.get("stream") is not None and bool(body.get("stream")) != rule["stream"])


def _pick(path: str, body: dict[str, Any], header: str | None) -> dict[str, Any] | None:
    if header:
        return dict(json.loads(header))
    for rule in RULES:
        if _match(rule, path, body):
            if rule.get("times") is not None:
                rule["times"] -= 1
            return rule
    return None


async def _json(send: Send, status: int, obj: Any, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    data = json.dumps(obj).encode()
    hs = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()), *(headers or [])]
    await send({"type": "http.response.start", "status": status, "headers": hs})
    await send({"type": "http.response.body", "body": data})


def _abort(receive: Receive) -> bool:
    """Reset the connection under the ASGI app (uvicorn's cycle object holds the transport)."""
    transport = getattr(getattr(receive, "__self__", None), "transport", None)
    if transport is None:
        return False
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    return True


def _chat(body: dict[str, Any]) -> tuple[str, int, int]:
    text = "fake: " + _last_user(body)
    return text, _prompt_words(body), len(_words(text))


def _openai_chunks(body: dict[str, Any]) -> list[bytes]:
    text, p, c = _chat(body)
    base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": body.get("model")}
    events: list[dict[str, Any]] = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant"},
                                                          "finish_reason": None}]}]
    words = text.split(" ")
    for i, w in enumerate(words):
        piece = w if i == len(words) - 1 else w + " "
        events.append({**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
    events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if (body.get("stream_options") or {}).get("include_usage"):
        events.append({**base, "choices": [], "usage": {"prompt_tokens": p, "completion_tokens": c,
                                                         "total_tokens": p + c}})
    out = [b"data: " + json.dumps(e).encode() + b"\n\n" for e in events]
    return [b": keep-alive comment\n\n", *out, b"data: [DONE]\n\n"]


def _anthropic_chunks(body: dict[str, Any]) -> list[bytes]:
    text, p, c = _chat(body)
    evs: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": {
            "id": "msg_fake", "type": "message", "role": "assistant", "model": body.get("model"), "content": [],
            "stop_reason": None, "usage": {"input_tokens": p, "output_tokens": 1, "cache_read_input_tokens": 0}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("ping", {"type": "ping"}),
    ]
    for w in text.split(" "):
        evs.append(("content_block_delta", {"type": "content_block_delta", "index": 0,
                                            "delta": {"type": "text_delta", "text": w + " "}}))
    evs += [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                           "usage": {"output_tokens": c}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    return [f"event: {name}\ndata: {json.dumps(d)}\n\n".encode() for name, d in evs]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    path: str = scope["path"]
    raw = b""
    while True:
        msg = await receive()
        raw += msg.get("body", b"")
        if not msg.get("more_body"):
            break
    if path.startswith("/admin"):
        await _admin(scope, path, raw, send)
        return
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        body = {}
    headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
    rule = _pick(path, body, headers.get("x-fake-fault"))
    RECORDS.append({"method": scope["method"], "path": path, "headers": headers, "body": body,
                    "fault": rule.get("kind") if rule else None})
    if rule and rule.get("delay_s") and rule.get("kind") != "stall":
        await asyncio.sleep(float(rule["delay_s"]))
    kind = rule.get("kind") if rule else None
    if kind == "reset" and _abort(receive):
        return
    if kind == "reply" and rule is not None and not (body.get("stream") and "chunks" in rule):
        payload = str(rule["raw"]).encode() if "raw" in rule else json.dumps(rule.get("body")).encode()
        hs = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
        hs += [(k.encode(), str(v).encode()) for k, v in (rule.get("headers") or {}).items()]
        await send({"type": "http.response.start", "status": int(rule.get("status", 200)), "headers": hs})
        await send({"type": "http.response.body", "body": payload})
        return
    if kind == "events" and rule is not None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]})
        for event in rule.get("events") or []:
            await send({"type": "http.response.body", "body": str(event).encode(), "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    if kind == "status":
        status = int(rule.get("status", 500)) if rule else 500
        extra = [(b"retry-after", str(rule["retry_after"]).encode())] if rule and rule.get("retry_after") else []
        await _json(send, status, {"error": {"message": rule.get("message", f"fake failure {status}") if rule else "",
                                             "type": "fake_error", "param": None, "code": str(status)}}, extra)
        return
    if path == "/v1/models":
        await _json(send, 200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]})
        return
    if path == "/v1/embeddings":
        inputs = body.get("input")
        items = inputs if isinstance(inputs, list) else [inputs]
        data = []
        for i, item in enumerate(items):
            h = hashlib.sha256(json.dumps(item).encode()).digest()
            data.append({"object": "embedding", "index": i, "embedding": [(b - 128) / 128 for b in h[:8]]})
        n = sum(len(_words(str(x))) for x in items)
        await _json(send, 200, {"object": "list", "data": data, "model": body.get("model"),
                                "usage": {"prompt_tokens": n, "total_tokens": n}})
        return
    if path == "/v1/responses" and kind != "usage":
        await _responses(body, rule, receive, send)
        return
    anthropic = path == "/v1/messages"
    if path not in ("/v1/chat/completions", "/v1/messages"):
        await _json(send, 404, {"error": {"message": f"no route {path}", "type": "not_found"}})
        return
    if kind == "usage" and rule is not None and not anthropic:
        await _raw_usage(body, str(rule["raw"]).encode(), send)
        return
    if body.get("stream"):
        await _stream(body, rule, anthropic, receive, send)
        return
    text, p, c = _chat(body)
    if anthropic:
        out: dict[str, Any] = {
            "id": "msg_fake", "type": "message", "role": "assistant", "model": body.get("model"),
            "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": p, "output_tokens": c, "cache_read_input_tokens": 0,
                      "cache_creation_input_tokens": 0}}
    else:
        out = {"id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": body.get("model"),
               "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
               "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}}
    payload = json.dumps(out).encode()
    if kind == "malformed":
        payload = payload[: len(payload) // 2]
    hs = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": hs})
    if kind == "cut":
        await send({"type": "http.response.body", "body": payload[: len(payload) // 2], "more_body": True})
        _abort(receive)
        return
    await send({"type": "http.response.body", "body": payload})


async def _stream(body: dict[str, Any], rule: dict[str, Any] | None, anthropic: bool, receive: Receive,
                  send: Send) -> None:
    kind = rule.get("kind") if rule else None
    chunks = _anthropic_chunks(body) if anthropic else _openai_chunks(body)
    if kind == "reply" and rule is not None:
        chunks = [b"data: " + json.dumps(c).encode() + b"\n\n" for c in rule.get("chunks") or []]
        chunks.append(b"data: [DONE]\n\n")
    after = int(rule.get("after_chunks", 2)) if rule else 0
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]})
    for i, chunk in enumerate(chunks):
        if kind in ("cut", "stall") and i == after:
            if kind == "cut":
                _abort(receive)
                return
            await asyncio.sleep(float(rule.get("delay_s", 3600)) if rule else 0)
        if kind == "malformed" and i == 1:
            chunk = b"data: {not json\n\n"
        if rule and rule.get("interval_s") and i > 0:  # a trickling provider: one event every interval_s
            await asyncio.sleep(float(rule["interval_s"]))
        if rule and rule.get("pause_at") == i:  # and one that stops to think before event `pause_at`
            await asyncio.sleep(float(rule.get("pause_s", 1.0)))
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def _raw_usage(body: dict[str, Any], raw: bytes, send: Send) -> None:
    """The `usage` fault: the usual OpenAI answer, its usage replaced by `raw` bytes (a last event, streamed)."""
    marker = b'"__RAW_USAGE__"'
    if body.get("stream"):
        chunks = _openai_chunks({**body, "stream_options": None})[:-1]  # without [DONE]
        last = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": body.get("model"),
                "choices": [], "usage": "__RAW_USAGE__"}
        chunks += [b"data: " + json.dumps(last).encode().replace(marker, raw) + b"\n\n", b"data: [DONE]\n\n"]
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]})
        for chunk in chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    text, _, _ = _chat(body)
    out = {"id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": body.get("model"),
           "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
           "usage": "__RAW_USAGE__"}
    payload = json.dumps(out).encode().replace(marker, raw)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


# ── OpenAI Responses (/v1/responses, issue 13): written apart from ghat's own builders, as an upstream is ──


def _responses_text(body: dict[str, Any]) -> tuple[str, int]:
    """The last user turn's text of a Responses body, and the words of every text it holds (the prompt)."""
    raw = body.get("input")
    items = [{"role": "user", "content": raw}] if isinstance(raw, str) else [
        i for i in raw or [] if isinstance(i, dict)]
    last, words = "", len(_words(str(body.get("instructions") or "")))
    for item in items:
        content = item.get("content", item.get("output", ""))
        if isinstance(content, list):
            content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        words += len(_words(str(content or "")))
        if item.get("role") == "user":
            last = str(content or "")
    return "fake: " + last, words


def _response(body: dict[str, Any], output: list[dict[str, Any]], status: str, p: int, c: int) -> dict[str, Any]:
    return {"id": "resp_fake", "object": "response", "created_at": 0, "status": status, "model": body.get("model"),
            "output": output, "instructions": body.get("instructions"), "tools": body.get("tools") or [],
            "parallel_tool_calls": True, "tool_choice": body.get("tool_choice", "auto"), "metadata": {},
            "usage": {"input_tokens": p, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": c,
                      "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": p + c}}


def _responses_events(body: dict[str, Any]) -> list[dict[str, Any]]:
    text, p = _responses_text(body)
    done_msg = {"id": "msg_fake", "type": "message", "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}]}
    evs: list[dict[str, Any]] = [
        {"type": "response.created", "response": _response(body, [], "in_progress", 0, 0)},
        {"type": "response.in_progress", "response": _response(body, [], "in_progress", 0, 0)},
        {"type": "response.output_item.added", "output_index": 0,
         "item": {**done_msg, "status": "in_progress", "content": []}},
        {"type": "response.content_part.added", "item_id": "msg_fake", "output_index": 0, "content_index": 0,
         "part": {"type": "output_text", "text": "", "annotations": []}},
    ]
    words = text.split(" ")
    for i, w in enumerate(words):
        evs.append({"type": "response.output_text.delta", "item_id": "msg_fake", "output_index": 0,
                    "content_index": 0, "delta": w if i == len(words) - 1 else w + " "})
    evs += [
        {"type": "response.output_text.done", "item_id": "msg_fake", "output_index": 0, "content_index": 0,
         "text": text},
        {"type": "response.content_part.done", "item_id": "msg_fake", "output_index": 0, "content_index": 0,
         "part": done_msg["content"][0]},
        {"type": "response.output_item.done", "output_index": 0, "item": done_msg},
        {"type": "response.completed", "response": _response(body, [done_msg], "completed", p, len(words))},
    ]
    return evs


async def _responses(body: dict[str, Any], rule: dict[str, Any] | None, receive: Receive, send: Send) -> None:
    """`/v1/responses`: an echo as a Response object or typed events; `reply` sends `body` or `chunks` as given."""
    kind = rule.get("kind") if rule else None
    if not body.get("stream"):
        text, p = _responses_text(body)
        item = {"id": "msg_fake", "type": "message", "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}]}
        payload = json.dumps(_response(body, [item], "completed", p, len(_words(text)))).encode()
        if kind == "malformed":
            payload = payload[: len(payload) // 2]
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})
        return
    events = list(rule["chunks"]) if kind == "reply" and rule is not None else _responses_events(body)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]})
    after = int(rule.get("after_chunks", 2)) if rule else 0
    for i, ev in enumerate(events):
        if kind == "cut" and i == after:
            _abort(receive)
            return
        ev = {**ev, "sequence_number": i}
        data = f"event: {ev['type']}\ndata: {json.dumps(ev)}\n\n".encode()
        await send({"type": "http.response.body", "body": data, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def _admin(scope: Scope, path: str, raw: bytes, send: Send) -> None:
    method = scope["method"]
    if path == "/admin/health":
        await _json(send, 200, {"ok": True})
    elif path == "/admin/requests" and method == "GET":
        await _json(send, 200, RECORDS)
    elif path == "/admin/requests" and method == "DELETE":
        RECORDS.clear()
        await _json(send, 200, {"ok": True})
    elif path == "/admin/faults" and method == "POST":
        RULES.append(json.loads(raw))
        await _json(send, 200, {"ok": True, "rules": len(RULES)})
    elif path == "/admin/faults" and method == "DELETE":
        RULES.clear()
        await _json(send, 200, {"ok": True})
    elif path == "/admin/reset":
        RECORDS.clear()
        RULES.clear()
        await _json(send, 200, {"ok": True})
    else:
        await _json(send, 404, {"error": {"message": "unknown admin call"}})


def main() -> None:
    """Serve on an inherited listening socket (`--fd`, race-free for fixtures) or a port."""
    import logging

    import uvicorn

    class _QuietAborts(logging.Filter):
        """Deliberate resets and stalls make uvicorn complain at exit: expected here, noise in test output."""

        def filter(self, record: logging.LogRecord) -> bool:
            msg = record.getMessage()
            return "ASGI callable returned without" not in msg and "graceful shutdown exceeded" not in msg

    logging.getLogger("uvicorn.error").addFilter(_QuietAborts())
    ap = argparse.ArgumentParser()
    ap.add_argument("--fd", type=int)
    ap.add_argument("--port", type=int, default=9999)
    args = ap.parse_args()
    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False, http="httptools",
                            timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    if args.fd is not None:
        sock = socket.socket(fileno=args.fd)
        server.run(sockets=[sock])
    else:
        config.port = args.port
        server.run()


if __name__ == "__main__":
    main()
