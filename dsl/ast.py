"""The typed AST of the policy language.

Every node carries a `Span` so diagnostics, `ghat explain` and run-time errors
can name the policy line that decided. As in Cedar, equality ignores spans:
two policies that differ only in layout compare equal (P11 relies on it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from dsl.catalog import METADATA_FIELDS


@dataclass(frozen=True, slots=True)
class Span:
    """A source range: 1-based line and column of the first and last character."""

    file: str
    line: int
    col: int
    end_line: int
    end_col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


NO_SPAN = Span("<generated>", 0, 0, 0, 0)


def _span() -> Span:
    return field(default=NO_SPAN, compare=False, repr=False)


Action: TypeAlias = Literal["off", "detect", "redact", "block"]
ACTIONS: tuple[Action, ...] = ("off", "detect", "redact", "block")
ACTION_RANK: dict[str, int] = {a: i for i, a in enumerate(ACTIONS)}
Direction: TypeAlias = Literal["input", "output"]
ModelKind: TypeAlias = Literal["chat", "embedding"]


@dataclass(frozen=True, slots=True)
class Provider:
    name: str
    kind: str  # openai | anthropic | mock
    base_url: str | None = None
    api_key_env: str | None = None  # the variable's name; the value is read at start
    api_key_literal: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    timeout_s: float | None = None
    span: Span = _span()
    # Where each field is written ("kind", "api_key", "header" once per header…): diagnostics point there.
    spans: tuple[tuple[str, Span], ...] = field(default=(), compare=False, repr=False)

    def span_of(self, name: str) -> Span:
        """The line of a field (the first one for `header`), else the provider's own."""
        return next((s for n, s in self.spans if n == name), self.span)

    def header_spans(self) -> tuple[Span, ...]:
        return tuple(s for n, s in self.spans if n == "header")


@dataclass(frozen=True, slots=True)
class Price:
    """USD per `per` tokens (per 1M by default)."""

    input: float
    output: float = 0.0
    cached_input: float | None = None
    per: int = 1_000_000


@dataclass(frozen=True, slots=True)
class Model:
    name: str  # provider/model
    kind: ModelKind = "chat"
    price: Price | None = None
    context: int | None = None
    upstream: str | None = None  # the model name sent upstream, if not the part after '/'
    span: Span = _span()
    spans: tuple[tuple[str, Span], ...] = field(default=(), compare=False, repr=False)

    def span_of(self, name: str) -> Span:
        return next((s for n, s in self.spans if n == name), self.span)

    @property
    def provider(self) -> str:
        return self.name.split("/", 1)[0]

    @property
    def upstream_name(self) -> str:
        return self.upstream or self.name.split("/", 1)[1]


@dataclass(frozen=True, slots=True)
class Target:
    """One route candidate: a model or another alias, with its attempt settings."""

    name: str
    weight: float | None = None  # split members only
    timeout_s: float | None = None
    retries: int | None = None
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Alias:
    name: str
    route: Target | None = None
    split: tuple[Target, ...] = ()
    fallbacks: tuple[Target, ...] = ()
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class CustomDetector:
    name: str
    pattern: str
    type: str | None = None
    ignorecase: bool = False
    pattern_span: Span = _span()
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Guard:
    """One guardrail rule: a detector, its action and its options."""

    detector: str
    action: Action
    types: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()
    threshold: float | None = None
    model: bool = False  # injection detectors: add the model-backed scorer to the patterns
    shadow: bool = False
    restore: bool = False
    message: str | None = None
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class GuardBlock:
    direction: Direction
    guards: tuple[Guard, ...] = ()
    message: str | None = None
    message_span: Span = _span()
    span: Span = _span()
    holdback: Holdback | None = None  # output only: the bound on how long a stream is held


@dataclass(frozen=True, slots=True)
class Holdback:
    """`holdback 400ms 2000 chars`: a stream is never held longer, nor more characters, than this."""

    seconds: float | None = None
    chars: int | None = None
    span: Span = _span()


def combine(blocks: tuple[GuardBlock, ...], direction: Direction) -> GuardBlock | None:
    """Several blocks of one direction are one block written in parts: all of their rules apply.

    The rules keep their order; the block `message` (set once per direction)
    serves every rule without its own, whichever part it is written in.
    """
    mine = [b for b in blocks if b.direction == direction]
    if len(mine) <= 1:
        return mine[0] if mine else None
    head = next((b for b in mine if b.message is not None), mine[0])
    guards = tuple(g for b in mine for g in b.guards)
    holdback = next((b.holdback for b in mine if b.holdback is not None), None)  # set once per direction
    return GuardBlock(direction, guards, head.message, head.message_span, mine[0].span, holdback)


