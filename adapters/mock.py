"""The mock provider: deterministic answers with no network, for demos, tests and `make serve`.

Chat echoes the last user message behind a prefix, embeddings are unit
vectors seeded by a hash of the input, streams split the echo into words.
The same body always gives the same bytes (P1 extends to the mock), and the
usage it reports is counted, not made up, so cost and token headers can be
tested against it.
"""

from __future__ import annotations

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
