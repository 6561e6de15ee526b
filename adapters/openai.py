"""The OpenAI wire protocol, for every upstream that speaks it.

OpenAI itself, Azure-style deployments (`header "api-key" env.AZURE_KEY` in the
provider block and the deployment URL with `?api-version=…` as `base_url`),
vLLM, Ollama, Groq, Together: the body passes through as the caller sent it
(already cleaned and with the concrete model), so new OpenAI parameters work
without a gateway release. Only failures are translated (`adapters/http.py`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from adapters.http import Upstream, json_event, loads_object, malformed, stream_cut
from adapters.jsonwire import dumps
from adapters.messages_bridge import chat_events, from_chat, to_chat
from adapters.replies import check_chunk, check_completion, check_embeddings
from engine.decision import Candidate
from engine.ports import JSON, ProviderError


class OpenAIProvider:
    """One OpenAI-compatible upstream with its pooled keep-alive client."""

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
        sent = {k.lower(): v for k, v in (headers or {}).items()}
        # An explicit `api-key` header (Azure) replaces the bearer token.
        if api_key and "authorization" not in sent and "api-key" not in sent:
            sent["authorization"] = f"Bearer {api_key}"
        parts = urlsplit(base_url)
        params = dict(parse_qsl(parts.query))  # Azure's ?api-version=… must ride on every request
        self._http = Upstream(name, urlunsplit(parts._replace(query="")), sent, timeout_s, params or None)

    async def chat(self, body: JSON, candidate: Candidate, timeout_s: float | None) -> JSON:
        """A chat completion; a 200 without `choices` is malformed, one with fields of the wrong type invalid."""
        data = loads_object(self.name, await self._http.post("/chat/completions", dumps(body), timeout_s))
        if data.get("choices") is None:
            raise malformed(self.name, _error_text(data) or "no choices")
        return check_completion(self.name, data)

    async def embeddings(self, body: JSON, candidate: Candidate, timeout_s: float | None) -> JSON:
        """Embeddings; a 200 without `data` is malformed, one with fields of the wrong type invalid."""
        data = loads_object(self.name, await self._http.post("/embeddings", dumps(body), timeout_s))
        if data.get("data") is None:
            raise malformed(self.name, _error_text(data) or "no data")
        return check_embeddings(self.name, data)

    async def chat_stream(self, body: JSON, candidate: Candidate, timeout_s: float | None) -> AsyncIterator[JSON]:
        """Chunks as upstream sends them, plus the final usage chunk we always ask for.

        `timeout_s` bounds the wait for each piece of the stream (an idle
        timeout), not the whole stream: a long answer is not a slow one.
        """
        options = dict(body.get("stream_options") or {})
        options["include_usage"] = True
        payload = {**body, "stream": True, "stream_options": options}
        events = self._http.events("/chat/completions", dumps(payload), timeout_s, _done)
        finished = False
        try:
            async for event, data in events:
                if data == b"[DONE]":
                    finished = True
                    break
                obj = json_event(self.name, data)
                if event == "error" or ("error" in obj and "choices" not in obj):
                    raise ProviderError(
                        f"{self.name}: upstream error in stream: {_error_text(obj)}",
                        status=502, code="upstream_error", retryable=True,
                    )
                check_chunk(self.name, obj)  # a chunk of the wrong shape ends the stream with an error
                if not finished:
                    for choice in obj.get("choices") or ():
                        if choice.get("finish_reason"):
                            finished = True
                yield obj
        finally:
            await events.aclose()
        if not finished:  # ended cleanly but without [DONE] or a finish_reason: cut short
            raise stream_cut(self.name)

    # ── Anthropic Messages (issue 13): translated through chat and back (adapters/messages_bridge.py) ──
    async def messages(self, body: JSON, candidate: Candidate, timeout_s: float | None,
                       beta: str | None = None) -> JSON:
        """A Messages body answered by this chat upstream; a field chat cannot honour is a 400 naming it."""
        answer = await self.chat(to_chat(self.name, body), candidate, timeout_s)
        return from_chat(self.name, answer)

    async def messages_stream(self, body: JSON, candidate: Candidate, timeout_s: float | None,
                              beta: str | None = None) -> AsyncIterator[JSON]:
        """The chat stream as Anthropic's typed events."""
        chat = to_chat(self.name, body)
        async for event in chat_events(self.name, self.chat_stream(chat, candidate, timeout_s)):
            yield event

    # ── end of Anthropic Messages ──

    async def aclose(self) -> None:
        """Close the pool."""
        await self._http.aclose()

    # ── OpenAI Responses, natively (issue 13: /v1/responses; engine.ports.NativeResponses) ──────
    stores_responses = True  # upstream keeps what it answers (unless `store: false`): previous_response_id works

    async def responses(self, body: JSON, candidate: Candidate, timeout_s: float | None) -> JSON:
        """A Response object from upstream `/responses`; a 200 without `output` is malformed."""
        data = loads_object(self.name, await self._http.post("/responses", dumps(body), timeout_s))
        if data.get("output") is None:
            raise malformed(self.name, _error_text(data) or "no output")
        return data

    async def responses_stream(self, body: JSON, candidate: Candidate, timeout_s: float | None
                               ) -> AsyncIterator[JSON]:
        """The typed events as upstream sends them, to the last lifecycle event; an `error` event raises."""
        events = self._http.events("/responses", dumps({**body, "stream": True}), timeout_s, _response_end)
        finished = False
        try:
            async for _event, data in events:
                obj = json_event(self.name, data)
                kind = obj.get("type")
                if kind == "error" or (kind is None and "error" in obj):
                    detail = obj.get("error") if isinstance(obj.get("error"), dict) else obj
                    raise ProviderError(f"{self.name}: upstream error in stream: {_error_text({'error': detail})}",
                                        status=502, code="upstream_error", retryable=True)  # fmt: skip
                yield obj
                if kind in _RESPONSE_ENDS:
                    finished = True
                    break
        finally:
            await events.aclose()
        if not finished:
            raise stream_cut(self.name)


def _done(event: str, data: bytes) -> bool:
    return data == b"[DONE]"


def _error_text(data: JSON) -> str:
    err = data.get("error")
    if isinstance(err, dict):
        return str(err.get("message") or err.get("type") or "")[:500]
    return str(err or "")[:500]


_RESPONSE_ENDS = frozenset({"response.completed", "response.failed", "response.incomplete"})


def _response_end(event: str, data: bytes) -> bool:
    """The Responses stream's last event (it sends no `[DONE]`): the lifecycle event that closes the response."""
    return event in _RESPONSE_ENDS
