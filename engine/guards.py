"""Guard pipelines: run a block's detectors over text and apply the actions.

Compiled once per app and direction. Each rule is evaluated on its own, with
its own options: a finding's action is the strictest among the rules that fire
on it, so a `detect` rule never blocks or changes the body, and adding a rule
never loosens a policy (P3). Shadow rules run and report but do not change the
text or the decision (P4's promise extended to enforcement levels). Rules that
agree on the options a detector is built from share one detector, which scans
each text once.
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
    """One rule of a guard block, as written: its action, what it selects, where it is.

    Rules never merge. Rules whose detector options agree share one built
    detector (so a detector scans once per text), and each rule decides on
    its own which of that detector's findings it acts on (`fires_on`).
    """

    name: str  # the detector's name in the policy
    detector: Detector
    action: ast.Action
    by_type: tuple[tuple[str, ast.Action], ...]  # the rule's `types`/`categories`, each at the rule's action
    selected: frozenset[str] | None  # finding types the rule acts on; None: every type its detector reports
    shadow: bool
    restore: bool
    message: Template | None
    span: ast.Span
    roles: frozenset[str] | None = None  # message roles this rule reads; None: all
    topics: frozenset[str] | None = None  # a topics rule: the topics (finding details) it acts on
    order: int = 0  # the rule's place in its block: of several blocking rules, the first refuses

    def fires_on(self, finding: Finding) -> bool:
        """Whether this rule acts on the finding: its type, and for topics its topic, are the rule's."""
        if self.selected is not None and finding.type not in self.selected:
            return False
        return self.topics is None or finding.detail in self.topics


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
    """Counts what each rule found and did, never the values (the decision's record).

    One outcome per detector, type, detail and enforcement level, with the
    strictest action any of its findings got.
    """

    counts: dict[tuple[str, str, str, bool], list[int]] = field(default_factory=dict)

    def add(self, hit: Hit) -> None:
        key = (hit.rule.name, hit.finding.type, hit.finding.detail, hit.rule.shadow)
        row = self.counts.get(key)
        if row is None:
            self.counts[key] = [1, RANK[hit.action]]
        else:
            row[0] += 1
            if RANK[hit.action] > row[1]:
                row[1] = RANK[hit.action]

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


# One built detector and the rules (in block order, `off` left out) that read its findings.
Group = tuple[Detector, frozenset[str] | None, tuple[GuardRule, ...]]


def group_rules(rules: tuple[GuardRule, ...]) -> tuple[Group, ...]:
    """Rules that share a detector object, in the order of each detector's first rule."""
    groups: dict[int, tuple[Detector, frozenset[str] | None, list[GuardRule]]] = {}
    for rule in rules:
        if rule.action == "off":
            continue  # never fires: its detector need not run for it
        entry = groups.get(id(rule.detector))
        if entry is None:
            groups[id(rule.detector)] = (rule.detector, rule.roles, [rule])
        else:
            entry[2].append(rule)
    return tuple((det, roles, tuple(members)) for det, roles, members in groups.values())


def resolve(members: tuple[GuardRule, ...], findings: list[Finding], out: list[Hit]) -> None:
    """Append each finding's hits: the strictest enforced rule that fires on it, and the strictest shadow one."""
    if len(members) == 1:
        rule = members[0]
        out.extend(Hit(rule, f, rule.action) for f in findings if rule.fires_on(f))
        return
    for finding in findings:
        enforced: GuardRule | None = None
        shadow: GuardRule | None = None
        for rule in members:
            if not rule.fires_on(finding):
                continue
            if rule.shadow:
                if shadow is None or RANK[rule.action] > RANK[shadow.action]:
                    shadow = rule
            elif enforced is None or RANK[rule.action] > RANK[enforced.action]:
                enforced = rule
        if enforced is not None:
            out.append(Hit(enforced, finding, enforced.action))
        if shadow is not None:
            out.append(Hit(shadow, finding, shadow.action))


