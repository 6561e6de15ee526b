"""`ghat explain`: each step with the policy line that decided, as text and JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.main import main

ROOT = Path(__file__).resolve().parent.parent


def explain(tmp_path: Path, body: object, *extra: str) -> int:
    req = tmp_path / "req.json"
    req.write_text(json.dumps(body))
    return main(["explain", "--policies", str(ROOT / "policies"), "--key-app", "support-prod", *extra, str(req)])


def test_deny_names_the_guard_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body = {"model": "smart-default", "messages": [{"role": "user", "content": "legal advice about my divorce?"}]}
    assert explain(tmp_path, body) == 0
    out = capsys.readouterr().out
    assert out.startswith("deny: guardrail_topics_blocked (403)")
    assert "policies/support.policy:17:5" in out and 'topics ["medical diagnosis", "legal advice"] block' in out


def test_json_shows_when_override_and_route(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body = {"model": "smart-default", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3000,
            "ghat": {"metadata": {"operation": "bulk-summarize"}}}  # fmt: skip
    assert explain(tmp_path, body, "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["decision"] == "allow" and data["max_tokens"] == 3000
    when = next(s for s in data["steps"] if s["step"] == "when")
    assert when["source"].strip().startswith('when operation == "bulk-summarize"')
    assert data["candidates"][0]["model"] == "openai/gpt-4o"


def test_embeddings_shape_and_bad_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert explain(tmp_path, {"model": "embed-default", "input": ["a", "b"]}, "--json") == 0
    assert json.loads(capsys.readouterr().out)["decision"] == "allow"
    assert explain(tmp_path, {"messages": []}) == 2
    assert "model" in capsys.readouterr().err
