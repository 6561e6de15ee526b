"""Exact satisfiability of `when` conditions, for the linter.

A condition tests string fields with `==`, `!=`, `in` and `not in`, joined by
`and`, `or` and `not`. Each atom constrains one field to a set of values or to
its complement, so deciding a conjunction is a finite-domain problem per field:

* `model` ranges over the names the app allows (any other request is refused
  before `when` blocks are evaluated), and `endpoint` over dsl.catalog.ENDPOINTS;
  the two are linked, because a request reaches `when` evaluation only when the
  model's kind serves the endpoint.
* a metadata field ranges over all strings, but only equality with the
  constants the conditions mention can be observed, so those constants plus
  one fresh value (standing for "anything else", including a missing field,
  which compares as "") are a complete set of representatives.

The search pushes negations to the atoms, intersects per-field value sets and
branches on `or`; it is complete, and a step budget bounds pathological
inputs (past it the answer is "satisfiable", so the linter stays quiet).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from dsl import ast
from dsl.catalog import ENDPOINTS

OTHER = "\x00other"  # the fresh representative: no policy string contains NUL
STEP_BUDGET = 20_000


@dataclass(frozen=True, slots=True)
class Lit:
    """`field in values` (positive) or `field not in values`."""

    field: str
    values: frozenset[str]
    positive: bool


@dataclass(frozen=True, slots=True)
class Conj:
    parts: tuple[Formula, ...]


@dataclass(frozen=True, slots=True)
class Disj:
    parts: tuple[Formula, ...]


Formula = Lit | Conj | Disj
Box = dict[str, frozenset[str]]


def nnf(expr: ast.Expr, negate: bool = False) -> Formula:
    """Negation normal form: `not` only survives as the sign of a literal."""
    if isinstance(expr, ast.Compare):
        return Lit(expr.field, frozenset({expr.value}), (expr.op == "==") != negate)
    if isinstance(expr, ast.Member):
        return Lit(expr.field, frozenset(expr.values), expr.negated == negate)
    if isinstance(expr, ast.Not):
        return nnf(expr.operand, not negate)
    parts = tuple(nnf(e, negate) for e in expr.operands)
    is_and = isinstance(expr, ast.And)
    return Conj(parts) if is_and != negate else Disj(parts)


def atoms(expr: ast.Expr) -> Iterator[ast.Compare | ast.Member]:
    """Every comparison in a condition, in source order."""
    if isinstance(expr, ast.Compare | ast.Member):
        yield expr
    elif isinstance(expr, ast.Not):
        yield from atoms(expr.operand)
    else:
        for operand in expr.operands:
            yield from atoms(operand)


@dataclass(frozen=True)
class Domain:
    """The requests one app's `when` blocks can see, as representative values per field.

    `kinds` maps each allowed model name to chat / embedding (None: unknown or
    mixed, which admits both endpoints). `closed` is False for the relaxed
    domain that treats model and endpoint as free strings, used to tell a
    self-contradiction from an impossible value.
    """

    values: dict[str, frozenset[str]]
    kinds: dict[str, str | None]
    closed: bool = True

    @classmethod
    def for_app(
        cls, models: Iterable[tuple[str, str | None]], exprs: Iterable[ast.Expr], closed: bool = True
    ) -> Domain:
        kinds = dict(models)
        constants: dict[str, set[str]] = {}
        for expr in exprs:
            for atom in atoms(expr):
                vals = {atom.value} if isinstance(atom, ast.Compare) else set(atom.values)
                constants.setdefault(atom.field, set()).update(vals)
        values: dict[str, frozenset[str]] = {f: frozenset(vs | {OTHER}) for f, vs in constants.items()}
        if closed:
            values["model"] = frozenset(kinds)
            values["endpoint"] = frozenset(ENDPOINTS)
        return cls(values, kinds, closed)

    def admits(self, box: Box) -> bool:
        """Whether some (model, endpoint) pair in the box reaches `when` evaluation."""
        if not self.closed:
            return True
        models = box.get("model", self.values["model"])
        endpoints = box.get("endpoint", self.values["endpoint"])
        return any(_serves(self.kinds.get(m), e) for m in models for e in endpoints)

    def full(self, name: str) -> frozenset[str]:
        return self.values.get(name, frozenset({OTHER}))


def _serves(kind: str | None, endpoint: str) -> bool:
    return kind is None or (kind == "embedding") == (endpoint == "embeddings")


class _OutOfBudget(Exception):
    """The search took too long; callers treat the formula as satisfiable."""


def satisfy(domain: Domain, *exprs: ast.Expr) -> Box | None:
    """A box of values satisfying every expression at once, or None if none exists.

    Out of budget, an empty box (no constraint) is returned: "maybe satisfiable".
    """
    goals = [nnf(e) for e in exprs]
    steps = [0]
    try:
        return _search(domain, goals, {}, steps)
    except _OutOfBudget:
        return {}


def _search(domain: Domain, goals: list[Formula], box: Box, steps: list[int]) -> Box | None:
    """Apply every literal and conjunction first (cheap, and it prunes), then branch on an `or`."""
    steps[0] += 1
    if steps[0] > STEP_BUDGET:
        raise _OutOfBudget
    box = dict(box)
    pending = list(goals)
    choices: list[Disj] = []
    while pending:
        goal = pending.pop()
        if isinstance(goal, Lit):
            current = box.get(goal.field, domain.full(goal.field))
            narrowed = current & goal.values if goal.positive else current - goal.values
            if not narrowed:
                return None
            box[goal.field] = narrowed
        elif isinstance(goal, Conj):
            pending.extend(goal.parts)
        else:
            choices.append(goal)
    if not choices:
        return box if domain.admits(box) else None
    first, rest = choices[0], choices[1:]
    for part in first.parts:
        found = _search(domain, [*rest, part], box, steps)
        if found is not None:
            return found
    return None


def example(domain: Domain, box: Box, fields: Iterable[str]) -> str:
    """A readable request matching the box, e.g. `model="smart-default", operation="a"`."""
    chosen: dict[str, str] = {}
    if domain.closed:  # model and endpoint are chosen together: the model must serve it
        pairs = [(m, e) for m in sorted(box.get("model", domain.values["model"]))
                 for e in ENDPOINTS if e in box.get("endpoint", domain.values["endpoint"])
                 and _serves(domain.kinds.get(m), e)]  # fmt: skip
        if pairs:
            chosen["model"], chosen["endpoint"] = pairs[0]
    parts: list[str] = []
    for name in sorted(set(fields)):
        named = sorted(v for v in box.get(name, domain.full(name)) if v != OTHER)
        value = chosen.get(name) or (named[0] if named else None)
        parts.append(f'{name}="{value}"' if value is not None else f"{name} unset or any other value")
    return ", ".join(parts)
