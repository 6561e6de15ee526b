"""`ghat test PATH…`: run the policy set's `test` blocks and report rule coverage.

Exits 1 when a test fails or the set does not compile (its diagnostics are
printed, never a traceback), so CI can gate on it; 2 when `--env` names an
environment no app has (a typo must not pass with nothing tested).
`--format junit` writes JUnit XML for CI test reports. The set is built as
`ghat serve` builds it (engine/pipeline.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.testing import Report


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("test", help="run the policies' test blocks, with rule coverage")
    p.add_argument("paths", nargs="+", type=Path, help="policy files or directories")
    p.add_argument("--format", choices=("text", "junit"), default="text", help="output format (default text)")
    p.add_argument("--output", type=Path, help="write the report here instead of stdout")
    p.add_argument("--env", help="compile for this environment only; tests of other apps are skipped")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from adapters.codecs import request_of_test
    from cli.policyset import compiled
    from engine.testing import run_tests

    policy = compiled("test", args.paths, args.env)
    if isinstance(policy, int):
        if policy == 1:
            print("ghat test: no test ran", file=sys.stderr)
        return policy
    report = run_tests(policy, request_of_test)
    sources = {f.path: f.source for f in policy.source.files}
    text = render_junit(report) if args.format == "junit" else render_report(report, sources)
    if args.output is not None:
        args.output.write_text(text, encoding="utf-8")
        if args.format == "junit":
            print(_summary(report))
    else:
        sys.stdout.write(text)
    return 1 if report.failed else 0


def render_report(report: Report, sources: dict[str, str]) -> str:
    """Text: one line per test, each failure with its source line, then coverage."""
    lines: list[str] = []
    for r in report.results:
        status = "SKIP" if r.skipped else ("PASS" if not r.failures else "FAIL")
        lines.append(f"{status} {r.case.app} › {r.case.name}" + (f" ({r.skipped})" if r.skipped else ""))
        for f in r.failures:
            lines.append(f"  {f.span}: {f.message}")
            src = _line(sources, f.span.file, f.span.line)
            if src is not None:
                lines.append(f"  {f.span.line:>4} | {src}")
    lines.append(_summary(report))
    total, hit = len(report.rules), len(report.covered)
    pct = 100 * hit // total if total else 100
    lines.append(f"rule coverage: {hit}/{total} rules exercised ({pct}%)")
    for rule in report.uncovered:
        lines.append(f"  not exercised: {rule.span}  {rule.app}  {rule.label}")
    return "\n".join(lines) + "\n"


def _summary(report: Report) -> str:
    failed = len(report.failed)
    skipped = sum(1 for r in report.results if r.skipped)
    passed = len(report.results) - failed - skipped
    return f"{passed} passed, {failed} failed, {skipped} skipped"


def render_junit(report: Report) -> str:
    """JUnit XML: one testsuite per app, one testcase per test block."""
    import xml.etree.ElementTree as ET

    root = ET.Element("testsuites", name="ghat test")
    suites: dict[str, ET.Element] = {}
    for r in report.results:
        app = r.case.app or "(no app)"
        suite = suites.get(app)
        if suite is None:
            suite = suites[app] = ET.SubElement(root, "testsuite", name=app)
        case = ET.SubElement(suite, "testcase", classname=app, name=r.case.name, file=r.case.span.file,
                             line=str(r.case.span.line))  # fmt: skip
        if r.skipped:
            ET.SubElement(case, "skipped", message=r.skipped)
        for f in r.failures:
            node = ET.SubElement(case, "failure", message=f.message, type="expectation")
            node.text = f"{f.span}: {f.message}"
    for suite in suites.values():
        cases = suite.findall("testcase")
        suite.set("tests", str(len(cases)))
        suite.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
        suite.set("skipped", str(sum(1 for c in cases if c.find("skipped") is not None)))
    if suites:  # coverage as the first suite's output: JUnit has no place for it on the root
        out = ET.SubElement(next(iter(suites.values())), "system-out")
        out.text = "\n".join(f"not exercised: {r.span} {r.app} {r.label}" for r in report.uncovered)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _line(sources: dict[str, str], file: str, line: int) -> str | None:
    text = sources.get(file)
    if text is None or line < 1:
        return None
    lines = text.splitlines()
    return lines[line - 1].rstrip() if line <= len(lines) else None
