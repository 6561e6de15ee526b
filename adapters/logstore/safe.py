"""Make a `LogRecord` storable whatever its fields hold, so that no value can cost a request its record (P14).

Values reach a record from the client (metadata, ids, model names) and from the
provider (usage), and some cannot be stored as they came: a lone surrogate has
no UTF-8 encoding, NUL truncates text in many tools, 1e30 overflows an SQLite
INTEGER, NaN is not JSON, a string where a count belongs cannot be summed.
One such value used to stop the log writer for good.

`safe_record` returns the record itself when every field is already plain (the
usual case: a few type checks per field, on the writer thread, never on the
request path), else a copy in which each bad field is replaced — text escaped
(`\\ud800`, `\\x00`) or cut to a bound, numbers clamped into range, containers
bounded — with the original kept as bounded text in `sanitized`. A usage figure
that had to change, or that contradicts another (cached above prompt tokens),
sets `usage_trusted` to False. It never raises: a record it cannot read at all
becomes a minimal one that keeps the request id and says why.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from engine.records import AttemptRecord, GuardrailRecord, LogRecord

MAX_TOKENS = 10**12  # above any real request by orders of magnitude; far inside int64 and exact in a double
MAX_COST_USD = 1e9
MAX_MS = 1e9  # eleven days
MAX_STATUS = 999
MAX_TIME = 4_102_444_800.0  # 2100-01-01: a record's arrival time, unix seconds
MAX_TEXT = 1024  # ids, names, codes, metadata values: anything longer is not one
MAX_ITEMS = 64  # entries of metadata, timings, attempts, guardrails
MAX_ORIGINAL = 200  # characters of an original value kept in `sanitized`
MAX_NAME = 120  # characters of a field's name in `sanitized` (a metadata key is part of it)
USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens", "cost_usd")


def storable_text(value: str) -> bool:
    """Whether `value` encodes as UTF-8 and holds no NUL (ASCII without NUL is the fast, usual answer)."""
    if value.isascii():
        return "\x00" not in value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in value


def escape_text(value: str) -> str:
    """`value` with what UTF-8 cannot hold written as backslash escapes, and NUL as `\\x00`."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def describe(value: object) -> str:
    """A short, storable text form of any value (for `sanitized`); never raises."""
    try:
        text = repr(value)
    except Exception:  # a hostile __repr__: the type still says something
        text = f"<{type(value).__name__}>"
    if len(text) > MAX_ORIGINAL:
        text = text[:MAX_ORIGINAL] + f"…(+{len(text) - MAX_ORIGINAL})"
    return text if storable_text(text) else escape_text(text)


class _Fixer:
    """Checks fields one by one, replacing what cannot be stored and noting the originals."""

    __slots__ = ("changed", "notes", "usage_changed")

    def __init__(self) -> None:
        self.notes: dict[str, str] = {}
        self.usage_changed = False
        self.changed = False  # set by every replacement, noted or not (an int amount made a float)

    def note(self, name: str, original: object) -> None:
        self.changed = True
        if len(self.notes) < MAX_ITEMS:
            self.notes[name[:MAX_NAME]] = describe(original)
        if name.split(".", 1)[0] in USAGE_FIELDS:
            self.usage_changed = True

    def text(self, name: str, value: object, limit: int | None = MAX_TEXT) -> str:
        if type(value) is str and storable_text(value) and (limit is None or len(value) <= limit):
            return value
        self.note(name, value)
        text = describe(value) if not isinstance(value, str) else value if storable_text(value) else escape_text(value)
        if limit is not None and len(text) > limit:
            text = text[:limit]
        return text

    def opt_text(self, name: str, value: object, limit: int | None = MAX_TEXT) -> str | None:
        return None if value is None else self.text(name, value, limit)

    def count(self, name: str, value: object, hi: int = MAX_TOKENS) -> int:
        if type(value) is int and 0 <= value <= hi:
            return value
        self.note(name, value)
        return _clamp_int(value, hi)

    def opt_count(self, name: str, value: object, hi: int = MAX_TOKENS) -> int | None:
        return None if value is None else self.count(name, value, hi)

    def number(self, name: str, value: object, hi: float) -> float:
        if type(value) is float and 0.0 <= value <= hi:  # NaN fails both comparisons
            return value
        if type(value) is int and 0 <= value <= hi:
            self.changed = True  # the same amount, as the type the field holds: nothing to note
            return float(value)
        self.note(name, value)
        return _clamp_float(value, hi)

    def flag(self, name: str, value: object) -> bool:
        if type(value) is bool:
            return value
        self.note(name, value)
        try:
            return bool(value)
        except Exception:
            return False


