"""Validation: the checks that make a parsed policy set compilable.

Each pass is a function over the symbol index that yields diagnostics; the
list `PASSES` is the pipeline, in one place. Lint rules that only warn live in
`dsl/lint.py`; `dsl/checker.py` runs both and applies the configuration.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import re2

from dsl import ast, rules, template
from dsl.catalog import BUILTINS, ENV_NAME, MESSAGE_VARIABLES, PROVIDER_KINDS
from dsl.diagnostics import Diagnostic
from dsl.resolve import Index

Pass = Callable[[ast.PolicySet, Index], Iterator[Diagnostic]]
CAPTURABLE = ("prompts", "responses")  # what `capture` may keep in the request log, outside prod


def duplicates(ps: ast.PolicySet, index: Index) -> Iterator[Diagnostic]:
    seen: dict[tuple[str, str], ast.Span] = {}
    for item in ps.items():
        if isinstance(item, ast.TestCase):
            continue
        key = (type(item).__name__, item.name)
        if key in seen:
            kind = type(item).__name__.lower().replace("customdetector", "detector")
            yield rules.DUPLICATE.at(
                item.span, f"{kind} '{item.name}' is declared twice",
                f"the first declaration is at {seen[key]}; rename or remove one",
            )  # fmt: skip
        else:
            seen[key] = item.span


def providers(ps: ast.PolicySet, index: Index) -> Iterator[Diagnostic]:
    for p in ps.providers:
        if p.kind not in PROVIDER_KINDS:
            yield rules.PROVIDER_KIND.at(
                p.span_of("kind"), f"provider '{p.name}' has kind '{p.kind or '(none)'}'",
                "write `kind openai`, `kind anthropic` or `kind mock`",
            )  # fmt: skip
    for m in ps.models:
        if m.provider not in index.providers:
            yield rules.UNKNOWN_PROVIDER.at(
                m.span, f"model '{m.name}' names provider '{m.provider}', which is not declared",
                _did_you_mean(m.provider, index.providers) or f"declare `provider {m.provider} {{ kind … }}`",
            )  # fmt: skip


def aliases(ps: ast.PolicySet, index: Index) -> Iterator[Diagnostic]:
    for alias in ps.aliases:
        if alias.route is None and not alias.split:
            yield rules.ALIAS_EMPTY.at(alias.span, f"alias '{alias.name}' has no route",
                                       "add `route provider/model` or a `split { … }`")  # fmt: skip
        if alias.route is not None and alias.split:
            yield rules.ALIAS_BOTH.at(alias.span, f"alias '{alias.name}' has both a route and a split",
                                      "keep one: a split already chooses the primary")  # fmt: skip
        for member in alias.split:
            if member.weight is None or member.weight <= 0:
                yield rules.SPLIT_WEIGHT.at(member.span, f"split member '{member.name}' has weight {member.weight}",
                                            "give every member a positive weight")  # fmt: skip
        for target in index.targets_of(alias):
            if not index.is_known(target.name):
                yield _unknown_model(target, index)
        cycle = index.find_cycle(alias.name)
        if cycle and min(cycle) == alias.name:  # report each cycle once
            yield rules.ALIAS_CYCLE.at(alias.span, "alias cycle: " + " → ".join(cycle),
                                       "route one of these aliases to a model")  # fmt: skip
        kinds = {m.kind for m, _ in index.reachable(alias.name)}
        if len(kinds) > 1:
            yield rules.KIND_MIX.at(alias.span, f"alias '{alias.name}' reaches both chat and embedding models",
                                    "an alias serves one endpoint; split it in two")  # fmt: skip


def detectors(ps: ast.PolicySet, index: Index) -> Iterator[Diagnostic]:
    options = re2.Options()
    options.never_capture = True
    for det in ps.detectors:
        if det.name in BUILTINS:
            yield rules.DUPLICATE.at(det.span, f"detector '{det.name}' has the name of a built-in",
                                     "choose another name")  # fmt: skip
        options.case_sensitive = not det.ignorecase
        try:
            compiled = re2.compile(det.pattern, options)
        except re2.error as exc:
            yield rules.PATTERN_INVALID.at(
                det.pattern_span, f"pattern of '{det.name}' is not valid: {exc}",
                "patterns use RE2 syntax (no backreferences or lookaround), which runs in linear time",
            )  # fmt: skip
            continue
        if compiled.fullmatch("") is not None or compiled.search("") is not None:
            yield rules.PATTERN_EMPTY.at(det.pattern_span, f"pattern of '{det.name}' matches the empty string",
                                         "use + instead of * so every match has text")  # fmt: skip


def apps(ps: ast.PolicySet, index: Index) -> Iterator[Diagnostic]:
    for app in ps.apps:
        if not app.env:
            yield rules.APP_NO_ENV.at(app.span, f"app '{app.name}' has no env", "add `env prod` (or dev, staging…)")
        elif not ENV_NAME.fullmatch(app.env):
            yield rules.APP_ENV_NAME.at(
                app.span_of("env"), f"app '{app.name}' has env '{app.env}', which no key can name",
                "keys read ghat_<env>_…: use letters, digits and '-' (eu-west)",
            )  # fmt: skip
        if not app.models:
            yield rules.APP_NO_MODELS.at(app.span, f"app '{app.name}' allows no model",
                                         "add `models smart-default` or a model name")  # fmt: skip
        for target in app.models:
            if not index.is_known(target.name):
                yield _unknown_model(target, index)
        for name in app.providers or ():
            if name not in index.providers:
                yield rules.UNKNOWN_PROVIDER.at(
                    app.span_of("providers"), f"app '{app.name}' lists unknown provider '{name}'",
                    _did_you_mean(name, index.providers),
                )  # fmt: skip
        yield from _closure(app, index)
        for name in app.capture:
            if name not in CAPTURABLE:
                yield rules.APP_CAPTURE.at(app.span_of("capture"), f"app '{app.name}' captures unknown '{name}'",
                                           "write `capture prompts`, `capture responses` or both")  # fmt: skip
        for block in (app.input, app.output):
            if block is not None:
                yield from _guards(app, block, index)
        for when in app.whens:
            yield from _condition_fields(when.condition)
        own = app.settings.rate_limit
        if own is not None and own.raises:
            yield rules.RAISE_OUTSIDE_WHEN.at(app.settings.span_of("rate_limit") or app.span,
                                              "`raise` outside a `when` block: there is no app limit to raise",
                                              "drop `raise`; in a `when` it replaces the app's limit")  # fmt: skip


def tests(ps: ast.PolicySet, index: Index) -> Iterator[Diagnostic]:
    for case in ps.tests:
        if case.app is None:
            yield rules.UNKNOWN_APP.at(case.span, f"test '{case.name}' names no app",
                                       "add `app NAME` or put the test inside its app")  # fmt: skip
        elif case.app not in index.apps:
            yield rules.UNKNOWN_APP.at(case.span, f"test '{case.name}' names unknown app '{case.app}'",
                                       _did_you_mean(case.app, index.apps))  # fmt: skip


PASSES: list[tuple[str, Pass]] = [
    ("duplicates", duplicates),
    ("providers", providers),
    ("aliases", aliases),
    ("detectors", detectors),
    ("apps", apps),
    ("tests", tests),
]


def validate(ps: ast.PolicySet, index: Index | None = None) -> list[Diagnostic]:
    """Run every validation pass; the result is sorted by position."""
    index = index or Index.of(ps)
    out: list[Diagnostic] = []
    for _name, run in PASSES:
        out.extend(run(ps, index))
    return sorted(out, key=Diagnostic.sort_key)


# ── helpers ──────────────────────────────────────────────────────────────


def _closure(app: ast.App, index: Index) -> Iterator[Diagnostic]:
    """P7: every model any route path reaches must be on a provider the app allows."""
    if app.providers is None:
        return
    allowed = set(app.providers)
    for entry in app.models:
        for model, path in index.reachable(entry.name):
            if model.provider not in allowed:
                via = " → ".join([entry.name, *(t.name for t in path)]) if path else entry.name
                span = path[-1].span if path else entry.span
                yield rules.CLOSURE.at(
                    span,
                    f"app '{app.name}' can reach '{model.name}' ({via}), but its providers "
                    f"are {', '.join(app.providers)}",
                    f"add '{model.provider}' to the app's providers or route the alias elsewhere",
                )


def _guards(app: ast.App, block: ast.GuardBlock, index: Index) -> Iterator[Diagnostic]:
    if block.holdback is not None and block.direction == "input":
        yield rules.HOLDBACK_INPUT.at(
            block.holdback.span, "`holdback` bounds how long a streamed answer is held: input is never streamed",
            "move it to the `output` block",
        )  # fmt: skip
    for guard in block.guards:
        builtin = BUILTINS.get(guard.detector)
        if builtin is None and guard.detector not in index.detectors:
            yield rules.UNKNOWN_DETECTOR.at(
                guard.span, f"no detector named '{guard.detector}'",
                _did_you_mean(guard.detector, {**BUILTINS, **index.detectors})
                or "declare it with `detector NAME pattern /…/`",
            )  # fmt: skip
            continue
        yield from _guard_options(guard, block.direction, builtin)
        if guard.message is not None:
            yield from _template(guard.message, guard.span)
    if block.message is not None:
        yield from _template(block.message, block.message_span)


def _guard_options(guard: ast.Guard, direction: str, builtin: object) -> Iterator[Diagnostic]:
    from dsl.catalog import BuiltinDetector

    allowed_options: tuple[str, ...] = ()
    known_types: tuple[str, ...] = ()
    if isinstance(builtin, BuiltinDetector):
        allowed_options, known_types = builtin.options, builtin.types
        if direction not in builtin.directions:
            yield rules.GUARD_DIRECTION.at(
                guard.span, f"'{guard.detector}' scans {' and '.join(builtin.directions)} only",
                f"move it to the {builtin.directions[0]} block",
            )  # fmt: skip
    used = {
        "types": bool(guard.types), "threshold": guard.threshold is not None,
        "topics": bool(guard.topics), "restore": guard.restore, "model": guard.model,
    }  # fmt: skip
    for option, present in used.items():
        if option == "types":
            continue
        if present and option not in allowed_options:
            yield rules.GUARD_OPTION.at(guard.span, f"'{guard.detector}' takes no {option}")
    if guard.categories and "categories" not in allowed_options:
        yield rules.GUARD_OPTION.at(guard.span, f"'{guard.detector}' takes no categories")
    if guard.types and not known_types:
        yield rules.GUARD_OPTION.at(guard.span, f"'{guard.detector}' has no types to select")
    for name in (*guard.types, *guard.categories):
        if known_types and name not in known_types:
            yield rules.GUARD_TYPE.at(guard.span, f"'{guard.detector}' has no type '{name}'",
                                      f"known: {', '.join(known_types)}")  # fmt: skip
    if guard.detector == "topics" and not guard.topics:
        yield rules.GUARD_TOPICS.at(guard.span, "topics guard lists no topic",
                                    'write topics ["legal advice", "medical diagnosis"] block')  # fmt: skip


_TEMPLATE_RULES = {"syntax": rules.TEMPLATE_SYNTAX, "not-substitution": rules.TEMPLATE_LOGIC}


def _template(source: str, span: ast.Span) -> Iterator[Diagnostic]:
    """A message is text with `{{ variable }}` placeholders (dsl/template.py); anything more is refused here."""
    try:
        parsed = template.parse(source)
    except template.TemplateError as exc:
        yield _TEMPLATE_RULES[exc.problem].at(span, exc.message, exc.help)
        return
    for name in sorted(parsed.variables):
        if name not in MESSAGE_VARIABLES:
            yield rules.TEMPLATE_VAR.at(span, f"message template uses unknown variable '{name}'",
                                        f"available: {', '.join(MESSAGE_VARIABLES)}")  # fmt: skip


def _condition_fields(expr: ast.Expr) -> Iterator[Diagnostic]:
    if isinstance(expr, ast.Compare | ast.Member):
        if expr.field not in ast.CONDITION_FIELDS:
            yield rules.UNKNOWN_FIELD.at(expr.span, f"requests have no field '{expr.field}'",
                                         f"conditions may test {', '.join(ast.CONDITION_FIELDS)}")  # fmt: skip
    elif isinstance(expr, ast.Not):
        yield from _condition_fields(expr.operand)
    else:
        for operand in expr.operands:
            yield from _condition_fields(operand)


def _unknown_model(target: ast.Target, index: Index) -> Diagnostic:
    return rules.UNKNOWN_MODEL.at(
        target.span, f"no model or alias named '{target.name}'",
        _did_you_mean(target.name, {**index.models, **index.aliases})
        or "declare it with `model provider/name { … }` or `alias NAME { … }`",
    )  # fmt: skip


def _did_you_mean(name: str, candidates: Mapping[str, object]) -> str | None:
    import difflib

    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None
