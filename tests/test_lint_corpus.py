"""A corpus of realistic broken policies: each mistake is caught, at the line to change, and nothing else.

Every file in tests/policies/mistakes/ is one mistake engineers make (a
repeated statement, an env typo, a key in a header, a pattern that matches
everything or nothing, a useless fallback, a mock in a prod route …). A
trailing `# <- CODE` comment marks each line where a diagnostic must be
reported; the test wants exactly those (code, line) pairs, so a rule that
fires on the wrong line, or a second rule that fires by accident, fails.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dsl import rules
from dsl.checker import Config, check_paths

CORPUS = Path(__file__).parent / "policies" / "mistakes"
MARK = re.compile(r"#\s*<-\s*((?:[EW]\d{3}\s*)+)$")
CASES = sorted(CORPUS.glob("*.policy"))

# The classes the linter used to miss: each has at least one case here.
MUST_COVER = {
    "E012", "W104", "W105", "W210", "W211", "W212", "W301", "W304", "W305", "W306", "W307", "W503", "W504",
}  # fmt: skip


def _marks(path: Path) -> set[tuple[str, int]]:
    out: set[tuple[str, int]] = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        match = MARK.search(line)
        if match:
            out |= {(code, number) for code in match.group(1).split()}
    return out


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_each_mistake_is_reported_at_its_line_and_nothing_else(case: Path) -> None:
    expected = _marks(case)
    assert expected, f"{case.name} marks no line with `# <- CODE`"
    got = {(d.code, d.span.line) for d in check_paths([case], Config()).diagnostics}
    assert got == expected


def test_the_corpus_is_large_and_covers_every_class_the_linter_missed() -> None:
    assert len(CASES) >= 40
    codes = {code for case in CASES for code, _ in _marks(case)}
    assert codes >= MUST_COVER, MUST_COVER - codes
    assert codes <= set(rules.BY_CODE)


def test_every_diagnostic_has_a_help_line() -> None:
    """The help says what to write instead; a finding without one leaves the author guessing."""
    for case in CASES:
        for d in check_paths([case], Config()).diagnostics:
            assert d.help, f"{case.name}: {d.code} {d.message}"
