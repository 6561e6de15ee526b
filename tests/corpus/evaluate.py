"""`make eval`: precision, recall and F1 per type on the labelled corpus.

A finding counts as a true positive when it has the label's type and overlaps
the labelled value; any other finding is a false positive of its type. For
injection the unit is the case (injected or not), reported with the false
positive rate on the benign set. Run: python -m tests.corpus.evaluate
"""

from __future__ import annotations

import sys

from dsl.catalog import PII_DEFAULT_TYPES, PII_TYPES
from engine.detectors.base import Detector, ScanContext
from engine.detectors.injection import DEFAULT_THRESHOLD, InjectionDetector
from engine.detectors.pii import PiiDetector
from engine.detectors.secrets import SecretsDetector
from tests.corpus import eval_families
from tests.corpus.metrics import load, prf, span_counts, table


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


def span_family(name: str, detector: Detector, title: str) -> tuple[list[str], list[str]]:
    """One span-labelled corpus file as a per-type table."""
    rows = load(name)
    counts, errors = span_counts(detector, rows)
    return table(f"{title} ({len(rows)} cases, {name}.jsonl)", counts), errors


def main() -> int:
    verbose = "-v" in sys.argv
    out: list[str] = ["# ghat detector evaluation (tests/corpus)"]
    errors: list[str] = []
    default_pii, all_pii = PiiDetector(frozenset(PII_DEFAULT_TYPES)), PiiDetector(frozenset(PII_TYPES))
    families: list[tuple[str, Detector, str]] = [
        ("pii", default_pii, "pii, structured types, in-sample"),
        ("pii_heldout", default_pii, "pii, structured types, HELD-OUT"),
        ("pii_contextual", all_pii, "pii, contextual types: person, street_address, date_of_birth"),
        ("secrets", SecretsDetector(), "secrets, in-sample"),
        ("secrets_heldout", SecretsDetector(), "secrets, HELD-OUT"),
    ]
    for name, detector, title in families:
        lines, errs = span_family(name, detector, title)
        out += lines
        errors += errs
    for report in (eval_families.safety_report, eval_families.topics_report, eval_families.groundedness_report):
        lines, errs = report(load)
        out += lines
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
