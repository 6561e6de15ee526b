"""`ghat fmt` as users run it: in a subprocess, on real files."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GHAT = ROOT / ".venv" / "bin" / "ghat"

MESSY = """\
# models
provider local {
    kind mock   # the mock
}
model local/echo {price in 0 out 0 per 1M}
"""
CLEAN = """\
# models
provider local {
  kind mock  # the mock
}

model local/echo { price in 0 per 1M }
"""


def ghat(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(GHAT), "fmt", *map(str, args)], capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_rewrites_in_place_then_is_quiet(tmp_path: Path) -> None:
    policy = tmp_path / "a.policy"
    policy.write_text(MESSY)
    policy.chmod(0o640)
    done = ghat(policy)
    assert done.returncode == 0, done.stderr
    assert policy.read_text() == CLEAN
    assert policy.stat().st_mode & 0o777 == 0o640  # the rename keeps the file's mode
    assert [p.name for p in tmp_path.iterdir()] == ["a.policy"]  # no temporary file left behind
    again = ghat(policy, "--check")
    assert again.returncode == 0 and again.stdout == ""


def test_check_lists_files_that_would_change_and_changes_nothing(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    messy, clean = tmp_path / "sub" / "m.policy", tmp_path / "c.policy"
    messy.write_text(MESSY)
    clean.write_text(CLEAN)
    (tmp_path / "notes.txt").write_text("not a policy {")
    done = ghat(tmp_path, "--check")
    assert done.returncode == 1
    assert done.stdout.strip() == f"would reformat {messy}"
    assert messy.read_text() == MESSY


def test_diff_prints_a_unified_diff_and_changes_nothing(tmp_path: Path) -> None:
    policy = tmp_path / "a.policy"
    policy.write_text(MESSY)
    done = ghat(policy, "--diff")
    assert done.returncode == 0
    assert f"--- {policy} (original)" in done.stdout and f"+++ {policy} (formatted)" in done.stdout
    assert "+  kind mock  # the mock" in done.stdout and "+model local/echo { price in 0 per 1M }" in done.stdout
    assert policy.read_text() == MESSY


def test_syntax_errors_are_reported_and_the_file_left_alone(tmp_path: Path) -> None:
    bad, good = tmp_path / "bad.policy", tmp_path / "good.policy"
    bad.write_text("app x {\n  max_tokens: 12\n}\n")
    good.write_text(MESSY)
    done = ghat(bad, good)
    assert done.returncode == 1
    assert f"{bad}:2:13: error[E007]" in done.stderr and "Traceback" not in done.stderr
    assert bad.read_text() == "app x {\n  max_tokens: 12\n}\n"
    assert good.read_text() == CLEAN  # the other files are still formatted


def test_missing_path_and_binary_file(tmp_path: Path) -> None:
    binary = tmp_path / "b.policy"
    binary.write_bytes(b"\xff\xfe\x00app")
    done = ghat(tmp_path / "nope.policy", binary)
    assert done.returncode == 1
    assert "no such file or directory" in done.stderr and str(binary) in done.stderr
    assert "Traceback" not in done.stderr
