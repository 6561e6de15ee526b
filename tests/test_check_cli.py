"""`ghat check` as CI runs it: a real subprocess, exit codes, formats, config, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GHAT = ROOT / ".venv" / "bin" / "ghat"
WARN_ONLY = """provider local { kind mock }
model local/echo { price in 0 out 0 per 1M }
app chat { env dev; models local/echo; max_tokens 10 }
"""


def ghat(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    command = [str(GHAT)] if GHAT.exists() else [sys.executable, "-m", "cli.main"]
    return subprocess.run(
        [*command, "check", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )


@pytest.fixture
def warn_dir(tmp_path: Path) -> Path:
    (tmp_path / "app.policy").write_text(WARN_ONLY, encoding="utf-8")
    return tmp_path


def test_warnings_pass_by_default_and_fail_at_fail_level_warning(warn_dir: Path) -> None:
    ok = ghat(warn_dir)
    assert ok.returncode == 0, ok.stderr
    assert "warning[W203]" in ok.stdout and "   3 | app chat" in ok.stdout
    assert ghat(warn_dir, "--fail-level", "warning").returncode == 1
    assert ghat(warn_dir, "--fail-level", "note").returncode == 1
    assert ghat(warn_dir, "--fail-level", "never").returncode == 0


def test_config_beside_policies_and_explicit_config(warn_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    (warn_dir / "ghat.toml").write_text('fail-level = "warning"\n', encoding="utf-8")
    assert ghat(warn_dir).returncode == 1  # the config's fail-level
    assert ghat(warn_dir, "--fail-level", "error").returncode == 0  # the flag wins
    other = tmp_path_factory.mktemp("cfg") / "strict.toml"
    other.write_text('[rules]\n"limits/no-rate-limit" = "error"\n', encoding="utf-8")
    run = ghat(warn_dir, "--config", other)
    assert run.returncode == 1 and "error[W203]" in run.stdout


@pytest.mark.parametrize(
    "args",
    [["--format", "yaml"], ["--fail-level", "fatal"], ["--config", "/nonexistent/ghat.toml"], []],
)
def test_usage_errors_exit_2(warn_dir: Path, args: list[str]) -> None:
    run = ghat(*([warn_dir] if args else []), *args)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr


def test_broken_config_is_a_usage_error(warn_dir: Path) -> None:
    (warn_dir / ".ghat.toml").write_text('[rules]\n"no/such-rule" = "off"\n', encoding="utf-8")
    run = ghat(warn_dir)
    assert run.returncode == 2 and "unknown rule 'no/such-rule'" in run.stderr


def test_broken_fixture_reports_file_line_col_and_exits_1() -> None:
    run = ghat("tests/policies/broken/references.policy", "--format", "json")
    assert run.returncode == 1
    places = {(d["code"], d["line"], d["col"]) for d in json.loads(run.stdout)["diagnostics"]}
    assert ("E102", 13, 22) in places and ("E104", 17, 17) in places


def test_random_bytes_exit_1_with_a_diagnostic_not_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "noise.policy").write_bytes(os.urandom(2048) + b"\xff\xfe")
    run = ghat(tmp_path)
    assert run.returncode == 1
    assert "noise.policy:" in run.stdout and "error[E00" in run.stdout
    assert "Traceback" not in run.stderr + run.stdout


def test_missing_path_is_a_diagnostic(tmp_path: Path) -> None:
    run = ghat(tmp_path / "nope.policy")
    assert run.returncode == 1 and "error[E006] no such file or directory" in run.stdout


@pytest.mark.parametrize("fmt", ["json", "sarif", "github", "junit"])
def test_output_file_gets_the_report_and_stderr_the_summary(warn_dir: Path, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"report.{fmt}"
    run = ghat(warn_dir, "--format", fmt, "--output", out)
    assert run.returncode == 0 and run.stdout == ""
    assert "1 file checked: 1 warning" in run.stderr
    body = out.read_text(encoding="utf-8")
    assert "W203" in body


def test_shipped_policies_pass() -> None:
    """The set `make serve` runs: no diagnostic at all, already formatted, and its own tests pass."""
    run = ghat("policies")
    assert run.returncode == 0, run.stdout
    assert run.stdout.strip().endswith("no problems"), run.stdout
    from cli.main import main

    assert main(["fmt", "--check", str(ROOT / "policies")]) == 0
    assert main(["test", str(ROOT / "policies")]) == 0
