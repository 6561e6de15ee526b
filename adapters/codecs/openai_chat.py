"""OpenAI Chat Completions ↔ the conversation: the shapes of its bodies, both directions.

The request shape names every field of the API reference
(platform.openai.com/docs/api-reference/chat/create) by what it carries, so
detectors get the context they need: `messages[].content` by the message's
role, `tools`/`functions` and `response_format` as tool definitions and
schemas the developer wrote (role system), tool results as role `tool` (what
indirect injection reads), assistant `tool_calls[].function.arguments` as JSON
text. Everything else the caller sends — `user`, `stop`, `prediction`,
`metadata`, fields added after this was written — is a `Free` slot: scanned.

The response shape does the same for `choices[].message` (content, refusal,
tool calls, reasoning text, annotations, audio transcripts) and anything else
a provider adds. `logprobs` are token pieces of the content: they cannot be
redacted soundly, so `strip_logprobs` removes them when output guards enforce.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from adapters.codecs.body import JSON, STRIPPED, BadRequest, GhatField, Strict, metadata_of, requested_app, validate
from engine.conversation import (
    Enum,
    Exempt,
    Free,
    JsonText,
    ListOf,
    Obj,
    OneOf,
    Shape,
    Tagged,
    Text,
    rewrite,
    rewrite_value,
    slots,
)  # fmt: skip
from engine.request import BodyPath, GatewayRequest, TextField
from engine.usage import encoding

ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant",
         "tool": "tool", "function": "tool"}  # fmt: skip

_PART_TYPES = frozenset({"text", "image_url", "input_audio", "file", "refusal", "input_text", "output_text"})
_TEXT_PART = Obj({"type": Enum(_PART_TYPES), "text": Text("text")})
_PART = Tagged("type", {
    "text": _TEXT_PART,
    "input_text": _TEXT_PART,
    "output_text": _TEXT_PART,
    "refusal": Obj({"type": Enum(_PART_TYPES), "refusal": Text("refusal")}),
    "image_url": Obj({"type": Enum(_PART_TYPES), "image_url": Obj({
        "url": Text("image_url"), "detail": Enum(frozenset({"auto", "low", "high"}))})}),
    "input_audio": Obj({"type": Enum(_PART_TYPES),
                        "input_audio": Obj({"data": Text("binary"), "format": Enum(frozenset({"wav", "mp3"}))})}),
    "file": Obj({"type": Enum(_PART_TYPES),
                 "file": Obj({"file_data": Text("binary"), "file_id": Text("name"), "filename": Text("name")})}),
}, Free("unknown"))  # fmt: skip
_CONTENT = OneOf({str: Text("text"), list: ListOf(_PART)})
_FUNCTION_CALL = Obj({"name": Text("name"), "arguments": JsonText("tool_arguments")})
_TOOL_CALL = Obj({"id": Text("name"), "type": Enum(frozenset({"function", "custom"})), "function": _FUNCTION_CALL,
                  "custom": Obj({"name": Text("name"), "input": Text("tool_arguments")})})  # fmt: skip
_MESSAGE_ROLES = frozenset(ROLES)
MESSAGE = Obj({
    "role": Enum(_MESSAGE_ROLES),
    "content": _CONTENT,
    "name": Text("name"),
    "refusal": Text("refusal"),
    "tool_calls": ListOf(_TOOL_CALL),
    "function_call": _FUNCTION_CALL,
    "tool_call_id": Text("name"),
    "audio": Obj({"id": Text("name")}),
}, role_from="role", roles=ROLES)  # fmt: skip

_DEFINITION = Free("tool_definition", "system")
_GHAT = Obj({"documents": ListOf(Text("document", "document"))})  # the rest of `ghat` is stripped before dispatch

# Generation parameters of the API reference: their values are still scanned (a `user` or a `stop` string
# can carry anything), but their names are the API's, not the caller's, so they are not slots themselves.
_PARAMETER = Free("parameter", "user")
_PARAMETERS: dict[str, Shape] = {name: _PARAMETER for name in (
    "audio", "frequency_penalty", "logit_bias", "logprobs", "max_completion_tokens", "max_tokens", "metadata",
    "modalities", "n", "parallel_tool_calls", "prediction", "presence_penalty", "prompt_cache_key",
    "reasoning_effort", "safety_identifier", "seed", "service_tier", "stop", "store", "stream", "stream_options",
    "temperature", "top_logprobs", "top_p", "user", "verbosity", "web_search_options")}  # fmt: skip

REQUEST: Shape = Obj({
    "model": Exempt(),
    "messages": ListOf(MESSAGE),
    "tools": _DEFINITION,
    "functions": _DEFINITION,
    "tool_choice": Free("tool_definition", "system"),
    "function_call": Free("tool_definition", "system"),
    "response_format": Free("schema", "system"),
    "ghat": _GHAT,
    **_PARAMETERS,
}, rest=Free("parameter", "user"))  # fmt: skip

EMBEDDINGS_REQUEST: Shape = Obj({
    "model": Exempt(),
    "input": OneOf({str: Text("text"), list: ListOf(Text("text"))}),
    "encoding_format": Enum(frozenset({"float", "base64"})),
    "ghat": _GHAT,
}, rest=Free("parameter", "user"))  # fmt: skip

_FINISH = frozenset({"stop", "length", "tool_calls", "content_filter", "function_call"})
_OUT_MESSAGE = Obj({
    "role": Enum(frozenset({"assistant"})),
    "content": _CONTENT,
    "refusal": Text("refusal"),
    "reasoning_content": Text("reasoning"),
    "reasoning": Text("reasoning"),
    "tool_calls": ListOf(_TOOL_CALL),
    "function_call": _FUNCTION_CALL,
    "annotations": Free("annotation"),
    "audio": Obj({"id": Text("name"), "transcript": Text("text"), "data": Text("binary")}),
}, rest=Free("unknown"))  # fmt: skip
_CHOICE = Obj({"index": Exempt(), "message": _OUT_MESSAGE, "finish_reason": Enum(_FINISH),
               "logprobs": Free("logprobs")}, rest=Free("unknown"))  # fmt: skip

# Usage counts by the names providers use: the values are still walked (a string or a huge number is
# scanned), the names are not slots. Anything else a provider adds stays `Free`.
_COUNT = Free("usage")
_USAGE = Obj({
    "prompt_tokens": _COUNT, "completion_tokens": _COUNT, "total_tokens": _COUNT,
    "prompt_tokens_details": Obj({"cached_tokens": _COUNT, "audio_tokens": _COUNT}, rest=_COUNT),
    "completion_tokens_details": Obj({"reasoning_tokens": _COUNT, "audio_tokens": _COUNT,
                                      "accepted_prediction_tokens": _COUNT, "rejected_prediction_tokens": _COUNT},
                                     rest=_COUNT),
}, rest=_COUNT)  # fmt: skip
_ANSWER_FIELDS: dict[str, Shape] = {  # the provider's own ids and numbers: scanned, their names not slots
    "id": Text("name"), "created": Free("unknown"), "model": Text("name"), "system_fingerprint": Text("name"),
    "service_tier": Enum(frozenset({"auto", "default", "flex", "scale", "priority"})), "usage": _USAGE,
}  # fmt: skip

RESPONSE: Shape = Obj({
    "object": Enum(frozenset({"chat.completion"})),
    "choices": ListOf(_CHOICE),
    **_ANSWER_FIELDS,
}, rest=Free("unknown"))  # fmt: skip

EMBEDDINGS_RESPONSE: Shape = Obj({
    "object": Enum(frozenset({"list"})),
    "data": ListOf(Obj({"object": Enum(frozenset({"embedding"})), "index": Exempt(), "embedding": Exempt()},
                       rest=Free("unknown"))),
    "model": Text("name"),
    "usage": _USAGE,
}, rest=Free("unknown"))  # fmt: skip

# A stream chunk's delta: the same slots as a message, arriving in pieces (adapters/api/streams.py).
DELTA_ROLES = frozenset({"assistant", "user", "system", "tool", "developer"})
CHUNK_STRUCTURAL = frozenset({"index", "finish_reason", "logprobs", "delta"})


# ── decoding: body → GatewayRequest, and the guarded body back ─────────


class _Message(Strict):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None


class _Chat(Strict):
    model: str = Field(min_length=1, max_length=256)
    messages: list[_Message] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stream: bool | None = False
    n: int | None = Field(default=None, ge=1, le=16)
    ghat_app: str | None = None
    ghat: GhatField | None = None


class _Embeddings(Strict):
    model: str = Field(min_length=1, max_length=256)
    input: str | list[str] | list[int] | list[list[int]]
    ghat_app: str | None = None
    ghat: GhatField | None = None


def _forwarded(body: JSON) -> JSON:
    return {k: v for k, v in body.items() if k not in STRIPPED}


def _documents(ghat: GhatField | None) -> list[TextField]:
    docs = ghat.documents if ghat else []
    return [TextField("document", d, ("ghat", "documents", k), "document") for k, d in enumerate(docs)]


def decode_chat(body: JSON, headers: Mapping[str, str]) -> GatewayRequest:
    """A chat body as the engine sees it: every string a slot (P13), the fields policy reads validated."""
    parsed = validate(_Chat, body)
    assert isinstance(parsed, _Chat)
    texts = slots(_forwarded(body), REQUEST, "user")
    texts.extend(_documents(parsed.ghat))
    asked = parsed.max_completion_tokens if parsed.max_completion_tokens is not None else parsed.max_tokens
    return GatewayRequest(
        endpoint="chat", model=parsed.model, texts=tuple(texts), max_tokens=asked,
        metadata=metadata_of(parsed.ghat.metadata if parsed.ghat else None, headers),
        requested_app=requested_app(parsed.ghat, parsed.ghat_app, headers),
        stream=bool(parsed.stream), grounding=tuple(parsed.ghat.documents) if parsed.ghat else (),
    )  # fmt: skip


def decode_embeddings(body: JSON, headers: Mapping[str, str]) -> GatewayRequest:
    """Embedding inputs are user text; token-id arrays are decoded (cl100k_base) and guarded like text."""
    parsed = validate(_Embeddings, body)
    assert isinstance(parsed, _Embeddings)
    forwarded = _forwarded(body)
    raw = forwarded.get("input")
    texts: list[TextField]
    if isinstance(raw, list) and raw and isinstance(raw[0], int):
        texts = [TextField("user", token_text(raw, "input"), ("input",), TOKEN_IDS)]
        texts.extend(slots({k: v for k, v in forwarded.items() if k != "input"}, EMBEDDINGS_REQUEST, "user"))
    elif isinstance(raw, list) and raw and isinstance(raw[0], list):
        texts = [TextField("user", token_text(ids, f"input[{k}]"), ("input", k), TOKEN_IDS)
                 for k, ids in enumerate(raw)]  # fmt: skip
        texts.extend(slots({k: v for k, v in forwarded.items() if k != "input"}, EMBEDDINGS_REQUEST, "user"))
    else:
        texts = slots(forwarded, EMBEDDINGS_REQUEST, "user")
    texts.extend(_documents(parsed.ghat))
    return GatewayRequest(
        endpoint="embeddings", model=parsed.model, texts=tuple(texts),
        metadata=metadata_of(parsed.ghat.metadata if parsed.ghat else None, headers),
        requested_app=requested_app(parsed.ghat, parsed.ghat_app, headers),
        grounding=tuple(parsed.ghat.documents) if parsed.ghat else (),
    )  # fmt: skip


TOKEN_IDS = "token_ids"  # the slot kind of embeddings input sent as token ids
TOKEN_ENCODING = "cl100k_base"  # what OpenAI's embedding models read


def token_text(ids: list[int], param: str) -> str:
    """The text token ids stand for; BadRequest when ghat's tokenizer cannot read them (never forwarded unread)."""
    enc = encoding(TOKEN_ENCODING)
    if enc is None:
        raise BadRequest(f"'{param}' is token ids, and this gateway has no tokenizer to read them; send text.",
                         param=param)  # fmt: skip
    try:
        data: bytes = enc.decode_bytes(ids)
        return data.decode("utf-8")
    except (KeyError, ValueError, TypeError, OverflowError, UnicodeDecodeError) as exc:
        raise BadRequest(f"'{param}' holds token ids that {TOKEN_ENCODING} cannot decode ({exc}); "
                         "send text or ids of that encoding.", param=param) from None  # fmt: skip