# ── `when` conditions ────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class Compare:
    field: str
    op: Literal["==", "!="]
    value: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Member:
    field: str
    values: tuple[str, ...]
    negated: bool = False
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Not:
    operand: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class And:
    operands: tuple[Expr, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Or:
    operands: tuple[Expr, ...]
    span: Span = _span()


Expr: TypeAlias = Compare | Member | Not | And | Or

# Fields a `when` condition may test: the request's model and endpoint, and metadata.
CONDITION_FIELDS: tuple[str, ...] = ("model", "endpoint", *METADATA_FIELDS)


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most `limit` requests in any sliding window of `period_s`, counted in a bucket of its own.

    In a `when`, a limit adds to the app's (both apply) unless it `raises`:
    then it replaces the app's own limit for the requests the `when` matches.
    """

    limit: int
    period_s: float
    per: Literal["app", "key"] = "app"
    text: str = ""  # as written, for messages ("600/min")
    raises: bool = False


@dataclass(frozen=True, slots=True)
class MaxTokens:
    limit: int
    mode: Literal["clamp", "reject"] = "clamp"


@dataclass(frozen=True, slots=True)
class Settings:
    """The scalar settings an app sets and a `when` block may override."""

    max_tokens: MaxTokens | None = None
    rate_limit: RateLimit | None = None
    timeout_s: float | None = None
    spans: tuple[tuple[str, Span], ...] = field(default=(), compare=False, repr=False)

    def span_of(self, name: str) -> Span | None:
        return next((s for n, s in self.spans if n == name), None)

    def set_fields(self) -> tuple[str, ...]:
        return tuple(
            n for n in ("max_tokens", "rate_limit", "timeout_s") if getattr(self, n) is not None
        )


@dataclass(frozen=True, slots=True)
class When:
    condition: Expr
    settings: Settings
    span: Span = _span()


# ── tests ────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class Expectation:
    kind: Literal["allow", "deny", "forwarded", "route", "fired", "max_tokens"]
    value: str | None = None
    negated: bool = False
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class TestRequest:
    fields: tuple[tuple[str, str], ...] = ()  # model, user, system, assistant, tool, endpoint…
    metadata: tuple[tuple[str, str], ...] = ()
    span: Span = _span()

    def get(self, name: str) -> str | None:
        return next((v for n, v in self.fields if n == name), None)


@dataclass(frozen=True, slots=True)
class TestCase:
    __test__ = False  # not a pytest class

    name: str
    app: str | None
    request: TestRequest
    expectations: tuple[Expectation, ...] = ()
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class App:
    name: str
    env: str | None = None
    models: tuple[Target, ...] = ()
    providers: tuple[str, ...] | None = None
    settings: Settings = Settings()
    shadow: bool = False
    input: GuardBlock | None = None
    output: GuardBlock | None = None
    whens: tuple[When, ...] = ()
    capture: tuple[str, ...] = ()
    max_scan: int | None = None  # characters a request may ask the guards to scan
    tests: tuple[TestCase, ...] = ()
    span: Span = _span()
    # The guard blocks as written, in source order. Several blocks of one direction
    # mean all of their rules: `input` and `output` above are their concatenation,
    # which is what is enforced; the formatter prints the blocks as written.
    guard_blocks: tuple[GuardBlock, ...] = field(default=(), compare=False, repr=False)
    # Where each app statement is written ("env", "models", "providers", "capture", "shadow").
    spans: tuple[tuple[str, Span], ...] = field(default=(), compare=False, repr=False)

    def span_of(self, name: str) -> Span:
        """The line of an app statement, else the app's own line (for a statement it lacks)."""
        return next((s for n, s in self.spans if n == name), self.span)

    def blocks(self) -> tuple[GuardBlock, ...]:
        """The combined input and output blocks that exist."""
        return tuple(b for b in (self.input, self.output) if b is not None)


Item: TypeAlias = Provider | Model | Alias | CustomDetector | App | TestCase


@dataclass(frozen=True, slots=True)
class PolicyFile:
    path: str
    items: tuple[Item, ...]
    source: str = field(default="", compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class PolicySet:
    """All files of one policy directory: names are global across them."""

    files: tuple[PolicyFile, ...]

    def items(self) -> list[Item]:
        return [item for f in self.files for item in f.items]

    @property
    def providers(self) -> list[Provider]:
        return [i for i in self.items() if isinstance(i, Provider)]

    @property
    def models(self) -> list[Model]:
        return [i for i in self.items() if isinstance(i, Model)]

    @property
    def aliases(self) -> list[Alias]:
        return [i for i in self.items() if isinstance(i, Alias)]

    @property
    def detectors(self) -> list[CustomDetector]:
        return [i for i in self.items() if isinstance(i, CustomDetector)]

    @property
    def apps(self) -> list[App]:
        return [i for i in self.items() if isinstance(i, App)]

    @property
    def tests(self) -> list[TestCase]:
        """Every test case: top-level ones and those inside apps (app filled in)."""
        out = [i for i in self.items() if isinstance(i, TestCase)]
        for app in self.apps:
            out.extend(t if t.app else _with_app(t, app.name) for t in app.tests)
        return out


def _with_app(test: TestCase, app: str) -> TestCase:
    return TestCase(test.name, app, test.request, test.expectations, test.span)
