"""JSON on the hot path: orjson, strict on the way in, the standard library's messages on refusal.

Every request parses the caller's body and the upstream's answer and writes
both again; orjson does that several times faster than `json` (bench/RESULTS.md,
"Gateway overhead"). Output is the same compact UTF-8 JSON as
`json.dumps(obj, separators=(",", ":"), ensure_ascii=False)`.

`loads` is the one door every client body and provider reply comes through,
so what it lets in is all the rest of the gateway has to cope with. It takes
only what RFC 8259 calls interoperable JSON: UTF-8 text with no lone
surrogate escapes (`"\\ud800"` is not a Unicode character: it could not be
stored, logged or sent on), no `NaN` / `Infinity` (not JSON; `json` would
turn them into floats that go out as `null`), no number that overflows a
double, and no integer outside the signed 64-bit range. orjson refuses the
first three itself; the last is checked (with the standard library, whose
integers are exact) only when the text holds a run of 19 digits, so an
ordinary body pays a 2 us scan per KB for it. Provider replies skip that check
(`int64=False`): their numbers are checked where they are read. A refusal is a ValueError
whose message says what was wrong and where.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import re2

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
# The shortest integer that can leave the int64 range has 19 digits. re2, not re: 2 us per KB against 9 us.
_LONG_DIGITS = re2.compile(rb"[0-9]{19}")
_LONG_DIGITS_STR = re2.compile(r"[0-9]{19}")


class _Constant(ValueError):
    pass


def _no_constant(name: str) -> Any:
    raise _Constant(f"{name} is not a JSON number (JSON has no NaN or Infinity)")


def _refusal(data: bytes | bytearray | memoryview | str, exc: orjson.JSONDecodeError) -> str:
    """Why the text was refused: the standard library's message for broken JSON, a plain one otherwise.

    Runs only on the error path. When `json` accepts what orjson refused, the
    refusal is one of the strict rules (a lone surrogate, a number past the
    double range): orjson's own message names it with its position.
    """
    try:
        json.loads(bytes(data) if isinstance(data, memoryview) else data, parse_constant=_no_constant)
    except _Constant as constant:
        return str(constant)
    except ValueError as std:  # JSONDecodeError and UnicodeDecodeError
        return str(std)
    what = str(exc)
    if "surrogate" in what:
        return f"a lone surrogate escape is not a Unicode character ({what})"
    if "infinity" in what:
        return f"a number is too large for a double ({what})"
    return what


def _wide_int(node: Any) -> bool:
    """True when an integer outside the int64 range is anywhere in `node` (iterative: no recursion limit)."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif type(item) is int and not INT64_MIN <= item <= INT64_MAX:
            return True
    return False


def loads(data: bytes | bytearray | memoryview | str, *, int64: bool = True) -> Any:
    """Parse strict JSON (see the module docstring); raises ValueError, or RecursionError when nested absurdly.

    `int64=False` skips the integer range check: provider replies, whose
    numbers are checked where they are read (adapters/replies.py,
    engine/usage.py), and whose embedding vectors are long runs of digits.
    """
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ValueError(_refusal(data, exc)) from None
    if int64:
        digits = _LONG_DIGITS_STR if isinstance(data, str) else _LONG_DIGITS
        if digits.search(bytes(data) if isinstance(data, memoryview | bytearray) else data) is not None and (
                _wide_int(_exact(data))):
            raise ValueError("an integer is outside the signed 64-bit range")
    return obj


def _exact(data: bytes | bytearray | memoryview | str) -> Any:
    """The text parsed with exact integers (orjson turns one past 64 bits into a float, silently)."""
    return json.loads(bytes(data) if isinstance(data, memoryview) else data)


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON bytes; what orjson cannot write (integers past 64 bits, non-string keys) via `json`."""
    try:
        return orjson.dumps(obj)
    except TypeError:
        try:
            return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
        except UnicodeEncodeError:  # a lone surrogate made inside the gateway: escaped, still valid JSON text
            return json.dumps(obj, separators=(",", ":"), ensure_ascii=True).encode()