def _clamp_int(value: object, hi: int) -> int:
    """The nearest int in [0, hi]: floats truncated, NaN, text and other types 0."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return min(max(value, 0), hi)
    if isinstance(value, float):
        if math.isnan(value):
            return 0
        return hi if value >= hi else 0 if value <= 0 else int(value)
    return 0


def _clamp_float(value: object, hi: float) -> float:
    """The nearest finite float in [0, hi]; NaN, text and other types 0."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int):
        return float(min(max(value, 0), int(hi)))
    if isinstance(value, float):
        if math.isnan(value):
            return 0.0
        return min(max(value, 0.0), hi)
    return 0.0


def _text_map(fix: _Fixer, name: str, value: object, limit: int | None) -> dict[str, str]:
    if type(value) is dict and len(value) <= MAX_ITEMS and all(
        type(k) is str and type(v) is str and storable_text(k) and storable_text(v)
        and len(k) <= MAX_TEXT and (limit is None or len(v) <= limit)
        for k, v in value.items()
    ):  # fmt: skip
        return value
    fix.changed = True  # a new dict, whatever else is noted
    if not isinstance(value, Mapping):
        fix.note(name, value)
        return {}
    out: dict[str, str] = {}
    for i, (k, v) in enumerate(value.items()):
        if i >= MAX_ITEMS:
            fix.note(f"{name}.(more)", len(value))
            break
        key = fix.text(f"{name}.(key)", k)
        out[key] = fix.text(f"{name}.{key}", v, limit)
    return out


def _timings(fix: _Fixer, value: object) -> dict[str, float]:
    if type(value) is dict and len(value) <= MAX_ITEMS and all(
        type(k) is str and k.isascii() and len(k) <= 64 and type(v) is float and 0.0 <= v <= MAX_MS
        for k, v in value.items()
    ):  # fmt: skip
        return value
    fix.changed = True
    if not isinstance(value, Mapping):
        fix.note("timings_ms", value)
        return {}
    out: dict[str, float] = {}
    for i, (k, v) in enumerate(value.items()):
        if i >= MAX_ITEMS:
            fix.note("timings_ms.(more)", len(value))
            break
        key = fix.text("timings_ms.(key)", k, 64)
        out[key] = fix.number(f"timings_ms.{key}", v, MAX_MS)
    return out


def _attempts(fix: _Fixer, value: object) -> tuple[AttemptRecord, ...]:
    items = _bounded_tuple(fix, "attempts", value)
    out: list[AttemptRecord] = []
    for i, a in enumerate(items):
        n, before = f"attempts.{i}", fix.changed
        fix.changed = False
        if not isinstance(a, AttemptRecord):
            fix.note(n, a)
            continue
        fixed = AttemptRecord(fix.text(f"{n}.model", a.model), fix.text(f"{n}.provider", a.provider),
                              fix.count(f"{n}.status", a.status, MAX_STATUS),
                              fix.opt_text(f"{n}.error_code", a.error_code),
                              fix.number(f"{n}.duration_ms", a.duration_ms, MAX_MS))  # fmt: skip
        out.append(fixed if fix.changed else a)
        fix.changed = fix.changed or before
    return items if len(out) == len(items) and all(x is y for x, y in zip(out, items, strict=True)) else tuple(out)


