"""`groundedness`: the share of output sentences supported by the grounding context.

The caller sends the documents an answer must rest on (the request's
`grounding` field, ScanContext.grounding). An output sentence is supported when
most of its content words (lower-cased, light suffix stemming, stop words
dropped) occur in the grounding, every number and every capitalised name it
states occurs there too, and it has the polarity (negated or not) of the
grounding sentence it overlaps most. Closing lines (Hope this helps, Let me
know…) are not claims and are not judged.
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
# A stop inside a number or a word (3.12, e.g.x) does not end a sentence.
_SENTENCE = re2.compile(r"(?:[^.!?\n]|[.!?][0-9A-Za-z])+(?:[.!?]+|\n|$)")
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
    if w.endswith(("'s", "’s")):
        w = w[:-2]  # possessives: the World's Fair
    for suffix in ("ies", "ing", "ed", "es", "s", "ly"):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            return w[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return w


def content_words(text: str) -> list[str]:
    return [_stem(m.group()) for m in _WORD.finditer(text) if m.group().lower() not in _STOP]


# Closing lines that make no claim: "Let me know if you need more.", "Hope this helps!"
def _wordset(words: str) -> frozenset[str]:
    return frozenset(words.split())


_PLEASANTRIES = _wordset(
    "let know need hope help happy glad feel free ask question anything else further assist reach out great day "
    "welcome hi hello more"
)
_NEGATIONS = _wordset(
    "not no never cannot can't don't doesn't didn't isn't aren't wasn't weren't won't without none nor neither"
)
_CAPITALISED = re2.compile(r"(?:^|[^A-Za-z'-])([A-Z][a-z]{2,}(?:['’-][A-Za-z]+)*)")


def _negated(text: str) -> bool:
    return any(w in _NEGATIONS for w in text.lower().replace("n't", " not").split())


def _sentences(text: str) -> list[tuple[int, int, str]]:
    return [(m.start(), m.end(), m.group()) for m in _SENTENCE.finditer(text)]


class _Grounding:
    """The grounding's sentences indexed by content word, to find the one a claim overlaps most."""

    COMMON = 64  # words in more sentences than this say nothing about which one a claim comes from

    def __init__(self, documents: tuple[str, ...]) -> None:
        self.negated: list[bool] = []
        self.index: dict[str, list[int]] = {}
        for doc in documents:
            for _s, _e, sentence in _sentences(doc):
                i = len(self.negated)
                self.negated.append(_negated(sentence))
                for w in set(content_words(sentence)):
                    self.index.setdefault(w, []).append(i)

    def closest(self, words: list[str]) -> bool | None:
        """Whether the grounding sentence sharing most of `words` is negated (None: it shares none)."""
        counts: dict[int, int] = {}
        for w in set(words):
            postings = self.index.get(w, ())
            if len(postings) <= self.COMMON:
                for i in postings:
                    counts[i] = counts.get(i, 0) + 1
        if not counts:
            return None
        return self.negated[max(counts, key=lambda i: (counts[i], -i))]


class GroundednessDetector:
    """Reports unsupported output sentences when too few are supported."""

    def __init__(self, threshold: float) -> None:
        self.name = "groundedness"
        self.threshold = threshold

    @property
    def max_span(self) -> int | None:
        return None  # the share is over the whole output

    def supported(self, sentence: str, vocabulary: set[str], grounding: _Grounding) -> bool:
        """Most content words grounded, every number and name grounded, the same polarity as its source."""
        words = content_words(sentence)
        if sum(w in vocabulary for w in words) / len(words) < SUPPORT:
            return False
        if any(w[0].isdigit() and w not in vocabulary for w in words):
            return False  # a number the grounding does not state
        names = [_stem(m.group(1)) for m in _CAPITALISED.finditer(sentence) if m.start(1) > 0]
        if any(n not in vocabulary and n.lower() not in _STOP for n in names):
            return False  # a name (Florida, Leonardo) the grounding never mentions
        best = grounding.closest(words)
        return best is None or best == _negated(sentence)

    def scan(self, text: str, context: ScanContext) -> list[Finding]:
        if not context.grounding:
            return []
        grounding = _Grounding(context.grounding)
        vocabulary = set(grounding.index)
        judged = 0
        unsupported: list[tuple[int, int]] = []
        for start, end, sentence in _sentences(text):
            words = content_words(sentence)
            if len(words) < 3 or all(w in _PLEASANTRIES for w in words):
                continue  # greetings, fragments and closing lines carry no claim
            judged += 1
            if not self.supported(sentence, vocabulary, grounding):
                unsupported.append((start + (len(sentence) - len(sentence.lstrip())), end))
        if not judged or (judged - len(unsupported)) / judged >= self.threshold:
            return []
        grounded = round((judged - len(unsupported)) / judged, 3)
        return [Finding("groundedness", "groundedness", s, e, grounded, False, "unsupported") for s, e in unsupported]


@register("groundedness")
def build(guard: ast.Guard) -> Detector:
    return GroundednessDetector(guard.threshold if guard.threshold is not None else DEFAULT_THRESHOLD)
