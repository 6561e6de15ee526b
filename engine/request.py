"""What the engine evaluates: a request reduced to what policy can see.

The server turns an HTTP body into a `GatewayRequest`; every text the guards
must read is a `TextField` with the path where it sits in the body, so the
server can write redacted text back exactly where it came from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, TypeAlias

Endpoint: TypeAlias = Literal["chat", "embeddings"]
BodyPath: TypeAlias = tuple[str | int, ...]
_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class TextField:
    role: str  # system | user | assistant | tool | document | input (embeddings)
    text: str
    path: BodyPath = ()


@dataclass(frozen=True, slots=True)
class GatewayRequest:
    endpoint: Endpoint
    model: str
    texts: tuple[TextField, ...] = ()
    max_tokens: int | None = None
    metadata: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    requested_app: str | None = None  # header x-ghat-app or body ghat_app
    stream: bool = False
    grounding: tuple[str, ...] = ()  # documents an output should be supported by


@dataclass(frozen=True, slots=True)
class EvalContext:
    """Who is asking and with what state: the inputs besides the request (P1)."""

    key_app: str | None  # the authenticated key's app; None: no valid key
    key_id: str = ""  # a stable id of the key, for per-key rate limits
    seed: str = ""  # the request id: picks a split member when no external_request_id
    now: float | None = None  # for the rate limiter; None: the limiter's clock
    trace: bool = False  # record every step (explain, dry runs)