def upstream_body(body: JSON, before: GatewayRequest, after: GatewayRequest) -> JSON:
    """The body to dispatch: ghat's fields stripped, guarded texts written back, the token cap set.

    The cap goes in the caller's own field; when the caller sent none and a cap
    applies, in `max_completion_tokens` — the field every current OpenAI chat
    model accepts (reasoning models refuse `max_tokens`); the anthropic adapter
    reads either.
    """
    out = _forwarded(body)
    if before.texts is not after.texts:
        edits = [(s.path, new.text) for s, new in zip(before.texts, after.texts, strict=True)
                 if s.text != new.text and s.path and s.path[0] != "ghat"]  # fmt: skip
        tokens = [(p, t) for p, t in edits if _is_token_slot(before, p)]
        out = rewrite(out, [e for e in edits if e not in tokens])
        for path, text in tokens:
            enc = encoding(TOKEN_ENCODING)
            assert enc is not None  # decoding the ids needed it
            ids = list(enc.encode_ordinary(text))
            out = rewrite_value(out, path, ids)
    cap = after.max_tokens
    if cap is not None and after.endpoint == "chat" and cap != before.max_tokens:
        present = [f for f in ("max_completion_tokens", "max_tokens") if f in out]
        for name in present or ["max_completion_tokens"]:
            out[name] = cap
    return out


def _is_token_slot(request: GatewayRequest, path: BodyPath) -> bool:
    return any(s.path == path and s.kind == TOKEN_IDS for s in request.texts)


RESPONSE_SHAPES: dict[str, Shape] = {"chat": RESPONSE, "embeddings": EMBEDDINGS_RESPONSE}
ERROR_SHAPE: Shape = Text("error")  # a provider's error message, guarded as output before the caller sees it


def strip_logprobs(response: JSON) -> None:
    """Drop `logprobs` from every choice: token pieces (and their bytes) would spell out what redaction hid."""
    for choice in response.get("choices") or ():
        if isinstance(choice, dict) and choice.get("logprobs") is not None:
            choice["logprobs"] = None

# What a stream holds back and guards whole at a choice's end: its tool calls (and the legacy function call).
DELTA_CALLS: Shape = Obj({"tool_calls": ListOf(Obj({"index": Exempt(), "id": Text("name"),
                                                     "type": Enum(frozenset({"function"})), "function": _FUNCTION_CALL},
                                                    rest=Free("unknown"))),
                          "function_call": _FUNCTION_CALL})  # fmt: skip
