"""`ghat test`: pass/fail exit codes, coverage, JUnit output, and compile errors without tracebacks."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from cli.main import main

ROOT = Path(__file__).resolve().parent.parent
FAILING = ROOT / "tests" / "fixtures_engine" / "failing.policy"


def test_shipped_policies_pass_with_coverage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", str(ROOT / "policies")]) == 0
    out = capsys.readouterr().out
    assert "0 failed" in out and "rule coverage:" in out


def test_a_failing_test_exits_1_and_points_at_the_expectation(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", str(FAILING)]) == 1
    out = capsys.readouterr().out
    assert "PASS demo › redacts numbers" in out
    assert "FAIL demo › wrong on purpose" in out
    assert f"{FAILING}:17:5: expected deny guardrail_digits_blocked, got allow" in out
    assert "rule coverage: 3/3 rules exercised (100%)" in out  # the guard, the cap and the limit


def test_junit_output_parses(tmp_path: Path) -> None:
    target = tmp_path / "report.xml"
    assert main(["test", str(FAILING), "--format", "junit", "--output", str(target)]) == 1
    root = ET.parse(target).getroot()
    suite = root.find("testsuite")
    assert suite is not None and suite.get("tests") == "2" and suite.get("failures") == "1"
    failures = root.findall(".//failure")
    assert len(failures) == 1 and "guardrail_digits_blocked" in (failures[0].get("message") or "")


def test_a_set_that_does_not_compile_exits_1_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bad.policy").write_text("app x { env prod models nope/model }\n")
    assert main(["test", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "bad.policy:1:" in err and "Traceback" not in err


def test_env_skips_apps_of_other_environments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", str(ROOT / "policies"), "--env", "dev"]) == 0
    out = capsys.readouterr().out
    assert "SKIP support-prod" in out and "PASS support-dev" in out
