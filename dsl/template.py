"""Block messages: text with `{{ variable }}` substitutions, and nothing else.

Messages used to be Jinja templates in a sandbox. The sandbox stops attribute
tricks, not work: `ghat check` accepted messages that rendered a 300 MB body
per blocked request (`{{ "x" * 300000000 }}`), hung the gateway in two nested
99,999-step loops, or raised on a recursive macro — each run on the request
path, once per blocked request. A refusal message needs none of that, so the
language has none of it: a message is literal text and `{{ name }}`
placeholders. Rendering is one pass over precomputed pieces, each value is
capped at MAX_VALUE_CHARS and the result at MAX_RENDERED_CHARS, so a blocked
request costs the same whatever the policy says.

`parse` is the one reader: `ghat check` reports its errors with their codes
(E307 unknown variable, E308 syntax, E309 not a substitution) and the
compiler builds the `Template` the guards render.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

MAX_VALUE_CHARS = 200  # what one placeholder can add (a topic, a detector, an app name)
MAX_RENDERED_CHARS = 4096  # a refusal is read by a person; past this it is cut, with an ellipsis

_OPEN = re.compile(r"\{[{%#]")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

TemplateProblem = Literal["syntax", "not-substitution"]


class TemplateError(ValueError):
    """A message that is not text with `{{ variable }}` placeholders; `problem` picks the diagnostic."""

    def __init__(self, problem: TemplateProblem, message: str, help: str) -> None:
        super().__init__(message)
        self.problem = problem
        self.message = message
        self.help = help


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed message: literal pieces at even positions, variable names at odd ones."""

    source: str
    pieces: tuple[str, ...]

    @property
    def variables(self) -> frozenset[str]:
        return frozenset(self.pieces[1::2])

    def render(self, values: Mapping[str, str]) -> str:
        """The message with each placeholder replaced (a missing value renders empty), within MAX_RENDERED_CHARS."""
        out: list[str] = []
        size = 0
        for i, piece in enumerate(self.pieces):
            text = values.get(piece, "")[:MAX_VALUE_CHARS] if i % 2 else piece
            out.append(text)
            size += len(text)
            if size > MAX_RENDERED_CHARS:
                return "".join(out)[: MAX_RENDERED_CHARS - 1] + "…"
        return "".join(out)


def parse(source: str) -> Template:
    """The message's pieces, or TemplateError saying what in it is not a plain substitution."""
    pieces: list[str] = []
    pos = 0
    while (m := _OPEN.search(source, pos)) is not None:
        if m.group() != "{{":
            kind = "statement" if m.group() == "{%" else "comment"
            raise TemplateError("not-substitution", f"message contains a template {kind} '{m.group()}'",
                                "messages substitute variables only: write '{{ topic }}'")  # fmt: skip
        end = source.find("}}", m.end())
        if end < 0:
            raise TemplateError("syntax", "message has a '{{' that is never closed with '}}'",
                                "write '{{ topic }}', or drop the braces")  # fmt: skip
        inner = source[m.end() : end].strip()
        if not inner:
            raise TemplateError("syntax", "message has an empty '{{ }}'", "name a variable: '{{ topic }}'")
        if not _NAME.fullmatch(inner):
            raise TemplateError("not-substitution", f"'{{{{ {inner[:40]} }}}}' is an expression, not a variable",
                                "messages substitute variables only (no filters, calls, operators or loops): "
                                "write '{{ topic }}'")  # fmt: skip
        pieces.append(source[pos : m.start()])
        pieces.append(inner)
        pos = end + 2
    pieces.append(source[pos:])
    return Template(source, tuple(pieces))
