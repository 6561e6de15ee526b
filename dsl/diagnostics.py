"""Diagnostics: what every stage of `ghat check` reports.

Each diagnostic has a stable code, a rule name (`category/rule-name`), a level,
a one-line message, a span and, where possible, a `help` line that says what
to write instead. They sort by position, as OPA's error lists do.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal, TypeAlias

from dsl.ast import Span

Level: TypeAlias = Literal["error", "warning", "note"]
LEVEL_RANK: dict[str, int] = {"note": 0, "warning": 1, "error": 2}


@dataclass(frozen=True, slots=True)
class Diagnostic:
    code: str  # E001, W101 …
    rule: str  # syntax/unexpected-token, reference/unknown-model …
    level: Level
    message: str
    span: Span
    help: str | None = None

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.span.file, self.span.line, self.span.col, self.code)

    def with_level(self, level: Level) -> Diagnostic:
        return replace(self, level=level)


class PolicyError(Exception):
    """Raised when a policy set cannot be compiled: it carries every diagnostic."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = sorted(diagnostics, key=Diagnostic.sort_key)
        first = self.diagnostics[0] if self.diagnostics else None
        super().__init__(
            f"{first.span}: {first.message}" if first else "policy set has errors"
        )


def has_errors(diagnostics: list[Diagnostic]) -> bool:
    return any(d.level == "error" for d in diagnostics)


def render_text(diag: Diagnostic, source: str | None) -> str:
    """Render like a modern compiler: location, message, the source line, a caret, help."""
    head = f"{diag.span}: {diag.level}[{diag.code}] {diag.message} ({diag.rule})"
    lines = [head]
    if source is not None and diag.span.line >= 1:
        src_lines = source.splitlines()
        if diag.span.line <= len(src_lines):
            text = src_lines[diag.span.line - 1].expandtabs(4)
            gutter = f"{diag.span.line:>4} | "
            lines.append(gutter + text)
            width = 1
            if diag.span.end_line == diag.span.line and diag.span.end_col > diag.span.col:
                width = diag.span.end_col - diag.span.col
            lines.append(" " * (len(gutter) + diag.span.col - 1) + "^" * max(1, width))
    if diag.help:
        lines.append(f"  help: {diag.help}")
    return "\n".join(lines)
