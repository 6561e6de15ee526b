"""Lint passes over routes: fallbacks that can never help, and prod apps a mock can answer.

A fallback is tried only after every candidate before it failed. A mock
provider never fails, so nothing after it is ever tried; and a fallback whose
every model was already tried (the route's own model, again) only repeats a
failure — `retries` say that. Splits make several candidate orders; a
fallback is reported only when it is useless in each of them.
"""

from __future__ import annotations

from collections.abc import Iterator

from dsl import ast, rules
from dsl.diagnostics import Diagnostic
from dsl.lint_guards import is_prod
from dsl.resolve import Index

MAX_ORDERS = 64  # candidate orders followed per alias; past this (split in split in split…) no claim

Order = tuple[str, ...]  # the models tried, in order


def fallbacks(ps: ast.PolicySet, index: Index) -> Iterator[Diagnostic]:
    for alias in ps.aliases:
        if index.aliases.get(alias.name) is not alias:
            continue  # a duplicate: E101
        head = [alias.route] if alias.route is not None else list(alias.split)
        orders = _union([_orders(t.name, index, frozenset({alias.name})) for t in head])
        for fb in alias.fallbacks:
            if not orders:
                break
            mine = _orders(fb.name, index, frozenset({alias.name}))
            if not mine:
                break
            mock = _always_answers(orders, index)
            if mock is not None:
                yield rules.USELESS_FALLBACK.at(
                    fb.span, f"'{fb.name}' is never tried: '{mock}' before it is a mock, which always answers",
                    "delete this fallback, or put it before the mock",
                )  # fmt: skip
            elif all(set(m) <= set(o) for o in orders for m in mine):
                yield rules.USELESS_FALLBACK.at(
                    fb.span, f"'{fb.name}' only tries again a model this alias has already tried",
                    "to try the same model again give the earlier target `retries N`; to fail over, name another model",
                )  # fmt: skip
            orders = _cap([o + m for o in orders for m in mine])


def mock_in_prod(ps: ast.PolicySet, index: Index) -> Iterator[Diagnostic]:
    reported: set[ast.Span] = set()
    for app in ps.apps:
        if not is_prod(app.env):
            continue
        for entry in app.models:
            for model, path in index.reachable(entry.name):
                provider = index.providers.get(model.provider)
                if provider is None or provider.kind != "mock":
                    continue
                if app.providers is not None and model.provider not in app.providers:
                    continue  # E206 reports it; the router never goes there
                span = path[-1].span if path else entry.span
                if span in reported:
                    continue
                reported.add(span)
                via = " → ".join([entry.name, *(t.name for t in path)])
                yield rules.MOCK_IN_PROD.at(
                    span, f"prod app '{app.name}' can be answered by the mock '{model.name}' ({via})",
                    "a mock answers with canned text: route prod apps to real models, and keep mocks for dev",
                )  # fmt: skip


def _orders(name: str, index: Index, seen: frozenset[str]) -> list[Order]:
    """Every order of models a request for `name` can try (one per combination of split choices)."""
    if name in index.models:
        return [(name,)]
    alias = index.aliases.get(name)
    if alias is None or name in seen:
        return []  # unknown or a cycle: E102, E201
    inner = seen | {name}
    head = [alias.route] if alias.route is not None else list(alias.split)
    orders = _union([_orders(t.name, index, inner) for t in head])
    for fb in alias.fallbacks:
        orders = _cap([o + m for o in orders for m in _orders(fb.name, index, inner)])
    return orders


def _union(groups: list[list[Order]]) -> list[Order]:
    return _cap([o for g in groups for o in g])


def _cap(orders: list[Order]) -> list[Order]:
    return orders if len(orders) <= MAX_ORDERS else []


def _always_answers(orders: list[Order], index: Index) -> str | None:
    """The first mock model of the orders, when every order has one."""
    found: list[str] = []
    for order in orders:
        mock = next((m for m in order if _is_mock(m, index)), None)
        if mock is None:
            return None
        found.append(mock)
    return found[0] if found else None


def _is_mock(model: str, index: Index) -> bool:
    provider = index.providers.get(index.models[model].provider)
    return provider is not None and provider.kind == "mock"
