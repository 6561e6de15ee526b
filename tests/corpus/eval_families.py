"""`make eval` for output_safety, topics and groundedness: their corpora have their own shapes.

output_safety: span labels per category, scored like pii. topics: each row names
the denied topics of its policy; findings are scored per topic (the finding's
`detail`). groundedness: per case (flagged or not against the `grounded` label)
and per sentence (is each unsupported sentence reported, with the threshold at 1).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace

from dsl.catalog import SAFETY_CATEGORIES
from engine.detectors.base import Finding, ScanContext
from engine.detectors.groundedness import DEFAULT_THRESHOLD, GroundednessDetector
from engine.detectors.safety import SafetyDetector
from engine.detectors.topics import TopicsDetector
from tests.corpus.metrics import HERE, Counts, prf, span_counts, table

Loader = Callable[[str], list[dict[str, object]]]
Report = tuple[list[str], list[str]]


def safety_report(load: Loader, name: str = "output_safety", title: str = "output_safety") -> Report:
    if not (HERE / f"{name}.jsonl").exists():
        return [], []
    rows = load(name)
    counts, errors = span_counts(SafetyDetector(frozenset(SAFETY_CATEGORIES)), rows)
    return table(f"{title} ({len(rows)} cases, {name}.jsonl)", counts), errors


def safety_fresh_report(load: Loader) -> Report:
    return safety_report(load, "output_safety_fresh", "output_safety, FRESH (never tuned against)")


class _ByTopic:
    """A topics detector whose findings are typed by the topic, to score per topic."""

    name = "topics"

    def __init__(self, topics: tuple[str, ...]) -> None:
        self._inner = TopicsDetector(topics)

    @property
    def max_span(self) -> int | None:
        return self._inner.max_span

    def scan(self, text: str, context: ScanContext) -> list[Finding]:
        return [replace(f, type=f.detail) for f in self._inner.scan(text, context)]


def topics_report(load: Loader) -> Report:
    if not (HERE / "topics.jsonl").exists():
        return [], []
    rows = load("topics")
    groups: dict[tuple[str, ...], list[dict[str, object]]] = defaultdict(list)
    for row in rows:
        groups[tuple(row["topics"])].append(row)  # type: ignore[arg-type]
    total: Counts = defaultdict(lambda: [0, 0, 0])
    errors: list[str] = []
    for topics, group in groups.items():
        counts, errs = span_counts(_ByTopic(topics), group)
        errors += errs
        for t, (tp, fp, fn) in counts.items():
            total[t] = [total[t][0] + tp, total[t][1] + fp, total[t][2] + fn]
    return table(f"topics, per topic ({len(rows)} cases, topics.jsonl)", total), errors


def groundedness_report(load: Loader) -> Report:
    if not (HERE / "groundedness.jsonl").exists():
        return [], []
    rows = load("groundedness")
    case = GroundednessDetector(DEFAULT_THRESHOLD)
    every = GroundednessDetector(1.01)  # reports every unsupported sentence
    tp = fp = fn = tn = 0
    sent: Counts = defaultdict(lambda: [0, 0, 0])
    errors: list[str] = []
    for row in rows:
        text = str(row["text"])
        ctx = ScanContext("output", tuple(row["grounding"]))  # type: ignore[arg-type]
        flagged, wanted = bool(case.scan(text, ctx)), not row["grounded"]
        tp, fp = tp + (flagged and wanted), fp + (flagged and not wanted)
        fn, tn = fn + (wanted and not flagged), tn + (not flagged and not wanted)
        if flagged != wanted:
            errors.append(f"{'FP' if flagged else 'FN'} groundedness case: {text[:90]!r}")
        reported = {text[f.start : f.end].strip() for f in every.scan(text, ctx)}
        labelled = {str(s).strip() for s in row["unsupported"]}  # type: ignore[attr-defined]
        c = sent["unsupported_sentence"]
        c[0] += len(reported & labelled)
        c[1] += len(reported - labelled)
        c[2] += len(labelled - reported)
        errors += [f"FP groundedness sentence: {s[:90]!r}" for s in reported - labelled]
        errors += [f"FN groundedness sentence: {s[:90]!r}" for s in labelled - reported]
    p, r, f = prf(tp, fp, fn)
    lines = [
        f"\n## groundedness ({len(rows)} cases, groundedness.jsonl, threshold {DEFAULT_THRESHOLD})",
        f"per case (flagged = ungrounded): tp {tp} fp {fp} fn {fn} tn {tn}",
        f"precision {p:.3f} recall {r:.3f} f1 {f:.3f}",
    ]
    return lines + table("groundedness, per sentence", sent)[1:], errors