def _guardrails(fix: _Fixer, value: object) -> tuple[GuardrailRecord, ...]:
    items = _bounded_tuple(fix, "guardrails", value)
    out: list[GuardrailRecord] = []
    for i, g in enumerate(items):
        n, before = f"guardrails.{i}", fix.changed
        fix.changed = False
        if not isinstance(g, GuardrailRecord):
            fix.note(n, g)
            continue
        fixed = GuardrailRecord(fix.text(f"{n}.direction", g.direction), fix.text(f"{n}.detector", g.detector),
                                fix.text(f"{n}.type", g.type), fix.count(f"{n}.count", g.count),
                                fix.text(f"{n}.action", g.action), fix.flag(f"{n}.shadow", g.shadow))  # fmt: skip
        out.append(fixed if fix.changed else g)
        fix.changed = fix.changed or before
    return items if len(out) == len(items) and all(x is y for x, y in zip(out, items, strict=True)) else tuple(out)


def _bounded_tuple(fix: _Fixer, name: str, value: object) -> tuple[Any, ...]:
    if type(value) is tuple and len(value) <= MAX_ITEMS:
        return value
    fix.changed = True
    if not isinstance(value, (tuple, list)):
        fix.note(name, value)
        return ()
    if len(value) > MAX_ITEMS:
        fix.note(f"{name}.(more)", len(value))
    return tuple(value[:MAX_ITEMS])


def safe_record(r: LogRecord) -> LogRecord:
    """`r` when every field can be stored as it is, else a storable copy with `sanitized` saying what changed."""
    try:
        return r if _plain(r) else _safe(r)
    except Exception as exc:  # a record this cannot even read: keep the id and the reason
        return _minimal(r, exc)


_INT = {int}
_FLOAT = {float}


def _plain(r: LogRecord) -> bool:
    """Whether every field is already storable: the usual answer, found with a few C-level passes.

    Measured at ~1.7× the cost of the row's own JSON encoding; the field-by-field `_safe` that runs when
    this says no is ~3× slower again (bench/RESULTS.md, "Request log").
    """
    a, g, m, t = r.attempts, r.guardrails, r.metadata, r.timings_ms
    if (type(a) is not tuple or type(g) is not tuple or type(m) is not dict or type(t) is not dict
            or len(a) > MAX_ITEMS or len(g) > MAX_ITEMS or len(m) > MAX_ITEMS or len(t) > MAX_ITEMS
            or r.sanitized or r.captured is not None or type(r.time) is not float or not 0.0 <= r.time <= MAX_TIME
            or type(r.stream) is not bool or type(r.usage_trusted) is not bool
            or (r.usage_source == "untrusted" and r.usage_trusted)):  # fmt: skip
        return False
    texts = [r.request_id, r.env, r.endpoint, r.policy_version, r.usage_source, r.app, r.key_id, r.requested_model,
             r.provider, r.upstream_model, r.error_code, r.client_request_id, *m, *m.values(), *t]  # fmt: skip
    ints = [r.status, r.prompt_tokens, r.completion_tokens, r.cached_tokens, r.reasoning_tokens, r.max_tokens or 0]
    floats = [r.cost_usd, *t.values()]
    for x in a:
        if type(x) is not AttemptRecord:
            return False
        texts += (x.model, x.provider, x.error_code)
        ints.append(x.status)
        floats.append(x.duration_ms)
    for y in g:
        if type(y) is not GuardrailRecord or type(y.shadow) is not bool:
            return False
        texts += (y.direction, y.detector, y.type, y.action)
        ints.append(y.count)
    present: list[str] = [x for x in texts if x is not None]
    try:
        joined = "".join(present)  # a TypeError here is a non-text where text belongs
    except TypeError:
        return False
    if (set(map(type, ints)) != _INT or set(map(type, floats)) != _FLOAT or min(ints) < 0 or max(ints) > MAX_TOKENS
            or not (min(floats) >= 0.0 and max(floats) <= MAX_MS) or r.status > MAX_STATUS or r.cost_usd > MAX_COST_USD
            or r.cached_tokens > r.prompt_tokens or r.reasoning_tokens > r.completion_tokens
            or max(map(len, present)) > MAX_TEXT or "\x00" in joined):  # fmt: skip
        return False
    return storable_text(joined)


