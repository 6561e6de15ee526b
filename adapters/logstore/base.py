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

from adapters.logstore.safe import safe_record
from engine.records import AttemptRecord, GuardrailRecord, LogRecord

# The five metadata fields the gateway accepts (headers x-ghat-<name with dashes>).
METADATA_FIELDS = ("workspace_id", "namespace_id", "source_service", "operation", "external_request_id")


def record_to_dict(r: LogRecord, *, compact: bool = False) -> dict[str, Any]:
    """A JSON-ready dict; drops captured text in prod, whatever the server built (defence in depth).

    `compact` (the stored body and the spill line) leaves out the fields added for P14 while they hold their
    defaults: 60 bytes on every row pushed a typical row past a quarter of an SQLite page, so three rows
    fitted a page instead of four and the file grew by a quarter (bench/RESULTS.md, "Request log").
    """
    d: dict[str, Any] = {
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
        "client_request_id": r.client_request_id,
        "usage_trusted": r.usage_trusted,
        "sanitized": dict(r.sanitized),
    }
    if compact:
        for name, default in (("client_request_id", None), ("usage_trusted", True), ("sanitized", {})):
            if d[name] == default:
                del d[name]
    return d


def record_from_dict(d: Mapping[str, Any]) -> LogRecord:
    """The inverse of `record_to_dict`, for any dict: fields a later version added are ignored, fields an
    earlier one lacked take their defaults, and values of the wrong type or range are made storable by
    `safe_record` (and noted in `sanitized`) rather than raising. Raises ValueError only for a non-dict."""
    if not isinstance(d, Mapping):
        raise ValueError(f"a log record is a JSON object, not {type(d).__name__}")
    g: Any = d.get  # values of any type: `safe_record` below is what makes them fit the fields
    record = LogRecord(
        request_id=g("request_id"), time=g("time"), env=g("env", ""), app=g("app"), key_id=g("key_id"),
        endpoint=g("endpoint", ""), requested_model=g("requested_model"), provider=g("provider"),
        upstream_model=g("upstream_model"), stream=g("stream", False), status=g("status", 0),
        error_code=g("error_code"), policy_version=g("policy_version", ""), metadata=g("metadata") or {},
        attempts=tuple(_row_of(AttemptRecord, a, 5) for a in _items(g("attempts"))),
        guardrails=tuple(_row_of(GuardrailRecord, x, 6) for x in _items(g("guardrails"))),
        prompt_tokens=g("prompt_tokens", 0), completion_tokens=g("completion_tokens", 0),
        cached_tokens=g("cached_tokens", 0), reasoning_tokens=g("reasoning_tokens", 0),
        usage_source=g("usage_source", "none"), cost_usd=g("cost_usd", 0.0), timings_ms=g("timings_ms") or {},
        captured=g("captured"), max_tokens=g("max_tokens"), client_request_id=g("client_request_id"),
        usage_trusted=g("usage_trusted", True), sanitized=g("sanitized") or {},
    )  # fmt: skip
    return safe_record(record)


def _items(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value] if value is not None else []


def _row_of(cls: Any, value: Any, n: int) -> Any:
    """`cls(*value)` for a stored row of the right length; the raw value otherwise (`safe_record` drops it)."""
    if isinstance(value, (list, tuple)) and len(value) == n:
        return cls(*value)
    return value


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
    client_request_id: str | None = None  # the caller's own x-request-id
    usage_trusted: bool | None = None  # False: only records whose usage could not be trusted
    sanitized: bool | None = None  # True: only records the log had to alter to store
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
        """Store a batch atomically, ignoring a request id already stored; raises on failure (the writer spills)."""
        ...

    def probe(self) -> None:
        """One small real write; raises when the store cannot take writes now (locked, full, gone).

        After a failed batch this tells "the store is down" (keep the records, retry later) from
        "a record in this batch is the problem" (find it, quarantine it, store the rest).
        """
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
