"""The mock provider: deterministic answers with no network, for demos, tests and `make serve`.

Chat echoes the last user message behind a prefix, embeddings are unit
vectors seeded by a hash of the input, streams split the echo into words.
Anthropic Messages bodies are answered natively (`mock_message`): the same
echo, a call of the first tool when tools are offered, a thinking block when
thinking is enabled, and Anthropic's typed stream events.
The same body always gives the same bytes (P1 extends to the mock), and the
usage it reports is counted, not made up, so cost and token headers can be
tested against it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import random
import re
from collections.abc import AsyncIterator
from typing import Any

from engine.decision import Candidate
from engine.ports import JSON, ProviderError

PREFIX = "echo: "
EMBEDDING_DIM = 256
_TOKEN = re.compile(r"\w+|[^\w\s]")


def count_tokens(text: str) -> int:
    """Words and punctuation marks: a stable stand-in for a BPE tokenizer (within ~30% on English)."""
    return len(_TOKEN.findall(text))


def _text(content: Any) -> str:
    """A message's text, whether a string or a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _digest(body: JSON) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:24]


class MockProvider:
    """A provider that answers from the request alone. `fail` makes every call raise it (tests)."""

    idle_timeouts = False  # no socket: the router bounds the wait between chunks

    def __init__(self, name: str, fail: ProviderError | None = None) -> None:
        self.name = name
        self.fail = fail

    def _reply(self, body: JSON) -> tuple[list[str], int, str]:
        """The answer's pieces (one per token-ish word), the prompt's token count and the finish reason."""
        messages = body.get("messages") or []
        prompt_tokens = 0
        last_user = ""
        for m in messages:
            if not isinstance(m, dict):
                continue
            text = _text(m.get("content"))
            prompt_tokens += count_tokens(text)
            if m.get("role") == "user":
                last_user = text
        pieces = re.findall(r"\S+\s*", PREFIX + last_user)
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        finish = "stop"
        if isinstance(limit, int) and limit > 0:
            kept: list[str] = []
            used = 0
            for p in pieces:
                n = count_tokens(p)
                if used + n > limit:
                    finish = "length"
                    break
                kept.append(p)
                used += n
            pieces = kept
        return pieces, prompt_tokens, finish

    async def chat(self, body: JSON, candidate: Candidate, timeout_s: float | None) -> JSON:
        if self.fail is not None:
            raise self.fail
        pieces, prompt_tokens, finish = self._reply(body)
        content = "".join(pieces)
        completion = count_tokens(content)
        return {
            "id": f"chatcmpl-mock-{_digest(body)}",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model", candidate.upstream_model),
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion,
                "total_tokens": prompt_tokens + completion,
            },
        }

    async def chat_stream(self, body: JSON, candidate: Candidate, timeout_s: float | None) -> AsyncIterator[JSON]:
        """Role chunk, one chunk per word, the finish chunk, then the usage chunk (as OpenAI does)."""
        if self.fail is not None:
            raise self.fail
        pieces, prompt_tokens, finish = self._reply(body)
        base = {"id": f"chatcmpl-mock-{_digest(body)}", "object": "chat.completion.chunk", "created": 0,
                "model": body.get("model", candidate.upstream_model)}
        yield {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
        for p in pieces:
            yield {**base, "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]}
        yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}
        completion = count_tokens("".join(pieces))
        yield {**base, "choices": [], "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion,
                                                 "total_tokens": prompt_tokens + completion}}

    async def embeddings(self, body: JSON, candidate: Candidate, timeout_s: float | None) -> JSON:
        """Unit vectors seeded by each input's hash: equal inputs embed equally, different ones almost never."""
        if self.fail is not None:
            raise self.fail
        raw = body.get("input", "")
        inputs = raw if isinstance(raw, list) and not all(isinstance(x, int) for x in raw) else [raw]
        dim = body.get("dimensions")
        dim = dim if isinstance(dim, int) and 0 < dim <= 4096 else EMBEDDING_DIM
        data = []
        tokens = 0
        for i, item in enumerate(inputs):
            text = item if isinstance(item, str) else json.dumps(item)
            tokens += count_tokens(text) if isinstance(item, str) else len(item) if isinstance(item, list) else 1
            data.append({"object": "embedding", "index": i, "embedding": unit_vector(text, dim)})
        return {
            "object": "list",
            "data": data,
            "model": body.get("model", candidate.upstream_model),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    # ── Anthropic Messages (issue 13): native, answers built by `mock_message` below ──
    async def messages(self, body: JSON, candidate: Candidate, timeout_s: float | None,
                       beta: str | None = None) -> JSON:
        """The mock's Message for a Messages body (echo, tool call, thinking)."""
        if self.fail is not None:
            raise self.fail
        return mock_message(body, str(body.get("model", candidate.upstream_model)))

    async def messages_stream(self, body: JSON, candidate: Candidate, timeout_s: float | None,
                              beta: str | None = None) -> AsyncIterator[JSON]:
        """The same Message as Anthropic's typed stream events."""
        if self.fail is not None:
            raise self.fail
        for event in message_events(mock_message(body, str(body.get("model", candidate.upstream_model)))):
            yield event

    # ── end of Anthropic Messages ──

    async def aclose(self) -> None:
        return None

    # ── OpenAI Responses, natively (issue 13: /v1/responses; engine.ports.NativeResponses) ──────
    def _responses_reply(self, body: JSON) -> tuple[list[str], int, str, JSON]:
        """The echo of the last user turn of a Responses body, with its usage in the Responses API's names."""
        pieces, prompt, finish = self._reply({"messages": _responses_turns(body),
                                              "max_completion_tokens": body.get("max_output_tokens")})
        completion = count_tokens("".join(pieces))
        usage = {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                 "output_tokens": completion,
                 "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": prompt + completion}
        return pieces, prompt, finish, usage

    async def responses(self, body: JSON, candidate: Candidate, timeout_s: float | None) -> JSON:
        """A Response object echoing the last user turn (deterministic: `created_at` 0, ids from the body)."""
        from adapters.codecs.responses_bridge import message_item, response_object

        if self.fail is not None:
            raise self.fail
        pieces, _, finish, usage = self._responses_reply(body)
        digest = _digest(body)
        return response_object(f"resp_mock{digest}", body.get("model", candidate.upstream_model),
                               [message_item(f"msg_mock{digest}_0", "".join(pieces))], body,
                               status="incomplete" if finish == "length" else "completed", usage=usage,
                               created_at=0)  # fmt: skip

    async def responses_stream(self, body: JSON, candidate: Candidate, timeout_s: float | None
                               ) -> AsyncIterator[JSON]:
        """The typed events of the same answer, one `output_text.delta` per word."""
        from adapters.codecs.responses_bridge import EventWriter

        if self.fail is not None:
            raise self.fail
        pieces, _, finish, usage = self._responses_reply(body)
        writer = EventWriter(f"resp_mock{_digest(body)}", body.get("model", candidate.upstream_model), body, 0)
        for event in writer.start():
            yield event
        for piece in pieces:
            for event in writer.text(piece):
                yield event
        for event in writer.complete(usage, "incomplete" if finish == "length" else "completed"):
            yield event


def _responses_turns(body: JSON) -> list[JSON]:
    """A Responses body's instructions and message items as chat-like turns (what `_reply` reads)."""
    turns: list[JSON] = []
    if isinstance(body.get("instructions"), str):
        turns.append({"role": "system", "content": body["instructions"]})
    raw = body.get("input")
    if isinstance(raw, str):
        return [*turns, {"role": "user", "content": raw}]
    for item in raw or ():
        if not isinstance(item, dict) or item.get("type", "message") != "message":
            continue
        content = item.get("content")
        if isinstance(content, list):
            content = " ".join(str(p.get("text", "")) for p in content
                               if isinstance(p, dict) and p.get("type") in ("input_text", "output_text", "text"))
        turns.append({"role": item.get("role"), "content": content})
    return turns


def unit_vector(text: str, dim: int = EMBEDDING_DIM) -> list[float]:
    """A deterministic point on the unit sphere for `text` (Gaussian draws, normalised)."""
    rng = random.Random(hashlib.sha256(text.encode()).digest())
    v = [rng.gauss(0.0, 1.0) for _ in range(dim)]
    norm = math.sqrt(sum(x * x for x in v)) or 1.0
    return [x / norm for x in v]


# ── Anthropic Messages (issue 13): the mock speaks /v1/messages natively, so `make serve` shows it ──────────


def _block_text(block: Any) -> str:
    """The readable text of one content block: text, a tool result's text, a document's text source."""
    if not isinstance(block, dict):
        return ""
    kind = block.get("type")
    if kind == "text":
        return str(block.get("text", ""))
    if kind == "tool_result":
        inner = block.get("content")
        return inner if isinstance(inner, str) else " ".join(_block_text(b) for b in inner or ())
    if kind == "document" and isinstance(block.get("source"), dict) and block["source"].get("type") == "text":
        return str(block["source"].get("data", ""))
    return ""


def _turn_text(content: Any) -> str:
    return content if isinstance(content, str) else " ".join(t for b in content or () if (t := _block_text(b)))


def mock_message(body: JSON, model: str) -> JSON:
    """The mock's Anthropic Message: echo the last user turn; call the first tool when tools are offered.

    A turn that answers a tool call (a `tool_result`) gets text; `thinking`
    enabled adds a thinking block with a deterministic signature. Usage is
    counted the mock's way, like its chat answers.
    """
    turns = [m for m in body.get("messages") or () if isinstance(m, dict)]
    system = body.get("system")
    prompt = count_tokens(_turn_text(system) if system is not None else "")
    prompt += sum(count_tokens(_turn_text(m.get("content"))) for m in turns)
    last = turns[-1] if turns else {}
    text = _turn_text(last.get("content"))
    answered_tool = isinstance(last.get("content"), list) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in last["content"])
    pieces = re.findall(r"\S+\s*", PREFIX + text)
    limit = body.get("max_tokens")
    stop = "end_turn"
    if isinstance(limit, int) and sum(count_tokens(p) for p in pieces) > limit:
        kept: list[str] = []
        for p in pieces:
            if sum(count_tokens(k) for k in kept) + count_tokens(p) > limit:
                break
            kept.append(p)
        pieces, stop = kept, "max_tokens"
    blocks: list[JSON] = []
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        blocks.append({"type": "thinking", "thinking": f"The user wrote: {text}",
                       "signature": base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()})
    blocks.append({"type": "text", "text": "".join(pieces)})
    tools = [t for t in body.get("tools") or () if isinstance(t, dict) and isinstance(t.get("name"), str)]
    choice = body.get("tool_choice")
    if tools and not answered_tool and stop == "end_turn" and not (isinstance(choice, dict)
                                                                    and choice.get("type") == "none"):
        blocks.append({"type": "tool_use", "id": f"toolu_mock_{_digest(body)}", "name": tools[0]["name"],
                       "input": {"text": text}})
        stop = "tool_use"
    out = sum(count_tokens(b.get("text") or b.get("thinking") or json.dumps(b.get("input"))) for b in blocks)
    return {"id": f"msg_mock_{_digest(body)}", "type": "message", "role": "assistant", "model": model,
            "content": blocks, "stop_reason": stop, "stop_sequence": None,
            "usage": {"input_tokens": prompt, "output_tokens": out, "cache_read_input_tokens": 0,
                      "cache_creation_input_tokens": 0}}  # fmt: skip


