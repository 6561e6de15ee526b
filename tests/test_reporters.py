"""Reporters: each format carries every diagnostic with its place; SARIF validates against 2.1.0."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree as ET

import jsonschema
import pytest

from dsl.checker import CheckResult, Config, check_paths
from dsl.reporters import REPORTERS, github, json_report, junit, sarif, text

SCHEMA = Path(__file__).parent / "data" / "sarif-schema-2.1.0.json"
POLICY = """provider local { kind mock }
model local/echo { price in 0 out 0 per 1M }
app chat { env dev; models local/ech0; max_tokens 10 }
app ok, { env dev }
"""


@pytest.fixture
def result(tmp_path: Path) -> CheckResult:
    (tmp_path / "a.policy").write_text(POLICY, encoding="utf-8")
    clean = "provider other { kind mock }\nmodel other/echo { price in 0 per 1M }\n"  # W104 wants a model on it
    (tmp_path / "clean.policy").write_text(clean, encoding="utf-8")
    return check_paths([tmp_path], Config())


def test_fixture_has_an_error_a_warning_and_a_syntax_error(result: CheckResult) -> None:
    assert {(d.code, d.span.line) for d in result.diagnostics} == {("E102", 3), ("W203", 3), ("E001", 4)}


def test_text_shows_source_line_caret_help_and_summary(result: CheckResult) -> None:
    out = text(result, "error")
    assert "a.policy:3:28: error[E102] no model or alias named 'local/ech0'" in out
    assert "   3 | app chat { env dev; models local/ech0; max_tokens 10 }\n" + " " * 34 + "^" * 10 in out
    assert "help: did you mean 'local/echo'?" in out
    assert out.endswith("2 files checked: 2 errors, 1 warning\n")


def test_json_carries_every_field(result: CheckResult) -> None:
    doc = json.loads(json_report(result, "warning"))
    assert doc["summary"] == {"error": 2, "warning": 1, "note": 0, "failed": True}
    first = doc["diagnostics"][1]  # sorted by position: the app's W203 at 3:1 comes first
    assert first["rule"] == "reference/unknown-model" and (first["line"], first["col"], first["end_col"]) == (3, 28, 38)
    assert [Path(f).name for f in doc["files"]] == ["a.policy", "clean.policy"]


def test_sarif_validates_against_the_2_1_0_schema(result: CheckResult) -> None:
    doc = json.loads(sarif(result, "error"))
    jsonschema.validate(doc, json.loads(SCHEMA.read_text(encoding="utf-8")))
    run = doc["runs"][0]
    assert [r["ruleId"] for r in run["results"]] == ["W203", "E102", "E001"]
    rule_ids = [r["id"] for r in run["tool"]["driver"]["rules"]]
    for res in run["results"]:
        assert rule_ids[res["ruleIndex"]] == res["ruleId"]
    region = run["results"][1]["locations"][0]["physicalLocation"]["region"]
    assert region == {"startLine": 3, "startColumn": 28, "endLine": 3, "endColumn": 38}


def test_sarif_of_a_clean_run_validates_too(tmp_path: Path) -> None:
    (tmp_path / "x.policy").write_text("provider p { kind mock }\nmodel p/m { price in 0 per 1M }\n", encoding="utf-8")
    doc = json.loads(sarif(check_paths([tmp_path], Config()), "error"))
    jsonschema.validate(doc, json.loads(SCHEMA.read_text(encoding="utf-8")))
    assert doc["runs"][0]["results"] == []


def test_github_annotations_escape_properties_and_newlines(result: CheckResult) -> None:
    lines = github(result, "error").splitlines()
    assert len(lines) == 3
    assert lines[1].startswith("::error file=") and ",line=3,col=28,endLine=3,endColumn=38," in lines[1]
    assert "title=E102 reference/unknown-model::no model or alias named 'local/ech0'%0Ahelp: did you mean" in lines[1]
    assert lines[0].startswith("::warning ") and "title=W203 limits/no-rate-limit::" in lines[0]


def test_junit_failures_follow_the_fail_level(result: CheckResult) -> None:
    root = ET.fromstring(junit(result, "error"))
    assert (root.get("tests"), root.get("failures")) == ("4", "2")
    suites = {Path(s.get("name") or "").name: s for s in root.iter("testsuite")}
    assert suites["clean.policy"].get("failures") == "0" and len(suites["clean.policy"]) == 1
    assert ET.fromstring(junit(result, "warning")).get("failures") == "3"
    assert ET.fromstring(junit(result, "never")).get("failures") == "0"


def test_every_format_is_registered() -> None:
    assert set(REPORTERS) == {"text", "json", "sarif", "github", "junit"}


def test_github_escapes_commas_and_colons_in_file_names(tmp_path: Path) -> None:
    (tmp_path / "a,b:c.policy").write_text("app x { env dev; models m/x; max_tokens 1; rate_limit 1/min }\n", "utf-8")
    out = github(check_paths([tmp_path], Config()), "error")
    assert "a%2Cb%3Ac.policy,line=1,col=" in out
