"""Lint: what a policy set can compile with but probably should not say.

Validation (`dsl/check.py`) decides whether a set compiles; these passes
report what is legal but likely wrong or risky: dead `when` blocks, overrides
that fight, timeouts that can never be used, unpriced models, missing limits,
secrets in policy text. Like `check.PASSES`, `PASSES` is the list in one place.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence

from dsl import ast, lint_guards, lint_routes, rules
from dsl.catalog import DETECTOR_VARIABLES, ENDPOINTS, METADATA_FIELDS
from dsl.conditions import Domain, atoms, example, satisfy
from dsl.diagnostics import Diagnostic
from dsl.resolve import Index
from dsl.template import TemplateError
from dsl.template import parse as parse_template

Pass = Callable[[ast.PolicySet, Index], Iterator[Diagnostic]]


def unused(ps: ast.PolicySet, index: Index) -> Iterator[Diagnostic]:
    """Aliases no app reaches and custom detectors no guard names are dead text."""
    reached: set[str] = set()
    for app in ps.apps:
        for target in app.models:
            reached |= _aliases_from(target.name, index)
    for alias in ps.aliases:
        if alias.name not in reached:
            yield rules.UNUSED_ALIAS.at(
                alias.span, f"alias '{alias.name}' is used by no app", "add it to an app's `models` or delete it"
            )
    used = {g.detector for app in ps.apps for block in (app.input, app.output) if block for g in block.guards}
    for det in ps.detectors:
        if det.name not in used:
            yield rules.UNUSED_DETECTOR.at(
                det.span,
                f"detector '{det.name}' is used by no guard",
                f"add `{det.name} redact` to an app's input or output block, or delete it",
            )


def unused_providers(ps: ast.PolicySet, index: Index) -> Iterator[Diagnostic]:
    """A provider no model names serves nothing: often a model declared under a misspelt provider."""
    served = {m.provider for m in ps.models}
    for provider in ps.providers:
        if provider.name not in served and index.providers.get(provider.name) is provider:
            yield rules.UNUSED_PROVIDER.at(
                provider.span, f"provider '{provider.name}' serves no model",
                f"declare a model on it (`model {provider.name}/NAME`) or delete it",
            )  # fmt: skip


def envs(ps: ast.PolicySet, index: Index) -> Iterator[Diagnostic]:
    """An env only one app has, close to one other apps use (or a usual name), is likely a typo:
    `ghat serve --env prod` never serves an app whose env reads `prdo`."""
    counts = Counter(app.env for app in ps.apps if app.env)
    for app in ps.apps:
        if not app.env or counts[app.env] > 1:
            continue
        near = _near_env(app.env, counts)
        if near is not None:
            yield rules.ENV_TYPO.at(
                app.span_of("env"), f"env '{app.env}' is used by no other app; did you mean '{near}'?",
                f"a server serves one env (`ghat serve --env {near}`): an app in a misspelt env is never served",
            )  # fmt: skip


def app_models(ps: ast.PolicySet, index: Index) -> Iterator[Diagnostic]:
    for app in ps.apps:
        seen: set[str] = set()
        for target in app.models:
            if target.name in seen:
                yield rules.APP_DUPLICATE_MODEL.at(
                    target.span, f"app '{app.name}' lists '{target.name}' twice", "remove the second mention"
                )
            seen.add(target.name)


def limits(ps: ast.PolicySet, index: Index) -> Iterator[Diagnostic]:
    """Every app should bound its spend: a rate limit, and a token cap when it serves chat."""
    for app in ps.apps:
        reached = [m for t in app.models for m, _ in index.reachable(t.name)]
        chat = [m for m in reached if m.kind == "chat"]
        if app.settings.rate_limit is None:
            yield rules.NO_RATE_LIMIT.at(
                app.span, f"app '{app.name}' has no rate limit", "add `rate_limit 600/min` (or `per key`)"
            )
        if app.settings.max_tokens is None and (chat or not reached):
            yield rules.NO_TOKEN_CAP.at(
                app.span,
                f"app '{app.name}' has no token cap",
                "add `max_tokens 1024` (clamps; `reject` refuses instead)",
            )
        windows = [m for m in chat if m.context is not None]
        for settings in [app.settings, *(w.settings for w in app.whens)]:
            cap = settings.max_tokens
            if cap is None or not windows:
                continue
            smallest = min(windows, key=lambda m: m.context or 0)
            if smallest.context is not None and cap.limit > smallest.context:
                span = settings.span_of("max_tokens") or app.span
                yield rules.CAP_EXCEEDS_CONTEXT.at(
                    span,
                    f"max_tokens {cap.limit} exceeds the {smallest.context}-token context of '{smallest.name}'",
                    f"lower the cap to at most {smallest.context}, or route this app to larger models",
                )


def when_limits(ps: ast.PolicySet, index: Index) -> Iterator[Diagnostic]:
    """A `when` limit either tightens (it adds a bucket) or, with `raise`, replaces the app's limit.

    A raise keyed on metadata hands the higher limit to any caller who sends
    that metadata; a limit without `raise` that is no stricter than the app's
    never refuses anything, which under the old override semantics was a raise.
    """
    for app in ps.apps:
        own = app.settings.rate_limit
        for when in app.whens:
            limit = when.settings.rate_limit
            if limit is None:
                continue
            span = when.settings.span_of("rate_limit") or when.span
            asserted = sorted({a.field for a in atoms(when.condition) if a.field in METADATA_FIELDS})
            if limit.raises and asserted:
                yield rules.RAISE_ON_METADATA.at(
                    span,
                    f"this raises app '{app.name}''s rate limit to {limit.text} for any request that says "
                    f"{' and '.join(asserted)} as the condition wants: the caller asserts that metadata",
                    "give that traffic an app (and key) of its own with its limit, or drop `raise` to tighten",
                )
            elif not limit.raises and own is not None and _never_binds(limit, own):
                yield rules.WHEN_LIMIT_NEVER_BINDS.at(
                    span,
                    f"rate_limit {limit.text} adds to the app's {own.text}, which still applies: it never refuses",
                    f"write `rate_limit {limit.text} raise` to raise the app's limit here, or a stricter one",
                )


def _never_binds(extra: ast.RateLimit, own: ast.RateLimit) -> bool:
    """Every window of `extra` lies in a window of `own`, which admits no more than `extra` would."""
    scoped = own.per == "app" or extra.per == "key"
    return scoped and extra.period_s <= own.period_s and extra.limit >= own.limit


def rates(ps: ast.PolicySet, index: Index) -> Iterator[Diagnostic]:
    """A limit no gateway can reach bounds nothing: usually a unit slip (`600/s` for `600/min`) or a stray digit."""
    for app in ps.apps:
        for settings in [app.settings, *(w.settings for w in app.whens)]:
            rate = settings.rate_limit
            if rate is not None and rate.limit / rate.period_s > ABSURD_RATE_PER_S:
                yield rules.ABSURD_RATE.at(
                    settings.span_of("rate_limit") or app.span,
                    f"rate_limit {rate.text} is {rate.limit / rate.period_s:,.0f} requests a second: it never binds",
                    "write the limit the app should have, e.g. `rate_limit 600/min`",
                )


def timeouts(ps: ast.PolicySet, index: Index) -> Iterator[Diagnostic]:
    """An attempt timeout longer than the app's deadline can never run to its end."""
    for app in ps.apps:
        limit = app.settings.timeout_s
        if limit is None:
            continue
        reported: set[ast.Span] = set()
        for entry in app.models:
            for _model, path in index.reachable(entry.name):
                for target in path:
                    if target.timeout_s is not None and target.timeout_s > limit and target.span not in reported:
                        reported.add(target.span)
                        yield rules.TIMEOUT_EXCEEDS_APP.at(
                            target.span,
                            f"'{target.name}' may wait {_secs(target.timeout_s)}, but app '{app.name}' "
                            f"gives up after {_secs(limit)}",
                            f"lower this timeout below {_secs(limit)} or raise the app's `timeout`",
                        )


