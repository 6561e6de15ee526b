"""Shared machinery for pattern families: find candidates in one pass, confirm hits only.

Every family compiles its patterns twice at construction: once together into a
single `re2.Set` (one linear scan tells which patterns occur at all) and once each
on its own (run only for the patterns the set reported, to get spans and groups).
A 2 KB prompt with no candidates costs one set scan, a few microseconds.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from re import _parser as sre_parse  # width bounds only; matching is RE2's

import re2

# A confirmer gets (text, match) and returns the span to report, or None to drop it;
# a list when one match holds several findings (two names in one capitalised run).
Span = tuple[int, int]
Confirm = Callable[[str, "re2._Match"], "Span | list[Span] | None"]


@dataclass(frozen=True, slots=True)
class Rule:
    """One pattern of a family: the type it reports and how to confirm a match."""

    type: str
    pattern: str
    confirm: Confirm | None = None  # None: report group 1 if the pattern has one, else the match
    width: int | None = None  # longest match; computed from the pattern when None


def _options(case_sensitive: bool = True, never_capture: bool = False) -> re2.Options:
    options = re2.Options()
    options.case_sensitive = case_sensitive
    options.never_capture = never_capture
    options.max_mem = 64 << 20
    return options


def pattern_width(pattern: str) -> int | None:
    """The longest text `pattern` can match, or None when unbounded."""
    try:
        high = sre_parse.parse(pattern).getwidth()[1]
    except Exception:
        return None
    return None if high >= 65535 else int(high)


class PatternSet:
    """A family's rules as one RE2 set for candidates plus one regex per rule for spans."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = tuple(rules)
        self._set = re2.Set.SearchSet(_options(never_capture=True))
        for rule in self.rules:
            self._set.Add(rule.pattern)
        self._set.Compile()
        self._regexes = tuple(re2.compile(r.pattern, _options()) for r in self.rules)
        widths = [r.width if r.width is not None else pattern_width(r.pattern) for r in self.rules]
        self.max_span: int | None = (
            None if any(w is None for w in widths) else max((w or 0 for w in widths), default=0)
        )

    def candidates(self, text: str) -> list[int]:
        """Indices of the rules that match somewhere in `text` (one linear pass)."""
        hits = self._set.Match(text)
        return sorted(hits) if hits else []

    def spans(self, index: int, text: str) -> Iterator[tuple[int, int]]:
        """Confirmed spans of rule `index` in `text`."""
        rule = self.rules[index]
        for m in self._regexes[index].finditer(text):
            if rule.confirm is not None:
                span = rule.confirm(text, m)
                if isinstance(span, list):
                    yield from span
                elif span is not None:
                    yield span
            elif m.re.groups and m.start(1) >= 0:
                yield m.start(1), m.end(1)
            else:
                yield m.start(), m.end()


def shannon_entropy(value: str) -> float:
    """Bits per character of `value`'s character distribution."""
    if not value:
        return 0.0
    counts: dict[str, int] = {}
    for ch in value:
        counts[ch] = counts.get(ch, 0) + 1
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def drop_overlaps(found: list[tuple[int, int, str, int]]) -> list[tuple[int, int, str]]:
    """Keep one finding per overlapping cluster: the highest priority, then the longest.

    Items are (start, end, type, priority); a specific vendor pattern outranks the
    generic assignment rules that also see the same value. Kept spans are disjoint
    and held sorted, so each candidate checks only its two neighbours (n log n).
    """
    found.sort(key=lambda f: (-f[3], -(f[1] - f[0]), f[0]))
    starts: list[int] = []
    kept: list[tuple[int, int, str]] = []
    for start, end, type_, _ in found:
        i = bisect.bisect_right(starts, start)
        if i > 0 and kept[i - 1][1] > start:
            continue  # the kept span before this one reaches into it
        if i < len(kept) and kept[i][0] < end:
            continue  # the kept span after this one starts inside it
        starts.insert(i, start)
        kept.insert(i, (start, end, type_))
    return kept
