"""What the engine evaluates: a request reduced to what policy can see.

A dialect codec (`adapters/codecs/`) turns an HTTP body into a
`GatewayRequest`; every string the guards must read is a `TextField` slot with
the path where it sits in the body, so the guarded text is written back exactly
where it came from (`engine/conversation.py` walks bodies into slots).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, TypeAlias

Endpoint: TypeAlias = Literal["chat", "embeddings", "messages", "responses"]
_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class KeyOf:
    """A path step naming a dict key itself (the slot is the key's text, not its value)."""

    key: str


@dataclass(frozen=True, slots=True)
class Embedded:
    """A path step into the JSON held by the string at the path so far (tool-call arguments)."""


EMBEDDED = Embedded()
BodyPath: TypeAlias = tuple[str | int | KeyOf | Embedded, ...]


@dataclass(frozen=True, slots=True)
class TextField:
    """One slot: a string of the body with who wrote it, what it is and where it sits.

    `role` is what detectors filter on (system | user | assistant | tool |
    document | output); `kind` says what the string is (text, tool_arguments,
    tool_definition, schema, name, parameter, unknown, …: engine/conversation.py).
    """

    role: str
    text: str
    path: BodyPath = ()
    kind: str = "text"


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
