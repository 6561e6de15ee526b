"""Bad command-line input gets a one-line message and a usage exit status, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "args",
    [
        ["test", "policies", "--output", "/nonexistent/dir/report.xml"],
        ["scan", "--detectors", "pii", "/nonexistent/input.txt"],
        ["scan", "--detectors", "pii", "{binary}"],
        ["explain", "--policies", "policies", "--env", "prod", "--key-app", "support-prod", "/nonexistent.json"],
        ["bench", "--policies", "policies", "--env", "prod", "--app", "support-prod", "--prompt-file", "/nonexistent"],
    ],
)
def test_unreadable_files_are_reported_not_raised(args: list[str], tmp_path: Path) -> None:
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff\xfe\x00\x9c not utf-8")
    args = [a.replace("{binary}", str(binary)) for a in args]
    run = subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    assert run.stderr.startswith(f"ghat {args[0]}:"), run.stderr
