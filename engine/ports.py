"""The ports the engine calls out through: the `Provider` protocol, its errors and usage.

The engine defines them and `adapters/` implements them (openai, anthropic,
mock), so the router never imports an adapter. Adapters speak OpenAI's shapes
on our side (chat completion and chunk dicts, embedding responses) and whatever
the upstream speaks on theirs. Failures are
`ProviderError`s that say whether they are retryable (P8): timeouts,
connection errors, 408, 429 and 5xx are; everything else is the caller's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from engine.decision import Candidate

JSON = dict[str, Any]
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class ProviderError(Exception):
    """An upstream failure, mapped to our error vocabulary with the provider's message kept."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 502,
        code: str = "upstream_error",
        retryable: bool = False,
        retry_after: float | None = None,
        upstream_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.retryable = retryable
        self.retry_after = retry_after
        self.upstream_status = upstream_status


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    source: str = "provider"  # provider | tokenizer | none


class Provider(Protocol):
    """One configured upstream with its pooled HTTP client (or none, for mock)."""

    name: str
    # True when the adapter itself bounds the wait between stream chunks (a socket read timeout), so the
    # router need not arm a timer per chunk (engine/router.py, StreamRoute).
    idle_timeouts: bool

    async def chat(self, body: JSON, candidate: Candidate, timeout_s: float | None) -> JSON:
        """A chat completion in OpenAI's response shape; `body` is already cleaned and has the concrete model."""
        ...

    def chat_stream(self, body: JSON, candidate: Candidate, timeout_s: float | None) -> AsyncIterator[JSON]:
        """OpenAI chat.completion.chunk dicts; raises ProviderError before the first chunk when it can."""
        ...

    async def embeddings(self, body: JSON, candidate: Candidate, timeout_s: float | None) -> JSON:
        ...

    # ── Anthropic Messages (issue 13): `/v1/messages` bodies and answers ──────
    # A provider whose wire protocol is Anthropic's (anthropic, mock) forwards the guarded Messages body as it
    # is; any other translates through its chat methods and back, and refuses with a non-retryable 400
    # ProviderError naming the field it cannot honour. `beta` is the caller's `anthropic-beta` header.

    async def messages(self, body: JSON, candidate: Candidate, timeout_s: float | None,
                       beta: str | None = None) -> JSON:
        """An Anthropic Message answering a Messages body (already guarded, with the concrete model)."""
        ...

    def messages_stream(self, body: JSON, candidate: Candidate, timeout_s: float | None,
                        beta: str | None = None) -> AsyncIterator[JSON]:
        """Anthropic stream events as dicts (`{"type": "message_start", ...}`), ping and error excluded."""
        ...

    # ── end of Anthropic Messages ─────────────────────────────────────────────

    async def aclose(self) -> None:
        ...


# ── OpenAI Responses, natively (issue 13: /v1/responses) ────────────────


class NativeResponses(Protocol):
    """A provider that serves OpenAI's Responses API itself (kind openai, and the mock).

    A `/v1/responses` request routed to it goes as the caller sent it, guarded
    (not a lossy round trip through chat); a provider without these methods is
    reached through `chat` / `chat_stream` with a translation (adapters/codecs).
    """

    async def responses(self, body: JSON, candidate: Candidate, timeout_s: float | None) -> JSON:
        """A Response object (`object: "response"`, `output` items, `usage` with input/output tokens)."""
        ...

    def responses_stream(self, body: JSON, candidate: Candidate, timeout_s: float | None) -> AsyncIterator[JSON]:
        """The typed stream events as dicts, up to `response.completed` (or `.failed` / `.incomplete`)."""
        ...


def native_responses(provider: Provider) -> NativeResponses | None:
    """The provider as a Responses speaker, or None when it speaks only chat (then the codec translates)."""
    return provider if callable(getattr(provider, "responses_stream", None)) else None  # type: ignore[return-value]
