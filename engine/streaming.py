"""Output guards on a stream: send text as soon as no later character can change its redaction.

`StreamGuard.feed(chunk)` returns the text that is safe to send now; `finish()`
returns the rest. Text is withheld only from the earliest position where a
finding of some rule could still be in progress: each detector says where
that is (`StreamingDetector.open_from` / `scan_open`: for patterns, the start
of the longest tail of the text that is a prefix of a match, read by RE2 from
the viable-prefix pattern of engine/detectors/prefixes.py; for PEM blocks, an
open BEGIN line), and never places it inside a candidate finding. A detector
that cannot say is held back by its `max_span` (the longest match it can
make), so correctness never depends on a detector implementing it. Everything
before that point is scanned, redacted and sent, with the last `holdback`
characters already sent kept as left context, so the concatenated output
equals `pipeline.run` on the whole text for every chunking (P6).

A policy's `holdback` bound (`max_held` characters here; the time bound is the
relay's, through `flush()`) forces a cut: the held text is scanned as if the
stream ended there, redacted and sent. A finding that only the later text
completes, and that starts before such a cut, has its part after the cut
redacted when it is found (a typed placeholder for the rest of the value); its
part before the cut went out as it was scanned then. That is what a bound
trades: P6 holds for streams that never reach it.

Rules whose findings read the whole text (injection score, groundedness) have
no bounded span: at `detect` or `block` they run once on the complete text in
`finish()` (a block then ends the stream there); at `redact` they force the
stream to buffer everything, since no prefix is safe until the end.

A block sets `blocked` and ends the stream: later calls return "" and the
server turns `blocked` into an error event. Shadow rules report, never act.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import re2

from engine.detectors.base import Detector, ScanContext, StreamingDetector
from engine.detectors.prefixes import OpenPattern, OpenTail, Unsupported
from engine.guards import (
    TAG_MAX,
    Blocked,
    GuardPipeline,
    GuardRule,
    Hit,
    Outcome,
    Redactor,
    Tally,
    apply_redactions,
    group_rules,
    resolve,
    restore_placeholders,
)

# A detector, itself again when it can say where a finding is still open (else None), and its rules.
_Group = tuple[Detector, StreamingDetector | None, tuple[GuardRule, ...]]


@dataclass(frozen=True, slots=True)
class _Plan:
    """What every stream of one pipeline and role shares, built once (an RE2 compile costs milliseconds).

    `tail` finds where any pattern of the streaming detectors could still be
    matching; `fallback` is the longest max_span of the detectors that cannot
    say (0: none); `candidates`, when every detector can say, tells in one pass
    whether the text holds anything any of them could report at all, so a clean
    stretch of text is sent without running the detectors.
    """

    groups: tuple[_Group, ...]
    tail: OpenTail | None
    fallback: int
    candidates: re2.Set | None


def _plan(pipeline: GuardPipeline, role: str, rules: tuple[GuardRule, ...]) -> _Plan:
    key = (role, tuple(id(r) for r in rules))
    plan = pipeline.streams.get(key)
    if isinstance(plan, _Plan):
        return plan
    groups: list[_Group] = []
    patterns: list[OpenPattern] = []
    limit, fallback = 0, 0
    for det, roles, members in group_rules(rules):
        if roles is not None and role not in roles:
            continue
        own = det.open_patterns if isinstance(det, StreamingDetector) else None
        span = det.max_span or 0
        if own is None:
            groups.append((det, None, members))
            fallback = max(fallback, span)
            continue
        assert isinstance(det, StreamingDetector)
        groups.append((det, det, members))
        patterns.extend(own)
        limit = max(limit, span + max((reach for _p, reach, _i in own), default=0) + 1)
    tail: OpenTail | None = None
    candidates: re2.Set | None = None
    try:
        tail = OpenTail(patterns, limit) if patterns else None
        if not fallback:
            candidates = _candidate_set(patterns)
    except (Unsupported, re2.error):  # a pattern RE2 takes alone but not in company: hold back max_span
        groups = [(det, None, members) for det, _s, members in groups]
        tail, candidates = None, None
        fallback = max((det.max_span or 0 for det, _s, _m in groups), default=0)
    plan = _Plan(tuple(groups), tail, fallback, candidates)
    pipeline.streams[key] = plan
    return plan


def _candidate_set(patterns: list[OpenPattern]) -> re2.Set | None:
    options = re2.Options()
    options.never_capture = True
    options.max_mem = 64 << 20
    found = re2.Set.SearchSet(options)
    for pattern, _reach, ignorecase in patterns:
        found.Add(f"(?i:{pattern})" if ignorecase else pattern)
    found.Compile()
    return found


class StreamGuard:
    """Incremental output guard; see the module docstring for the guarantees."""

    def __init__(
        self,
        pipeline: GuardPipeline,
        redactor: Redactor | None = None,
        context: ScanContext | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.redactor = redactor or Redactor()
        self.context = context or ScanContext(role="output")
        active = [r for r in pipeline.rules if r.action != "off" or r.by_type]
        self._span_rules = tuple(r for r in active if r.detector.max_span is not None)
        self._whole_rules = tuple(r for r in active if r.detector.max_span is None)
        spans = [r.detector.max_span or 0 for r in self._span_rules]
        # the most a stream can hold back (without a bound), and the left context kept for the next scan
        self.holdback: int | None = max(spans, default=0)
        if any(_can_redact(r) for r in self._whole_rules):
            # nothing is safe before the end: every rule runs once on the whole text
            self.holdback, self._span_rules, self._whole_rules = None, tuple(active), ()
        bound = pipeline.holdback if self.holdback is not None else None  # buffering everything: no bound
        self.max_held = bound.chars if bound is not None else None
        self.max_wait = bound.seconds if bound is not None else None  # the relay's timer calls flush()
        self._plan = _plan(pipeline, self.context.role, self._span_rules)
        self._open = 0  # where the patterns could still be matching, as an offset in the whole stream
        self._sent = 0  # characters of the stream sent (emitted), redacted or not
        self._forced = False  # a bound forced a cut: a finding may reach back over what was sent
        self.blocked: Blocked | None = None
        self._tally = Tally()
        self._tail = ""  # emitted original text kept as left context for the next scan
        self._pending = ""  # original text not yet emitted
        self._whole: list[str] = []  # the full text, only when whole-text rules exist
        self._done = False
        self._received = 0  # characters fed so far
        self._arrivals: deque[tuple[int, float]] = deque()  # (characters fed after a chunk, when it came)

    @property
    def outcomes(self) -> list[Outcome]:
        return self._tally.outcomes()

    @property
    def held(self) -> int:
        """Characters received and not yet sent."""
        return len(self._pending)

    @property
    def held_since(self) -> float | None:
        """When the oldest character still held arrived (the `at` it was fed with); None: nothing held."""
        if not self._pending:
            return None
        start = self._received - len(self._pending)
        while len(self._arrivals) > 1 and self._arrivals[0][0] <= start:
            self._arrivals.popleft()
        return self._arrivals[0][1]

    def feed(self, chunk: str, at: float = 0.0) -> str:
        """Accept the next chunk (arrived at time `at`); return the text that can be sent now (maybe empty)."""
        if self.blocked is not None or self._done or not chunk:
            return ""
        self._received += len(chunk)
        if self.max_wait is not None:
            self._arrivals.append((self._received, at))
        if self._whole_rules:
            self._whole.append(chunk)
        self._pending += chunk
        if self.holdback is None:
            return ""
        if self.max_held is not None and len(self._pending) > self.max_held:
            return self._emit(final=True)  # the character bound: scanned as if the stream ended here
        return self._emit(final=False)

    def flush(self) -> str:
        """The time bound was reached: scan what is held as if the stream ended here, and send it."""
        if self.blocked is not None or self._done or self.holdback is None or not self._pending:
            return ""
        return self._emit(final=True)

    def finish(self) -> str:
        """End of stream: scan and return what was held back, then the whole-text rules."""
        if self.blocked is not None or self._done:
            return ""
        self._done = True
        out = self._emit(final=True)
        if self.blocked is None and self._whole_rules:
            text = "".join(self._whole)
            for hit in self.pipeline.hits(self.context, text, self._whole_rules):
                self._tally.add(hit)
                if not hit.rule.shadow and hit.action == "block" and self.blocked is None:
                    self.blocked = self.pipeline.blocked_by(hit)
        return "" if self.blocked is not None else out

    def _bound(self, window: str, base: int) -> int:
        """Where the patterns could still be matching (from where they could last time: it never moves back)."""
        plan, n = self._plan, len(window)
        start = self._sent - base  # the window's first character, as an offset in the stream
        at = n if plan.tail is None else plan.tail.open_from(window, max(0, self._open - start))
        self._open = start + at
        return min(at, n - plan.fallback) if plan.fallback else at

    def _scan(self, window: str, open_at: int) -> tuple[list[Hit], int]:
        """Every hit in the window, and `open_at` moved back where a detector says a finding is still open."""
        hits: list[Hit] = []
        for det, streaming, members in self._plan.groups:
            if streaming is not None:
                findings, open_at = streaming.scan_open(window, self.context, open_at)
            else:
                findings = det.scan(window, self.context)
            if findings:
                resolve(members, findings, hits)
        return hits, open_at

    def _emit(self, final: bool) -> str:
        window = self._tail + self._pending
        base = len(self._tail)
        open_at = self._bound(window, base)
        if not final and open_at <= base:
            return ""  # the new text only extends what is still open: nothing to send yet
        plan = self._plan
        if plan.candidates is not None and not self._forced and not plan.candidates.Match(window):
            return self._send(window, base, len(window) if final else open_at, "")  # nothing to find
        found, open_at = self._scan(window, open_at)
        hits = [h for h in found if h.finding.end > base]  # those wholly in the tail went out before
        hits.sort(key=lambda h: (h.finding.start, -h.finding.end, h.rule.order))
        cut = len(window)
        if not final:
            cut = max(base, open_at)
            for hit in reversed(hits):  # never cut through a finding: hold all of it back
                f = hit.finding
                if base <= f.start < cut < f.end:
                    cut = f.start
        spans: list[tuple[int, int, str]] = []
        for hit in hits:
            f = hit.finding
            if f.start >= cut:
                break
            self._tally.add(hit)
            if hit.rule.shadow:
                continue
            if hit.action == "block":
                self.blocked = self.pipeline.blocked_by(hit)
                self._pending = ""
                return ""
            if hit.action == "redact" and f.redactable:
                # a finding that started before a forced cut: the part after the cut
                spans.append((max(f.start, base) - base, min(f.end, cut) - base, f.type))
        piece = window[base:cut]
        out = apply_redactions(piece, spans, self.redactor) if spans else piece
        self._forced = self._forced or (final and not self._done)
        return self._send(window, base, cut, out)

    def _send(self, window: str, base: int, cut: int, out: str | None) -> str:
        """Move the cut: `window[base:cut]` goes out as `out` (as it is when empty)."""
        keep = self.holdback or 0
        self._tail = window[max(0, cut - keep) : cut] if keep else ""
        self._pending = window[cut:]
        self._sent += cut - base
        return out or window[base:cut]


def _can_redact(rule: GuardRule) -> bool:
    if rule.shadow:
        return False
    return rule.action == "redact" or any(a == "redact" for _t, a in rule.by_type)


class StreamRestorer:
    """Puts original values back into a streamed response (the `restore` option).

    A placeholder may arrive split over chunks, so an unfinished `[TAG_…` at the
    end of a chunk (at most TAG_MAX characters) waits for the next one.
    """

    def __init__(self, redactor: Redactor, types: frozenset[str]) -> None:
        self.redactor = redactor
        self.types = types
        self._pending = ""

    def feed(self, chunk: str) -> str:
        text = self._pending + chunk
        open_at = text.rfind("[")
        if open_at >= 0 and "]" not in text[open_at:] and len(text) - open_at <= TAG_MAX:
            self._pending = text[open_at:]
            text = text[:open_at]
        else:
            self._pending = ""
        return restore_placeholders(text, self.redactor, self.types)

    def finish(self) -> str:
        text, self._pending = self._pending, ""
        return restore_placeholders(text, self.redactor, self.types)
