"""Shared machinery for pattern families: find candidates in one pass, confirm hits only.

Every family compiles its patterns twice at construction: once together into a
single `re2.Set` (one linear scan tells which patterns occur at all) and once each
on its own (run only for the patterns the set reported, to get spans and groups).
A 2 KB prompt with no candidates costs one set scan, a few microseconds.

Matches on ASCII text are read straight from RE2's spans (`finditer`, `search`
below): the binding's own iterator re-encodes and re-decodes offsets and builds a
match object per hit, which cost more than the confirmers on dense text (a 1 MB
list of IP addresses: 111 111 matches). Non-ASCII text goes through the binding.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from re import _parser as sre_parse  # width bounds only; matching is RE2's

import re2

from engine.detectors.prefixes import OpenPattern, Unsupported, prefix_pattern

# A confirmer gets (text, match) and returns the span to report, or None to drop it;
# a list when one match holds several findings (two names in one capitalised run).
Span = tuple[int, int]
Confirm = Callable[[str, "Match"], "Span | list[Span] | None"]
_UNANCHORED = re2._Anchor.UNANCHORED
_NO_SPAN = (-1, -1)


class Match:
    """One match: groups read from the searched text, offsets shifted into the whole text.

    `offset` is where the searched slice starts in the text confirmers see, so a
    search on a bounded slice reads like a search on the whole text."""

    __slots__ = ("_offset", "_searched", "_spans")

    def __init__(self, searched: str, spans: Sequence[tuple[int, int]], offset: int = 0) -> None:
        self._searched, self._spans, self._offset = searched, spans, offset

    def group(self, g: int = 0) -> str | None:
        s, e = self._spans[g]
        return None if s < 0 else self._searched[s:e]

    def start(self, g: int = 0) -> int:
        s = self._spans[g][0]
        return s + self._offset if s >= 0 else s

    def end(self, g: int = 0) -> int:
        e = self._spans[g][1]
        return e + self._offset if e >= 0 else e


def _spans_of(m: re2._Match, groups: int) -> list[tuple[int, int]]:
    return [m.span(g) for g in range(groups + 1)]


def finditer(regex: re2._Regexp, text: str, groups: int | None = None) -> Iterator[Match]:
    """Non-overlapping matches left to right, as `regex.finditer` finds them."""
    if not text.isascii():
        n = regex.groups if groups is None else groups
        for m in regex.finditer(text):
            yield Match(text, _spans_of(m, n))
        return
    raw, data, pos = regex._regexp, text.encode(), 0
    end = len(data)
    while True:
        spans = raw.Match(_UNANCHORED, data, pos, end)
        if spans[0] == _NO_SPAN:
            return
        yield Match(text, spans)
        if pos == end:
            return
        pos = pos + 1 if spans[0][1] == pos else spans[0][1]  # step past an empty match


def search(regex: re2._Regexp, text: str, pos: int = 0, offset: int = 0, groups: int | None = None) -> Match | None:
    """The first match at or after `pos`, as `regex.search`; offsets shifted by `offset`."""
    if not text.isascii():
        m = regex.search(text, pos)
        return None if m is None else Match(text, _spans_of(m, regex.groups if groups is None else groups), offset)
    spans = regex._regexp.Match(_UNANCHORED, text.encode(), pos, len(text))
    return None if spans[0] == _NO_SPAN else Match(text, spans, offset)


@dataclass(frozen=True, slots=True)
class Rule:
    """One pattern of a family: the type it reports and how to confirm a match."""

    type: str
    pattern: str
    confirm: Confirm | None = None  # None: report group 1 if the pattern has one, else the match
    width: int | None = None  # longest match; computed from the pattern when None
    # The right edge, checked on the character after the match instead of matched by the
    # pattern: a pattern that consumed it would hide a match starting right there (two keys
    # separated by one space) until redaction freed it, and redaction must be idempotent (P5).
    right: str = ""  # characters that may not follow the match
    right_dot: str = ""  # a "." may follow unless one of these comes after it (emails, IPv4)
    # A rejected candidate (a digit run failing Luhn) may hide a real one that starts inside it
    # ("123-45-6789 4111 1111 1111 1111" read as one run); retry looks again from each later start.
    retry: bool = False
    shorter: bool = False  # retry only by cutting the rejected candidate at a separator (cheaper)
    # Fewest digits a confirmed value has (13 for a card, 7 for a phone number): retries skip
    # the cuts and starts that leave fewer, so a dense run of digits costs no hopeless searches.
    min_digits: int = 0
    # Characters past the match that the confirmer or the right edge reads: a stream holds a match
    # back until this many characters follow it (engine/detectors/prefixes.py).
    reach: int = 2


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
        self._groups = tuple(int(r.groups) for r in self._regexes)
        self._right = tuple((frozenset(r.right), frozenset(r.right_dot)) for r in self.rules)
        # + 2: a right edge looks at up to two characters after the match
        widths = [
            None if w is None else w + (2 if r.right else 0)
            for r, w in ((r, r.width if r.width is not None else pattern_width(r.pattern)) for r in self.rules)
        ]
        self._bounded = tuple(w is not None and w <= 256 for w in widths)
        self._retry = tuple(r.retry and b for r, b in zip(self.rules, self._bounded, strict=True))
        self._shorter = tuple((r.retry or r.shorter) and b for r, b in zip(self.rules, self._bounded, strict=True))
        self._widths = tuple(w or 0 for w in widths)
        self._min_digits = tuple(r.min_digits for r in self.rules)
        self.max_span: int | None = (
            None if any(w is None for w in widths) else max((w or 0 for w in widths), default=0)
        )
        self.open_patterns = self._open_patterns()

    def _open_patterns(self) -> tuple[OpenPattern, ...] | None:
        """The rules as a stream's viable-prefix search reads them (prefixes.py); None when one cannot be
        rewritten (then a stream holds back max_span)."""
        if self.max_span is None:
            return None
        try:
            for rule in self.rules:
                prefix_pattern(rule.pattern, rule.reach)
        except Unsupported:
            return None
        return tuple((r.pattern, r.reach, False) for r in self.rules)

    def candidates(self, text: str) -> list[int]:
        """Indices of the rules that match somewhere in `text` (one linear pass)."""
        hits = self._set.Match(text)
        return sorted(hits) if hits else []

    def spans(self, index: int, text: str) -> Iterator[tuple[int, int]]:
        """Confirmed spans of rule `index` in `text`."""
        for m in finditer(self._regexes[index], text, self._groups[index]):
            found = self._confirmed(index, text, m)
            if found:
                yield from found
                last = max(e for _s, e in found)
                if last < m.end() and self._bounded[index]:
                    # the value ended before the match (an IBAN shortened to its valid prefix):
                    # a value starting in the rest would be hidden, so look there too
                    yield from self._later(index, text, last, m.end())
            elif self._shorter[index]:
                yield from self._inside(index, text, m, later=self._retry[index])

    def _confirmed(self, index: int, text: str, m: Match) -> list[Span]:
        rule = self.rules[index]
        right, right_dot = self._right[index]
        if right and not _right_edge(text, m.end(), right, right_dot):
            return []
        if rule.confirm is not None:
            span = rule.confirm(text, m)
            return span if isinstance(span, list) else [] if span is None else [span]
        if self._groups[index] and m.start(1) >= 0:
            return [(m.start(1), m.end(1))]
        return [(m.start(), m.end())]

    def _token(self, index: int, m: Match) -> int:
        """Where the value starts: group 1 when the pattern captures one, else the match."""
        return m.start(1) if self._groups[index] and m.start(1) >= 0 else m.start()

    def _inside(self, index: int, text: str, rejected: Match, later: bool) -> Iterator[Span]:
        """A value inside a rejected candidate: the same start cut at a separator (+44 20 7946
        0958 before a card number), else a later token start. Each search runs on a slice
        bounded by the rule's width, so the scan stays linear."""
        regex, groups = self._regexes[index], self._groups[index]
        tok = self._token(index, rejected)
        lo, hi = tok + 1, rejected.end()
        base = max(0, tok - 1)
        need = self._min_digits[index]
        digits = _digits(text, tok, hi) if need else 0
        for cut in range(hi - 1, tok, -1):  # shorter, same start, longest first
            if need:
                if text[cut] in _ASCII_DIGITS:
                    digits -= 1
                if digits < need:
                    break  # every shorter cut has fewer digits still
            if text[cut] not in " .-/":
                continue
            mm = search(regex, text[base:cut], tok - 1 - base if tok > 0 else 0, base, groups)
            if mm is not None and self._token(index, mm) == tok:
                found = self._confirmed(index, text, mm)
                if found:
                    yield from found
                    return
        if later:
            yield from self._later(index, text, lo, hi)

    def _later(self, index: int, text: str, lo: int, hi: int) -> Iterator[Span]:
        """The first confirmed value starting in [lo, hi), searched from each token start."""
        if lo < 1:
            return
        regex, groups = self._regexes[index], self._groups[index]
        base = lo - 1  # one character before each start, for the left-edge class
        stop = min(len(text), hi + self._widths[index] + 2)
        piece = text[base:stop]
        need = self._min_digits[index]
        digits = _digits(text, lo, stop) if need else 0
        for t in range(lo, hi):
            if need:
                if t > lo and text[t - 1] in _ASCII_DIGITS:
                    digits -= 1
                if digits < need:
                    return  # too few digits left for a value starting here or later
            if text[t - 1].isalnum() or not (text[t].isalnum() or text[t] in "+("):
                continue  # not where a value can start
            mm = search(regex, piece, t - 1 - base, base, groups)
            if mm is None:
                return
            start = self._token(index, mm)
            if start >= hi:
                return  # past the candidate: the main scan finds it
            if start != t or (mm.end() >= stop and stop < len(text)):
                continue  # starts later (its own turn comes), or a false $ at the slice end
            found = self._confirmed(index, text, mm)
            if found:
                yield from found
                return  # the main scan resumes after the candidate


