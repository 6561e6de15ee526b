"""Inbound dialect codecs: one per API ghat serves, each a body ↔ conversation translation.

`CODECS` is the one list of what the gateway serves (one entry per name of
`dsl.catalog.ENDPOINTS`, checked by a test): the server's routes,
`/v1/ghat/evaluate`, `ghat explain`, `ghat test` and `ghat replay` all decode
a body through `decode`, so they cannot disagree about what a request says.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from adapters.codecs import anthropic_messages, openai_chat, openai_responses
from adapters.codecs.body import JSON, BadRequest, load_json
from dsl import ast
from engine.request import Endpoint, GatewayRequest
from engine.testing import RequestError, body_of_test


@dataclass(frozen=True, slots=True)
class Codec:
    """One dialect: its path, how a body becomes a request, and how the guarded body is rebuilt."""

    endpoint: Endpoint
    path: str
    decode: Callable[[JSON, Mapping[str, str]], GatewayRequest]
    upstream: Callable[[JSON, GatewayRequest, GatewayRequest], JSON]


CODECS: dict[Endpoint, Codec] = {
    "chat": Codec("chat", "/v1/chat/completions", openai_chat.decode_chat, openai_chat.upstream_body),
    "embeddings": Codec("embeddings", "/v1/embeddings", openai_chat.decode_embeddings, openai_chat.upstream_body),
    # Anthropic Messages (issue 13); its count_tokens route decodes with `anthropic_messages.decode_count_tokens`
    "messages": Codec("messages", "/v1/messages", anthropic_messages.decode_messages,
                      anthropic_messages.upstream_body),
    "responses": Codec("responses", "/v1/responses", openai_responses.decode_responses,
                       openai_responses.upstream_body),
}


def endpoint_of(body: JSON) -> Endpoint:
    """The endpoint a bare body is for, when no route says it (dry runs, `ghat explain`, logged bodies)."""
    if "messages" in body or "input" not in body:
        return "chat"
    raw = body["input"]
    if (isinstance(raw, list) and any(isinstance(x, dict) for x in raw)) or any(k in body for k in _RESPONSES_ONLY):
        return "responses"
    return "embeddings"


_RESPONSES_ONLY = ("instructions", "max_output_tokens", "tools", "text", "previous_response_id", "reasoning")


def decode(body: JSON, headers: Mapping[str, str] | None = None, endpoint: Endpoint | None = None) -> GatewayRequest:
    """The request a body makes, exactly as the server sees it (BadRequest names what is wrong)."""
    return CODECS[endpoint or endpoint_of(body)].decode(body, headers or {})


def request_of_test(test: ast.TestRequest) -> GatewayRequest:
    """A policy `test` block's request, decoded exactly as the server decodes a body (`ghat test`)."""
    endpoint, body = body_of_test(test)
    try:
        return decode(body, {}, endpoint)
    except BadRequest as exc:
        raise RequestError(exc.message) from None


def upstream_body(body: JSON, before: GatewayRequest, after: GatewayRequest) -> JSON:
    """The guarded body that goes upstream for `after` (the Allow's request)."""
    return CODECS[before.endpoint].upstream(body, before, after)




def replay_decoder(body: JSON, endpoint: str) -> GatewayRequest:
    """A logged body decoded for `ghat replay` as the server decoded it (its metadata comes from the record)."""
    return decode(body, {}, endpoint if endpoint in CODECS else "chat")

__all__ = ["CODECS", "BadRequest", "Codec", "decode", "endpoint_of", "load_json", "replay_decoder", "request_of_test",
           "upstream_body"]