def cost(ps: ast.PolicySet, index: Index) -> Iterator[Diagnostic]:
    """Usage and cost reports need a price for every model an app can be served by."""
    users: dict[str, str] = {}
    for app in ps.apps:
        for entry in app.models:
            for model, path in index.reachable(entry.name):
                users.setdefault(model.name, " → ".join([app.name, entry.name, *(t.name for t in path)]))
    for model in ps.models:
        if model.price is None and model.name in users and index.models.get(model.name) is model:
            yield rules.UNPRICED_MODEL.at(
                model.span,
                f"model '{model.name}' has no price but serves {users[model.name]}",
                "add `price in 0.15 out 0.60 per 1M` (write 0 for free models)",
            )


def guards(ps: ast.PolicySet, index: Index) -> Iterator[Diagnostic]:
    for app in ps.apps:
        for block in (app.input, app.output):
            for guard in block.guards if block else ():
                if guard.action == "off":
                    yield rules.GUARD_OFF.at(
                        guard.span,
                        f"'{guard.detector}' is off: this guard does nothing",
                        "delete it, or use `detect` (or `shadow`) to watch without enforcing",
                    )
                if guard.message is not None:
                    yield from _empty_variables(guard.message, guard.span, [guard.detector])
            if block and block.message is not None:  # the message of every blocking guard without its own
                users = [g.detector for g in block.guards if g.action == "block" and g.message is None]
                yield from _empty_variables(block.message, block.message_span, users)


