"""`ghat bench`: every model of an app timed with and without a prompt; bad arguments are usage errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.main import main

ROOT = Path(__file__).resolve().parent.parent


def test_times_every_model_of_the_app(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "--policies", str(ROOT / "policies"), "--env", "prod", "--app", "support-prod",
                 "--runs", "20", "--prompt-bytes", "300", "--format", "json"])  # fmt: skip
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    cases = {(r["model"], r["case"]) for r in out["rows"]}
    assert cases == {(m, c) for m in ("smart-default", "cheap-fast", "embed-default")
                     for c in ("routing only", "prompt 300 chars")}  # fmt: skip
    assert all(r["median_us"] > 0 and r["p99_us"] >= r["median_us"] for r in out["rows"])
    assert all(r["decision"] == "allow" for r in out["rows"])


def test_a_prompt_file_and_a_denied_decision_are_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prompt = tmp_path / "p.txt"
    prompt.write_text("Can you give me legal advice about my divorce?")
    code = main(["bench", "--policies", str(ROOT / "policies"), "--env", "prod", "--app", "support-prod",
                 "--model", "smart-default", "--runs", "5", "--prompt-file", str(prompt)])  # fmt: skip
    assert code == 0
    text = capsys.readouterr().out
    assert "deny guardrail_topics_blocked" in text and "routing only" in text


@pytest.mark.parametrize("extra", [["--app", "nope"], ["--app", "support-prod", "--model", "reasoning"],
                                   ["--app", "support-prod", "--runs", "0"]])  # fmt: skip
def test_usage_errors(extra: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--policies", str(ROOT / "policies"), "--env", "prod", *extra]) == 2
    assert "ghat bench:" in capsys.readouterr().err
