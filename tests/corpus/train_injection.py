"""Trains the injection scorer's linear head and writes engine/detectors/data/injection_model.npz.

Training data: tests/corpus/injection.jsonl (the generated corpus) and
tests/corpus/injection_train.jsonl (extra training cases). Never
injection_heldout.jsonl: that file measures, it does not teach. The model is
L2-regularised logistic regression over the hashed features of
engine/detectors/injection_model.py, fitted with full-batch Adam in numpy
(deterministic: fixed data order, zero start, no sampling), classes weighted
to balance. `--cv` prints 5-fold cross-validated recall and false-positive rate
on the training data instead of writing the file (how the settings were chosen).

Run: python -m tests.corpus.train_injection [--cv]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt

from engine.detectors.injection_model import BITS, MODEL_PATH, features, load, normalized, save

HERE = Path(__file__).parent
TRAIN_FILES = ("injection.jsonl", "injection_train.jsonl")
L2 = 3e-6
STEPS = 400
LR = 0.05
# Shift of the decision point: the head is fitted with balanced classes, then the
# bias is lowered so that a score of 0.5 sits where false positives are rare.
BIAS_SHIFT = -2.0

F = npt.NDArray[np.float64]


def rows() -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for name in TRAIN_FILES:
        with (HERE / name).open(encoding="utf-8") as fh:
            out += [json.loads(line) for line in fh if line.strip()]
    return out


def design(texts: list[str]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], F]:
    """Sparse (row, bucket, value) triples: counts / √(feature count), as inference computes."""
    r: list[npt.NDArray[np.int64]] = []
    c: list[npt.NDArray[np.int64]] = []
    v: list[F] = []
    for i, text in enumerate(texts):
        _pos, buckets = features(normalized(text))
        if len(buckets) == 0:
            continue
        idx, counts = np.unique(buckets, return_counts=True)
        r.append(np.full(len(idx), i, dtype=np.int64))
        c.append(idx)
        v.append(counts / np.sqrt(len(buckets)))
    return np.concatenate(r), np.concatenate(c), np.concatenate(v)


def fit(texts: list[str], labels: F) -> tuple[npt.NDArray[np.float32], float]:
    """Weights and bias of the balanced, L2-regularised logistic regression."""
    row, col, val = design(texts)
    n, d = len(texts), 1 << BITS
    pos = labels.sum()
    sample_w = np.where(labels > 0, n / (2 * pos), n / (2 * (n - pos))) / n
    w, b = np.zeros(d), 0.0
    m_w, v_w, m_b, v_b = np.zeros(d), np.zeros(d), 0.0, 0.0
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for t in range(1, STEPS + 1):
        z = b + np.bincount(row, weights=w[col] * val, minlength=n)
        g = (1.0 / (1.0 + np.exp(-z)) - labels) * sample_w
        g_w = np.bincount(col, weights=g[row] * val, minlength=d) + L2 * w
        g_b = float(g.sum())
        m_w = beta1 * m_w + (1 - beta1) * g_w
        v_w = beta2 * v_w + (1 - beta2) * g_w * g_w
        m_b = beta1 * m_b + (1 - beta1) * g_b
        v_b = beta2 * v_b + (1 - beta2) * g_b * g_b
        w -= LR * (m_w / (1 - beta1**t)) / (np.sqrt(v_w / (1 - beta2**t)) + eps)
        b -= LR * (m_b / (1 - beta1**t)) / (np.sqrt(v_b / (1 - beta2**t)) + eps)
    return w.astype(np.float32), b + BIAS_SHIFT


def cross_validate(data: list[dict[str, object]], folds: int = 5) -> None:
    """Recall and FP rate at score 0.5, each case scored by a head that never saw it."""
    from engine.detectors.injection_model import InjectionModel

    # Cases that share a base text (the corpus's wrapper framings) stay in one fold.
    def base(text: str) -> str:
        for prefix in ("hi! ", "quick question. ", "ok so "):
            text = text.removeprefix(prefix)
        return text.removesuffix(" thanks in advance.")

    group_ids = {g: i for i, g in enumerate(dict.fromkeys(base(str(r["text"]).lower()) for r in data))}
    fold_of = [group_ids[base(str(r["text"]).lower())] % folds for r in data]
    tp = fp = fn = tn = 0
    for k in range(folds):
        train = [r for r, f in zip(data, fold_of, strict=True) if f != k]
        test = [r for r, f in zip(data, fold_of, strict=True) if f == k]
        weights, bias = fit([str(r["text"]) for r in train], np.array([float(bool(r["injection"])) for r in train]))
        model = InjectionModel(weights.astype(np.float16).astype(np.float32), bias)
        for r in test:
            hit = model.score(str(r["text"])) >= 0.5
            if r["injection"]:
                tp, fn = tp + hit, fn + (not hit)
            else:
                fp, tn = fp + hit, tn + (not hit)
    print(f"{folds}-fold CV on {len(data)} training cases: recall {tp / (tp + fn):.3f}, FP rate {fp / (fp + tn):.3f}, "
          f"precision {tp / max(tp + fp, 1):.3f}")  # fmt: skip


def main() -> int:
    data = rows()
    if "--cv" in sys.argv:
        cross_validate(data)
        return 0
    weights, bias = fit([str(r["text"]) for r in data], np.array([float(bool(r["injection"])) for r in data]))
    save(MODEL_PATH, weights, bias)
    load.cache_clear()
    print(f"wrote {MODEL_PATH} ({MODEL_PATH.stat().st_size} bytes) from {len(data)} cases; bias {bias:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
