"""The request log record: one per request, whatever happened to it.

Built by the server at the end of a request and handed to the log writer,
which stores it off the hot path. The writer makes every field storable first
(`adapters/logstore/safe.py`), so no value a client or a provider chose can
stop a record from being written (P14). It holds metadata, timings, counts and
codes — never a prompt, a response, a key or a redacted value (captured text
only where an app enables `capture` outside prod).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The Server-Timing phases of every response, in the order the header lists them (GUIDE §5).
PHASES = ("total", "resolve", "guardrails", "provider", "log", "usage", "overhead")


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    model: str  # provider/model of the candidate
    provider: str
    status: int  # HTTP status from upstream, or 0 when no response (timeout, reset)
    error_code: str | None
    duration_ms: float


@dataclass(frozen=True, slots=True)
class GuardrailRecord:
    direction: str  # input | output
    detector: str
    type: str
    count: int
    action: str  # detect | redact | block
    shadow: bool


@dataclass(frozen=True, slots=True)
class LogRecord:
    request_id: str
    time: float  # unix seconds at arrival
    env: str
    app: str | None
    key_id: str | None  # the truncated form only: ghat_prod_ab12…
    endpoint: str  # chat | embeddings | models | evaluate
    requested_model: str | None
    provider: str | None
    upstream_model: str | None
    stream: bool
    status: int
    error_code: str | None
    policy_version: str
    metadata: dict[str, str] = field(default_factory=dict)  # the five metadata fields
    attempts: tuple[AttemptRecord, ...] = ()
    guardrails: tuple[GuardrailRecord, ...] = ()
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    usage_source: str = "none"  # provider | tokenizer | none
    cost_usd: float = 0.0
    timings_ms: dict[str, float] = field(default_factory=dict)  # the seven Server-Timing phases
    captured: dict[str, str] | None = None  # only when the app enables capture outside prod
    max_tokens: int | None = None  # as the caller asked, before any cap: `ghat replay` decides caps again
    # The caller's own `x-request-id`, kept beside the gateway's id (never the key: a client could reuse it).
    client_request_id: str | None = None
    # False when the usage figures are not the provider's plain numbers (out of range, wrong type, clamped,
    # inconsistent): `ghat usage` reports such requests apart instead of summing noise silently.
    usage_trusted: bool = True
    # Fields the log had to alter to store the record (text it could not encode, numbers out of range),
    # each with the original value as bounded text. Empty for every record a well-behaved run produces.
    sanitized: dict[str, str] = field(default_factory=dict)
