"""Text normalisation for matching, with a map back to the original offsets.

Attackers spell instructions so that patterns miss them: full-width letters,
zero-width joiners between letters, Cyrillic look-alikes, `1gn0r3`. Matching
runs on a folded copy; `Folded.origin(i)` maps a folded offset back to the
original text, so findings still point at what the caller sent.

ASCII text, by far the common case, folds with one `bytes.translate` and keeps
offsets one to one.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

# Leetspeak and ASCII look-alikes folded to letters (lower-case output).
_LEET = {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "$": "s"}
_ASCII_TABLE = bytes.maketrans(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZ" + "".join(_LEET).encode(),
    b"abcdefghijklmnopqrstuvwxyz" + "".join(_LEET.values()).encode(),
)
# Zero-width and bidirectional controls: removed before matching.
INVISIBLE = frozenset(
    "\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
    "\u2066\u2067\u2068\u2069\u061c"
)
# Common Cyrillic and Greek homoglyphs of Latin letters (after NFKC and lower-casing).
_HOMOGLYPHS = {
    "а": "a", "в": "b", "с": "c", "е": "e", "һ": "h", "і": "i", "ј": "j", "к": "k",
    "м": "m", "н": "h", "о": "o", "р": "p", "ѕ": "s", "т": "t", "у": "y", "х": "x",
    "ԁ": "d", "ӏ": "l", "ɡ": "g", "α": "a", "β": "b", "ε": "e", "ι": "i", "κ": "k",
    "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w", "ı": "i",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Folded:
    """The folded text and, when lengths changed, each folded character's origin."""

    text: str
    offsets: tuple[int, ...] | None  # None: folded offset i is original offset i
    length: int  # the original text's length

    def origin(self, index: int) -> int:
        """Original offset of folded offset `index` (an end offset maps past its char)."""
        if self.offsets is None:
            return index
        if index >= len(self.offsets):
            return self.length
        return self.offsets[index]


def fold(text: str) -> Folded:
    """Lower-case, NFKC (NFKD, then accents dropped), invisible characters removed, homoglyphs and leetspeak folded."""
    if text.isascii():
        return Folded(text.encode().translate(_ASCII_TABLE).decode(), None, len(text))
    out: list[str] = []
    offsets: list[int] = []
    for i, ch in enumerate(text):
        if ch in INVISIBLE:
            continue
        for c in unicodedata.normalize("NFKD", ch).lower():
            c = _HOMOGLYPHS.get(c) or _LEET.get(c) or c
            if unicodedata.combining(c):
                continue
            out.append(c)
            offsets.append(i)
    return Folded("".join(out), tuple(offsets), len(text))
