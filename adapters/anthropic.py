"""Anthropic's Messages API behind OpenAI's chat completions shape, both ways, streams included.

Callers and guardrails only ever see OpenAI shapes; this module is the one
place that knows Anthropic's: `system` apart from the turns, a required
`max_tokens`, content blocks, `tool_use`/`tool_result`, its stop reasons, its
usage fields (cache reads counted inside `prompt_tokens`, as OpenAI does) and
its named SSE events.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from adapters.http import Upstream, json_event, loads_object, malformed, stream_cut
from adapters.jsonwire import dumps, loads
from adapters.replies import MAX_CHOICES, invalid_reply
from engine.decision import Candidate
from engine.ports import JSON, ProviderError
from engine.usage import token_count

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096  # Anthropic requires max_tokens; OpenAI callers often omit it
STOP_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls",
                "refusal": "content_filter", "pause_turn": "stop"}


# ── requests ────────────────────────────────────────────────────────────
def _blocks(content: Any) -> list[JSON]:
    """OpenAI content (string or parts) → Anthropic content blocks."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    out: list[JSON] = []
    for part in content or ():
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text":
            out.append({"type": "text", "text": str(part.get("text", ""))})
        elif part.get("type") == "image_url":
            url = str((part.get("image_url") or {}).get("url", ""))
            if url.startswith("data:") and ";base64," in url:
                media, data = url[5:].split(";base64,", 1)
                out.append({"type": "image", "source": {"type": "base64", "media_type": media, "data": data}})
            else:
                out.append({"type": "image", "source": {"type": "url", "url": url}})
    return out


def _text_of(content: Any) -> str:
    return "\n".join(b["text"] for b in _blocks(content) if b["type"] == "text")


def _refuse(field: str, why: str) -> ProviderError:
    """A chat field this route cannot honour: 400 naming it, never dropped silently (not retried, P8)."""
    return ProviderError(f"'{field}' cannot be honoured by an anthropic provider: {why}", status=400,
                         code="invalid_request")


def _check_honourable(body: JSON) -> None:
    """Chat fields Anthropic's Messages API has no way to express."""
    n = body.get("n")
    if isinstance(n, int) and n > 1:
        raise _refuse("n", "Anthropic returns one answer per request; send n separate requests")
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") not in (None, "text"):
        raise _refuse("response_format", "Anthropic has no JSON mode; describe the format in the prompt or use a "
                      "tool whose input_schema is the schema")
    if body.get("logprobs") or body.get("top_logprobs"):
        raise _refuse("logprobs", "Anthropic does not return token log probabilities")
    for name, why in _NO_EQUIVALENT.items():
        value = body.get(name)
        if value not in (None, 0, 0.0, {}, [], ["text"]):
            raise _refuse(name, why)
    for k, tool in enumerate(body.get("tools") or ()):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise _refuse(f"tools[{k}]", "only function tools translate to Anthropic tools")


# Chat parameters that change the answer and that the Messages API cannot express (fields that only tag or
# route a request on OpenAI's side, such as `store`, `metadata` or `service_tier`, have no effect on it).
_NO_EQUIVALENT = {
    "seed": "Anthropic has no sampling seed",
    "presence_penalty": "Anthropic has no presence penalty",
    "frequency_penalty": "Anthropic has no frequency penalty",
    "logit_bias": "Anthropic has no logit bias",
    "audio": "Anthropic does not answer with audio",
    "modalities": "Anthropic answers with text only",
    "prediction": "Anthropic has no predicted outputs",
    "reasoning_effort": "set the thinking budget on an Anthropic model through /v1/messages instead",
    "web_search_options": "Anthropic's web search is a server tool of /v1/messages",
}


