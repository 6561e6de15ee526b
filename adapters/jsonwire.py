"""JSON on the hot path: orjson where it can, the standard library where orjson would refuse.

Every request parses the caller's body and the upstream's answer and writes
both again; orjson does that several times faster than `json` (bench/RESULTS.md,
"Gateway overhead"). Output is the same compact UTF-8 JSON as
`json.dumps(obj, separators=(",", ":"), ensure_ascii=False)`. What orjson
refuses — integers past 64 bits, non-string keys, `NaN` literals on input, lone
surrogates — falls back to `json`, so nothing that parsed or serialised before
fails now, and error messages stay the standard library's. (One difference:
a `NaN` that came in, which is not JSON, goes out as `null`.)
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def loads(data: bytes | bytearray | str) -> Any:
    """Parse JSON; raises ValueError (or RecursionError, from the fallback) like `json.loads`."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON bytes."""
    try:
        return orjson.dumps(obj)
    except TypeError:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
