"""What a custom detector's pattern can match: everything, or nothing at all.

A pattern that matches any ordinary text (`/.+/`, `/\\w+/`) redacts or blocks
every message; one that can never match (`/id:$[0-9]+/`, `/[^\\s\\S]/`) or
that is anchored at both ends (`/^TICKET-[0-9]{6}$/`, copied from a form
validator: it matches only a message that is nothing but the ticket) guards
nothing while looking like it does. The first is decided by probing with a
few ordinary texts, the second by a small abstract run over the parsed
pattern that tracks only "at the start of the text" and "at its end": it
answers "never matches" only when it can prove it, and otherwise says
nothing. Python's parser reads the pattern; RE2 syntax it does not know
(`\\pL`, `[[:alpha:]]`) leaves the answer unknown.
"""

from __future__ import annotations

from collections.abc import Iterable
from re import _constants as C  # the syntax RE2 shares with re, as engine/detectors/custom.py reads it
from re import _parser as sre_parse
from typing import Any

# Short ordinary texts: a pattern that finds something in each of them finds something in every message.
PROBES = ("hello", "ok", "the", "yes", "Thanks, that works.")

# An abstract position: (something consumed, end of text asserted).
State = tuple[bool, bool]
_START: frozenset[State] = frozenset({(False, False)})
_REPEAT_CAP = 6  # iterations of a repeat after which the (at most four) states have settled


def bounded(pattern: str) -> bool:
    """Whether the pattern's matches have a longest length (what lets a stream send text before its end).

    The engine's custom detector reads the same bound (engine/detectors/custom.py)."""
    try:
        high = sre_parse.parse(pattern).getwidth()[1]
    except Exception:  # RE2-only syntax: no bound known
        return False
    return bool(high < 65535)


def matches_everything(search: Any) -> bool:
    """Whether a compiled pattern finds a match in every probe text."""
    return all(search(p) is not None for p in PROBES)


def never_matches(pattern: str, ignorecase: bool = False) -> str | None:
    """Why the pattern can never match inside a message, or None when it can (or it is unknown)."""
    try:
        parsed = sre_parse.parse(pattern, C.SRE_FLAG_IGNORECASE if ignorecase else 0)
    except Exception:  # RE2-only syntax: no claim
        return None
    if parsed.state.flags & C.SRE_FLAG_MULTILINE:
        return None
    items: list[Any] = [parsed[i] for i in range(len(parsed))]
    try:
        final = _run(items, _START)
    except _Unknown:
        return None
    if not final:
        return "no text can match it: an anchor or an empty character class stands where text must be"
    if _anchor(items[:1], (C.AT_BEGINNING, C.AT_BEGINNING_STRING)) and _anchor(
        items[-1:], (C.AT_END, C.AT_END_STRING)
    ):
        return "it is anchored at both ends, so it matches only a message that is nothing but the match"
    return None


class _Unknown(Exception):
    """A construct the abstract run does not model (back-references, lookaround)."""


def _anchor(items: list[Any], kinds: tuple[Any, ...]) -> bool:
    return bool(items) and items[0][0] is C.AT and items[0][1] in kinds


def _run(items: Iterable[Any], states: frozenset[State]) -> frozenset[State]:
    for op, arg in items:
        if not states:
            return states
        states = _step(op, arg, states)
    return states


def _step(op: Any, arg: Any, states: frozenset[State]) -> frozenset[State]:
    if op in (C.LITERAL, C.NOT_LITERAL, C.ANY) or (op is C.IN and not _empty_class(arg)):
        return frozenset({(True, False)}) if any(not ended for _, ended in states) else frozenset()
    if op is C.IN:
        return frozenset()
    if op is C.AT:
        if arg in (C.AT_BEGINNING, C.AT_BEGINNING_STRING):
            return frozenset(s for s in states if not s[0])
        if arg in (C.AT_END, C.AT_END_STRING):
            return frozenset((consumed, True) for consumed, _ in states)
        return states  # word boundaries: not modelled, assumed possible
    if op is C.SUBPATTERN:
        return _run(arg[-1], states)
    if op is C.BRANCH:
        return frozenset().union(*(_run(alt, states) for alt in arg[1]))
    if op in (C.MAX_REPEAT, C.MIN_REPEAT, getattr(C, "POSSESSIVE_REPEAT", None)):
        low, high, body = arg
        for _ in range(min(low, _REPEAT_CAP)):
            states = _run(body, states)
        out = states
        more = states
        for _ in range(min(high - low, _REPEAT_CAP) if high != C.MAXREPEAT else _REPEAT_CAP):
            more = _run(body, more)
            out = out | more
        return out
    raise _Unknown(op)


def _empty_class(items: list[Any]) -> bool:
    """A negated class that excludes every character (`[^\\s\\S]`, `[^\\x00-\\x{10FFFF}]`)."""
    if not items or items[0][0] is not C.NEGATE:
        return not items
    categories = {arg for op, arg in items if op is C.CATEGORY}
    pairs = (
        (C.CATEGORY_SPACE, C.CATEGORY_NOT_SPACE),
        (C.CATEGORY_DIGIT, C.CATEGORY_NOT_DIGIT),
        (C.CATEGORY_WORD, C.CATEGORY_NOT_WORD),
    )
    if any(a in categories and b in categories for a, b in pairs):
        return True
    return any(op is C.RANGE and arg[0] == 0 and arg[1] >= 0x10FFFF for op, arg in items)