def _safe(r: LogRecord) -> LogRecord:
    fix = _Fixer()
    t = r.time
    if not (type(t) is float and 0.0 <= t <= MAX_TIME):
        fix.note("time", t)
        now = time.time()
        t = _clamp_float(t, now) or now
    fields: dict[str, Any] = dict(
        request_id=fix.text("request_id", r.request_id) or _unnamed(fix),
        time=t,
        env=fix.text("env", r.env),
        app=fix.opt_text("app", r.app),
        key_id=fix.opt_text("key_id", r.key_id),
        endpoint=fix.text("endpoint", r.endpoint),
        requested_model=fix.opt_text("requested_model", r.requested_model),
        provider=fix.opt_text("provider", r.provider),
        upstream_model=fix.opt_text("upstream_model", r.upstream_model),
        stream=fix.flag("stream", r.stream),
        status=fix.count("status", r.status, MAX_STATUS),
        error_code=fix.opt_text("error_code", r.error_code),
        policy_version=fix.text("policy_version", r.policy_version),
        metadata=_text_map(fix, "metadata", r.metadata, MAX_TEXT),
        attempts=_attempts(fix, r.attempts),
        guardrails=_guardrails(fix, r.guardrails),
        prompt_tokens=fix.count("prompt_tokens", r.prompt_tokens),
        completion_tokens=fix.count("completion_tokens", r.completion_tokens),
        cached_tokens=fix.count("cached_tokens", r.cached_tokens),
        reasoning_tokens=fix.count("reasoning_tokens", r.reasoning_tokens),
        usage_source=fix.text("usage_source", r.usage_source),
        cost_usd=fix.number("cost_usd", r.cost_usd, MAX_COST_USD),
        timings_ms=_timings(fix, r.timings_ms),
        captured=None if r.captured is None else _text_map(fix, "captured", r.captured, None) or None,
        max_tokens=fix.opt_count("max_tokens", r.max_tokens),
        client_request_id=fix.opt_text("client_request_id", r.client_request_id),
        usage_trusted=fix.flag("usage_trusted", r.usage_trusted),
    )
    if fields["cached_tokens"] > fields["prompt_tokens"] or fields["reasoning_tokens"] > fields["completion_tokens"]:
        fields["usage_trusted"] = False  # the parts exceed their whole: the numbers contradict each other
    if fields["usage_source"] == "untrusted":
        fields["usage_trusted"] = False  # the provider adapter already found counts that were not counts
    previous = _text_map(fix, "sanitized", r.sanitized, MAX_TEXT)
    if not fix.changed and fields["usage_trusted"] is r.usage_trusted and previous is r.sanitized:
        return r
    if fix.usage_changed:
        fields["usage_trusted"] = False
    fields["sanitized"] = dict(list({**previous, **fix.notes}.items())[:MAX_ITEMS])
    return replace(r, **fields)


def _unnamed(fix: _Fixer) -> str:
    """A key for a record that came without an id: unique, and saying so."""
    fix.note("request_id", "")
    return f"unnamed-{time.time_ns()}"


def _minimal(r: object, exc: BaseException) -> LogRecord:
    """What is left of an unreadable record: its id if it has one, and why it could not be kept whole."""
    rid = getattr(r, "request_id", None)
    status = getattr(r, "status", 0)
    fix = _Fixer()
    return LogRecord(
        request_id=(fix.text("request_id", rid) if rid is not None else "") or f"unreadable-{time.time_ns()}",
        time=time.time(), env=fix.text("env", getattr(r, "env", "")), app=None, key_id=None, endpoint="",
        requested_model=None, provider=None, upstream_model=None, stream=False,
        status=fix.count("status", status, MAX_STATUS), error_code=None, policy_version="",
        usage_trusted=False, sanitized={"record": f"unreadable: {describe(exc)}"},
    )  # fmt: skip
