"""Viable prefixes: where, at the end of a stream's buffer, a match could still be in progress.

A stream may send text only once no later character can change what the
detectors find in it (P6). For a pattern `R`, a match that later characters
can still change starts at some `i` where `text[i:]` is a prefix of a match of
`R` followed by the few characters its confirmers read after it (`reach`).
`prefix_pattern` writes that language as an RE2 pattern, built from the parse
tree of `R` by the rules pre(c) = ε|c, pre(AB) = pre(A) | A·pre(B),
pre(A|B) = pre(A) | pre(B), pre(A{m,n}) = A{0,n-1}·pre(A). Anchors and word
boundaries become ε and long counted repeats become `*`: both only widen the
language, so the guard holds back more, never less. Searched as
`(?:pre(R1)|pre(R2)|…)\\z`, RE2's leftmost match start is the earliest still-open
position of the text, found in one linear pass over the text's tail.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from re import _constants as sre
from re import _parser as sre_parse  # the syntax RE2 shares with re; matching stays RE2's
from typing import Any

import re2

_LONG = 64  # counted repeats longer than this become `*` (RE2 compiles counted repeats by unrolling)
_CATEGORY = {
    sre.CATEGORY_DIGIT: r"\d", sre.CATEGORY_NOT_DIGIT: r"\D", sre.CATEGORY_SPACE: r"\s",
    sre.CATEGORY_NOT_SPACE: r"\S", sre.CATEGORY_WORD: r"\w", sre.CATEGORY_NOT_WORD: r"\W",
}  # fmt: skip


class Unsupported(ValueError):
    """A pattern whose syntax this module cannot rewrite: its rule falls back to its max_span."""


def _char(code: int) -> str:
    c = chr(code)
    return c if c.isascii() and c.isalnum() else f"\\x{{{code:x}}}"


def _class(items: Sequence[tuple[Any, Any]]) -> str:
    parts: list[str] = []
    negate = ""
    for op, arg in items:
        if op is sre.NEGATE:
            negate = "^"
        elif op is sre.LITERAL:
            parts.append(_char(int(arg)))
        elif op is sre.RANGE:
            lo, hi = arg
            parts.append(f"{_char(lo)}-{_char(hi)}")
        elif op is sre.CATEGORY and arg in _CATEGORY:
            parts.append(_CATEGORY[arg])
        else:
            raise Unsupported(f"class item {op}")
    return f"[{negate}{''.join(parts)}]"


def _flags(add: int, remove: int) -> str:
    on = ("i" if add & re.IGNORECASE else "") + ("s" if add & re.DOTALL else "")
    off = ("i" if remove & re.IGNORECASE else "") + ("s" if remove & re.DOTALL else "")
    return on + (f"-{off}" if off else "")


def _atom(op: Any, arg: Any) -> str | None:
    """A one-character item as RE2 text, or None when the item is not one character."""
    if op is sre.LITERAL:
        return _char(int(arg))
    if op is sre.NOT_LITERAL:
        return f"[^{_char(int(arg))}]"
    if op is sre.ANY:
        return "."
    if op is sre.IN:
        return _class(arg)
    return None


def _count(lo: int, hi: int) -> str:
    if hi == sre.MAXREPEAT or hi > _LONG:
        return "*" if lo == 0 else "+" if lo == 1 else f"{{{lo},}}"
    return f"{{{lo},{hi}}}"


def full(items: Sequence[tuple[Any, Any]]) -> str:
    """The items' own language as RE2 text (captures dropped)."""
    return "".join(_full(op, arg) for op, arg in items)


def _full(op: Any, arg: Any) -> str:
    atom = _atom(op, arg)
    if atom is not None:
        return atom
    if op is sre.AT:
        return ""  # widened to ε: the prefix language only grows
    if op is sre.SUBPATTERN:
        _group, add, remove, body = arg
        return f"(?{_flags(add, remove)}:{full(body)})"
    if op is sre.BRANCH:
        return "(?:" + "|".join(full(alt) for alt in arg[1]) + ")"
    if op in (sre.MAX_REPEAT, sre.MIN_REPEAT):
        lo, hi, body = arg
        return f"(?:{full(body)}){_count(lo, hi)}"
    raise Unsupported(f"operator {op}")


