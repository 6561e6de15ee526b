"""`make eval`: precision, recall and F1 per type on the labelled corpus.

A finding counts as a true positive when it has the label's type and overlaps
the labelled value; any other finding is a false positive of its type. For
injection the unit is the case (injected or not), reported with the false
positive rate on the benign set. Run: python -m tests.corpus.evaluate
"""

from __future__ import annotations

import sys

from dsl.catalog import PII_DEFAULT_TYPES, PII_TYPES
from engine.detectors.base import Detector
from engine.detectors.pii import PiiDetector
from engine.detectors.secrets import SecretsDetector
from tests.corpus import eval_families
from tests.corpus.injection_eval import injection_report
from tests.corpus.metrics import load, span_counts, table


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
        ("pii_fresh", default_pii, "pii, structured types, FRESH (written after the fixes, never tuned against)"),
        ("secrets_fresh", SecretsDetector(), "secrets, FRESH (never tuned against)"),
        ("pii_contextual_fresh", all_pii, "pii, contextual types, FRESH (never tuned against)"),
    ]
    for name, detector, title in families:
        lines, errs = span_family(name, detector, title)
        out += lines
        errors += errs
    reports = (eval_families.safety_report, eval_families.safety_fresh_report, eval_families.topics_report,
               eval_families.groundedness_report)  # fmt: skip
    for report in reports:
        lines, errs = report(load)
        out += lines
        errors += errs
    lines, errs = injection_report(load)
    out += lines
    errors += errs
    print("\n".join(out))
    if verbose:
        print("\n## errors\n" + "\n".join(sorted(set(errors))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
