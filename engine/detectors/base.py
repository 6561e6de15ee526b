"""The detector interface every guardrail plugs into.

A detector scans text and returns findings: which detector, which type, and
where (offsets in Unicode code points of the scanned text). It never decides
what to do: the action (detect, redact, block) is the policy's, applied by the
guard pipeline. So a detector reports the same findings whatever its action (P4).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class Finding:
    detector: str  # pii, secrets, prompt_injection, … or a custom detector's name
    type: str  # email, aws_access_key_id, instruction_override, … (the detector's name if untyped)
    start: int
    end: int
    score: float = 1.0
    # Whole-text findings (an injection score, an unsupported sentence) may not be
    # redactable as a span; `redactable` says whether replacing start:end makes sense.
    redactable: bool = True
    detail: str = ""  # a topic or category name; never the matched value


@dataclass(frozen=True, slots=True)
class ScanContext:
    """What a detector may need besides the text: who wrote it and what grounds it."""

    role: str = "user"  # system | user | assistant | tool | document | output
    grounding: tuple[str, ...] = ()  # documents an output should be supported by


class Detector(Protocol):
    """A configured detector: built once at compile time, used on every request."""

    name: str

    def scan(self, text: str, context: ScanContext) -> list[Finding]:
        """Every finding in `text`, sorted by start offset."""
        ...

    @property
    def max_span(self) -> int | None:
        """Longest text a single finding can cover, for streaming holdback; None: unbounded."""
        ...


@runtime_checkable
class StreamingDetector(Detector, Protocol):
    """A detector that can say where, at the end of a text, a finding could still be in progress.

    A stream sends everything before that position at once (engine/streaming.py).
    A detector without these members is held back by its `max_span`, so
    correctness never depends on a detector implementing them.
    """

    @property
    def open_patterns(self) -> tuple[tuple[str, int, bool], ...] | None:
        """(pattern, reach, ignorecase) of every pattern whose matches make findings, for the stream's
        viable-prefix search (engine/detectors/prefixes.py); `reach`: the characters read past a match.
        None: the detector cannot say (a stream holds back its max_span)."""
        ...

    def scan_open(self, text: str, context: ScanContext, open_at: int) -> tuple[list[Finding], int]:
        """`scan(text)`, and `open_at` (where its patterns could still be matching) moved back as far as
        the detector needs: before every candidate finding that reaches over it, and before what only
        the detector knows is open (a PEM block without its END line)."""
        ...
