"""Guard pipelines: run a block's detectors over text and apply the actions.

Compiled once per app and direction. Rules that name the same detector are
merged so the strictest action wins per type (adding a rule never loosens a
policy). Shadow rules run and report but do not change the text or the
decision (P4's promise extended to enforcement levels).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import re2

from dsl import ast
from dsl.catalog import BUILTINS
from dsl.template import Template, parse
from engine.detectors.base import Detector, Finding, ScanContext
from engine.detectors.registry import build

RANK = ast.ACTION_RANK
CLEAN_MAX = 64  # longest text whose clean scan is remembered
CLEAN_ENTRIES = 4096  # remembered per pipeline before the memory starts again


@dataclass(frozen=True, slots=True)
class GuardRule:
    """One detector with the action per type the policy gives it."""

    name: str  # the detector's name in the policy
    detector: Detector
    action: ast.Action  # for types not listed in `by_type`
    by_type: tuple[tuple[str, ast.Action], ...]  # explicit `types …` actions
    selected: frozenset[str] | None  # None: every type the detector reports
    shadow: bool
    restore: bool
    message: Template | None
    span: ast.Span
    roles: frozenset[str] | None = None  # message roles this rule reads; None: all

    def action_for(self, type_: str) -> ast.Action:
        for name, action in self.by_type:
            if name == type_:
                return action
        return self.action if self.selected is None else "off"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one rule found in one request and did (or would have done, in shadow)."""

    detector: str
    type: str
    count: int
    action: ast.Action
    shadow: bool
    detail: str = ""


