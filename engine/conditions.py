"""`when` conditions compiled to Python closures over a request.

A condition reads the request's model, endpoint or a metadata field; a field
the request does not carry compares as the empty string, so `!=` and `not in`
match and `==` and `in` do not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

from dsl import ast
from engine.request import GatewayRequest

Predicate: TypeAlias = Callable[[GatewayRequest], bool]


def field_value(request: GatewayRequest, name: str) -> str:
    if name == "model":
        return request.model
    if name == "endpoint":
        return request.endpoint
    return request.metadata.get(name, "")


def _getter(name: str) -> Callable[[GatewayRequest], str]:
    """Read one field with no dispatch at run time: the branch is taken here, once."""
    if name == "model":
        return lambda r: r.model
    if name == "endpoint":
        return lambda r: r.endpoint
    return lambda r: r.metadata.get(name, "")


def compile_condition(expr: ast.Expr) -> Predicate:
    """Build the closure once; evaluating it allocates nothing."""
    if isinstance(expr, ast.Compare):
        value = expr.value
        if expr.field not in ("model", "endpoint"):
            key = expr.field
            if expr.op == "==":
                return lambda r: r.metadata.get(key, "") == value
            return lambda r: r.metadata.get(key, "") != value
        get = _getter(expr.field)
        if expr.op == "==":
            return lambda r: get(r) == value
        return lambda r: get(r) != value
    if isinstance(expr, ast.Member):
        get, values = _getter(expr.field), frozenset(expr.values)
        if expr.negated:
            return lambda r: get(r) not in values
        return lambda r: get(r) in values
    if isinstance(expr, ast.Not):
        inner = compile_condition(expr.operand)
        return lambda r: not inner(r)
    parts = tuple(compile_condition(e) for e in expr.operands)
    if len(parts) == 2:
        first, second = parts
        if isinstance(expr, ast.And):
            return lambda r: first(r) and second(r)
        return lambda r: first(r) or second(r)
    if isinstance(expr, ast.And):
        return lambda r: all(p(r) for p in parts)
    return lambda r: any(p(r) for p in parts)


def evaluate_condition(expr: ast.Expr, request: GatewayRequest) -> bool:
    """The same semantics read straight off the AST: the reference for differential tests."""
    if isinstance(expr, ast.Compare):
        equal = field_value(request, expr.field) == expr.value
        return equal if expr.op == "==" else not equal
    if isinstance(expr, ast.Member):
        inside = field_value(request, expr.field) in expr.values
        return not inside if expr.negated else inside
    if isinstance(expr, ast.Not):
        return not evaluate_condition(expr.operand, request)
    results = [evaluate_condition(e, request) for e in expr.operands]
    return all(results) if isinstance(expr, ast.And) else any(results)