@dataclass(frozen=True, slots=True)
class GuardPipeline:
    direction: ast.Direction
    rules: tuple[GuardRule, ...]
    block_message: Template | None = None
    app: str = ""
    holdback: ast.Holdback | None = None  # output: the bound on how long a stream may be held back
    groups: tuple[Group, ...] = field(init=False, repr=False, compare=False)
    # Short texts no rule found anything in, per role: field names, tool names, enum-like values and ids
    # recur on every request of an app, and every string of a body is a slot now (P13). Detectors are
    # pure functions of (text, role) when there is no grounding, so a clean answer can be remembered.
    # bench/RESULTS.md, "Every field": 17 of a typical body's 21 slots are such strings.
    clean: dict[tuple[str, str], bool] = field(default_factory=dict, compare=False, hash=False, repr=False)
    # What the streams of this pipeline share, built on the first one (engine/streaming.py's plan).
    streams: dict[object, object] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def enforcing(self) -> bool:
        """Whether any rule can change or stop an answer (redact or block, not in shadow)."""
        return any(not r.shadow and r.action in ("redact", "block") for r in self.rules)

    def __post_init__(self) -> None:
        object.__setattr__(self, "groups", group_rules(self.rules))

    def hits(self, context: ScanContext, text: str, rules: tuple[GuardRule, ...] | None = None) -> list[Hit]:
        """Every finding of the rules (default: all) that read this role, with the action it gets.

        Each detector scans once; a finding's enforced action is the strictest
        among the enforced rules that fire on it (the earliest rule on a tie:
        it is the one a block names), and the strictest shadow rule that fires
        on it reports beside it. A rule that does not fire on a finding gives
        it nothing, so no rule can change what another rule blocks or redacts.
        """
        remember = rules is None and not context.grounding and len(text) <= CLEAN_MAX
        if remember and (context.role, text) in self.clean:
            return []
        out: list[Hit] = []
        for detector, roles, members in self.groups if rules is None else group_rules(rules):
            if roles is not None and context.role not in roles:
                continue
            findings = detector.scan(text, context)
            if findings:
                resolve(members, findings, out)
        if remember and not out:
            if len(self.clean) >= CLEAN_ENTRIES:
                self.clean.clear()  # bounded: a burst of distinct ids cannot grow it without end
            self.clean[(context.role, text)] = True
        return out

    def run(self, texts: list[tuple[ScanContext, str]], redactor: Redactor | None = None) -> GuardResult:
        """Scan each text with every rule; redact enforced findings.

        If enforced rules block, the first of them in declared order refuses
        (on its first finding), whichever text or detector found it first.
        """
        redactor = redactor or Redactor()
        tally = Tally()
        out: list[str] = []
        blocking: Hit | None = None
        for context, text in texts:
            spans: list[tuple[int, int, int, str]] = []
            for hit in self.hits(context, text):
                tally.add(hit)
                if hit.rule.shadow:
                    continue
                if hit.action == "block":
                    if blocking is None or hit.rule.order < blocking.rule.order:
                        blocking = hit
                elif hit.action == "redact" and hit.finding.redactable:
                    f = hit.finding
                    spans.append((f.start, -f.end, hit.rule.order, f.type))
            if spans:  # one span found by several rules takes the type of the first rule that redacts it
                spans.sort()
                text = apply_redactions(text, [(s, -e, t) for s, e, _o, t in spans], redactor)
            out.append(text)
        return GuardResult(out, tally.outcomes(), None if blocking is None else self.blocked_by(blocking))

    def blocked_by(self, hit: Hit) -> Blocked:
        return Blocked(hit.rule, hit.finding, self._message(hit.rule, hit.finding))

    @property
    def restore_types(self) -> frozenset[str]:
        """Types whose placeholders `restore` puts back into the response for the caller."""
        return frozenset(t for r in self.rules if r.restore and not r.shadow for t in _rule_types(r))

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


# What a built detector depends on, beyond what its rules select: rules that agree on it share one.
DetectorKey = tuple[object, ...]


def compile_pipeline(
    block: ast.GuardBlock | None,
    direction: ast.Direction,
    custom: dict[str, ast.CustomDetector],
    app_shadow: bool = False,
    app_name: str = "",
    cache: dict[DetectorKey, Detector] | None = None,
) -> GuardPipeline:
    """One GuardRule per rule as written; one detector per distinct option set (shared via `cache`).

    The options that change what a finding is (`threshold`, `model`) tell
    detectors apart. The options that only choose among findings (`types`,
    `categories`, the topic list) do not: the shared detector scans for
    everything its rules select and each rule keeps only its own. A compiler
    passes one `cache` for a whole policy set, so 2,000 apps with `pii redact`
    build one pii detector.
    """
    if block is None:
        return GuardPipeline(direction, (), None, app_name)
    cache = {} if cache is None else cache
    scopes: dict[DetectorKey, list[ast.Guard]] = {}
    for guard in block.guards:
        scopes.setdefault(_base_key(guard, custom), []).append(guard)
    detectors = {base: _detector(base, guards, custom, cache) for base, guards in scopes.items()}
    rules = tuple(_rule(g, detectors[_base_key(g, custom)], app_shadow, i) for i, g in enumerate(block.guards))
    message = parse(block.message) if block.message else None
    return GuardPipeline(direction, rules, message, app_name, block.holdback if direction == "output" else None)


def _base_key(guard: ast.Guard, custom: dict[str, ast.CustomDetector]) -> DetectorKey:
    spec = custom.get(guard.detector)
    if spec is not None:  # a custom detector is its definition
        return ("custom", spec.name, spec.pattern, spec.type, spec.ignorecase)
    return (guard.detector, guard.threshold, guard.model)


def _detector(
    base: DetectorKey, guards: list[ast.Guard], custom: dict[str, ast.CustomDetector],
    cache: dict[DetectorKey, Detector],
) -> Detector:  # fmt: skip
    """The detector for rules that share `base`, scanning the union of what they select."""
    first = guards[0]
    spec = BUILTINS.get(first.detector)
    default = spec.default_types if spec is not None else ()
    scope = tuple(sorted({t for g in guards for t in ((*g.types, *g.categories) or default)}))
    by_category = spec is not None and "categories" in spec.options
    types, categories = ((), scope) if by_category else (scope, ())
    topics = tuple(dict.fromkeys(t for g in guards for t in g.topics))
    key = (*base, types, categories, topics)
    detector = cache.get(key)
    if detector is None:
        union = ast.Guard(first.detector, "block", types=types, categories=categories, topics=topics,
                          threshold=first.threshold, model=first.model)  # fmt: skip
        detector = cache[key] = build(union, custom)
    return detector


def _rule(guard: ast.Guard, detector: Detector, app_shadow: bool, order: int) -> GuardRule:
    """One rule with its own selection: named types or categories, else the detector's default types."""
    spec = BUILTINS.get(guard.detector)
    named = (*guard.types, *guard.categories)
    selected: frozenset[str] | None = None
    if named:
        selected = frozenset(named)
    elif spec is not None and spec.types:
        selected = frozenset(spec.default_types)
    return GuardRule(
        name=guard.detector,
        detector=detector,
        action=guard.action,
        by_type=tuple((t, guard.action) for t in sorted(set(named))),
        selected=selected,
        shadow=app_shadow or guard.shadow,
        restore=guard.restore,
        message=parse(guard.message) if guard.message else None,
        span=guard.span,
        roles=spec.roles if spec is not None else None,
        topics=frozenset(guard.topics) if guard.detector == "topics" else None,
        order=order,
    )
