"""`ghat replay`: logged decisions against a changed policy — what changes, what cannot be replayed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from adapters.logstore import default_log_path
from adapters.logstore.sqlite import SQLiteLogStore
from cli.main import main
from dsl.loader import load
from engine.compiler import compile_policy
from engine.records import AttemptRecord, LogRecord
from engine.replay import Outcome, decide, recorded_outcome, replay

BEFORE = """
provider local { kind mock }
model local/echo  { price in 0 out 0 per 1M }
model local/other { price in 0 out 0 per 1M }
alias chat  { route local/echo }
alias cheap { route local/echo }
app support {
  env        prod
  models     chat, cheap
  max_tokens 1024
  rate_limit 100/min
  input { pii block }
}
"""
AFTER = """
provider local { kind mock }
model local/echo  { price in 0 out 0 per 1M }
model local/other { price in 0 out 0 per 1M }
alias chat  { route local/other }
alias cheap { route local/echo }
app support {
  env        prod
  models     chat
  max_tokens 100 reject
  rate_limit 100/min
  input { pii block; secrets block }
  when operation == "bulk" { max_tokens 4096 }
}
"""


def _record(rid: str, model: str = "chat", **kw: Any) -> LogRecord:
    base: dict[str, Any] = dict(
        request_id=rid, time=1_700_000_000.0, env="prod", app="support", key_id="ghat_prod_ab12…",
        endpoint="chat", requested_model=model, provider="local", upstream_model="echo", stream=False,
        status=200, error_code=None, policy_version="old", attempts=(AttemptRecord("local/echo", "local", 200, None,
                                                                                     1.0),),
    )  # fmt: skip
    base.update(kw)
    return LogRecord(**base)


def _policy(tmp_path: Path, text: str, name: str) -> Path:
    d = tmp_path / name
    d.mkdir()
    (d / "p.policy").write_text(text)
    return d


def _compiled(tmp_path: Path, text: str) -> Any:
    return compile_policy(load([_policy(tmp_path, text, "c")]).policy_set, env="prod")


RECORDS = [
    _record("route-change"),
    _record("model-removed", model="cheap"),
    _record("cap-now-rejects", max_tokens=500),
    _record("cap-overridden", max_tokens=500, metadata={"operation": "bulk"}),
    _record("no-key", app=None, status=401, error_code="unauthorized", attempts=()),
    _record("pii-blocked", status=403, error_code="guardrail_pii_blocked", attempts=()),
    _record("limited", status=429, error_code="guardrail_rate_limit_exceeded", attempts=()),
    _record("captured-secret", env="dev", captured={"prompt": json.dumps([{"role": "user",
                                                                           "text": "key AKIAZ3MQ7R4TUV2WX9YB"}])}),
    _record("upstream-failed", status=503, error_code="route_unavailable",
            attempts=(AttemptRecord("local/echo", "local", 503, "upstream_unavailable", 1.0),)),
]  # fmt: skip


def test_recorded_outcomes() -> None:
    assert recorded_outcome(RECORDS[0]) == Outcome(True, "local/echo")
    assert isinstance(recorded_outcome(RECORDS[4]), str)  # unauthorized: no key logged
    assert isinstance(recorded_outcome(RECORDS[5]), str)  # guardrail block without captured texts
    assert isinstance(recorded_outcome(RECORDS[6]), str)  # rate limit: depends on the traffic around it
    assert recorded_outcome(RECORDS[8]) == Outcome(True, "local/echo")  # allowed, then failed upstream


def test_changes_are_found_and_unreplayable_records_skipped(tmp_path: Path) -> None:
    after = _compiled(tmp_path, AFTER)
    dev = compile_policy(load([_policy(tmp_path, AFTER.replace("env        prod", "env        dev"), "d")])
                         .policy_set, env="dev")  # fmt: skip
    report = replay({"prod": after, "dev": dev}, RECORDS)
    got = {r.request_id: str(r.after) for r in report.changed}
    assert got == {
        "route-change": "allow → local/other",
        "model-removed": "deny guardrail_model_blocked",
        "cap-now-rejects": "deny guardrail_max_tokens_exceeded",
        "cap-overridden": "allow → local/other",  # the when override lifts the cap; the route still changed
        "captured-secret": "deny guardrail_secrets_blocked",  # its captured text is scanned again
        "upstream-failed": "allow → local/other",
    }
    assert sum(report.skipped.values()) == 3
    rerun = {r.request_id: r.guardrails_rerun for r in report.replayed}
    assert rerun["captured-secret"] and not rerun["route-change"]


def test_the_same_policy_changes_nothing(tmp_path: Path) -> None:
    before = _compiled(tmp_path, BEFORE)
    replayable = [r for r in RECORDS if r.env == "prod" and not isinstance(recorded_outcome(r), str)]
    assert all(decide(before, r) == recorded_outcome(r) for r in replayable[:2])
    assert not replay({"prod": before}, RECORDS[:2]).changed


def test_cli_reads_the_log_and_fails_on_change(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    data.mkdir()
    store = SQLiteLogStore(default_log_path(data))
    store.write([r for r in RECORDS if r.env == "prod"])
    store.close()
    after = _policy(tmp_path, AFTER, "after")
    assert main(["replay", "--policies", str(after), "--data-dir", str(data), "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["replayed"] == 5 and out["changed"] == 5
    assert {c["request_id"] for c in out["changes"]} >= {"model-removed", "cap-now-rejects"}
    assert main(["replay", "--policies", str(after), "--data-dir", str(data), "--fail-on-change"]) == 1
    text = capsys.readouterr().out
    assert "deny guardrail_model_blocked" in text and "skipped 1: the key is not logged" in text
    before = _policy(tmp_path, BEFORE, "before")
    assert main(["replay", "--policies", str(before), "--data-dir", str(data), "--fail-on-change",
                 "--app", "support"]) == 0  # fmt: skip


def test_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "--policies", str(tmp_path), "--data-dir", str(tmp_path / "none")]) == 1
    assert "no request log" in capsys.readouterr().err
