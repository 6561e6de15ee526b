"""OpenAI Responses (`POST /v1/responses`) ↔ the conversation: the shapes of its bodies, both directions.

The request shape names every field of the API reference
(platform.openai.com/docs/api-reference/responses/create) by what it
carries: `instructions` as system text, `input` as a string or a list of
items — messages (by their role, with `input_text` / `input_image` /
`input_file` / `output_text` / `refusal` parts), `function_call` items
(role assistant, `arguments` as JSON text, so redaction keeps it valid JSON),
`function_call_output` items (role tool: what indirect injection reads) and
`reasoning` items (summaries and reasoning text as assistant text) — `tools`,
`tool_choice` and `text` (the JSON schema of `text.format`) as what the
developer wrote (role system). Everything else — `metadata`, `user`,
`reasoning`, `include`, fields added after this was written — is a `Free`
slot: scanned.

What ghat cannot guard it refuses, naming the field (400 `invalid_request`):
server-side state (`conversation`, `prompt`, `background`, `item_reference`
items: their text lives at the provider and never passed ghat's input
guards; `previous_response_id` is honoured only for a response this gateway
served itself, adapters/api/served_responses.py) and built-in tools (web search, file
search, computer use, code interpreter, MCP, shell, …: what they fetch
reaches the model without passing the guards). docs/guardrails.md lists it.

The response shape does the same for the Response object's `output` items,
and everything a provider echoes back (`instructions`, `tools`, `metadata`)
or adds is scanned as output. `logprobs` of output text are token pieces:
they cannot be redacted soundly and are removed when output guards enforce.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from adapters.codecs.body import JSON, STRIPPED, BadRequest, GhatField, Strict, metadata_of, requested_app, validate
from engine.conversation import Enum, Exempt, Free, JsonText, ListOf, Obj, OneOf, Shape, Tagged, Text, rewrite, slots
from engine.ports import ProviderError
from engine.request import GatewayRequest, TextField

ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
STATUS = Enum(frozenset({"in_progress", "completed", "incomplete", "failed", "queued", "cancelled"}))

_PART_TYPES = frozenset({"input_text", "output_text", "refusal", "input_image", "input_file", "summary_text",
                         "reasoning_text", "text"})  # fmt: skip
_TYPE = Enum(_PART_TYPES)
_TEXT = Obj({"type": _TYPE, "text": Text("text")})
PART: Shape = Tagged("type", {
    "input_text": _TEXT,
    "text": _TEXT,
    "output_text": Obj({"type": _TYPE, "text": Text("text"), "annotations": Free("annotation"),
                        "logprobs": Free("logprobs")}),
    "refusal": Obj({"type": _TYPE, "refusal": Text("refusal")}),
    "input_image": Obj({"type": _TYPE, "image_url": Text("image_url"), "file_id": Text("name"),
                        "detail": Enum(frozenset({"auto", "low", "high"}))}),
    "input_file": Obj({"type": _TYPE, "file_data": Text("binary"), "file_id": Text("name"),
                       "filename": Text("name"), "file_url": Text("image_url")}),
    "summary_text": Obj({"type": _TYPE, "text": Text("reasoning")}),
    "reasoning_text": Obj({"type": _TYPE, "text": Text("reasoning")}),
}, Free("unknown"))  # fmt: skip
_CONTENT = OneOf({str: Text("text"), list: ListOf(PART)})

# The item types ghat guards; any other (built-in tool calls and their outputs, item references) is refused.
ITEM_TYPES = frozenset({"message", "function_call", "function_call_output", "reasoning"})
MESSAGE_ITEM = Obj({"type": Enum(frozenset({"message"})), "role": Enum(frozenset(ROLES)), "content": _CONTENT,
                    "id": Text("name"), "status": STATUS}, role_from="role", roles=ROLES)  # fmt: skip
FUNCTION_CALL = Obj({"type": Enum(frozenset({"function_call"})), "id": Text("name"), "call_id": Text("name"),
                     "name": Text("name"), "arguments": JsonText("tool_arguments"), "status": STATUS},
                    role_from="type", roles={"function_call": "assistant"})  # fmt: skip
# a tool's output is often JSON (Codex CLI sends `{"output": …, "metadata": …}`): its leaves are the slots, so
# `\u0040` cannot hide an `@`, and it stays valid JSON after redaction; other text is one slot
FUNCTION_OUTPUT = Obj({"type": Enum(frozenset({"function_call_output"})), "id": Text("name"),
                       "call_id": Text("name"), "output": OneOf({str: JsonText("text"), list: ListOf(PART)}),
                       "status": STATUS},
                      role_from="type", roles={"function_call_output": "tool"})  # fmt: skip
REASONING = Obj({"type": Enum(frozenset({"reasoning"})), "id": Text("name"), "summary": ListOf(PART),
                 "content": ListOf(PART), "encrypted_content": Text("binary"), "status": STATUS},
                role_from="type", roles={"reasoning": "assistant"})  # fmt: skip
ITEM: Shape = Tagged("type", {"message": MESSAGE_ITEM, "function_call": FUNCTION_CALL,
                              "function_call_output": FUNCTION_OUTPUT, "reasoning": REASONING},
                     MESSAGE_ITEM)  # an item without `type` is a message (EasyInputMessage)  # fmt: skip

_GHAT = Obj({"documents": ListOf(Text("document", "document"))})
REQUEST: Shape = Obj({
    "model": Exempt(),
    "input": OneOf({str: Text("text"), list: ListOf(ITEM)}),
    "instructions": Text("text", "system"),
    "tools": Free("tool_definition", "system"),
    "tool_choice": Free("tool_definition", "system"),
    "text": Free("schema", "system"),
    "ghat": _GHAT,
}, rest=Free("parameter", "user"))  # fmt: skip

RESPONSE: Shape = Obj({
    "object": Enum(frozenset({"response"})),
    "status": STATUS,
    "output": ListOf(ITEM),
    "usage": Free("usage"),
}, rest=Free("unknown"))  # fmt: skip
ERROR_SHAPE: Shape = Text("error")

# What ghat refuses because it cannot guard it: the text lives at the provider, not in the body.
_SERVER_STATE = {
    "conversation": "the conversation's items are stored at the provider and ghat cannot guard them; "
                    "send them in `input` instead",
    "prompt": "a stored prompt template's text lives at the provider and ghat cannot guard it; "
              "send the text in `instructions` and `input` instead",
}  # fmt: skip
TOOL_TYPES = frozenset({"function"})  # built-in tools bring back what ghat has not guarded


class _Responses(Strict):
    model: str = Field(min_length=1, max_length=256)
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    stream: bool | None = False
    background: bool | None = False
    previous_response_id: str | None = Field(default=None, min_length=1, max_length=256)
    tools: list[dict[str, Any]] | None = None
    ghat_app: str | None = None
    ghat: GhatField | None = None


def _refuse_what_ghat_cannot_guard(body: JSON, parsed: _Responses) -> None:
    for name, why in _SERVER_STATE.items():
        if body.get(name) is not None:
            raise BadRequest(f"'{name}' is not supported by this gateway: {why}.", param=name)
    if parsed.background:
        raise BadRequest("'background' is not supported by this gateway: a background response is polled "
                         "later from the provider, past the output guardrails.", param="background")  # fmt: skip
    for i, tool in enumerate(parsed.tools or ()):
        kind = tool.get("type")
        if not isinstance(kind, str) or kind not in TOOL_TYPES:
            raise BadRequest(f"Tool type '{kind}' (tools[{i}]) is not supported by this gateway: what a built-in "
                             "tool fetches reaches the model without passing the guardrails; only function "
                             "tools are served.", param=f"tools[{i}].type")  # fmt: skip
    if isinstance(parsed.input, list):
        for i, item in enumerate(parsed.input):
            kind = item.get("type", "message")
            if not isinstance(kind, str) or kind not in ITEM_TYPES:
                raise BadRequest(f"Input item type '{kind}' (input[{i}]) is not supported by this gateway; it "
                                 f"serves {', '.join(sorted(ITEM_TYPES))} items.", param=f"input[{i}].type")


def _forwarded(body: JSON) -> JSON:
    return {k: v for k, v in body.items() if k not in STRIPPED}


def decode_responses(body: JSON, headers: Mapping[str, str]) -> GatewayRequest:
    """A Responses body as the engine sees it: every string a slot (P13), what ghat cannot guard refused."""
    parsed = validate(_Responses, body)
    assert isinstance(parsed, _Responses)
    _refuse_what_ghat_cannot_guard(body, parsed)
    texts = slots(_forwarded(body), REQUEST, "user")
    docs = parsed.ghat.documents if parsed.ghat else []
    texts.extend(TextField("document", d, ("ghat", "documents", k), "document") for k, d in enumerate(docs))
    return GatewayRequest(
        endpoint="responses", model=parsed.model, texts=tuple(texts), max_tokens=parsed.max_output_tokens,
        metadata=metadata_of(parsed.ghat.metadata if parsed.ghat else None, headers),
        requested_app=requested_app(parsed.ghat, parsed.ghat_app, headers),
        stream=bool(parsed.stream), grounding=tuple(docs),
    )  # fmt: skip


def upstream_body(body: JSON, before: GatewayRequest, after: GatewayRequest) -> JSON:
    """The body to dispatch: ghat's fields stripped, guarded texts written back, the cap in `max_output_tokens`."""
    out = _forwarded(body)
    if before.texts is not after.texts:
        edits = [(s.path, new.text) for s, new in zip(before.texts, after.texts, strict=True)
                 if s.text != new.text and s.path and s.path[0] != "ghat"]  # fmt: skip
        out = rewrite(out, edits)
    if after.max_tokens is not None and after.max_tokens != before.max_tokens:
        out["max_output_tokens"] = after.max_tokens
    return out


