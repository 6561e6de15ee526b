"""The catalogue of diagnostics `ghat check` can report.

Every rule has a stable code (`E…` for errors, `W…` for lint warnings), a name
`category/rule-name`, a default level and a one-line summary. `docs/rules.md`
documents each with a bad and a good example; a test keeps the two in step.
"""

from __future__ import annotations

from dataclasses import dataclass

from dsl.ast import Span
from dsl.diagnostics import Diagnostic, Level


@dataclass(frozen=True, slots=True)
class Rule:
    """One diagnostic kind. `configurable` is False for errors that leave a set uncompilable."""

    code: str
    name: str
    level: Level
    summary: str
    configurable: bool = True

    def at(self, span: Span, message: str, help: str | None = None) -> Diagnostic:
        return Diagnostic(self.code, self.name, self.level, message, span, help)


RULES: dict[str, Rule] = {}


BY_CODE: dict[str, Rule] = {}


def _rule(code: str, name: str, level: Level, summary: str, configurable: bool | None = None) -> Rule:
    # Errors the compiler cannot get past stay errors whatever a config says;
    # lint rules (every W…, and the policy-intent errors marked so) can be tuned.
    rule = Rule(code, name, level, summary, code.startswith("W") if configurable is None else configurable)
    assert name not in RULES and code not in BY_CODE, f"rule {code} {name} declared twice"
    RULES[name] = rule
    BY_CODE[code] = rule
    return rule


def lookup(key: str) -> Rule | None:
    """A rule by its name (`limits/no-rate-limit`) or its code (`W203`)."""
    return RULES.get(key) or BY_CODE.get(key.upper())


# Syntax (reported by the parser).
SYNTAX_TOKEN = _rule("E001", "syntax/unexpected-token", "error", "the parser met a token it did not expect")
SYNTAX_CHAR = _rule("E007", "syntax/unexpected-character", "error", "a character that no token starts with")
SYNTAX_EOF = _rule("E002", "syntax/unexpected-eof", "error", "the file ends inside a block")
SYNTAX_UTF8 = _rule("E003", "syntax/invalid-utf8", "error", "the file is not UTF-8 text")
SYNTAX_BINARY = _rule("E004", "syntax/binary-content", "error", "the file contains NUL bytes")
SYNTAX_SIZE = _rule("E005", "syntax/file-too-large", "error", "the file exceeds the size limit")
SYNTAX_READ = _rule("E006", "syntax/unreadable-file", "error", "the file cannot be read")
SYNTAX_VALUE = _rule("E010", "syntax/invalid-value", "error", "a duration, size, rate or number is malformed")
REPEATED = _rule(
    "E012", "syntax/repeated-statement", "error", "a statement that may appear once in its block is repeated"
)
INTERNAL = _rule("E000", "syntax/internal-error", "error", "a bug in ghat; please report it")

# Names and references.
DUPLICATE = _rule("E101", "reference/duplicate-name", "error", "two declarations of one kind share a name")
UNKNOWN_MODEL = _rule("E102", "reference/unknown-model", "error", "a model or alias that is not declared")
UNKNOWN_PROVIDER = _rule("E103", "reference/unknown-provider", "error", "a provider that is not declared")
UNKNOWN_DETECTOR = _rule("E104", "reference/unknown-detector", "error", "a guard names no built-in or custom detector")
UNKNOWN_APP = _rule("E105", "reference/unknown-app", "error", "a test block names an app that is not declared")
UNKNOWN_FIELD = _rule(
    "E106", "reference/unknown-field", "error", "a `when` condition tests a field requests do not have"
)

# Structure.
ALIAS_CYCLE = _rule("E201", "routing/alias-cycle", "error", "aliases that route to each other in a loop")
ALIAS_EMPTY = _rule("E202", "routing/empty-alias", "error", "an alias with neither route nor split")
ALIAS_BOTH = _rule("E203", "routing/route-and-split", "error", "an alias with both a route and a split")
SPLIT_WEIGHT = _rule("E204", "routing/bad-split-weight", "error", "split weights must be positive")
KIND_MIX = _rule("E205", "routing/mixed-kinds", "error", "an alias mixes chat and embedding models")
CLOSURE = _rule(
    "E206", "routing/excluded-target", "error", "a route path reaches a model or provider the app excludes (P7)"
)
PROVIDER_KIND = _rule("E207", "provider/unknown-kind", "error", "a provider kind that is not openai, anthropic or mock")
APP_NO_MODELS = _rule("E208", "app/no-models", "error", "an app that allows no model")
APP_NO_ENV = _rule("E209", "app/missing-env", "error", "an app without an environment")
APP_ENV_NAME = _rule("E211", "app/invalid-env", "error", "an environment name a key cannot carry (`_`, too long)")
APP_CAPTURE = _rule("E210", "app/unknown-capture", "error", "`capture` names something other than prompts or responses")

