"""Anthropic's Messages API behind OpenAI's chat completions shape, both ways, streams included.

Callers and guardrails only ever see OpenAI shapes; this module is the one
place that knows Anthropic's: `system` apart from the turns, a required
`max_tokens`, content blocks, `tool_use`/`tool_result`, its stop reasons, its
usage fields (cache reads counted inside `prompt_tokens`, as OpenAI does) and
its named SSE events.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from adapters.http import Upstream, json_event, loads_object, malformed, stream_cut
from adapters.jsonwire import dumps
from engine.decision import Candidate
from engine.ports import JSON, ProviderError

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


def to_messages(body: JSON) -> JSON:
    """An OpenAI chat completions body → an Anthropic Messages body (consecutive same-role turns merged)."""
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
                try:
                    args = json.loads(fn.get("arguments") or "{}")
                except ValueError:
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
    return out


# ── responses ───────────────────────────────────────────────────────────
def usage_to_openai(u: Mapping[str, Any]) -> JSON:
    """Anthropic usage → OpenAI's: cache reads and writes are part of the prompt, reads also reported apart."""
    read = int(u.get("cache_read_input_tokens") or 0)
    prompt = int(u.get("input_tokens") or 0) + read + int(u.get("cache_creation_input_tokens") or 0)
    completion = int(u.get("output_tokens") or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": read}}


def from_message(msg: JSON) -> JSON:
    """An Anthropic message → an OpenAI chat.completion."""
    text: list[str] = []
    calls: list[JSON] = []
    for b in msg.get("content") or ():
        if b.get("type") == "text":
            text.append(str(b.get("text", "")))
        elif b.get("type") == "tool_use":
            calls.append({"id": b.get("id", ""), "type": "function",
                          "function": {"name": b.get("name", ""), "arguments": json.dumps(b.get("input") or {})}})
    message: JSON = {"role": "assistant", "content": "".join(text) if text or not calls else None}
    if calls:
        message["tool_calls"] = calls
    return {
        "id": msg.get("id", ""),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": msg.get("model", ""),
        "choices": [{"index": 0, "message": message,
                     "finish_reason": STOP_REASONS.get(str(msg.get("stop_reason")), "stop")}],
        "usage": usage_to_openai(msg.get("usage") or {}),
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
        return from_message(msg)

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
            msg = ev.get("message") or {}
            base["id"], base["model"] = msg.get("id", ""), msg.get("model", "")
            usage.update(msg.get("usage") or {})
            yield chunk({"role": "assistant", "content": ""})
        elif kind == "content_block_start":
            block = ev.get("content_block") or {}
            if block.get("type") == "tool_use":
                i = tools[int(ev.get("index", 0))] = len(tools)
                yield chunk({"tool_calls": [{"index": i, "id": block.get("id", ""), "type": "function",
                                             "function": {"name": block.get("name", ""), "arguments": ""}}]})
            elif block.get("type") == "text" and block.get("text"):
                yield chunk({"content": block["text"]})
        elif kind == "content_block_delta":
            delta = ev.get("delta") or {}
            if delta.get("type") == "text_delta":
                yield chunk({"content": delta.get("text", "")})
            elif delta.get("type") == "input_json_delta" and int(ev.get("index", 0)) in tools:
                i = tools[int(ev.get("index", 0))]
                yield chunk({"tool_calls": [{"index": i, "function": {"arguments": delta.get("partial_json", "")}}]})
        elif kind == "message_delta":
            usage.update({k: v for k, v in (ev.get("usage") or {}).items() if v is not None})
            reason = (ev.get("delta") or {}).get("stop_reason")
            if reason:
                finish = STOP_REASONS.get(reason, "stop")
                yield chunk({}, finish)
        elif kind == "message_stop":
            if finish is None:
                yield chunk({}, "stop")
            yield {**base, "choices": [], "usage": usage_to_openai(usage)}
            return
        elif kind == "error":
            err = ev.get("error") or {}
            etype = str(err.get("type", ""))
            raise ProviderError(f"{provider}: upstream error in stream: {err.get('message', etype)}", status=503,
                                code="route_unavailable", retryable=etype in ("overloaded_error", "api_error"))
    raise stream_cut(provider)