def _empty_variables(template: str, span: ast.Span, detectors: list[str]) -> Iterator[Diagnostic]:
    """`{{ topic }}` and `{{ category }}` are set only when their own detector blocks; elsewhere they are empty."""
    try:
        used = parse_template(template).variables
    except TemplateError:
        return  # E308 or E309 reports it
    for variable in sorted(used):
        owner = DETECTOR_VARIABLES.get(variable)
        others = [d for d in dict.fromkeys(detectors) if owner is not None and d != owner]
        if others:
            yield rules.TEMPLATE_EMPTY_VAR.at(
                span,
                f"'{{{{ {variable} }}}}' renders empty when {', '.join(others)} blocks",
                f"give {others[0]} a `message` of its own, or write this message on the {owner} guard",
            )


def env_references(provider: ast.Provider) -> list[str]:
    """The environment variables a provider block reads (`api_key env.X`, `header "h" env.Y`), in order."""
    names = [provider.api_key_env] if provider.api_key_env else []
    names += [value[4:] for _, value in provider.headers if value.startswith("env.")]
    return list(dict.fromkeys(names))


def unset_env(provider: ast.Provider, environ: Mapping[str, str]) -> Iterator[Diagnostic]:
    """One W502 per variable the provider reads that `environ` lacks or holds empty."""
    for name in env_references(provider):
        if not environ.get(name):
            yield rules.UNSET_ENV.at(
                provider.span, f"provider '{provider.name}' reads {name}, which is not set here",
                f"set {name} wherever ghat serves this provider: `ghat serve` refuses a policy whose served "
                "apps can reach a provider with an unset variable",
            )  # fmt: skip


def security(ps: ast.PolicySet, index: Index) -> Iterator[Diagnostic]:
    for provider in ps.providers:
        yield from unset_env(provider, os.environ)
        var = provider.name.upper().replace("-", "_") + "_API_KEY"
        if provider.api_key_literal is not None:
            yield rules.LITERAL_API_KEY.at(
                provider.span_of("api_key"),
                f"provider '{provider.name}' has its api_key written in the policy",
                f"policies live in version control: write `api_key env.{var}`",
            )
        for (name, value), span in zip(provider.headers, provider.header_spans(), strict=False):
            if not value.startswith("env.") and _credential(name, value):
                yield rules.LITERAL_HEADER_SECRET.at(
                    span, f"header '{name}' of provider '{provider.name}' has a credential written in the policy",
                    f"policies live in version control: write `header \"{name}\" env.{_env_var(provider.name, name)}` "
                    "(the variable holds the whole value)",
                )  # fmt: skip
    for app in ps.apps:
        if app.env == "prod" and app.capture:
            yield rules.PROD_CAPTURE.at(
                app.span_of("capture"),
                f"prod app '{app.name}' captures {', '.join(app.capture)}",
                "prompts and responses are never stored in prod; remove `capture`",
            )


def whens(ps: ast.PolicySet, index: Index) -> Iterator[Diagnostic]:
    """Dead, always-true and conflicting `when` blocks, decided exactly (see dsl/conditions.py)."""
    for app in ps.apps:
        if app.whens:
            yield from _app_whens(app, index)


