"""Anthropic Messages over a chat-completions upstream: the body to chat, the answer and its stream back.

When a `/v1/messages` request is routed to a provider that speaks OpenAI's
chat protocol, this is the translation, both ways. It refuses — a 400
`invalid_request` naming the field, not retried and not silently dropped —
anything chat cannot express: `thinking` enabled, `top_k`, server tools, an
errored tool result, images inside tool results, document titles, unknown
fields. Two things are not refused because chat honours them by other means:
`cache_control` (OpenAI caches prompt prefixes by itself) and thinking
blocks of earlier assistant turns (omitted, as Anthropic itself leaves
earlier turns' thinking out of the model's context).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from adapters.replies import invalid_reply
from engine.ports import JSON, ProviderError
from engine.usage import token_count

_TOP_LEVEL = frozenset({"model", "messages", "system", "max_tokens", "stream", "temperature", "top_p",
                        "stop_sequences", "metadata", "tools", "tool_choice", "thinking"})  # fmt: skip
_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use",
         "content_filter": "refusal"}  # fmt: skip
MAX_STOP = 4  # OpenAI's limit on `stop`


def refuse(provider: str, field: str, why: str) -> ProviderError:
    """A Messages field a chat upstream cannot honour: a 400 naming it (never dropped silently)."""
    return ProviderError(f"'{field}' cannot be honoured by provider {provider} (OpenAI chat protocol): {why}",
                         status=400, code="invalid_request")  # fmt: skip


# ── the request ─────────────────────────────────────────────────────────


def _image(provider: str, block: JSON, where: str) -> JSON:
    source = block.get("source")
    if not isinstance(source, dict):
        raise refuse(provider, f"{where}.source", "an image needs a source")
    if source.get("type") == "base64":
        return {"type": "image_url", "image_url": {"url": f"data:{source.get('media_type')};base64,"
                                                          f"{source.get('data', '')}"}}  # fmt: skip
    if source.get("type") == "url":
        return {"type": "image_url", "image_url": {"url": str(source.get("url", ""))}}
    raise refuse(provider, f"{where}.source.type", "only base64 and url images translate")


def _document(provider: str, block: JSON, where: str) -> JSON:
    for name in ("title", "context", "citations"):
        if block.get(name) is not None:
            raise refuse(provider, f"{where}.{name}", "chat has no document metadata")
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    if isinstance(source, dict) and kind == "text":
        return {"type": "text", "text": str(source.get("data", ""))}
    if isinstance(source, dict) and kind == "base64" and source.get("media_type") == "application/pdf":
        return {"type": "file", "file": {"filename": "document.pdf",
                                         "file_data": f"data:application/pdf;base64,{source.get('data', '')}"}}
    raise refuse(provider, f"{where}.source", "only text and base64 PDF documents translate")


def _part(provider: str, block: Any, where: str) -> JSON:
    """A user-side block as a chat content part."""
    kind = block.get("type") if isinstance(block, dict) else None
    if kind == "text":
        if block.get("citations"):
            raise refuse(provider, f"{where}.citations", "chat has no citations")
        return {"type": "text", "text": str(block.get("text", ""))}
    if kind == "image":
        return _image(provider, block, where)
    if kind == "document":
        return _document(provider, block, where)
    raise refuse(provider, where, f"a {kind!r} block has no chat equivalent here")


def _tool_result(provider: str, block: JSON, where: str) -> JSON:
    if block.get("is_error"):
        raise refuse(provider, f"{where}.is_error", "chat tool messages cannot mark an error")
    content = block.get("content")
    if isinstance(content, list):
        parts = [_part(provider, b, f"{where}.content[{k}]") for k, b in enumerate(content)]
        if any(p["type"] != "text" for p in parts):
            raise refuse(provider, f"{where}.content", "chat tool messages carry text only")
        content = parts
    return {"role": "tool", "tool_call_id": str(block.get("tool_use_id", "")),
            "content": content if content is not None else ""}


def _turn(provider: str, turn: JSON, where: str) -> list[JSON]:
    """One Messages turn as chat messages (a user turn's tool results become tool messages, first)."""
    role, content = turn.get("role"), turn.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    blocks = content if isinstance(content, list) else []
    if role == "assistant":
        text: list[str] = []
        calls: list[JSON] = []
        for k, b in enumerate(blocks):
            kind = b.get("type") if isinstance(b, dict) else None
            if kind == "text":
                text.append(str(b.get("text", "")))
            elif kind == "tool_use":
                calls.append({"id": str(b.get("id", "")), "type": "function",
                              "function": {"name": str(b.get("name", "")),
                                           "arguments": json.dumps(b.get("input", {}), ensure_ascii=False)}})
            elif kind not in ("thinking", "redacted_thinking"):  # earlier turns' thinking: see the module doc
                raise refuse(provider, f"{where}.content[{k}]", f"a {kind!r} block has no chat equivalent")
        message: JSON = {"role": "assistant", "content": "".join(text) if text or not calls else None}
        if calls:
            message["tool_calls"] = calls
        return [message]
    tools = [_tool_result(provider, b, f"{where}.content[{k}]") for k, b in enumerate(blocks)
             if isinstance(b, dict) and b.get("type") == "tool_result"]  # fmt: skip
    parts = [_part(provider, b, f"{where}.content[{k}]") for k, b in enumerate(blocks)
             if not (isinstance(b, dict) and b.get("type") == "tool_result")]  # fmt: skip
    return [*tools, *([{"role": "user", "content": parts}] if parts else [])]


def _system(provider: str, system: Any) -> JSON:
    if isinstance(system, str):
        return {"role": "system", "content": system}
    parts = []
    for k, b in enumerate(system if isinstance(system, list) else []):
        if not isinstance(b, dict) or b.get("type") != "text" or b.get("citations"):
            raise refuse(provider, f"system[{k}]", "only text blocks translate")
        parts.append({"type": "text", "text": str(b.get("text", ""))})
    return {"role": "system", "content": parts}


def _tools(provider: str, tools: Any) -> list[JSON]:
    out = []
    for k, t in enumerate(tools if isinstance(tools, list) else []):
        if not isinstance(t, dict) or t.get("type") not in (None, "custom") or "input_schema" not in t:
            raise refuse(provider, f"tools[{k}]", "only client tools with an input_schema translate (no server tools)")
        fn: JSON = {"name": t.get("name", ""), "parameters": t["input_schema"]}
        if t.get("description") is not None:
            fn["description"] = t["description"]
        out.append({"type": "function", "function": fn})
    return out


def _tool_choice(provider: str, choice: Any, out: JSON) -> None:
    if not isinstance(choice, dict):
        raise refuse(provider, "tool_choice", "must be an object")
    kind = choice.get("type")
    mapped = {"auto": "auto", "any": "required", "none": "none"}.get(str(kind))
    if kind == "tool":
        out["tool_choice"] = {"type": "function", "function": {"name": str(choice.get("name", ""))}}
    elif mapped is not None:
        out["tool_choice"] = mapped
    else:
        raise refuse(provider, "tool_choice.type", f"{kind!r} has no chat equivalent")
    if choice.get("disable_parallel_tool_use"):
        out["parallel_tool_calls"] = False


def to_chat(provider: str, body: JSON) -> JSON:
    """A guarded Messages body as a chat body; ProviderError 400 naming the first field chat cannot honour."""
    for key in body:
        if key not in _TOP_LEVEL:
            raise refuse(provider, key, "chat has no such parameter")
    thinking = body.get("thinking")
    if thinking is not None and not (isinstance(thinking, dict) and thinking.get("type") == "disabled"):
        raise refuse(provider, "thinking", "chat has no thinking budget")
    messages: list[JSON] = []
    if body.get("system") is not None:
        messages.append(_system(provider, body["system"]))
    for i, turn in enumerate(body.get("messages") or ()):
        messages.extend(_turn(provider, turn, f"messages[{i}]"))
    out: JSON = {"model": body["model"], "messages": messages}
    if body.get("max_tokens") is not None:
        out["max_completion_tokens"] = body["max_tokens"]
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            out[key] = body[key]
    stop = body.get("stop_sequences")
    if stop:
        if not isinstance(stop, list) or len(stop) > MAX_STOP:
            raise refuse(provider, "stop_sequences", f"chat takes at most {MAX_STOP} stop sequences")
        out["stop"] = stop
    metadata = body.get("metadata")
    if isinstance(metadata, dict):
        for key, value in metadata.items():
            if key != "user_id":
                raise refuse(provider, f"metadata.{key}", "chat carries only the user id")
            if value is not None:
                out["user"] = str(value)
    if body.get("tools"):
        out["tools"] = _tools(provider, body["tools"])
    if body.get("tool_choice") is not None:
        _tool_choice(provider, body["tool_choice"], out)
    return out


# ── the answer ──────────────────────────────────────────────────────────


def usage_to_anthropic(u: Any) -> JSON:
    """OpenAI usage → Anthropic's: cached prompt tokens reported apart from the fresh input."""
    if not isinstance(u, dict):
        return {"input_tokens": 0, "output_tokens": 0}
    details = u.get("prompt_tokens_details")
    cached = token_count(details.get("cached_tokens")) if isinstance(details, dict) else 0
    prompt, completion = token_count(u.get("prompt_tokens")), token_count(u.get("completion_tokens"))
    if prompt is None or completion is None or cached is None:  # kept as sent: the usage reader marks it untrusted
        return {"input_tokens": u.get("prompt_tokens"), "output_tokens": u.get("completion_tokens")}
    return {"input_tokens": max(prompt - cached, 0), "cache_read_input_tokens": cached,
            "cache_creation_input_tokens": 0, "output_tokens": completion}  # fmt: skip


def _arguments(provider: str, text: Any) -> JSON:
    try:
        value = json.loads(text) if isinstance(text, str) and text else {}
    except ValueError:
        raise invalid_reply(provider, "tool call arguments are not JSON") from None
    if not isinstance(value, dict):
        raise invalid_reply(provider, "tool call arguments are not a JSON object")
    return value


def from_chat(provider: str, response: JSON) -> JSON:
    """A chat completion (already checked by the adapter) as an Anthropic Message."""
    choice = (response.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    blocks: list[JSON] = []
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        blocks.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    for name in ("content", "refusal"):
        if isinstance(message.get(name), str) and message[name]:
            blocks.append({"type": "text", "text": message[name]})
    for call in message.get("tool_calls") or ():
        fn = call.get("function") or {}
        blocks.append({"type": "tool_use", "id": str(call.get("id", "")), "name": str(fn.get("name", "")),
                       "input": _arguments(provider, fn.get("arguments"))})
    stop = "refusal" if message.get("refusal") else _STOP.get(str(choice.get("finish_reason")), "end_turn")
    return {"id": str(response.get("id", "")), "type": "message", "role": "assistant",
            "model": str(response.get("model", "")), "content": blocks, "stop_reason": stop, "stop_sequence": None,
            "usage": usage_to_anthropic(response.get("usage"))}  # fmt: skip


class _Events:
    """The state of one translated stream: which block is open, which tool call it is."""

    def __init__(self) -> None:
        self.count = 0  # blocks started
        self.open: str | None = None  # the open block's kind: text | thinking | tool_use
        self.tool: int | None = None  # the chat tool-call index the open tool_use block carries

    def close(self) -> list[JSON]:
        if self.open is None:
            return []
        self.open, self.tool = None, None
        return [{"type": "content_block_stop", "index": self.count - 1}]

    def start(self, block: JSON) -> list[JSON]:
        out = self.close()
        out.append({"type": "content_block_start", "index": self.count, "content_block": block})
        self.open = block["type"]
        self.count += 1
        return out

    def delta(self, delta: JSON) -> JSON:
        return {"type": "content_block_delta", "index": self.count - 1, "delta": delta}


def _delta_events(provider: str, state: _Events, delta: JSON) -> list[JSON]:
    out: list[JSON] = []
    reasoning = delta.get("reasoning_content") or delta.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        if state.open != "thinking":
            out += state.start({"type": "thinking", "thinking": "", "signature": ""})
        out.append(state.delta({"type": "thinking_delta", "thinking": reasoning}))
    for name in ("content", "refusal"):
        text = delta.get(name)
        if isinstance(text, str) and text:
            if state.open != "text":
                out += state.start({"type": "text", "text": ""})
            out.append(state.delta({"type": "text_delta", "text": text}))
    for frag in delta.get("tool_calls") or ():
        index = frag.get("index", 0)
        fn = frag.get("function") or {}
        if state.open != "tool_use" or state.tool != index:
            if frag.get("id") is None:
                raise invalid_reply(provider, "a tool call fragment for a call that is not the open one")
            out += state.start({"type": "tool_use", "id": str(frag["id"]), "name": str(fn.get("name", "")),
                                "input": {}})
            state.tool = index
        if fn.get("arguments"):
            out.append(state.delta({"type": "input_json_delta", "partial_json": str(fn["arguments"])}))
    return out


async def chat_events(provider: str, chunks: AsyncIterator[JSON]) -> AsyncIterator[JSON]:
    """Chat chunks (with the final usage chunk) as Anthropic's typed events, message_start to message_stop."""
    state = _Events()
    finish: str | None = None
    usage: Any = None
    started = False
    try:
        async for chunk in chunks:
            if not started:
                started = True
                yield {"type": "message_start", "message": {
                    "id": str(chunk.get("id", "")), "type": "message", "role": "assistant",
                    "model": str(chunk.get("model", "")), "content": [], "stop_reason": None, "stop_sequence": None,
                    "usage": {"input_tokens": 0, "output_tokens": 0}}}  # fmt: skip
            if chunk.get("usage"):
                usage = chunk["usage"]
            for choice in chunk.get("choices") or ():
                if choice.get("index", 0) != 0:
                    continue
                for event in _delta_events(provider, state, choice.get("delta") or {}):
                    yield event
                if choice.get("finish_reason"):
                    finish = str(choice["finish_reason"])
    finally:
        closer = getattr(chunks, "aclose", None)
        if closer is not None:
            await closer()
    for event in state.close():
        yield event
    yield {"type": "message_delta", "delta": {"stop_reason": _STOP.get(finish or "stop", "end_turn"),
                                              "stop_sequence": None}, "usage": usage_to_anthropic(usage)}
    yield {"type": "message_stop"}
