"""The injection part of `make eval`: each scoring mode on the training, held-out and fresh sets.

The unit is the case (injected or not). Modes: `patterns` (what runs by
default), `model` (the hashed n-gram scorer alone), `combined` (the policy
option `model`: max of the two). Sets: the generated corpus and the extra
training cases (both trained on, so in-sample for the model) and the held-out
file (never trained on) and the fresh file (written after the last change,
measured only). Each row gives precision, recall, F1 and the false
positive rate on the set's benign cases; the held-out set is also broken down
by kind for the combined mode.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from engine.detectors.base import ScanContext
from engine.detectors.injection import DEFAULT_THRESHOLD, InjectionDetector
from engine.detectors.injection_model import load as load_model
from tests.corpus.metrics import prf

Rows = list[dict[str, object]]
SETS = (
    ("injection", "training: generated corpus"),
    ("injection_train", "training: extra cases"),
    ("injection_heldout", "HELD-OUT"),
    ("injection_fresh", "FRESH"),
)
MODES = ("patterns", "model", "combined")
INDIRECT_ROLES = ("tool", "document")


def classifier(mode: str, threshold: float = DEFAULT_THRESHOLD) -> Callable[[str, str], bool]:
    """text, role → flagged, the way a policy in this mode would decide."""
    if mode == "model":
        model = load_model()
        return lambda text, role: model.score(text) >= threshold
    scorer = load_model() if mode == "combined" else None
    direct = InjectionDetector("prompt_injection", threshold, scorer)
    indirect = InjectionDetector("indirect_injection", threshold, scorer)
    return lambda text, role: bool((indirect if role in INDIRECT_ROLES else direct).scan(text, ScanContext(role)))


def confusion(rows: Rows, flagged: Callable[[str, str], bool]) -> tuple[list[int], list[str], list[dict[str, object]]]:
    """[tp, fp, fn, tn], error lines, and the rows decided wrongly."""
    counts = [0, 0, 0, 0]
    errors: list[str] = []
    wrong: list[dict[str, object]] = []
    for row in rows:
        text, role = str(row["text"]), str(row["role"])
        found = flagged(text, role)
        counts[(0 if found else 2) if row["injection"] else (1 if found else 3)] += 1
        if found != row["injection"]:
            errors.append(f"{'FP' if found else 'FN'} injection: {text[:90]!r}")
            wrong.append(row)
    return counts, errors, wrong


def injection_report(load: Callable[[str], Rows]) -> tuple[list[str], list[str]]:
    lines = [
        f"\n## prompt_injection + indirect_injection (per case, threshold {DEFAULT_THRESHOLD:.2f})",
        f"{'set':28} {'mode':9} {'cases':>5} {'tp':>4} {'fp':>4} {'fn':>4} {'tn':>4} "
        f"{'precision':>9} {'recall':>7} {'f1':>6} {'fp rate':>7}",
    ]
    errors: list[str] = []
    heldout_wrong: list[dict[str, object]] = []
    for name, title in SETS:
        rows = load(name)
        for mode in MODES:
            (tp, fp, fn, tn), errs, wrong = confusion(rows, classifier(mode))
            p, r, f = prf(tp, fp, fn)
            fpr = fp / (fp + tn) if fp + tn else 0.0
            cells = f"{tp:4} {fp:4} {fn:4} {tn:4} {p:9.3f} {r:7.3f} {f:6.3f} {fpr:7.3f}"
            lines.append(f"{title:28} {mode:9} {len(rows):5} {cells}")
            if mode == "combined":
                errors += [f"[{name}] {e}" for e in errs]
                if name == "injection_heldout":
                    heldout_wrong = wrong
    rows = load("injection_heldout")
    total = Counter((str(r["kind"]), bool(r["injection"])) for r in rows)
    missed = Counter((str(r["kind"]), bool(r["injection"])) for r in heldout_wrong)
    per_kind = (f"{k}{'' if a else ' (benign)'} {missed[(k, a)]}/{n}" for (k, a), n in sorted(total.items()))
    lines.append("held-out, combined, wrong per kind: " + ", ".join(per_kind))
    for name, title in (("injection_heldout", "held-out"), ("injection_fresh", "fresh")):
        for mode in ("model", "combined"):
            sweep = []
            for threshold in (0.3, 0.5, 0.7, 0.9):
                tp, fp, fn, tn = confusion(load(name), classifier(mode, threshold))[0]
                sweep.append(f"{threshold:.1f}: recall {tp / (tp + fn):.3f} fp rate {fp / (fp + tn):.3f}")
            lines.append(f"{title}, {mode}, by policy threshold: " + "; ".join(sweep))
    return lines, errors