def strip_logprobs(response: JSON) -> None:
    """Drop `logprobs` of every output text: token pieces would spell out what redaction hid."""
    for item in response.get("output") or ():
        for part in (item.get("content") if isinstance(item, dict) else None) or ():
            if isinstance(part, dict) and part.get("logprobs"):
                part["logprobs"] = []


# ── replies: the fields the gateway reads, checked where they arrive (adapters/replies.py's rule) ──


def invalid(provider: str, what: str) -> ProviderError:
    return ProviderError(f"{provider}: invalid reply from upstream: {what}", status=502, code="upstream_error",
                         upstream_status=200)  # fmt: skip


def check_response(provider: str, data: JSON) -> JSON:
    """A Response object whose `output` is a list of objects and whose `usage` is an object (or absent)."""
    output = data.get("output")
    if not isinstance(output, list) or not all(isinstance(i, dict) for i in output):
        raise invalid(provider, "output is not a list of objects")
    if data.get("usage") is not None and not isinstance(data["usage"], dict):
        raise invalid(provider, "usage is not an object")
    for i, item in enumerate(output):
        content = item.get("content")
        if content is not None and not (isinstance(content, list) and all(isinstance(p, dict) for p in content)):
            raise invalid(provider, f"output[{i}].content is not a list of objects")
    return data


def check_event(provider: str, event: JSON) -> JSON:
    """A stream event with a string `type` and, where it carries one, an object `response` or `item`."""
    if not isinstance(event.get("type"), str):
        raise invalid(provider, "stream event has no type")
    for key in ("response", "item", "part"):
        if key in event and not isinstance(event[key], dict):
            raise invalid(provider, f"stream event {key} is not an object")
    if isinstance(event.get("response"), dict) and event["response"].get("output") is not None:
        check_response(provider, event["response"])
    for key in ("output_index", "content_index", "summary_index"):
        value = event.get(key)
        if value is not None and (type(value) is not int or not 0 <= value < 4096):
            raise invalid(provider, f"stream event {key} is {value!r:.40}, not an index")
    for key in ("delta", "text", "arguments", "item_id"):
        if event.get(key) is not None and not isinstance(event[key], str):
            raise invalid(provider, f"stream event {key} is not a string")
    return event
