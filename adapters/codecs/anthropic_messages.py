"""Anthropic Messages (`POST /v1/messages`, `/v1/messages/count_tokens`) ↔ the conversation, both directions.

The request shape names every field of the API reference
(docs.anthropic.com/en/api/messages) by what it carries: `system` (a string or
text blocks) as role system; each turn's content blocks by the turn's role —
`text`, `image` (its base64 data or URL), `document` (text, base64 PDF or
content blocks; role `document`, what indirect injection reads), `tool_use`
(`input` is the tool's arguments), `tool_result` (role `tool`, a string or
blocks), `thinking` and `redacted_thinking`; `tools` and `tool_choice` as
definitions the developer wrote. Everything else — `metadata`,
`stop_sequences`, `thinking`, fields added after this was written — is a
`Free` slot: scanned, never forwarded unscanned (P13).

Thinking signatures and `redacted_thinking.data` are opaque base64 the
provider verifies; they are scanned like every other string (no detector
matches encrypted base64 in practice, and if one ever does the turn fails
closed upstream). When an output guard redacts thinking text, the signature
is passed on unchanged and no longer matches: a client that sends that block
back gets Anthropic's 400 for the turn (docs/guardrails.md says so).

The response shape covers a Message (content blocks, `stop_sequence`, any
field a provider adds); streams are relayed event by event in
`adapters/api/message_streams.py`. Errors go out in Anthropic's shape, with
the types its SDK maps to exception classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from adapters.codecs.body import JSON, STRIPPED, GhatField, Strict, metadata_of, requested_app, validate
from engine.conversation import Enum, Exempt, Free, ListOf, Obj, OneOf, Shape, Tagged, Text, rewrite, slots
from engine.errors import ANTHROPIC_ERROR_TYPES
from engine.ports import Usage
from engine.request import GatewayRequest, TextField
from engine.usage import token_count

ROLES = {"user": "user", "assistant": "assistant"}
BLOCK_TYPES = frozenset({"text", "image", "document", "tool_use", "tool_result", "thinking", "redacted_thinking",
                         "search_result", "server_tool_use", "web_search_tool_result"})  # fmt: skip
MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp", "application/pdf", "text/plain"})
STOP_REASONS = frozenset({"end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal"})

_TYPE = Enum(BLOCK_TYPES)
_CACHE = Obj({"type": Enum(frozenset({"ephemeral"})), "ttl": Enum(frozenset({"5m", "1h"}))})
_CITATIONS = Free("annotation")


def _source(text_role: str | None) -> Shape:
    """An image or document `source`, by its type: base64 data, a URL, plain text, content blocks or a file id."""
    kind = Enum(frozenset({"base64", "url", "text", "content", "file"}))
    return Tagged("type", {
        "base64": Obj({"type": kind, "media_type": Enum(MEDIA_TYPES), "data": Text("binary")}),
        "url": Obj({"type": kind, "url": Text("image_url")}),
        "text": Obj({"type": kind, "media_type": Enum(MEDIA_TYPES), "data": Text("document", text_role)}),
        "content": Obj({"type": kind, "content": OneOf({
            str: Text("document", text_role),
            list: ListOf(Obj({"type": _TYPE, "text": Text("document", text_role)}, rest=Free("unknown")))})}),
        "file": Obj({"type": kind, "file_id": Text("name")}),
    }, Free("unknown"))  # fmt: skip


def _leaf_blocks(role: str | None) -> dict[str, Shape]:
    """Blocks that can appear anywhere, tool results included: text, image, document, search result."""
    return {
        "text": Obj({"type": _TYPE, "text": Text("text", role), "citations": _CITATIONS, "cache_control": _CACHE}),
        "image": Obj({"type": _TYPE, "source": _source(None), "cache_control": _CACHE}),
        "document": Obj({"type": _TYPE, "source": _source("document"), "title": Text("document", "document"),
                         "context": Text("document", "document"), "citations": _CITATIONS, "cache_control": _CACHE}),
    }  # fmt: skip


_TOOL_RESULT_BLOCK = Tagged("type", _leaf_blocks("tool"), Free("unknown", "tool"))
_TOOL_USE = Obj({"type": _TYPE, "id": Text("name"), "name": Text("name"), "input": Free("tool_arguments"),
                 "cache_control": _CACHE})  # fmt: skip
_THINKING = Obj({"type": _TYPE, "thinking": Text("reasoning"), "signature": Text("signature")})
_REDACTED_THINKING = Obj({"type": _TYPE, "data": Text("binary")})
BLOCK: Shape = Tagged("type", {
    **_leaf_blocks(None),
    "tool_use": _TOOL_USE,
    "tool_result": Obj({"type": _TYPE, "tool_use_id": Text("name"), "is_error": Exempt(), "cache_control": _CACHE,
                        "content": OneOf({str: Text("text", "tool"), list: ListOf(_TOOL_RESULT_BLOCK)})}),
    "thinking": _THINKING,
    "redacted_thinking": _REDACTED_THINKING,
}, Free("unknown"))  # fmt: skip
MESSAGE = Obj({"role": Enum(frozenset(ROLES)), "content": OneOf({str: Text("text"), list: ListOf(BLOCK)})},
              role_from="role", roles=ROLES)  # fmt: skip
_SYSTEM_BLOCK = Tagged("type", {"text": Obj({"type": _TYPE, "text": Text("text", "system"), "cache_control": _CACHE,
                                             "citations": Free("annotation", "system")})},
                       Free("unknown", "system"))  # fmt: skip
_GHAT = Obj({"documents": ListOf(Text("document", "document"))})

REQUEST: Shape = Obj({
    "model": Exempt(),
    "messages": ListOf(MESSAGE),
    "system": OneOf({str: Text("text", "system"), list: ListOf(_SYSTEM_BLOCK)}),
    "tools": Free("tool_definition", "system"),
    "tool_choice": Free("tool_definition", "system"),
    "max_tokens": Exempt(),
    "stream": Exempt(),
    "ghat": _GHAT,
}, rest=Free("parameter", "user"))  # fmt: skip

# An answer's blocks: text (with citations), tool calls, thinking; anything else a provider adds is scanned.
OUT_BLOCK: Shape = Tagged("type", {
    "text": Obj({"type": _TYPE, "text": Text("text"), "citations": _CITATIONS}, rest=Free("unknown")),
    "tool_use": Obj({"type": _TYPE, "id": Text("name"), "name": Text("name"), "input": Free("tool_arguments")},
                    rest=Free("unknown")),
    "thinking": Obj({"type": _TYPE, "thinking": Text("reasoning"), "signature": Text("signature")},
                    rest=Free("unknown")),
    "redacted_thinking": Obj({"type": _TYPE, "data": Text("binary")}, rest=Free("unknown")),
}, Free("unknown"))  # fmt: skip
RESPONSE: Shape = Obj({
    "type": Enum(frozenset({"message"})),
    "role": Enum(frozenset({"assistant"})),
    "content": ListOf(OUT_BLOCK),
    "stop_reason": Enum(STOP_REASONS),
    "stop_sequence": Text("text"),
    "usage": Free("usage"),
}, rest=Free("unknown"))  # fmt: skip


# ── decoding: body → GatewayRequest, and the guarded body back ─────────


class _Turn(Strict):
    role: Literal["user", "assistant"]
    content: str | list[dict[str, Any]]


class _CountTokens(Strict):
    model: str = Field(min_length=1, max_length=256)
    messages: list[_Turn] = Field(min_length=1)
    system: str | list[dict[str, Any]] | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    ghat_app: str | None = None
    ghat: GhatField | None = None


class _Messages(_CountTokens):
    max_tokens: int = Field(ge=1)  # Anthropic requires it on create
    stream: bool | None = False


def _forwarded(body: JSON) -> JSON:
    return {k: v for k, v in body.items() if k not in STRIPPED}


def _request(parsed: _CountTokens, body: JSON, headers: Mapping[str, str], stream: bool) -> GatewayRequest:
    texts: list[TextField] = slots(_forwarded(body), REQUEST, "user")
    docs = parsed.ghat.documents if parsed.ghat else []
    texts.extend(TextField("document", d, ("ghat", "documents", k), "document") for k, d in enumerate(docs))
    return GatewayRequest(
        endpoint="messages", model=parsed.model, texts=tuple(texts), max_tokens=parsed.max_tokens,
        metadata=metadata_of(parsed.ghat.metadata if parsed.ghat else None, headers),
        requested_app=requested_app(parsed.ghat, parsed.ghat_app, headers), stream=stream,
        grounding=tuple(docs),
    )  # fmt: skip


def decode_messages(body: JSON, headers: Mapping[str, str]) -> GatewayRequest:
    """A Messages body as the engine sees it: every string a slot (P13), the fields policy reads validated."""
    parsed = validate(_Messages, body)
    assert isinstance(parsed, _Messages)
    return _request(parsed, body, headers, bool(parsed.stream))


def decode_count_tokens(body: JSON, headers: Mapping[str, str]) -> GatewayRequest:
    """A count_tokens body: a Messages body without `max_tokens` or `stream`; guarded and evaluated the same."""
    parsed = validate(_CountTokens, body)
    assert isinstance(parsed, _CountTokens)
    return _request(parsed, body, headers, False)


def upstream_body(body: JSON, before: GatewayRequest, after: GatewayRequest) -> JSON:
    """The body to dispatch: ghat's fields stripped, guarded texts written back, the token cap in `max_tokens`."""
    out = _forwarded(body)
    if before.texts is not after.texts:
        edits = [(s.path, new.text) for s, new in zip(before.texts, after.texts, strict=True)
                 if s.text != new.text and s.path and s.path[0] != "ghat"]  # fmt: skip
        out = rewrite(out, edits)
    if after.max_tokens is not None and after.max_tokens != before.max_tokens:
        out["max_tokens"] = after.max_tokens
    return out


