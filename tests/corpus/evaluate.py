"""`make eval`: precision, recall and F1 per type on the labelled corpus.

A finding counts as a true positive when it has the label's type and overlaps
the labelled value; any other finding is a false positive of its type. For
injection the unit is the case (injected or not), reported with the false
positive rate on the benign set. Run: python -m tests.corpus.evaluate
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

from dsl.catalog import PII_DEFAULT_TYPES, PII_TYPES
from engine.detectors.base import Detector, ScanContext
from engine.detectors.injection import DEFAULT_THRESHOLD, InjectionDetector
from engine.detectors.pii import PiiDetector
from engine.detectors.secrets import SecretsDetector

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


def injection_report(rows: list[dict[str, object]]) -> tuple[list[str], list[str]]:
    direct = InjectionDetector("prompt_injection", DEFAULT_THRESHOLD)
    indirect = InjectionDetector("indirect_injection", DEFAULT_THRESHOLD)
    tp = fp = fn = tn = 0
    errors: list[str] = []
    for row in rows:
        text, role = str(row["text"]), str(row["role"])
        detector = indirect if role in ("tool", "document") else direct
        found = bool(detector.scan(text, ScanContext(role)))
        if row["injection"]:
            tp, fn = tp + found, fn + (not found)
        else:
            fp, tn = fp + found, tn + (not found)
        if found != row["injection"]:
            errors.append(f"{'FP' if found else 'FN'} injection: {text[:90]!r}")
    p, r, f = prf(tp, fp, fn)
    fpr = fp / (fp + tn) if fp + tn else 0.0
    return [
        f"\n## prompt_injection + indirect_injection (per case, threshold {DEFAULT_THRESHOLD:.2f})",
        f"cases {len(rows)}: tp {tp} fp {fp} fn {fn} tn {tn}",
        f"precision {p:.3f} recall {r:.3f} f1 {f:.3f} false-positive rate on benign {fpr:.3f}",
    ], errors


def main() -> int:
    verbose = "-v" in sys.argv
    out: list[str] = ["# ghat detector evaluation (tests/corpus)"]
    errors: list[str] = []
    counts, errs = span_counts(PiiDetector(frozenset(PII_DEFAULT_TYPES)), load("pii"))
    out += table(f"pii, structured types ({len(load('pii'))} cases)", counts)
    errors += errs
    counts, errs = span_counts(PiiDetector(frozenset(PII_TYPES)), load("pii_contextual"))
    title = f"pii, contextual types: person, street_address, date_of_birth ({len(load('pii_contextual'))} cases)"
    out += table(title, counts)
    errors += errs
    counts, errs = span_counts(SecretsDetector(), load("secrets"))
    out += table(f"secrets ({len(load('secrets'))} cases)", counts)
    errors += errs
    lines, errs = injection_report(load("injection"))
    out += lines
    errors += errs
    print("\n".join(out))
    if verbose:
        print("\n## errors\n" + "\n".join(sorted(set(errors))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
