"""`topics`: denied topics given as phrases in the policy.

Each phrase becomes one RE2 pattern, matched case-insensitively on word
boundaries, with the light normalisation users expect: any run of spaces or
hyphens between words, and regular plurals and inflections of each word
(`diagnosis`/`diagnoses`, `policy`/`policies`, `loan`/`loans`). All phrases go
into one set, so the cost is one pass whatever the number of topics.
"""

from __future__ import annotations

import re2

from dsl import ast
from engine.detectors.base import Detector, Finding, ScanContext
from engine.detectors.patterns import PatternSet, Rule, settle
from engine.detectors.registry import register


def _singular(word: str) -> str:
    """`weapons` → `weapon`: a phrase written in the plural still names its singular.

    Only a consonant + s with a stem of four letters or more (not -ss, -us, -is, -ics:
    class, virus, analysis, politics; not news, gas)."""
    w = word.lower()
    if len(w) >= 5 and w.endswith("s") and w[-2] not in "aeiousy" and not w.endswith("ics"):
        return word[:-1]
    return word


def _word(word: str) -> str:
    """A pattern for `word` and its regular plural / inflected forms."""
    word = _singular(word)
    w: str = re2.escape(word.lower())
    if word.endswith("is") and len(word) > 4:  # diagnosis → diagnoses
        return w[:-2] + "(?:is|es)"
    if word.endswith("y") and len(word) > 3 and word[-2] not in "aeiou":  # policy → policies
        return w[:-1] + "(?:y|ies)"
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return w + "(?:es)?"
    if word.endswith("e"):
        return w + "(?:s|d)?"
    return w + "(?:s|es|'s)?"


def phrase_pattern(phrase: str) -> str:
    """Word-bounded, case-insensitive pattern for a topic phrase."""
    words = [w for w in phrase.replace("-", " ").split() if w]
    return r"(?i)\b" + r"[\s-]{1,3}".join(_word(w) for w in words) + r"\b"


class TopicsDetector:
    """Reports each mention of a denied topic; `detail` names the topic."""

    def __init__(self, topics: tuple[str, ...]) -> None:
        self.name = "topics"
        self.topics = tuple(t for t in topics if t.strip())
        self._set = PatternSet([Rule(t, phrase_pattern(t)) for t in self.topics]) if self.topics else None

    @property
    def max_span(self) -> int | None:
        return self._set.max_span if self._set is not None else 0

    @property
    def open_patterns(self) -> tuple[tuple[str, int, bool], ...] | None:
        return () if self._set is None else self._set.open_patterns

    def scan_open(self, text: str, context: ScanContext, open_at: int) -> tuple[list[Finding], int]:
        found = self.scan(text, context)
        return found, settle(open_at, [(f.start, f.end, f.type, 0) for f in found])

    def scan(self, text: str, context: ScanContext) -> list[Finding]:
        if self._set is None:
            return []
        out: list[Finding] = []
        for index in self._set.candidates(text):
            topic = self._set.rules[index].type
            for start, end in self._set.spans(index, text):
                out.append(Finding("topics", "topics", start, end, 1.0, True, topic))
        out.sort(key=lambda f: f.start)
        return out


@register("topics")
def build(guard: ast.Guard) -> Detector:
    return TopicsDetector(guard.topics)