# ── answers: usage and errors in the dialect ───────────────────────────


def usage_of_message(usage: Any) -> Usage:
    """Anthropic usage → ghat's: cache reads and writes are part of the prompt (as OpenAI counts them)."""
    if not isinstance(usage, dict):
        return Usage(source="none")
    names = ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens", "output_tokens")
    counts = [token_count(usage.get(k)) for k in names]
    fresh, read, written, out = (n or 0 for n in counts)
    return Usage(prompt_tokens=fresh + read + written, completion_tokens=out, cached_tokens=read,
                 source="untrusted" if None in counts else "provider")  # fmt: skip


def usage_of_response(message: JSON) -> Usage:
    """The usage a plain answer reports (the router's reader for `/v1/messages`)."""
    return usage_of_message(message.get("usage"))


def fold_usage(event: JSON, current: Usage) -> Usage:
    """Usage over a stream: `message_start` carries the prompt, `message_delta` the cumulative output."""
    kind = event.get("type")
    if kind == "message_start":
        message = event.get("message")
        return usage_of_message(message.get("usage")) if isinstance(message, dict) else current
    if kind != "message_delta" or not isinstance(event.get("usage"), dict):
        return current
    u: dict[str, Any] = event["usage"]
    out = token_count(u.get("output_tokens"))
    prompt = current.prompt_tokens
    if u.get("input_tokens") is not None:  # newer APIs repeat the prompt counts on message_delta
        prompt = usage_of_message({**u, "output_tokens": 0}).prompt_tokens
    return Usage(prompt_tokens=prompt, completion_tokens=out if out is not None else current.completion_tokens,
                 cached_tokens=current.cached_tokens,
                 source="untrusted" if out is None or current.source == "untrusted" else "provider")  # fmt: skip


def error_body(code: str, status: int, message: str, param: str | None = None) -> JSON:
    """`{"type": "error", "error": {type, message}}`: the `type` (and status) pick the SDK's exception class.

    ghat's own code rides in `error.details.error_code`, where the SDK reads
    a provider's error code; `param` is folded into the message.
    """
    etype = ANTHROPIC_ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    text = f"{message} (param: {param})" if param and param not in message else message
    return {"type": "error", "error": {"type": etype, "message": text, "details": {"error_code": code}}}


def text_of(message: JSON) -> str:
    """The text blocks of an answer, for `capture responses`."""
    content = message.get("content")
    if not isinstance(content, list):
        return ""
    return "".join(b["text"] for b in content if isinstance(b, dict) and isinstance(b.get("text"), str))
