"""The log sink interface and the record codec every sink and spill file shares.

A sink stores batches of `LogRecord`s and answers queries for `ghat logs` and
`ghat usage`. SQLite is the default; a PostgreSQL sink implements the same
protocol. The codec lives here so that the SQLite rows, the JSONL spill files
and `ghat logs --format jsonl` all carry one shape, and so that the one rule
about raw text — captured prompts and responses are kept only outside prod —
is enforced in one place, whatever the caller built.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.records import AttemptRecord, GuardrailRecord, LogRecord

# The five metadata fields the gateway accepts (headers x-ghat-<name with dashes>).
METADATA_FIELDS = ("workspace_id", "namespace_id", "source_service", "operation", "external_request_id")


def record_to_dict(r: LogRecord) -> dict[str, Any]:
    """A JSON-ready dict; drops captured text in prod, whatever the server built (defence in depth)."""
    return {
        "request_id": r.request_id,
        "time": r.time,
        "env": r.env,
        "app": r.app,
        "key_id": r.key_id,
        "endpoint": r.endpoint,
        "requested_model": r.requested_model,
        "provider": r.provider,
        "upstream_model": r.upstream_model,
        "stream": r.stream,
        "status": r.status,
        "error_code": r.error_code,
        "policy_version": r.policy_version,
        "metadata": dict(r.metadata),
        "attempts": [[a.model, a.provider, a.status, a.error_code, a.duration_ms] for a in r.attempts],
        "guardrails": [[g.direction, g.detector, g.type, g.count, g.action, g.shadow] for g in r.guardrails],
        "prompt_tokens": r.prompt_tokens,
        "completion_tokens": r.completion_tokens,
        "cached_tokens": r.cached_tokens,
        "reasoning_tokens": r.reasoning_tokens,
        "usage_source": r.usage_source,
        "cost_usd": r.cost_usd,
        "timings_ms": dict(r.timings_ms),
        "captured": dict(r.captured) if r.captured and r.env != "prod" else None,
        "max_tokens": r.max_tokens,
    }


def record_from_dict(d: Mapping[str, Any]) -> LogRecord:
    """The inverse of `record_to_dict`; tolerant of fields a later version added."""
    return LogRecord(
        request_id=str(d["request_id"]),
        time=float(d["time"]),
        env=str(d.get("env") or ""),
        app=d.get("app"),
        key_id=d.get("key_id"),
        endpoint=str(d.get("endpoint") or ""),
        requested_model=d.get("requested_model"),
        provider=d.get("provider"),
        upstream_model=d.get("upstream_model"),
        stream=bool(d.get("stream")),
        status=int(d.get("status") or 0),
        error_code=d.get("error_code"),
        policy_version=str(d.get("policy_version") or ""),
        metadata={str(k): str(v) for k, v in (d.get("metadata") or {}).items()},
        attempts=tuple(
            AttemptRecord(str(a[0]), str(a[1]), int(a[2]), a[3], float(a[4])) for a in d.get("attempts") or ()
        ),
        guardrails=tuple(
            GuardrailRecord(str(g[0]), str(g[1]), str(g[2]), int(g[3]), str(g[4]), bool(g[5]))
            for g in d.get("guardrails") or ()
        ),
        prompt_tokens=int(d.get("prompt_tokens") or 0),
        completion_tokens=int(d.get("completion_tokens") or 0),
        cached_tokens=int(d.get("cached_tokens") or 0),
        reasoning_tokens=int(d.get("reasoning_tokens") or 0),
        usage_source=str(d.get("usage_source") or "none"),
        cost_usd=float(d.get("cost_usd") or 0.0),
        timings_ms={str(k): float(v) for k, v in (d.get("timings_ms") or {}).items()},
        captured=d.get("captured"),
        max_tokens=int(d["max_tokens"]) if isinstance(d.get("max_tokens"), int) else None,
    )


def served_model(r: LogRecord) -> str | None:
    """The policy model that answered (or was tried last): bounded by the policy, unlike `requested_model`."""
    if r.attempts:
        return r.attempts[-1].model
    return None


def fell_back(r: LogRecord) -> bool:
    """Whether a candidate other than the first one tried answered or was tried (a fallback happened)."""
    return bool(r.attempts) and any(a.model != r.attempts[0].model for a in r.attempts[1:])


def is_blocked(r: LogRecord) -> bool:
    """A refusal by policy (guardrail block, cap, rate limit, model not allowed), not a failure."""
    return bool(r.error_code) and str(r.error_code).startswith("guardrail_")


@dataclass(frozen=True, slots=True)
class LogQuery:
    """Filters of `ghat logs`; every field narrows, None means any."""

    app: str | None = None
    env: str | None = None
    status: str | None = None  # "200", "4xx", "5xx", "ok" (< 400), "error" (>= 400)
    code: str | None = None
    model: str | None = None  # requested model/alias or the served provider/model
    provider: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    since: float | None = None  # unix seconds, inclusive
    until: float | None = None  # unix seconds, exclusive
    limit: int | None = 100
    after_seq: int | None = None  # for --follow: only rows stored after this sequence number
    newest_first: bool = True


class LogSink(Protocol):
    """Where records go. `write` is called from the writer's thread only, with batches."""

    def write(self, records: Sequence[LogRecord]) -> None:
        """Store a batch atomically; raises on failure so the writer can spill it."""
        ...

    def close(self) -> None:
        ...


class LogReader(Protocol):
    """What the CLI reads through."""

    def query(self, q: LogQuery) -> list[tuple[int, LogRecord]]:
        """Matching records with their sequence numbers, newest first unless asked otherwise."""
        ...

    def get(self, request_id: str) -> LogRecord | None:
        ...

    def iter_range(self, since: float | None, until: float | None) -> Iterator[LogRecord]:
        """Every record in a time range, oldest first (for `ghat usage`)."""
        ...

    def close(self) -> None:
        ...