PASSES: list[tuple[str, Pass]] = [
    ("unused", unused),
    ("unused-providers", unused_providers),
    ("envs", envs),
    ("app-models", app_models),
    ("limits", limits),
    ("when-limits", when_limits),
    ("rates", rates),
    ("timeouts", timeouts),
    ("fallbacks", lint_routes.fallbacks),
    ("mock-in-prod", lint_routes.mock_in_prod),
    ("cost", cost),
    ("guards", guards),
    ("rule-overlap", lint_guards.rule_overlap),
    ("restore", lint_guards.restore),
    ("prod-guardrails", lint_guards.prod_guardrails),
    ("patterns", lint_guards.patterns),
    ("whole-text-redact", lint_guards.whole_text_redact),
    ("security", security),
    ("whens", whens),
]


# ── helpers ──────────────────────────────────────────────────────────────

ABSURD_RATE_PER_S = 1_000_000
# Env names teams commonly use; a lone env close to one of them (and not one itself) reads as a typo.
USUAL_ENVS = ("prod", "production", "staging", "stage", "dev", "development", "test", "qa", "sandbox", "preview")
_SYNONYMS = ({"prod", "production", "prd"}, {"dev", "development"}, {"staging", "stage", "stg"})
_CREDENTIAL_NAME = re.compile(r"auth|api[-_]?key|token|secret|passw|credential|(^|-)key$", re.IGNORECASE)
_CREDENTIAL_VALUE = re.compile(
    r"^(Bearer|Basic)\s+\S{8,}|sk-[A-Za-z0-9_-]{8,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{20,}|xox[abpr]-"
)


def _env_var(*parts: str) -> str:
    return re.sub(r"[^A-Z0-9]+", "_", "_".join(parts).upper()).strip("_")


def _credential(name: str, value: str) -> bool:
    """A header that carries a credential: by its name (Authorization, X-Api-Key…) or its value's shape."""
    return bool(value) and (bool(_CREDENTIAL_NAME.search(name)) or bool(_CREDENTIAL_VALUE.search(value)))


def _near_env(env: str, counts: Counter[str]) -> str | None:
    """The env `env` is probably a misspelling of: one in use by more apps (or as many, but a
    usual name where `env` is not), or a usual name nobody uses yet; None if none is close."""

    def rank(name: str) -> int:
        return USUAL_ENVS.index(name.lower()) if name.lower() in USUAL_ENVS else len(USUAL_ENVS)

    def established(other: str) -> bool:
        return (counts[other], -rank(other)) > (counts[env], -rank(env))

    in_use = sorted((e for e in counts if e != env and established(e)), key=lambda e: (-counts[e], rank(e), e))
    unused = [] if rank(env) < len(USUAL_ENVS) else [u for u in USUAL_ENVS if u not in counts]
    for other in [*in_use, *unused]:
        if _close(env.lower(), other.lower()):
            return other
    return None


def _close(a: str, b: str) -> bool:
    """Same name but for case, synonyms (prod, production), or one or two edits apart."""
    if a == b or any(a in s and b in s for s in _SYNONYMS):
        return True
    if re.sub(r"[0-9]", "", a) == re.sub(r"[0-9]", "", b):
        return False  # eu-west-1 beside eu-west-2: two regions, not a typo
    return edit_distance(a, b) <= (1 if len(b) <= 4 else 2)


