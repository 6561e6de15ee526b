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
from engine.records import AttemptRecord, GuardrailRecord, LogRecord
from engine.replay import Outcome, _texts, decide, differences, rebuild, recorded_outcome, replay
from engine.request import EvalContext
from engine.testing import evaluate_sync

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


def _decision(o: Outcome | str) -> tuple[bool, str]:
    assert isinstance(o, Outcome), o
    return o.allowed, o.detail


def test_recorded_outcomes() -> None:
    assert _decision(recorded_outcome(RECORDS[0])) == (True, "local/echo")
    assert isinstance(recorded_outcome(RECORDS[4]), str)  # unauthorized: no key logged
    assert isinstance(recorded_outcome(RECORDS[5]), str)  # guardrail block without captured texts
    assert isinstance(recorded_outcome(RECORDS[6]), str)  # rate limit: depends on the traffic around it
    assert _decision(recorded_outcome(RECORDS[8])) == (True, "local/echo")  # allowed, then failed upstream


def test_changes_are_found_and_unreplayable_records_skipped(tmp_path: Path) -> None:
    after = _compiled(tmp_path, AFTER)
    dev = compile_policy(load([_policy(tmp_path, AFTER.replace("env        prod", "env        dev"), "d")])
                         .policy_set, env="dev")  # fmt: skip
    report = replay({"prod": after, "dev": dev}, RECORDS)
    got = {r.request_id: str(r.after) for r in report.changed if r.differences[0].aspect == "decision"}
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
    assert all(not differences(recorded_outcome(r), decide(before, r)) for r in replayable[:2])  # type: ignore[arg-type]
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
    assert all(c["differences"] for c in out["changes"])
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


# ── every kind of change is reported, not only decisions ─────────────────

REDACT = """
provider local { kind mock }
model local/echo  { price in 0 out 0 per 1M }
model local/other { price in 0 out 0 per 1M }
alias chat { route local/echo  fallback local/other }
app support {
  env        dev
  models     chat
  max_tokens 1024
  rate_limit 100/min
  capture    prompts
  input { pii redact; secrets redact }
}
"""
PROMPT = json.dumps([{"role": "user", "text": "mail jane.doe@example.com, key AKIAZ3MQ7R4TUV2WX9YB"}])


def _served(policy_text: str, tmp_path: Path, n: int = 3) -> list[LogRecord]:
    """Records as the server logs them under `policy_text`: the recorded findings are the policy's own."""
    policy = compile_policy(load([_policy(tmp_path, policy_text, "served")]).policy_set, env="dev")
    out = []
    for i in range(n):
        r = _record(f"r{i}", env="dev", captured={"prompt": PROMPT})
        d = evaluate_sync(policy, rebuild(r, _texts(r)), EvalContext(key_app="support", seed=r.request_id), None)
        assert d.outcomes
        found = tuple(GuardrailRecord("input", o.detector, o.type, o.count, o.action, o.shadow) for o in d.outcomes)
        out.append(_record(f"r{i}", env="dev", captured={"prompt": PROMPT}, guardrails=found))
    return out


def test_redact_to_detect_is_a_change_though_no_decision_changes(tmp_path: Path) -> None:
    """Regression: every input rule going from redact to detect was reported as '0 decisions change'."""
    records = _served(REDACT, tmp_path)
    unchanged = compile_policy(load([_policy(tmp_path, REDACT, "same")]).policy_set, env="dev")
    assert not replay({"dev": unchanged}, records).changed  # the same policy: nothing to report
    detect = REDACT.replace("pii redact; secrets redact", "pii detect; secrets detect")
    after = compile_policy(load([_policy(tmp_path, detect, "detect")]).policy_set, env="dev")
    report = replay({"dev": after}, records)
    assert len(report.changed) == 3
    diffs = report.changed[0].differences
    assert [d.aspect for d in diffs] == ["actions"]
    assert "pii/email×1 redact" in diffs[0].before and "pii/email×1 detect" in diffs[0].after


def test_cli_fails_on_an_action_change(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    data.mkdir()
    store = SQLiteLogStore(default_log_path(data))
    store.write(_served(REDACT, tmp_path))
    store.close()
    detect = _policy(tmp_path, REDACT.replace("pii redact", "pii detect"), "after")
    assert main(["replay", "--policies", str(detect), "--data-dir", str(data), "--fail-on-change"]) == 1
    out = capsys.readouterr().out
    assert "3 change" in out and "actions: " in out and "pii/email×1 detect" in out


def test_baseline_compares_caps_and_fallbacks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The log holds neither the cap nor the fallbacks; against a baseline set both are compared."""
    data = tmp_path / "data"
    data.mkdir()
    store = SQLiteLogStore(default_log_path(data))
    store.write([_record("plain", env="dev", max_tokens=4000), _record("small", env="dev", max_tokens=100)])
    store.close()
    base = _policy(tmp_path, REDACT, "base")
    capped = _policy(tmp_path, REDACT.replace("max_tokens 1024", "max_tokens 512"), "capped")
    args = ["replay", "--data-dir", str(data), "--baseline", str(base), "--format", "json", "--policies"]
    assert main([*args, str(base)]) == 0
    assert json.loads(capsys.readouterr().out)["changed"] == 0
    assert main([*args, str(capped)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [c["request_id"] for c in out["changes"]] == ["plain"]  # 100 tokens were under both caps
    assert out["changes"][0]["differences"] == [{"aspect": "cap", "before": "1024", "after": "512"}]
    no_fallback = _policy(tmp_path, REDACT.replace("  fallback local/other", ""), "nofb")
    assert main([*args, str(no_fallback)]) == 0
    diffs = json.loads(capsys.readouterr().out)["changes"][0]["differences"]
    assert diffs == [{"aspect": "route", "before": "local/echo → local/other", "after": "local/echo"}]


def test_cli_refuses_empty_inputs_and_unknown_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    data.mkdir()
    store = SQLiteLogStore(default_log_path(data))
    store.write([_record("plain", env="dev")])
    store.close()
    good = _policy(tmp_path, REDACT, "good")
    base = ["replay", "--data-dir", str(data), "--policies"]
    assert main([*base, str(good), "--env", "dve"]) == 2
    assert "no app in the policy set has env 'dve'" in capsys.readouterr().err
    assert main([*base, str(good), "--app", "suport"]) == 2
    assert "no app 'suport'" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([*base, str(empty)]) == 1
    assert "no .policy file" in capsys.readouterr().err
    assert main([*base, str(good), "--since", "2099-01-01T00:00:00"]) == 1
    assert "no logged request matches" in capsys.readouterr().err
