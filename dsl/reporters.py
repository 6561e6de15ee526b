"""Render `ghat check` results for people (text) and for machines (json, sarif, github, junit).

Each reporter is a function `(result, fail_level) -> str` in `REPORTERS`; the
fail level matters only where a format has a pass/fail notion of its own
(JUnit failures). Output is deterministic: diagnostics arrive sorted.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from dsl import rules
from dsl.checker import CheckResult, FailLevel
from dsl.diagnostics import LEVEL_RANK, Diagnostic, render_text

Reporter = Callable[[CheckResult, FailLevel], str]
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
DOCS_URI = "https://github.com/ghat/ghat/blob/main/docs/rules.md"
_GITHUB_LEVEL = {"error": "error", "warning": "warning", "note": "notice"}


def summary(diags: list[Diagnostic], files: int) -> str:
    counts = {lvl: sum(d.level == lvl for d in diags) for lvl in ("error", "warning", "note")}
    parts = [f"{n} {lvl}{'s' if n != 1 else ''}" for lvl, n in counts.items() if n]
    checked = f"{files} file{'s' if files != 1 else ''} checked"
    return f"{checked}: {', '.join(parts)}" if parts else f"{checked}: no problems"


def text(result: CheckResult, fail_level: FailLevel) -> str:
    """Like a compiler: location, level, code, message, the source line with a caret, help."""
    blocks = [render_text(d, result.sources.get(d.span.file)) for d in result.diagnostics]
    return "\n\n".join([*blocks, summary(result.diagnostics, len(result.sources))]) + "\n"


def _as_dict(diag: Diagnostic) -> dict[str, Any]:
    s = diag.span
    return {
        "code": diag.code, "rule": diag.rule, "level": diag.level, "message": diag.message,
        "file": s.file, "line": s.line, "col": s.col, "end_line": s.end_line, "end_col": s.end_col,
        "help": diag.help,
    }  # fmt: skip


def json_report(result: CheckResult, fail_level: FailLevel) -> str:
    counts = {lvl: sum(d.level == lvl for d in result.diagnostics) for lvl in ("error", "warning", "note")}
    doc = {
        "version": 1,
        "files": sorted(result.sources),
        "diagnostics": [_as_dict(d) for d in result.diagnostics],
        "summary": {**counts, "failed": result.fails(fail_level)},
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def _uri(path: str) -> str:
    p = Path(path)
    return p.as_uri() if p.is_absolute() else p.as_posix()


def sarif(result: CheckResult, fail_level: FailLevel) -> str:
    """SARIF 2.1.0: one run, the whole rule catalogue as the driver's rules."""
    catalogue = sorted(rules.RULES.values(), key=lambda r: r.code)
    position = {r.code: i for i, r in enumerate(catalogue)}
    driver_rules = [
        {
            "id": r.code,
            "name": r.name,
            "shortDescription": {"text": r.summary},
            "helpUri": f"{DOCS_URI}#{r.code.lower()}",
            "defaultConfiguration": {"level": r.level},
            "properties": {"tags": [r.name.split("/", 1)[0]]},
        }
        for r in catalogue
    ]
    results = []
    for d in result.diagnostics:
        s = d.span
        line, col = max(s.line, 1), max(s.col, 1)
        region = {"startLine": line, "startColumn": col}
        if s.end_line >= line and (s.end_line > line or s.end_col > col):
            region |= {"endLine": s.end_line, "endColumn": max(s.end_col, 1)}
        entry: dict[str, Any] = {
            "ruleId": d.code,
            "level": d.level,
            "message": {"text": d.message + (f"\nhelp: {d.help}" if d.help else "")},
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": _uri(s.file)}, "region": region}}],
        }
        if d.code in position:
            entry["ruleIndex"] = position[d.code]
        results.append(entry)
    doc = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": {"name": "ghat", "informationUri": DOCS_URI, "rules": driver_rules}},
                "artifacts": [{"location": {"uri": _uri(f)}} for f in sorted(result.sources)],
                "results": results,
            }
        ],
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def _gh_escape(value: str, prop: bool = False) -> str:
    value = value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return value.replace(":", "%3A").replace(",", "%2C") if prop else value


def github(result: CheckResult, fail_level: FailLevel) -> str:
    """GitHub Actions workflow commands: annotations on the pull request's diff."""
    lines = []
    for d in result.diagnostics:
        s = d.span
        props = [f"file={_gh_escape(s.file, True)}", f"line={max(s.line, 1)}", f"col={max(s.col, 1)}"]
        if s.end_line >= s.line >= 1:
            props += [f"endLine={s.end_line}", f"endColumn={max(s.end_col, 1)}"]
        props.append(f"title={_gh_escape(f'{d.code} {d.rule}', True)}")
        message = d.message + (f"\nhelp: {d.help}" if d.help else "")
        lines.append(f"::{_GITHUB_LEVEL[d.level]} {','.join(props)}::{_gh_escape(message)}")
    return "".join(line + "\n" for line in lines)


def junit(result: CheckResult, fail_level: FailLevel) -> str:
    """One suite per file, one case per diagnostic; diagnostics at the fail level are failures.

    A clean file gets one passing case, so CI dashboards show what was checked.
    """
    by_file: dict[str, list[Diagnostic]] = {f: [] for f in sorted(result.sources)}
    for d in result.diagnostics:
        by_file.setdefault(d.span.file, []).append(d)
    root = ET.Element("testsuites", name="ghat check")
    total_tests = total_failures = 0
    for file, diags in by_file.items():
        suite = ET.SubElement(root, "testsuite", name=file)
        failures = 0
        if not diags:
            ET.SubElement(suite, "testcase", name="ghat check", classname=file)
        for d in diags:
            case = ET.SubElement(suite, "testcase", name=f"{d.code} {d.rule} {d.span}", classname=file)
            detail = render_text(d, result.sources.get(file))
            if fail_level != "never" and LEVEL_RANK[d.level] >= LEVEL_RANK[fail_level]:
                failures += 1
                ET.SubElement(case, "failure", message=d.message, type=d.level).text = detail
            else:
                ET.SubElement(case, "system-out").text = detail
        tests = max(len(diags), 1)
        suite.set("tests", str(tests))
        suite.set("failures", str(failures))
        suite.set("errors", "0")
        total_tests += tests
        total_failures += failures
    root.set("tests", str(total_tests))
    root.set("failures", str(total_failures))
    root.set("errors", "0")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


REPORTERS: dict[str, Reporter] = {
    "text": text,
    "json": json_report,
    "sarif": sarif,
    "github": github,
    "junit": junit,
}