def edit_distance(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, substitutions, adjacent swaps."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        row = [i] + [0] * len(b)
        for j, cb in enumerate(b, start=1):
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                row[j] = min(row[j], prev2[j - 2] + 1)
        prev2, prev = prev, row
    return prev[-1]



def _app_whens(app: ast.App, index: Index) -> Iterator[Diagnostic]:
    conditions = [w.condition for w in app.whens]
    models = [(t.name, index.kind_of(t.name)) for t in app.models]
    domain = Domain.for_app(models, conditions)
    live: list[ast.When] = []
    for when in app.whens:
        if satisfy(domain, when.condition) is None:
            yield rules.WHEN_NEVER.at(
                when.span, _why_never(app, when, domain, models, conditions), "fix the condition or delete the block"
            )
            continue
        live.append(when)
        yield from _impossible_values(app, when)
        if satisfy(domain, ast.Not(when.condition)) is None:
            yield rules.WHEN_ALWAYS.at(
                when.span,
                "this condition holds for every request the app admits",
                "move these settings to the app itself",
            )
    for j, later in enumerate(live):
        clashes = [c for c in (_clash(domain, earlier, later) for earlier in reversed(live[:j])) if c]
        if clashes:  # one report per block, naming the nearest block it fights with
            earlier, witness, shown = clashes[0]
            more = (
                f" (and {len(clashes) - 1} earlier block{'s' if len(clashes) > 2 else ''})" if len(clashes) > 1 else ""
            )
            yield rules.WHEN_CONFLICT.at(
                later.span,
                f"this block and the one at line {earlier.span.line}{more} both match "
                f"({witness}) and set {shown} differently",
                f"the later block wins; make the conditions exclusive (see {earlier.span})",
            )


def _clash(domain: Domain, earlier: ast.When, later: ast.When) -> tuple[ast.When, str, str] | None:
    """The request both blocks match and the fields they set differently, if there is one."""
    fields = [f for f in later.settings.set_fields() if _differs(earlier.settings, later.settings, f)]
    if not fields:
        return None
    box = satisfy(domain, earlier.condition, later.condition)
    if box is None:
        return None
    named = {a.field for w in (earlier, later) for a in atoms(w.condition)}
    return earlier, example(domain, box, named), ", ".join(f.removesuffix("_s") for f in fields)


def _why_never(
    app: ast.App, when: ast.When, domain: Domain, models: Sequence[tuple[str, str | None]], conditions: list[ast.Expr]
) -> str:
    """Say which kind of impossibility it is: contradiction, impossible value or endpoint/kind."""
    relaxed = Domain.for_app(models, conditions, closed=False)
    if satisfy(relaxed, when.condition) is None:
        return "this condition contradicts itself: no request can match it"
    bad = [_bad_value(app, a) for a in atoms(when.condition)]
    reasons = [r for r in bad if r]
    if reasons:
        return f"this condition can never match: {reasons[0]}"
    return "this condition can never match: no model the app allows serves that endpoint"


def _impossible_values(app: ast.App, when: ast.When) -> Iterator[Diagnostic]:
    for atom in atoms(when.condition):
        reason = _bad_value(app, atom)
        if reason:
            yield rules.WHEN_VALUE.at(atom.span, reason, _value_help(app, atom.field))


def _bad_value(app: ast.App, atom: ast.Compare | ast.Member) -> str | None:
    values = (atom.value,) if isinstance(atom, ast.Compare) else atom.values
    if atom.field == "model":
        allowed = {t.name for t in app.models}
        wrong = [v for v in values if v not in allowed]
        if wrong:
            return f"'{wrong[0]}' is not among the models of app '{app.name}'"
    elif atom.field == "endpoint":
        wrong = [v for v in values if v not in ENDPOINTS]
        if wrong:
            return f"endpoint is one of {', '.join(ENDPOINTS)}, never '{wrong[0]}'"
    return None


def _value_help(app: ast.App, field: str) -> str:
    if field == "model":
        return "requests for other models are refused before `when` runs; the app's models are " + ", ".join(
            dict.fromkeys(t.name for t in app.models)
        )
    return "write endpoint == " + " or endpoint == ".join(f'"{e}"' for e in ENDPOINTS)


def _differs(a: ast.Settings, b: ast.Settings, name: str) -> bool:
    left, right = getattr(a, name), getattr(b, name)
    if left is None or right is None:
        return False
    if isinstance(left, ast.RateLimit) and isinstance(right, ast.RateLimit):
        return False  # every matching `when` limit applies (each its own bucket): they never override

    return bool(left != right)


def _aliases_from(name: str, index: Index, seen: frozenset[str] = frozenset()) -> set[str]:
    alias = index.aliases.get(name)
    if alias is None or name in seen:
        return set()
    out = {name}
    for target in index.targets_of(alias):
        out |= _aliases_from(target.name, index, seen | {name})
    return out


def _secs(value: float) -> str:
    return f"{value:g}s"


def lint(ps: ast.PolicySet, index: Index | None = None) -> list[Diagnostic]:
    """Run every lint pass; the result is sorted by position."""
    index = index or Index.of(ps)
    out: list[Diagnostic] = []
    for _name, run in PASSES:
        out.extend(run(ps, index))
    return sorted(out, key=Diagnostic.sort_key)
