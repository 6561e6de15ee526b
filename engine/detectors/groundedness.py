"""`groundedness`: the share of output sentences supported by the grounding context.

The caller sends the documents an answer must rest on (the request's
`grounding` field, ScanContext.grounding). An output sentence is supported when
most of its content words (lower-cased, light suffix stemming, stop words
dropped) occur in the grounding and every number it states occurs there too.
When the supported share is below the policy's `threshold` (default 0.6), each
unsupported sentence is reported (`redactable=False`: a claim is not a span to
mask). Without grounding nothing is reported: there is nothing to check against.
"""

from __future__ import annotations

import re2

from dsl import ast
from engine.detectors.base import Detector, Finding, ScanContext
from engine.detectors.registry import register

DEFAULT_THRESHOLD = 0.6
SUPPORT = 0.6  # share of a sentence's content words the grounding must contain
_SENTENCE = re2.compile(r"[^.!?\n]+(?:[.!?]+|\n|$)")
_WORD = re2.compile(r"[A-Za-z][A-Za-z'-]{1,}|\d+(?:[.,]\d+)*")
_STOP_WORDS = (
    "the a an and or but if of to in on at by for with from as is are was were be been "
    "being this that these those it its it's they them their there here he she his her we "
    "our you your i me my not no so than then too very can could would should will shall "
    "may might must do does did done have has had having about into over under also just "
    "only such which who whom whose what when where why how all any each both more most "
    "other some yes okay sure please thanks thank"
)
_STOP = frozenset(_STOP_WORDS.split())


def _stem(word: str) -> str:
    w = word.lower().strip("'-")
    for suffix in ("ies", "ing", "ed", "es", "s", "ly"):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            return w[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return w


def content_words(text: str) -> list[str]:
    return [_stem(m.group()) for m in _WORD.finditer(text) if m.group().lower() not in _STOP]


class GroundednessDetector:
    """Reports unsupported output sentences when too few are supported."""

    def __init__(self, threshold: float) -> None:
        self.name = "groundedness"
        self.threshold = threshold

    @property
    def max_span(self) -> int | None:
        return None  # the share is over the whole output

    def scan(self, text: str, context: ScanContext) -> list[Finding]:
        if not context.grounding:
            return []
        vocabulary = set(content_words(" ".join(context.grounding)))
        judged = 0
        unsupported: list[tuple[int, int, float]] = []
        for m in _SENTENCE.finditer(text):
            words = content_words(m.group())
            if len(words) < 3:
                continue  # greetings and fragments carry no claim
            judged += 1
            numbers = [w for w in words if w[0].isdigit()]
            share = sum(w in vocabulary for w in words) / len(words)
            if share < SUPPORT or any(n not in vocabulary for n in numbers):
                start = m.start() + (len(m.group()) - len(m.group().lstrip()))
                unsupported.append((start, m.end(), share))
        if not judged or (judged - len(unsupported)) / judged >= self.threshold:
            return []
        grounded = round((judged - len(unsupported)) / judged, 3)
        return [
            Finding("groundedness", "groundedness", s, e, grounded, False, "unsupported")
            for s, e, _share in unsupported
        ]


@register("groundedness")
def build(guard: ast.Guard) -> Detector:
    return GroundednessDetector(guard.threshold if guard.threshold is not None else DEFAULT_THRESHOLD)
