"""Shared scoring for the labelled corpora: span matching and precision / recall / F1 tables.

A finding counts as a true positive when it has the label's type and overlaps
the labelled value; any other finding is a false positive of its type.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from engine.detectors.base import Detector, ScanContext

HERE = Path(__file__).parent
Counts = dict[str, list[int]]  # type → [tp, fp, fn]


def load(name: str) -> list[dict[str, object]]:
    with (HERE / f"{name}.jsonl").open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def span_counts(detector: Detector, rows: list[dict[str, object]]) -> tuple[Counts, list[str]]:
    counts: Counts = defaultdict(lambda: [0, 0, 0])
    errors: list[str] = []
    for row in rows:
        text = str(row["text"])
        labels = []
        for label in row["labels"]:  # type: ignore[attr-defined]
            start = text.find(label["value"])
            labels.append((label["type"], start, start + len(label["value"])))
        matched: set[int] = set()
        for f in detector.scan(text, ScanContext()):
            hit = next(
                (i for i, (t, s, e) in enumerate(labels) if t == f.type and f.start < e and s < f.end), None
            )
            if hit is None:
                counts[f.type][1] += 1
                errors.append(f"FP {f.type}: {text[:90]!r}")
            else:
                if hit not in matched:
                    counts[f.type][0] += 1
                matched.add(hit)
        for i, (t, _s, _e) in enumerate(labels):
            if i not in matched:
                counts[t][2] += 1
                errors.append(f"FN {t}: {text[:90]!r}")
    return counts, errors


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def table(title: str, counts: Counts) -> list[str]:
    lines = [f"\n## {title}", f"{'type':24} {'tp':>4} {'fp':>4} {'fn':>4} {'precision':>9} {'recall':>7} {'f1':>6}"]
    total = [0, 0, 0]
    for t in sorted(counts):
        tp, fp, fn = counts[t]
        total = [total[0] + tp, total[1] + fp, total[2] + fn]
        p, r, f = prf(tp, fp, fn)
        lines.append(f"{t:24} {tp:4} {fp:4} {fn:4} {p:9.3f} {r:7.3f} {f:6.3f}")
    p, r, f = prf(*total)
    lines.append(f"{'ALL':24} {total[0]:4} {total[1]:4} {total[2]:4} {p:9.3f} {r:7.3f} {f:6.3f}")
    return lines