def message_events(message: JSON) -> list[JSON]:
    """A Message as Anthropic streams it: start, each block in pieces, the delta with usage, stop."""
    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None,
             "usage": {**usage, "output_tokens": 1}}  # fmt: skip
    events: list[JSON] = [{"type": "message_start", "message": start}]
    for i, block in enumerate(message["content"]):
        kind = block["type"]
        empty = {"text": {"type": "text", "text": ""}, "thinking": {"type": "thinking", "thinking": "",
                                                                    "signature": ""},
                 "tool_use": {**block, "input": {}}}[kind]  # fmt: skip
        events.append({"type": "content_block_start", "index": i, "content_block": empty})
        if kind == "tool_use":
            raw = json.dumps(block["input"])
            half = len(raw) // 2
            events.extend({"type": "content_block_delta", "index": i,
                           "delta": {"type": "input_json_delta", "partial_json": part}} for part in (raw[:half],
                                                                                                     raw[half:]))
        else:
            field = "text" if kind == "text" else "thinking"
            for word in re.findall(r"\S+\s*", block[field]):
                events.append({"type": "content_block_delta", "index": i,
                               "delta": {"type": f"{field}_delta", field: word}})
            if kind == "thinking":
                events.append({"type": "content_block_delta", "index": i,
                               "delta": {"type": "signature_delta", "signature": block["signature"]}})
        events.append({"type": "content_block_stop", "index": i})
    events.append({"type": "message_delta", "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                   "usage": {"output_tokens": usage["output_tokens"]}})
    events.append({"type": "message_stop"})
    return events


# ── end of Anthropic Messages ────────────────────────────────────────────────────────────────────────────────
