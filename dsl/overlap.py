"""Which findings a guard rule can make, so the linter can compare two rules on one detector.

Each rule is evaluated on its own, with its own options, and a finding's
action is the strictest among the rules that make it (docs/language.md,
"Actions and strictest wins"). Two rules on one detector then relate in one of
three ways: one covers the other (every finding of the second is made by the
first), they overlap (some findings are made by both), or they are disjoint.
A rule covered by one at least as strict never decides anything (W301); a
weaker rule that overlaps a stricter one decides only the findings the
stricter does not make (W304, information). This module answers the three
questions from the options alone, without running a detector.
"""

from __future__ import annotations

from dataclasses import dataclass

from dsl import ast
from dsl.catalog import BUILTINS

# The detectors with a score, the threshold a rule without one gets, and which way
# a threshold widens the rule: injection reports scores at or above it (lower finds
# more), groundedness reports a supported share below it (higher finds more).
# engine/detectors/{injection,groundedness}.py hold the same defaults (a test keeps them equal).
DEFAULT_THRESHOLDS = {"prompt_injection": 0.5, "indirect_injection": 0.5, "groundedness": 0.6}
WIDER_WHEN_HIGHER = frozenset({"groundedness"})


@dataclass(frozen=True, slots=True)
class Reach:
    """What findings a rule can make: a set of kinds (types, categories, topics) or a score cut."""

    detector: str
    kinds: frozenset[str] | None = None  # None: the detector's findings are not told apart by kind
    threshold: float | None = None
    model: bool = False  # the model-backed scorer adds findings the patterns miss


def reach(guard: ast.Guard) -> Reach:
    builtin = BUILTINS.get(guard.detector)
    if guard.detector == "topics":
        return Reach(guard.detector, frozenset(t.casefold() for t in guard.topics))
    if guard.detector in DEFAULT_THRESHOLDS:
        cut = guard.threshold if guard.threshold is not None else DEFAULT_THRESHOLDS[guard.detector]
        return Reach(guard.detector, threshold=cut, model=guard.model)
    if builtin is not None and builtin.types:
        chosen = guard.categories or guard.types
        return Reach(guard.detector, frozenset(chosen or builtin.default_types))
    return Reach(guard.detector)  # a custom detector: one kind of finding


def covers(a: Reach, b: Reach) -> bool:
    """Every finding `b` can make, `a` makes too."""
    if a.detector != b.detector:
        return False
    if a.threshold is not None and b.threshold is not None:
        wider = a.threshold >= b.threshold if a.detector in WIDER_WHEN_HIGHER else a.threshold <= b.threshold
        return wider and (a.model or not b.model)
    if a.kinds is None or b.kinds is None:
        return a.kinds == b.kinds
    return b.kinds <= a.kinds


def overlaps(a: Reach, b: Reach) -> bool:
    """Some finding can be made by both (scores past both cuts always exist)."""
    if a.detector != b.detector:
        return False
    if a.kinds is None or b.kinds is None:
        return a.kinds == b.kinds
    return bool(a.kinds & b.kinds)


def shared(a: Reach, b: Reach) -> str:
    """The findings two overlapping rules share, for a message."""
    if a.kinds:
        return ", ".join(sorted(a.kinds & (b.kinds or frozenset())))
    if a.threshold is not None and b.threshold is not None:
        if a.detector in WIDER_WHEN_HIGHER:
            return f"supported share below {min(a.threshold, b.threshold):g}"
        return f"scores of {max(a.threshold, b.threshold):g} and above"
    return "every finding"