@dataclass
class Redactor:
    """Typed placeholders stable within one request: the same value gets the same tag.

    The input side's redactor hands the output side a fresh one (`for_output`)
    that numbers on from it, so an output placeholder never reuses an input
    tag, and `restore` can only put back what input redaction took out of
    this request — never a value the model invented that output redaction hid.
    """

    tags: dict[tuple[str, str], str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    restorable: dict[str, str] | None = None  # on an output redactor: the input's placeholder → value

    def for_output(self) -> Redactor:
        """The redactor for this request's answer: new tags, numbered after the input's."""
        return Redactor({}, dict(self.counts), self.originals())

    def placeholder(self, type_: str, value: str) -> str:
        key = (type_, value)
        tag = self.tags.get(key)
        if tag is None:
            label = type_.upper()
            n = self.counts.get(label, 0) + 1
            self.counts[label] = n
            tag = f"[{label}_{n}]"
            self.tags[key] = tag
        return tag

    def originals(self) -> dict[str, str]:
        """placeholder → original value that `restore` may put back: input redaction's only."""
        if self.restorable is not None:
            return self.restorable
        return {tag: value for (_, value), tag in self.tags.items()}


@dataclass(frozen=True, slots=True)
class Blocked:
    rule: GuardRule
    finding: Finding
    message: str


@dataclass(frozen=True, slots=True)
class Hit:
    """One finding of one rule, with the action the policy gives its type."""

    rule: GuardRule
    finding: Finding
    action: ast.Action


@dataclass
class Tally:
    """Counts what each rule found and did, never the values (the decision's record)."""

    counts: dict[tuple[str, str, str, bool], list[int]] = field(default_factory=dict)

    def add(self, hit: Hit) -> None:
        key = (hit.rule.name, hit.finding.type, hit.finding.detail, hit.rule.shadow)
        self.counts.setdefault(key, [0, RANK[hit.action]])[0] += 1

    def outcomes(self) -> list[Outcome]:
        return [
            Outcome(det, typ, n, ast.ACTIONS[rank], shadow, detail)
            for (det, typ, detail, shadow), (n, rank) in self.counts.items()
        ]


@dataclass
class GuardResult:
    texts: list[str]
    outcomes: list[Outcome]
    blocked: Blocked | None = None


@dataclass(frozen=True, slots=True)
class GuardPipeline:
    direction: ast.Direction
    rules: tuple[GuardRule, ...]
    block_message: Template | None = None
    app: str = ""
    # Short texts no rule found anything in, per role: field names, tool names, enum-like values and ids
    # recur on every request of an app, and every string of a body is a slot now (P13). Detectors are
    # pure functions of (text, role) when there is no grounding, so a clean answer can be remembered.
    # bench/RESULTS.md, "Every field": 17 of a typical body's 21 slots are such strings.
    clean: dict[tuple[str, str], bool] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def enforcing(self) -> bool:
        """Whether any rule can change or stop an answer (redact or block, not in shadow)."""
        return any(not r.shadow and (r.action in ("redact", "block") or any(a in ("redact", "block")
                   for _t, a in r.by_type)) for r in self.rules)  # fmt: skip

    @property
    def max_span(self) -> int | None:
        """The holdback a stream needs: the longest match any redacting rule can make."""
        spans = [r.detector.max_span for r in self.rules if r.action != "off"]
        if any(s is None for s in spans):
            return None
        return max((s for s in spans if s is not None), default=0)

    def hits(
        self, context: ScanContext, text: str, rules: tuple[GuardRule, ...] | None = None
    ) -> list[Hit]:
        """Every finding of the rules (default: all) that read this role, with its action."""
        remember = rules is None and not context.grounding and len(text) <= CLEAN_MAX
        if remember and (context.role, text) in self.clean:
            return []
        out: list[Hit] = []
        for rule in self.rules if rules is None else rules:
            if rule.roles is not None and context.role not in rule.roles:
                continue
            for finding in rule.detector.scan(text, context):
                action = rule.action_for(finding.type)
                if action != "off":
                    out.append(Hit(rule, finding, action))
        if remember and not out:
            if len(self.clean) >= CLEAN_ENTRIES:
                self.clean.clear()  # bounded: a burst of distinct ids cannot grow it without end
            self.clean[(context.role, text)] = True
        return out

    def run(
        self, texts: list[tuple[ScanContext, str]], redactor: Redactor | None = None
    ) -> GuardResult:
        """Scan each text with every rule; redact enforced findings; stop at the first block."""
        redactor = redactor or Redactor()
        tally = Tally()
        out: list[str] = []
        blocked: Blocked | None = None
        for context, text in texts:
            spans: list[tuple[int, int, str]] = []
            for hit in self.hits(context, text):
                tally.add(hit)
                if hit.rule.shadow:
                    continue
                if hit.action == "block" and blocked is None:
                    blocked = self.blocked_by(hit)
                elif hit.action == "redact" and hit.finding.redactable:
                    spans.append((hit.finding.start, hit.finding.end, hit.finding.type))
            out.append(apply_redactions(text, spans, redactor) if spans else text)
        return GuardResult(out, tally.outcomes(), blocked)

    def blocked_by(self, hit: Hit) -> Blocked:
        return Blocked(hit.rule, hit.finding, self._message(hit.rule, hit.finding))

    @property
    def restore_types(self) -> frozenset[str]:
        """Types whose placeholders `restore` puts back into the response for the caller."""
        return frozenset(
            t for r in self.rules if r.restore and not r.shadow for t in _rule_types(r)
        )

    def _message(self, rule: GuardRule, finding: Finding) -> str:
        template = rule.message or self.block_message
        if template is None:
            what = f"{rule.name} ({finding.detail or finding.type})"
            return f"The {self.direction} was blocked by the {what} guardrail."
        values = {
            "app": self.app, "detector": rule.name, "types": finding.type,
            "topic": finding.detail if rule.name == "topics" else "",
            "category": finding.detail if rule.name == "output_safety" else "",
            "direction": self.direction,
        }  # fmt: skip
        return template.render(values)  # substitution only, bounded in size (dsl/template.py)


_TAG = re2.compile(r"\[([A-Z0-9_]+)_([0-9]+)\]")
TAG_MAX = 64  # longest placeholder `restore` looks for (streams hold back this much)


def restore_placeholders(text: str, redactor: Redactor, types: frozenset[str]) -> str:
    """Put original values back for placeholders of `types` (for the caller, never upstream)."""
    if not types or "[" not in text:
        return text
    originals = redactor.originals()
    wanted = {t.upper() for t in types}

    def put_back(m: re2._Match) -> str:
        tag = str(m.group())
        if m.group(1) in wanted and tag in originals:
            return originals[tag]
        return tag

    return str(_TAG.sub(put_back, text))


def _rule_types(rule: GuardRule) -> frozenset[str]:
    """Types a rule can report; untyped built-ins and custom detectors report their name."""
    if rule.selected is not None:
        return rule.selected
    spec = BUILTINS.get(rule.name)
    if spec is not None and spec.types:
        return frozenset(spec.types)
    custom_type = getattr(rule.detector, "type", None)
    return frozenset({custom_type if isinstance(custom_type, str) else rule.name})


def apply_redactions(text: str, spans: list[tuple[int, int, str]], redactor: Redactor) -> str:
    """Replace spans (merged where they overlap) with typed placeholders."""
    spans.sort(key=lambda s: (s[0], -s[1]))
    pieces: list[str] = []
    cursor = 0
    cur_start, cur_end, cur_type = spans[0]
    for start, end, type_ in spans[1:]:
        if start < cur_end:  # overlap: one placeholder covers both
            cur_end = max(cur_end, end)
            continue
        pieces.append(text[cursor:cur_start])
        pieces.append(redactor.placeholder(cur_type, text[cur_start:cur_end]))
        cursor = cur_end
        cur_start, cur_end, cur_type = start, end, type_
    pieces.append(text[cursor:cur_start])
    pieces.append(redactor.placeholder(cur_type, text[cur_start:cur_end]))
    pieces.append(text[cur_end:])
    return "".join(pieces)


def compile_pipeline(
    block: ast.GuardBlock | None,
    direction: ast.Direction,
    custom: dict[str, ast.CustomDetector],
    app_shadow: bool = False,
    app_name: str = "",
) -> GuardPipeline:
    """Merge rules per detector (strictest wins) and build each detector once."""
    if block is None:
        return GuardPipeline(direction, (), None, app_name)
    merged: dict[str, list[ast.Guard]] = {}
    for guard in block.guards:
        merged.setdefault(guard.detector, []).append(guard)
    rules: list[GuardRule] = []
    for name, guards in merged.items():
        rules.append(_merge(name, guards, custom, app_shadow))
    message = parse(block.message) if block.message else None
    return GuardPipeline(direction, tuple(rules), message, app_name)


def _merge(
    name: str, guards: list[ast.Guard], custom: dict[str, ast.CustomDetector], app_shadow: bool
) -> GuardRule:
    """Combine several rules for one detector into one: per type, the strictest action."""
    untyped = [g for g in guards if not g.types]
    by_type: dict[str, ast.Action] = {}
    for g in guards:
        for t in g.types:
            if RANK[g.action] > RANK.get(by_type.get(t, "off"), 0):
                by_type[t] = g.action
    default: ast.Action = max((g.action for g in untyped), key=RANK.__getitem__, default="off")
    for t, a in list(by_type.items()):  # an untyped rule applies to every type too
        if RANK[default] > RANK[a]:
            by_type[t] = default
    combined = ast.Guard(
        detector=name,
        action=default if untyped else max((g.action for g in guards), key=RANK.__getitem__),
        types=tuple(sorted({t for g in guards for t in g.types})) if not untyped else (),
        categories=tuple(sorted({c for g in guards for c in g.categories})),
        topics=tuple(dict.fromkeys(t for g in guards for t in g.topics)),
        threshold=min((g.threshold for g in guards if g.threshold is not None), default=None),
        model=any(g.model for g in guards),
        restore=any(g.restore for g in guards),
        span=guards[0].span,
    )
    message_src = next((g.message for g in guards if g.message), None)
    return GuardRule(
        name=name,
        detector=build(combined, custom),
        action=default,
        by_type=tuple(sorted(by_type.items())),
        selected=None if untyped else frozenset(by_type),
        shadow=app_shadow or all(g.shadow for g in guards),
        restore=combined.restore,
        message=parse(message_src) if message_src else None,
        span=guards[0].span,
        roles=BUILTINS[name].roles if name in BUILTINS else None,
    )
