"""Output guards on a stream: redact across chunk boundaries with a bounded holdback.

`StreamGuard.feed(chunk)` returns the text that is safe to send now; `finish()`
returns the rest. Text is withheld only while a finding could still grow over
it: the last `holdback` characters, where `holdback` is the longest match any
span-bounded redacting or blocking rule can make. Everything before that point
is scanned, redacted and emitted, so the concatenated output equals
`pipeline.run` on the whole text for every chunking (P6).

Rules whose findings read the whole text (injection score, groundedness) have
no bounded span: at `detect` or `block` they run once on the complete text in
`finish()` (a block then ends the stream there); at `redact` they force the
stream to buffer everything, since no prefix is safe until the end.

A block sets `blocked` and ends the stream: later calls return "" and the
server turns `blocked` into an error event. Shadow rules report, never act.
"""

from __future__ import annotations

from engine.detectors.base import ScanContext
from engine.guards import (
    TAG_MAX,
    Blocked,
    GuardPipeline,
    GuardRule,
    Outcome,
    Redactor,
    Tally,
    apply_redactions,
    restore_placeholders,
)


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
        self.holdback: int | None = max(spans, default=0)
        if any(_can_redact(r) for r in self._whole_rules):
            # nothing is safe before the end: every rule runs once on the whole text
            self.holdback, self._span_rules, self._whole_rules = None, tuple(active), ()
        self.blocked: Blocked | None = None
        self._tally = Tally()
        self._tail = ""  # emitted original text kept as left context for the next scan
        self._pending = ""  # original text not yet emitted
        self._whole: list[str] = []  # the full text, only when whole-text rules exist
        self._done = False

    @property
    def outcomes(self) -> list[Outcome]:
        return self._tally.outcomes()

    def feed(self, chunk: str) -> str:
        """Accept the next chunk; return the text that can be sent now (maybe empty)."""
        if self.blocked is not None or self._done or not chunk:
            return ""
        if self._whole_rules:
            self._whole.append(chunk)
        self._pending += chunk
        if self.holdback is None or len(self._pending) <= self.holdback:
            return ""
        return self._emit(final=False)

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

    def _emit(self, final: bool) -> str:
        window = self._tail + self._pending
        base = len(self._tail)
        cut = len(window) if final else len(window) - (self.holdback or 0)
        spans: list[tuple[int, int, str]] = []
        hits = [
            h for h in self.pipeline.hits(self.context, window, self._span_rules)
            if h.finding.start >= base
        ]  # fmt: skip
        hits.sort(key=lambda h: h.finding.start)
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
                spans.append((f.start - base, f.end - base, f.type))
                cut = max(cut, f.end)  # never split a span: emit it whole
        piece = window[base:cut]
        out = apply_redactions(piece, spans, self.redactor) if spans else piece
        keep = self.holdback or 0
        self._tail = (self._tail + piece)[-keep:] if keep else ""
        self._pending = window[cut:]
        return out


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
