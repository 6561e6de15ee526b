"""The optional model-backed injection scorer: hashed n-grams and a linear head.

Patterns catch the attack vocabulary they were written for; paraphrases ("set
aside what you were told earlier") slip past them. This scorer reads the same
folded text as the patterns, turns it into hashed word uni/bigrams and
character 3–5-grams (2^18 buckets), and applies a logistic-regression head
trained by `tests/corpus/train_injection.py` on the training corpus only. The
weights ship as package data (`data/injection_model.npz`); nothing is
downloaded and no deep-learning runtime is needed: inference is a few numpy
vector operations, linear in the text.

Long texts (web pages, tool results) are scored per window of `WINDOW` bytes
(hop `WINDOW // 2`) and the best window counts, so an instruction buried in a
long benign page is not diluted by it. Hashing is a polynomial rolling hash
with fixed constants, so scores are the same in every process (no
PYTHONHASHSEED dependence).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

from engine.detectors.normalize import fold

MODEL_PATH = Path(__file__).parent / "data" / "injection_model.npz"
BITS = 18
WINDOW = 512
CHAR_NS = (3, 4, 5)
_P = 0x01000193  # odd, so invertible modulo 2**32 (uint32 arithmetic is the fast kind here)
_P_INV = pow(_P, -1, 1 << 32)
_MIX = np.uint32(0x9E3779B1)
_SALT = {n: np.uint32((0x2545F491 * n) & 0xFFFFFFFF) for n in (*CHAR_NS, 1, 2)}
_SHIFT = np.uint32(32 - BITS)
_WHITESPACE = bytes.maketrans(b"\t\n\r\x0b\x0c", b"     ")
# Byte classes: 0 space, 1 word (letters, digits, any non-ASCII byte), 2 punctuation (a token by itself).
_CLASS = np.full(256, 1, dtype=np.int8)
_CLASS[32] = 0
for _c in b"!\"#$%&'()*+,-./:;<=>?@[\\]^`{|}~":
    _CLASS[_c] = 2

U32 = npt.NDArray[np.uint32]
I64 = npt.NDArray[np.int64]


def normalized(text: str) -> npt.NDArray[np.uint8]:
    """Folded text (normalize.py) as UTF-8 bytes, whitespace runs collapsed to one space."""
    raw = np.frombuffer(fold(text).text.encode("utf-8", "replace").translate(_WHITESPACE), dtype=np.uint8)
    if len(raw) < 2:
        return raw
    keep = np.ones(len(raw), dtype=bool)
    keep[1:] = (raw[1:] != 32) | (raw[:-1] != 32)
    return raw[keep]


class _Powers:
    """P**i and P**-i modulo 2**32, grown on demand (a module-wide cache).

    Both tables live in one tuple, replaced in one assignment, so a thread never
    sees a new power table with an old inverse one.
    """

    def __init__(self) -> None:
        self.tables = self._make(4096)

    @staticmethod
    def _make(n: int) -> tuple[U32, U32]:
        pw = np.full(n, _P, dtype=np.uint32)
        ipw = np.full(n, _P_INV, dtype=np.uint32)
        pw[0] = ipw[0] = 1
        with np.errstate(over="ignore"):
            return np.cumprod(pw, dtype=np.uint32), np.cumprod(ipw, dtype=np.uint32)

    def get(self, n: int) -> tuple[U32, U32]:
        tables = self.tables
        if n > len(tables[0]):
            tables = self.tables = self._make(max(n, 2 * len(tables[0])))
        return tables[0][:n], tables[1][:n]


_POWERS = _Powers()


def features(data: npt.NDArray[np.uint8]) -> tuple[I64, I64]:
    """(position, bucket) of every hashed feature: char 3–5-grams, word uni- and bigrams."""
    n = len(data)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    pw, ipw = _POWERS.get(n + 1)
    with np.errstate(over="ignore"):
        prefix = np.zeros(n + 1, dtype=np.uint32)
        np.cumsum((data + np.uint32(1)) * pw[:n], dtype=np.uint32, out=prefix[1:])
        positions: list[I64] = []
        hashes: list[U32] = []
        for k in CHAR_NS:
            if n >= k:
                s = np.arange(n - k + 1)
                positions.append(s)
                hashes.append((prefix[k:] - prefix[: n - k + 1]) * ipw[: n - k + 1] + _SALT[k])
        cls = _CLASS[data]
        word = cls == 1
        token = cls != 0
        start = token.copy()
        start[1:] &= ~(word[1:] & word[:-1])
        end = token.copy()
        end[:-1] &= ~(word[:-1] & word[1:])
        starts = np.flatnonzero(start)
        ends = np.flatnonzero(end) + 1
        if len(starts):
            words = (prefix[ends] - prefix[starts]) * ipw[starts]
            positions.append(starts)
            hashes.append(words + _SALT[1])
            if len(words) > 1:
                positions.append(starts[:-1])
                hashes.append((words[:-1] * _MIX + words[1:]) ^ _SALT[2])
        if not hashes:  # only spaces, or a word of one or two bytes with no bigram
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        h = np.concatenate(hashes)
        buckets = ((h * _MIX) >> _SHIFT).astype(np.int64)
    return np.concatenate(positions), buckets


@dataclass(frozen=True, slots=True)
class InjectionModel:
    """A linear head over hashed features; `score` is a probability in [0, 1]."""

    weights: npt.NDArray[np.float32]
    bias: float

    def logit(self, text: str) -> float:
        """The best window's logit: bias + Σ w / √(feature count)."""
        data = normalized(text)
        pos, buckets = features(data)
        if len(buckets) == 0:
            return self.bias
        values = self.weights[buckets]
        if len(data) <= WINDOW:
            return self.bias + float(values.sum()) / math.sqrt(len(values))
        n = len(data)
        sums = np.concatenate(([0.0], np.cumsum(np.bincount(pos, weights=values, minlength=n))))
        counts = np.concatenate(([0], np.cumsum(np.bincount(pos, minlength=n))))
        starts = np.arange(0, n - WINDOW // 2, WINDOW // 2)
        ends = np.minimum(starts + WINDOW, n)
        window_counts = np.maximum(counts[ends] - counts[starts], 1)
        logits = (sums[ends] - sums[starts]) / np.sqrt(window_counts)
        return self.bias + float(logits.max())

    def score(self, text: str) -> float:
        z = self.logit(text)
        return 1.0 / (1.0 + math.exp(-z)) if z > -30 else 0.0


def save(path: Path, weights: npt.NDArray[np.float32], bias: float) -> None:
    """Write the head compactly: float16 weights, compressed (training script)."""
    np.savez_compressed(path, weights=weights.astype(np.float16), bias=np.array([bias]), bits=np.array([BITS]))


@cache
def load(path: Path = MODEL_PATH) -> InjectionModel:
    """The shipped head, read once per process (compile time, not per request)."""
    with np.load(path, allow_pickle=False) as data:
        if int(data["bits"][0]) != BITS:
            raise ValueError(f"{path}: trained with {int(data['bits'][0])} bits, this build hashes {BITS}")
        return InjectionModel(data["weights"].astype(np.float32), float(data["bias"][0]))
