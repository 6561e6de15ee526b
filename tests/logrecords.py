"""Builders of `LogRecord`s for the request-log tests: realistic, varied, deterministic."""

from __future__ import annotations

from engine.records import AttemptRecord, GuardrailRecord, LogRecord


def make_record(i: int = 0, **over: object) -> LogRecord:
    """A record as the server would build for request `i`; keyword arguments override fields."""
    apps = ("support-prod", "batch-dev", "search-prod")
    fields: dict[str, object] = dict(
        request_id=f"req_{i:08d}",
        time=1_800_000_000.0 + i,
        env="prod",
        app=apps[i % 3],
        key_id="ghat_prod_ab12…",
        endpoint="chat",
        requested_model="smart-default",
        provider="openai",
        upstream_model="gpt-4o-2024-08-06",
        stream=bool(i % 2),
        status=200,
        error_code=None,
        policy_version="v1abc",
        metadata={"operation": "summarize" if i % 2 else "chat", "workspace_id": f"ws{i % 4}"},
        attempts=(AttemptRecord("openai/gpt-4o", "openai", 200, None, 120.0 + i % 50),),
        guardrails=(GuardrailRecord("input", "pii", "email", 1, "redact", False),),
        prompt_tokens=100 + i % 7,
        completion_tokens=20 + i % 5,
        usage_source="provider",
        cost_usd=0.00045,
        timings_ms={"total": 130.0 + i % 50, "resolve": 0.1, "guardrails": 0.05, "provider": 125.0 + i % 50,
                    "log": 0.002, "usage": 0.01, "overhead": 1.5 + (i % 10) / 10},
    )
    fields.update(over)
    return LogRecord(**fields)  # type: ignore[arg-type]