def to_messages(body: JSON) -> JSON:
    """An OpenAI chat completions body → an Anthropic Messages body (consecutive same-role turns merged)."""
    _check_honourable(body)
    system: list[str] = []
    turns: list[JSON] = []

    def add(role: str, blocks: list[JSON]) -> None:
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})

    for m in body.get("messages") or ():
        role = m.get("role")
        if role in ("system", "developer"):
            system.append(_text_of(m.get("content")))
        elif role == "tool":
            add("user", [{"type": "tool_result", "tool_use_id": str(m.get("tool_call_id", "")),
                          "content": _text_of(m.get("content"))}])
        elif role == "assistant":
            blocks = _blocks(m.get("content"))
            for call in m.get("tool_calls") or ():
                fn = call.get("function") or {}
                try:  # strict: a lone surrogate escaped inside the arguments text must not go upstream either
                    args = loads(fn.get("arguments") or "{}")
                except (ValueError, TypeError, RecursionError):
                    args = {}
                if not isinstance(args, dict):
                    args = {}
                blocks.append({"type": "tool_use", "id": call.get("id", ""), "name": fn.get("name", ""),
                               "input": args})
            add("assistant", blocks)
        else:
            add("user", _blocks(m.get("content")))
    out: JSON = {
        "model": body["model"],
        "messages": turns,
        "max_tokens": body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_MAX_TOKENS,
    }
    if system:
        out["system"] = "\n\n".join(system)
    for key in ("temperature", "top_p", "stream"):
        if body.get(key) is not None:
            out[key] = body[key]
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("user"):
        out["metadata"] = {"user_id": str(body["user"])}
    tools = [t.get("function") or {} for t in body.get("tools") or () if t.get("type") == "function"]
    if tools:
        out["tools"] = [{"name": f.get("name", ""), "description": f.get("description", ""),
                         "input_schema": f.get("parameters") or {"type": "object", "properties": {}}} for f in tools]
        choice = body.get("tool_choice")
        if choice == "required":
            out["tool_choice"] = {"type": "any"}
        elif choice == "none":
            out["tool_choice"] = {"type": "none"}
        elif isinstance(choice, dict) and choice.get("function"):
            out["tool_choice"] = {"type": "tool", "name": choice["function"].get("name", "")}
        current = out.get("tool_choice", {"type": "auto"})
        if body.get("parallel_tool_calls") is False and current["type"] != "none":  # one tool call at a time
            out["tool_choice"] = {**current, "disable_parallel_tool_use": True}
    return out


# ── responses ───────────────────────────────────────────────────────────
def usage_to_openai(u: Mapping[str, Any]) -> JSON:
    """Anthropic usage → OpenAI's: cache reads and writes are part of the prompt, reads also reported apart.

    A count that is not a count is carried over as the provider sent it, so
    `engine/usage.py` marks the usage untrusted instead of this adding a
    string to a number (which was a 500 after a billed call).
    """
    raw = {k: u.get(k) for k in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens",
                                 "output_tokens")}  # fmt: skip
    counts = {k: token_count(v) for k, v in raw.items()}
    bad = next((raw[k] for k, n in counts.items() if n is None), None)
    read = counts["cache_read_input_tokens"]
    prompt: Any = bad if None in (counts["input_tokens"], read, counts["cache_creation_input_tokens"]) else (
        counts["input_tokens"] + read + counts["cache_creation_input_tokens"])  # type: ignore[operator]
    completion: Any = raw["output_tokens"] if counts["output_tokens"] is None else counts["output_tokens"]
    total: Any = prompt + completion if type(prompt) is int and type(completion) is int else None
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total,
            "prompt_tokens_details": {"cached_tokens": raw["cache_read_input_tokens"] if read is None else read}}