# Guardrails.
GUARD_TYPE = _rule(
    "E301", "guardrail/unknown-type", "error", "a `types` or `categories` entry the detector does not have"
)
GUARD_OPTION = _rule("E302", "guardrail/unsupported-option", "error", "an option the detector does not take")
GUARD_DIRECTION = _rule("E303", "guardrail/wrong-direction", "error", "a detector used on a direction it cannot scan")
GUARD_TOPICS = _rule("E304", "guardrail/missing-topics", "error", "a topics guard with no topic")
PATTERN_INVALID = _rule(
    "E305", "pattern/invalid", "error", "a pattern that is not a valid linear-time regular expression"
)
PATTERN_EMPTY = _rule("E306", "pattern/matches-empty", "error", "a pattern that matches the empty string")
TEMPLATE_VAR = _rule(
    "E307", "template/unknown-variable", "error", "a message template uses a variable that is not provided"
)
TEMPLATE_SYNTAX = _rule("E308", "template/syntax", "error", "a message template that does not parse")
TEMPLATE_LOGIC = _rule(
    "E309", "template/not-substitution", "error", "a message that does more than substitute `{{ variable }}`"
)
HOLDBACK_INPUT = _rule(
    "E310", "guardrail/holdback-on-input", "error", "`holdback` in an input block: only answers are streamed"
)
GUARD_DUPLICATE = _rule(
    "W301",
    "guardrail/duplicate-guard",
    "warning",
    "a rule that never decides: another rule on its detector makes every finding it can, at least as strictly",
)
GUARD_OVERLAP = _rule(
    "W304",
    "guardrail/overlapping-rules",
    "note",
    "a weaker and a stricter rule on one detector share findings: the stricter decides those, the weaker the rest",
)
GUARD_RESTORE = _rule(
    "W305", "guardrail/restore-without-redact", "warning", "`restore` on a rule that redacts nothing on input"
)
PATTERN_EVERYTHING = _rule(
    "W306", "pattern/matches-everything", "warning", "a custom pattern that matches any ordinary text"
)
PATTERN_NOTHING = _rule(
    "W307", "pattern/matches-nothing", "warning", "a custom pattern that can never match inside a message"
)
STREAM_BUFFERS = _rule(
    "W308",
    "guardrail/stream-waits-for-the-end",
    "note",
    "an output rule that redacts with a whole-text detector: a streamed answer is held until it ends",
)

GUARD_OFF = _rule("W302", "guardrail/guard-off", "warning", "a guard at `off` does nothing")
TEMPLATE_EMPTY_VAR = _rule(
    "W303", "template/empty-variable", "warning", "a message uses a variable that the guard it serves leaves empty"
)

# Lint: references nothing uses.
UNUSED_ALIAS = _rule("W101", "reference/unused-alias", "warning", "an alias no app can reach")
UNUSED_DETECTOR = _rule("W102", "reference/unused-detector", "warning", "a custom detector no guard uses")
APP_DUPLICATE_MODEL = _rule("W103", "app/duplicate-model", "warning", "an app lists one model or alias twice")
UNUSED_PROVIDER = _rule("W104", "reference/unused-provider", "warning", "a provider no model is served by")
ENV_TYPO = _rule(
    "W105", "app/env-typo", "warning", "an env no other app uses that is close to one in use or a usual name"
)

# Lint: routing, cost and limits.
TIMEOUT_EXCEEDS_APP = _rule(
    "W201",
    "routing/timeout-exceeds-app",
    "warning",
    "a route or fallback attempt timeout longer than the app's whole timeout",
)
UNPRICED_MODEL = _rule("W202", "cost/unpriced-model", "warning", "an app can reach a model that has no price")
NO_RATE_LIMIT = _rule("W203", "limits/no-rate-limit", "warning", "an app without a rate limit")
NO_TOKEN_CAP = _rule("W204", "limits/no-token-cap", "warning", "a chat app without max_tokens")
RAISE_OUTSIDE_WHEN = _rule("E220", "limits/raise-outside-when", "error", "`rate_limit … raise` on the app itself")
RAISE_ON_METADATA = _rule(
    "W213",
    "limits/raise-on-caller-metadata",
    "warning",
    "a `when` raises the app's rate limit on metadata the caller asserts",
)
WHEN_LIMIT_NEVER_BINDS = _rule(
    "W214",
    "limits/when-limit-never-binds",
    "warning",
    "a `when` rate limit no stricter than the app's, which still applies",
)
CAP_EXCEEDS_CONTEXT = _rule(
    "W205",
    "limits/cap-exceeds-context",
    "warning",
    "max_tokens larger than the context window of a model the app reaches",
)

ABSURD_RATE = _rule("W210", "limits/absurd-rate", "warning", "a rate limit above a million requests a second")
USELESS_FALLBACK = _rule(
    "W211", "routing/useless-fallback", "warning", "a fallback never tried, or that only retries a model already tried"
)
MOCK_IN_PROD = _rule("W212", "routing/mock-in-prod", "warning", "a prod app that can be answered by a mock provider")

# Lint: `when` blocks, decided exactly over each field's finite domain.
WHEN_NEVER = _rule(
    "W401", "when/never-matches", "warning", "a `when` condition no request admitted by the app satisfies"
)
WHEN_VALUE = _rule(
    "W402",
    "when/impossible-value",
    "warning",
    "a condition compares model or endpoint with a value an admitted request never has",
)
WHEN_CONFLICT = _rule(
    "W403",
    "when/conflicting-overrides",
    "warning",
    "two `when` blocks can match one request and set a field to different values",
)
WHEN_ALWAYS = _rule("W404", "when/always-matches", "note", "a `when` condition every admitted request satisfies")

# Lint: security.
LITERAL_API_KEY = _rule("W501", "security/literal-api-key", "warning", "a provider's api_key written into the policy")
UNSET_ENV = _rule(
    "W502", "security/unset-env", "warning", "an `env.` reference to a variable that is not set (an error at serve)"
)
LITERAL_HEADER_SECRET = _rule(
    "W504", "security/literal-header-secret", "warning", "a provider header with a credential written into the policy"
)
PROD_NO_GUARDS = _rule("W503", "security/prod-without-guardrails", "warning", "a prod app with no guardrail rule")
PROD_CAPTURE = _rule(
    "E501",
    "security/capture-in-prod",
    "error",
    "a prod app that asks to capture prompt or response text",
    configurable=True,
)
