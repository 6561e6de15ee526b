"""`ghat logs` and `ghat usage` in subprocesses, over a store the writer filled."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from adapters.logstore import default_log_path, open_log_writer
from adapters.logstore.sqlite import SQLiteLogStore
from cli.logs import parse_time
from cli.usage import percentile
from engine.records import AttemptRecord, GuardrailRecord
from tests.logrecords import make_record

ROOT = Path(__file__).resolve().parents[1]
T0 = 1_800_000_000.0


def ghat(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GHAT_DATA_DIR": str(data_dir)}
    return subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=30)  # fmt: skip


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("data")
    w = open_log_writer(d)
    for i in range(40):  # 40 ok requests in the first 40 s
        w.submit(make_record(i, cost_usd=0.001))
    w.submit(make_record(50, status=403, error_code="guardrail_pii_blocked", app="support-prod", attempts=(),
                         prompt_tokens=0, completion_tokens=0, cost_usd=0.0,
                         guardrails=(GuardrailRecord("input", "pii", "email", 2, "block", False),)))
    w.submit(make_record(51, status=200, app="support-prod", provider="local", cost_usd=0.0,
                         metadata={"operation": "bulk", "source_service": "billing"},
                         attempts=(AttemptRecord("openai/gpt-4o", "openai", 503, "upstream_error", 5.0),
                                   AttemptRecord("local/echo", "local", 200, None, 1.0))))
    w.submit(make_record(52, status=503, error_code="route_unavailable", app="support-prod", cost_usd=0.0))
    w.close()  # fmt: skip
    return d


def test_parse_time_accepts_relative_and_iso() -> None:
    assert parse_time("1h", now=10_000.0) == 6_400.0
    assert parse_time("2026-01-01T00:00:00Z") == parse_time("2026-01-01T00:00:00")
    assert parse_time("2026-01-01T01:00:00+01:00") == parse_time("2026-01-01")


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 95), percentile(values, 99)) == (50.0, 95.0, 99.0)
    assert percentile([], 50) == 0.0


def test_logs_lists_and_filters(data_dir: Path) -> None:
    out = ghat("logs", "--limit", "100", "--format", "jsonl", data_dir=data_dir)
    assert out.returncode == 0, out.stderr
    recs = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(recs) == 43 and recs[0]["request_id"] == "req_00000000"  # oldest first
    blocked = ghat("logs", "--code", "guardrail_pii_blocked", "--format", "jsonl", data_dir=data_dir)
    assert [json.loads(x)["request_id"] for x in blocked.stdout.splitlines()] == ["req_00000050"]
    five = ghat("logs", "--status", "5xx", "--app", "support-prod", data_dir=data_dir)
    assert "req_00000052" in five.stdout and "route_unavailable" in five.stdout
    assert len(five.stdout.splitlines()) == 2  # header + one row
    meta = ghat("logs", "--meta", "source_service=billing", "--format", "jsonl", data_dir=data_dir)
    assert [json.loads(x)["request_id"] for x in meta.stdout.splitlines()] == ["req_00000051"]
    timed = ghat("logs", "--since", "2027-01-15T08:00:10Z", "--until", "2027-01-15T08:00:20Z",
                 "--format", "jsonl", data_dir=data_dir)  # fmt: skip
    assert len(timed.stdout.splitlines()) == 10
    by_model = ghat("logs", "--model", "local/echo", "--format", "jsonl", data_dir=data_dir)
    assert len(by_model.stdout.splitlines()) == 1


def test_logs_show_prints_one_record_whole(data_dir: Path) -> None:
    out = ghat("logs", "show", "req_00000051", data_dir=data_dir)
    rec = json.loads(out.stdout)
    assert rec["attempts"][0][3] == "upstream_error" and rec["metadata"]["operation"] == "bulk"
    missing = ghat("logs", "show", "nope", data_dir=data_dir)
    assert missing.returncode == 1 and "no record" in missing.stderr


def test_logs_without_a_store_says_where_it_looked(tmp_path: Path) -> None:
    out = ghat("logs", data_dir=tmp_path)
    assert out.returncode == 1 and str(default_log_path(tmp_path)) in out.stderr


def test_logs_follow_prints_new_records(tmp_path: Path) -> None:
    store = SQLiteLogStore(default_log_path(tmp_path))
    store.write([make_record(1)])
    env = {**os.environ, "GHAT_DATA_DIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "logs", "-f", "--format", "jsonl"], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout is not None
        assert json.loads(proc.stdout.readline())["request_id"] == "req_00000001"
        time.sleep(0.2)
        store.write([make_record(2), make_record(3)])
        got = [json.loads(proc.stdout.readline())["request_id"] for _ in range(2)]
        assert got == ["req_00000002", "req_00000003"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_usage_sums_match_the_records(data_dir: Path) -> None:
    out = ghat("usage", "--by", "app", "--format", "json", data_dir=data_dir)
    report = json.loads(out.stdout)
    groups = {g["key"]: g["current"] for g in report["groups"]}
    recs = [json.loads(x) for x in ghat("logs", "--limit", "1000", "--format", "jsonl",
                                        data_dir=data_dir).stdout.splitlines()]  # fmt: skip
    total = groups["(all)"]
    assert total["requests"] == len(recs) == 43
    assert total["tokens_in"] == sum(r["prompt_tokens"] for r in recs)
    assert total["tokens_out"] == sum(r["completion_tokens"] for r in recs)
    assert total["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in recs))
    sp = groups["support-prod"]
    assert sp["requests"] == 14 + 3
    assert sp["block_rate"] == pytest.approx(1 / 17) and sp["error_rate"] == pytest.approx(1 / 17)
    assert sp["fallback_rate"] == pytest.approx(1 / 17) and sp["guardrail_hits"] == 14 + 2 + 1 + 1
    assert sum(g["requests"] for k, g in groups.items() if k != "(all)") == 43


def test_usage_by_operation_csv_and_table(data_dir: Path) -> None:
    out = ghat("usage", "--by", "operation", "--format", "csv", data_dir=data_dir)
    rows = {r["operation"]: r for r in csv.DictReader(io.StringIO(out.stdout))}
    assert set(rows) == {"bulk", "chat", "summarize", "(all)"}
    table = ghat("usage", "--by", "provider", data_dir=data_dir)
    assert table.returncode == 0 and "p95 ms" in table.stdout and "local" in table.stdout


def test_usage_compare_reports_changes_between_ranges(data_dir: Path) -> None:
    # baseline: the first 20 s (all fine); current: from 20 s on (a block, a fallback, a 503).
    out = ghat("usage", "--since", "2027-01-15T08:00:20Z", "--compare", "2027-01-15T08:00:00Z..2027-01-15T08:00:20Z",
               "--format", "json", data_dir=data_dir)  # fmt: skip
    report = json.loads(out.stdout)
    sp = next(g for g in report["groups"] if g["key"] == "support-prod")
    assert sp["baseline"]["requests"] == 7 and sp["current"]["requests"] == 10
    assert sp["change"]["error_rate"] == pytest.approx(0.1) and sp["change"]["block_rate"] == pytest.approx(0.1)
    table = ghat("usage", "--since", "2027-01-15T08:00:20Z", "--compare", "2027-01-15T08:00:00Z..2027-01-15T08:00:20Z",
                 data_dir=data_dir)  # fmt: skip
    assert "0.0% → 10.0%" in table.stdout


def test_time_anchor() -> None:
    assert parse_time("2027-01-15T08:00:00Z") == T0


def test_untrusted_usage_and_sanitized_records_are_found_and_left_out_of_sums(tmp_path: Path) -> None:
    w = open_log_writer(tmp_path)
    w.submit(make_record(0, prompt_tokens=100, completion_tokens=10, cost_usd=0.5))
    w.submit(make_record(1, prompt_tokens=10**30, cost_usd=1e24, client_request_id="dup"))
    w.submit(make_record(2, metadata={"operation": "\ud800"}, client_request_id="dup"))
    w.close()
    untrusted = ghat("logs", "--untrusted-usage", "--format", "jsonl", data_dir=tmp_path)
    assert [json.loads(x)["request_id"] for x in untrusted.stdout.splitlines()] == ["req_00000001"]
    sanitized = ghat("logs", "--sanitized", "--format", "jsonl", data_dir=tmp_path)
    assert {json.loads(x)["request_id"] for x in sanitized.stdout.splitlines()} == {"req_00000001", "req_00000002"}
    assert "?" in ghat("logs", "--untrusted-usage", data_dir=tmp_path).stdout.splitlines()[1]
    show = ghat("logs", "show", "dup", data_dir=tmp_path)
    assert show.returncode == 0 and json.loads(show.stdout)["request_id"] == "req_00000002"
    assert "several requests carry" in show.stderr
    report = json.loads(ghat("usage", "--format", "json", data_dir=tmp_path).stdout)
    total = next(g["current"] for g in report["groups"] if g["key"] == "(all)")
    assert (total["requests"], total["untrusted_usage"]) == (3, 1)
    assert total["tokens_in"] == 100 + make_record(2).prompt_tokens and total["cost_usd"] < 1.0
    table = ghat("usage", data_dir=tmp_path).stdout
    assert "untrusted" in table.splitlines()[0] and "1 request(s) with usage that could not be trusted" in table


def test_logs_says_when_records_were_quarantined(tmp_path: Path) -> None:
    from adapters.logstore.writer import QUARANTINE_PREFIX

    w = open_log_writer(tmp_path)
    w.submit(make_record(0))
    w.close()
    (tmp_path / f"{QUARANTINE_PREFIX}1.jsonl").write_bytes(b"garbage\n{}\n")
    out = ghat("logs", data_dir=tmp_path)
    assert out.returncode == 0 and "2 record(s) the store refused are set aside" in out.stderr
