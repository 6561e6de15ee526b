"""Lint passes over guard rules and custom patterns: rules that never decide, rules that share
findings, options that do nothing, prod apps with no guardrail, patterns that match everything
or nothing. `dsl/lint.py` lists them in its `PASSES`.
"""

from __future__ import annotations

from collections.abc import Iterator

import re2

from dsl import ast, rules
from dsl.catalog import BUILTINS
from dsl.diagnostics import Diagnostic
from dsl.overlap import Reach, covers, overlaps, reach, shared
from dsl.patterns import bounded, matches_everything, never_matches
from dsl.resolve import Index

PROD_ENVS = frozenset({"prod", "production"})
_DOES = {"detect": "reports", "redact": "redacts", "block": "blocks"}


def is_prod(env: str | None) -> bool:
    """`prod`, `production`, or a prod env of a region (`prod-eu`)."""
    return env is not None and (env.lower() in PROD_ENVS or env.lower().startswith("prod-"))


def rule_overlap(ps: ast.PolicySet, index: Index) -> Iterator[Diagnostic]:
    """W301 for a rule another rule makes redundant; W304 (a note) for a weaker rule that shares
    findings with a stricter one. Shadow and `off` rules decide nothing and are left out."""
    for app in ps.apps:
        for block in app.blocks():
            live = [(g, reach(g)) for g in block.guards if not g.shadow and g.action != "off" and _known(g, index)]
            for j, (rule, mine) in enumerate(live):
                found = _redundant(j, rule, mine, live)
                if found is not None:
                    yield found
                    continue
                note = _overlap(rule, mine, live)
                if note is not None:
                    yield note


def restore(ps: ast.PolicySet, index: Index) -> Iterator[Diagnostic]:
    """`restore` puts values an input rule redacted back into the answer; elsewhere it does nothing."""
    for app in ps.apps:
        for block in app.blocks():
            for g in block.guards:
                if not g.restore or g.detector not in ("pii", "secrets"):
                    continue  # E302 reports restore on a detector that takes none
                if block.direction == "output":
                    yield rules.GUARD_RESTORE.at(
                        g.span, "`restore` does nothing on an output rule: it puts back values the input redacted",
                        f"move `{g.detector} redact restore` to the input block, or drop `restore`",
                    )  # fmt: skip
                elif g.action != "redact":
                    yield rules.GUARD_RESTORE.at(
                        g.span, f"`restore` does nothing on a `{g.action}` rule: it redacts nothing to put back",
                        f"write `{g.detector} redact restore` to hide values from the provider and return them "
                        "to the caller, or drop `restore`",
                    )  # fmt: skip


def prod_guardrails(ps: ast.PolicySet, index: Index) -> Iterator[Diagnostic]:
    for app in ps.apps:
        if is_prod(app.env) and not any(g.action != "off" for b in app.blocks() for g in b.guards):
            yield rules.PROD_NO_GUARDS.at(
                app.span, f"prod app '{app.name}' has no guardrail: prompts and answers pass unscanned",
                "add at least `input { pii redact; secrets block }` (or `detect` rules to watch first)",
            )  # fmt: skip


def patterns(ps: ast.PolicySet, index: Index) -> Iterator[Diagnostic]:
    options = re2.Options()
    options.never_capture = True
    for det in ps.detectors:
        options.case_sensitive = not det.ignorecase
        try:
            compiled = re2.compile(det.pattern, options)
        except re2.error:
            continue  # E305
        if compiled.search("") is not None:
            continue  # E306
        if matches_everything(compiled.search):
            yield rules.PATTERN_EVERYTHING.at(
                det.pattern_span, f"pattern of '{det.name}' matches any ordinary text (it finds a match in \"hello\")",
                "describe what the value looks like: a fixed prefix and its digits, e.g. /TICKET-[0-9]{6}/",
            )  # fmt: skip
            continue
        why = never_matches(det.pattern, det.ignorecase)
        if why is not None:
            yield rules.PATTERN_NOTHING.at(
                det.pattern_span, f"pattern of '{det.name}' can never match inside a message: {why}",
                "patterns search anywhere in a message: drop the ^ and $ anchors",
            )  # fmt: skip


def whole_text_redact(ps: ast.PolicySet, index: Index) -> Iterator[Diagnostic]:
    """W308 (a note): a whole-text rule at `redact` on output makes a stream buffer everything.

    A score or a share of sentences is known only at the end, so no part of a streamed answer
    can be redacted, and so sent, before then. At detect or block such rules run at the end
    and the stream flows; at redact the client waits for the whole answer."""
    for app in ps.apps:
        for block in app.blocks():
            if block.direction != "output":
                continue
            for g in block.guards:
                if g.shadow or g.action != "redact" or not _whole_text(g, index):
                    continue
                yield rules.STREAM_BUFFERS.at(
                    g.span, f"'{g.detector} redact' reads the whole answer: a streamed answer reaches the "
                    "client only when it ends", f"use `{g.detector} detect` or `{g.detector} block` (both run at "
                    "the end of a stream and let it flow), or accept that streams of this app arrive at once",
                )  # fmt: skip


def _whole_text(guard: ast.Guard, index: Index) -> bool:
    spec = BUILTINS.get(guard.detector)
    if spec is not None:
        return spec.whole_text
    custom = index.detectors.get(guard.detector)
    return custom is not None and not bounded(custom.pattern)


def _known(guard: ast.Guard, index: Index) -> bool:
    return guard.detector in BUILTINS or guard.detector in index.detectors


def _redundant(j: int, rule: ast.Guard, mine: Reach, live: list[tuple[ast.Guard, Reach]]) -> Diagnostic | None:
    """The first other rule that makes every finding of this one at least as strictly, if any."""
    rank = ast.ACTION_RANK
    for i, (other, theirs) in enumerate(live):
        if i == j or not covers(theirs, mine) or rank[other.action] < rank[rule.action]:
            continue
        if rule.restore and not other.restore:
            continue  # this rule puts values back; the other does not
        if rule.action == "block" and rule.message not in (None, other.message):
            continue  # its own refusal message may be the one shown
        same = covers(mine, theirs) and other.action == rule.action
        if same and i > j:
            continue  # of two equal rules, the later is reported
        line = other.span.line
        if same:
            message = f"this rule repeats the '{other.detector}' rule at line {line}"
        else:
            message = (
                f"this rule never decides: the rule at line {line} makes every finding it can and "
                f"{_DOES[other.action]} it"
            )
        help = f"delete this rule, or narrow the rule at line {line} if this one should decide some findings"
        return rules.GUARD_DUPLICATE.at(rule.span, message, help)
    return None


def _overlap(rule: ast.Guard, mine: Reach, live: list[tuple[ast.Guard, Reach]]) -> Diagnostic | None:
    rank = ast.ACTION_RANK
    for other, theirs in live:
        if rank[other.action] > rank[rule.action] and overlaps(theirs, mine):
            return rules.GUARD_OVERLAP.at(
                rule.span,
                f"{shared(mine, theirs)}: the rule at line {other.span.line} {_DOES[other.action]} these; "
                f"this rule {_DOES[rule.action]} only the findings that one does not make",
                "each rule is evaluated on its own and the strictest action wins per finding; "
                "nothing to change if that is what you mean",
            )
    return None
