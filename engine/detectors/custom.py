"""Custom `detector NAME pattern /…/` detectors: one RE2 pattern, linear time."""

from __future__ import annotations

import contextlib

import re2

from dsl import ast
from engine.detectors.base import Finding, ScanContext
from engine.detectors.prefixes import Unsupported, prefix_pattern


class PatternDetector:
    """Reports every non-overlapping match of a user-written RE2 pattern."""

    def __init__(self, spec: ast.CustomDetector) -> None:
        options = re2.Options()
        options.case_sensitive = not spec.ignorecase
        options.never_capture = True
        self.name = spec.name
        self.type = spec.type or spec.name
        self._regex = re2.compile(spec.pattern, options)
        self._max_span = _bounded_length(spec.pattern)
        self._open: tuple[tuple[str, int, bool], ...] | None = None
        if self._max_span is not None:
            with contextlib.suppress(Unsupported):  # RE2-only syntax: a stream holds back max_span
                prefix_pattern(spec.pattern, 1)
                self._open = ((spec.pattern, 1, spec.ignorecase),)

    @property
    def max_span(self) -> int | None:
        return self._max_span

    def scan(self, text: str, context: ScanContext) -> list[Finding]:
        return [
            Finding(self.name, self.type, m.start(), m.end())
            for m in self._regex.finditer(text)
            if m.end() > m.start()
        ]

    @property
    def open_patterns(self) -> tuple[tuple[str, int, bool], ...] | None:
        return self._open

    def scan_open(self, text: str, context: ScanContext, open_at: int) -> tuple[list[Finding], int]:
        found = self.scan(text, context)
        for f in reversed(found):  # non-overlapping and sorted: one pass back finds every straddler
            if f.start < open_at < f.end:
                open_at = f.start
        return found, open_at


def _bounded_length(pattern: str) -> int | None:
    """An upper bound on the match length, when the pattern has no unbounded repeat."""
    from re import _parser as sre_parse  # reads the syntax RE2 shares with re, for a bound

    try:
        lo_hi = sre_parse.parse(pattern).getwidth()
    except Exception:  # RE2-only syntax: treat as unbounded
        return None
    high = lo_hi[1]
    return None if high >= 65535 else int(high)