def pre(items: Sequence[tuple[Any, Any]]) -> str:
    """Every prefix of a match of the items, as RE2 text: pre(x1 rest) = pre(x1) | x1 pre(rest)."""
    if not items:
        return ""
    (op, arg), rest = items[0], items[1:]
    head = _pre(op, arg)
    if not rest:
        return head
    return f"(?:{head}|{_full(op, arg)}{pre(rest)})"


def _pre(op: Any, arg: Any) -> str:
    atom = _atom(op, arg)
    if atom is not None:
        return f"{atom}?"
    if op is sre.AT:
        return ""
    if op is sre.SUBPATTERN:
        _group, add, remove, body = arg
        return f"(?{_flags(add, remove)}:{pre(body)})"
    if op is sre.BRANCH:
        return "(?:" + "|".join(pre(alt) for alt in arg[1]) + ")"
    if op in (sre.MAX_REPEAT, sre.MIN_REPEAT):
        _lo, hi, body = arg
        if hi == 0:
            return ""
        if len(body) == 1 and _atom(*body[0]) is not None:
            return f"(?:{full(body)}){_count(0, hi)}"
        return f"(?:{full(body)}){_count(0, hi - 1 if hi != sre.MAXREPEAT else hi)}(?:{pre(body)})"
    raise Unsupported(f"operator {op}")


def prefix_pattern(pattern: str, reach: int = 0) -> str:
    """RE2 text for every prefix of (a match of `pattern`, then up to `reach` more characters)."""
    try:
        parsed = sre_parse.parse(pattern)
    except (re.error, OverflowError, RecursionError) as exc:
        raise Unsupported(str(exc)) from None
    items = list(parsed)
    flags = _flags(parsed.state.flags & (re.IGNORECASE | re.DOTALL), 0)
    body = f"(?:{pre(items)}|{full(items)}(?s:.){{0,{reach}}})" if reach else pre(items)
    return f"(?{flags}:{body})" if flags else body


# One pattern of a detector, as a stream needs it: the pattern, the characters its confirmer reads
# past a match (`reach`), and whether it matches ignoring case.
OpenPattern = tuple[str, int, bool]
_UNANCHORED = re2._Anchor.UNANCHORED


class OpenTail:
    """The earliest still-open position of a text for many patterns (of several detectors), in one RE2 search.

    Prefix languages are closed under taking prefixes, so the position never moves
    back as text is appended: a caller may pass the last one as `start`, and each
    search then reads only the text's open tail (a word, a token), not all of it.
    """

    def __init__(self, patterns: Sequence[OpenPattern], limit: int) -> None:
        """`limit`: no open region is longer (the longest max_span plus reach of the patterns' detectors)."""
        options = re2.Options()
        options.never_capture = True
        options.max_mem = 64 << 20
        parts = [
            f"(?i:{prefix_pattern(p, reach)})" if ignorecase else prefix_pattern(p, reach)
            for p, reach, ignorecase in patterns
        ]
        self._regex = re2.compile(f"(?:{'|'.join(parts)})\\z", options) if parts else None
        self.limit = limit

    def open_from(self, text: str, start: int = 0) -> int:
        """The smallest i >= start (and >= len(text) - limit) such that text[i:] could still grow into a match."""
        n = len(text)
        if self._regex is None:
            return n
        lo = max(start, n - self.limit, 0)
        tail = text[lo:] if lo else text
        if tail.isascii():  # RE2's own spans: the binding's wrapper converts offsets on every call
            spans = self._regex._regexp.Match(_UNANCHORED, tail.encode(), 0, len(tail))
            return n if spans[0][0] < 0 else lo + spans[0][0]
        m = self._regex.search(tail)
        return n if m is None else lo + m.start()