def _str(provider: str, obj: JSON, key: str, where: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise invalid_reply(provider, f"{where}.{key} is {type(value).__name__}, not a string")
    return value


def _obj(provider: str, obj: JSON, key: str, where: str) -> JSON:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid_reply(provider, f"{where}.{key} is {type(value).__name__}, not an object")
    return value


def _block_index(provider: str, ev: JSON) -> int:
    index = ev.get("index", 0)
    if type(index) is not int or not 0 <= index < MAX_CHOICES * 64:
        raise invalid_reply(provider, f"{ev.get('type')} index is {index!r:.40}, not a block index")
    return index


def from_message(msg: JSON, provider: str = "anthropic") -> JSON:
    """An Anthropic message → an OpenAI chat.completion (fields of the wrong type: `invalid_reply`)."""
    text: list[str] = []
    calls: list[JSON] = []
    content = msg.get("content") or []
    if not isinstance(content, list):
        raise invalid_reply(provider, f"content is {type(content).__name__}, not a list")
    for i, b in enumerate(content):
        if not isinstance(b, dict):
            raise invalid_reply(provider, f"content[{i}] is {type(b).__name__}, not an object")
        if b.get("type") == "text":
            text.append(_str(provider, b, "text", f"content[{i}]"))
        elif b.get("type") == "tool_use":
            args = _obj(provider, b, "input", f"content[{i}]")
            calls.append({"id": _str(provider, b, "id", f"content[{i}]"), "type": "function",
                          "function": {"name": _str(provider, b, "name", f"content[{i}]"),
                                       "arguments": json.dumps(args)}})  # fmt: skip
    message: JSON = {"role": "assistant", "content": "".join(text) if text or not calls else None}
    if calls:
        message["tool_calls"] = calls
    stop = _str(provider, msg, "stop_reason", "message")
    return {
        "id": _str(provider, msg, "id", "message"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": _str(provider, msg, "model", "message"),
        "choices": [{"index": 0, "message": message, "finish_reason": STOP_REASONS.get(stop, "stop")}],
        "usage": usage_to_openai(_obj(provider, msg, "usage", "message")),
    }


class AnthropicProvider:
    """Anthropic's API (or a compatible gateway) with one pooled client."""

    idle_timeouts = True  # `Upstream` bounds the wait between stream chunks on the socket

    def __init__(
        self,
        name: str,
        base_url: str,
        api_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> None:
        self.name = name
        sent = {"anthropic-version": API_VERSION, **{k.lower(): v for k, v in (headers or {}).items()}}
        if api_key and "x-api-key" not in sent:
            sent["x-api-key"] = api_key
        self._http = Upstream(name, base_url, sent, timeout_s)

    @staticmethod
    def _payload(body: JSON, stream: bool) -> bytes:
        payload = to_messages(body)
        if stream:
            payload["stream"] = True
        return dumps(payload)

    async def chat(self, body: JSON, candidate: Candidate, timeout_s: float | None) -> JSON:
        """A Messages API answer as an OpenAI chat.completion."""
        msg = loads_object(self.name, await self._http.post("/messages", self._payload(body, False), timeout_s))
        if msg.get("type") != "message":
            raise malformed(self.name, "not a message")
        return from_message(msg, self.name)

    async def chat_stream(self, body: JSON, candidate: Candidate, timeout_s: float | None) -> AsyncIterator[JSON]:
        """Anthropic events → OpenAI chunks, ending with a usage chunk (as OpenAI's include_usage does)."""
        events = self._http.events("/messages", self._payload(body, True), timeout_s, _message_stop)
        try:
            async for chunk in _translate(self.name, events):
                yield chunk
        finally:
            await events.aclose()

    async def embeddings(self, body: JSON, candidate: Candidate, timeout_s: float | None) -> JSON:
        raise ProviderError(f"{self.name}: Anthropic has no embeddings API", status=400, code="invalid_model")

    # ── Anthropic Messages (issue 13): the guarded Messages body goes out as it is (native) ──
    async def messages(self, body: JSON, candidate: Candidate, timeout_s: float | None,
                       beta: str | None = None) -> JSON:
        """The upstream's Message, unchanged but checked: thinking blocks and signatures pass through."""
        raw = await self._http.post("/messages", dumps(body), timeout_s, _beta_headers(beta))
        return check_message(self.name, loads_object(self.name, raw))

    async def messages_stream(self, body: JSON, candidate: Candidate, timeout_s: float | None,
                              beta: str | None = None) -> AsyncIterator[JSON]:
        """The upstream's events as dicts (pings dropped, an `error` event raised), ending at message_stop."""
        events = self._http.events("/messages", dumps({**body, "stream": True}), timeout_s, _message_stop,
                                   _beta_headers(beta))  # fmt: skip
        try:
            async for name, data in events:
                ev = json_event(self.name, data)
                kind = ev.get("type", name)
                if kind == "ping":
                    continue
                if kind == "error":
                    raise _stream_error(self.name, ev)
                if not isinstance(kind, str):
                    raise invalid_reply(self.name, "an event without a type")
                yield ev
                if kind == "message_stop":
                    return
        finally:
            await events.aclose()
        raise stream_cut(self.name)

    # ── end of Anthropic Messages ──

    async def aclose(self) -> None:
        """Close the pool."""
        await self._http.aclose()


def _message_stop(event: str, data: bytes) -> bool:
    return event == "message_stop"


async def _translate(provider: str, events: AsyncIterator[tuple[str, bytes]]) -> AsyncIterator[JSON]:
    """The stream state machine: message_start → blocks and deltas → message_delta → message_stop."""
    base: JSON = {"id": "", "object": "chat.completion.chunk", "created": int(time.time()), "model": ""}
    usage: dict[str, Any] = {}
    tools: dict[int, int] = {}  # Anthropic block index → OpenAI tool_calls index
    finish: str | None = None

    def chunk(delta: JSON, reason: str | None = None) -> JSON:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": reason}]}

    async for name, data in events:
        ev = json_event(provider, data)
        kind = ev.get("type", name)
        if kind == "message_start":
            msg = _obj(provider, ev, "message", "message_start")
            base["id"] = _str(provider, msg, "id", "message_start.message")
            base["model"] = _str(provider, msg, "model", "message_start.message")
            usage.update(_obj(provider, msg, "usage", "message_start.message"))
            yield chunk({"role": "assistant", "content": ""})
        elif kind == "content_block_start":
            block = _obj(provider, ev, "content_block", "content_block_start")
            index = _block_index(provider, ev)
            if block.get("type") == "tool_use":
                i = tools[index] = len(tools)
                yield chunk({"tool_calls": [{"index": i, "id": _str(provider, block, "id", "content_block"),
                                             "type": "function", "function": {
                                                 "name": _str(provider, block, "name", "content_block"),
                                                 "arguments": ""}}]})  # fmt: skip
            elif block.get("type") == "text":
                text = _str(provider, block, "text", "content_block")
                if text:
                    yield chunk({"content": text})
        elif kind == "content_block_delta":
            delta = _obj(provider, ev, "delta", "content_block_delta")
            index = _block_index(provider, ev)
            if delta.get("type") == "text_delta":
                yield chunk({"content": _str(provider, delta, "text", "content_block_delta.delta")})
            elif delta.get("type") == "input_json_delta" and index in tools:
                partial = _str(provider, delta, "partial_json", "content_block_delta.delta")
                yield chunk({"tool_calls": [{"index": tools[index], "function": {"arguments": partial}}]})
        elif kind == "message_delta":
            usage.update({k: v for k, v in _obj(provider, ev, "usage", "message_delta").items() if v is not None})
            reason = _str(provider, _obj(provider, ev, "delta", "message_delta"), "stop_reason", "message_delta")
            if reason:
                finish = STOP_REASONS.get(reason, "stop")
                yield chunk({}, finish)
        elif kind == "message_stop":
            if finish is None:
                yield chunk({}, "stop")
            yield {**base, "choices": [], "usage": usage_to_openai(usage)}
            return
        elif kind == "error":
            raise _stream_error(provider, ev)
    raise stream_cut(provider)


def _stream_error(provider: str, ev: JSON) -> ProviderError:
    """An `error` event mid-stream: overloaded and api errors are retryable (P8), others are not."""
    err = _obj(provider, ev, "error", "error")
    etype = str(err.get("type", ""))
    return ProviderError(f"{provider}: upstream error in stream: {str(err.get('message', etype))[:500]}",
                         status=503, code="route_unavailable",
                         retryable=etype in ("overloaded_error", "api_error"))  # fmt: skip


# ── Anthropic Messages (issue 13): checks on a native answer, the caller's beta header ──
_BETA = re.compile(r"[A-Za-z0-9._,\- ]{1,512}")


def _beta_headers(beta: str | None) -> dict[str, str] | None:
    """The caller's `anthropic-beta` flags, forwarded only when they are plain flag names."""
    return {"anthropic-beta": beta} if beta and _BETA.fullmatch(beta) else None


def check_message(provider: str, msg: JSON) -> JSON:
    """A native answer must be a Message with a list of block objects; anything else is an invalid reply."""
    if msg.get("type") != "message":
        raise malformed(provider, "not a message")
    content = msg.get("content")
    if not isinstance(content, list) or not all(isinstance(b, dict) for b in content):
        raise invalid_reply(provider, "content is not a list of blocks")
    return msg


# ── end of Anthropic Messages ──