def _digits(text: str, start: int, end: int) -> int:
    """ASCII digits in text[start:end] (what RE2's `\\d` matches)."""
    piece = text[start:end]
    return len(piece) - len(piece.translate(_DIGITS_GONE))


_DIGITS_GONE = str.maketrans("", "", "0123456789")
_ASCII_DIGITS = frozenset("0123456789")


def _right_edge(text: str, end: int, right: frozenset[str], right_dot: frozenset[str]) -> bool:
    """Whether the character after a match may follow it (see Rule.right)."""
    c = text[end : end + 1]
    if not c:
        return True
    if c == "." and right_dot:
        return text[end + 1 : end + 2] not in right_dot or end + 1 >= len(text)
    return c not in right


def expand(chars: str) -> str:
    """`A-Za-z0-9_-` as the characters it names (ranges expanded), for Rule.right."""
    out: list[str] = []
    i = 0
    while i < len(chars):
        if i + 2 < len(chars) and chars[i + 1] == "-":
            out.extend(chr(c) for c in range(ord(chars[i]), ord(chars[i + 2]) + 1))
            i += 3
        else:
            out.append(chars[i])
            i += 1
    return "".join(out)


def shannon_entropy(value: str) -> float:
    """Bits per character of `value`'s character distribution."""
    if not value:
        return 0.0
    counts: dict[str, int] = {}
    for ch in value:
        counts[ch] = counts.get(ch, 0) + 1
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def settle(open_at: int, found: Sequence[tuple[int, int, str, int]]) -> int:
    """`open_at` moved back before every candidate finding that reaches over it.

    A finding before the cut must not overlap one that later text may still
    change: `drop_overlaps` could keep the other one in the whole text, so the
    cut never falls inside any candidate, kept or dropped."""
    moved = True
    while moved:
        moved = False
        for start, end, _type, _priority in found:
            if start < open_at < end:
                open_at, moved = start, True
    return open_at


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
