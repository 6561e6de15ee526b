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


def compile_condition(expr: ast.Expr) -> Predicate:
    """Build the closure once; evaluating it allocates nothing."""
    if isinstance(expr, ast.Compare):
        name, value = expr.field, expr.value
        if expr.op == "==":
            return lambda r: field_value(r, name) == value
        return lambda r: field_value(r, name) != value
    if isinstance(expr, ast.Member):
        name, values = expr.field, frozenset(expr.values)
        if expr.negated:
            return lambda r: field_value(r, name) not in values
        return lambda r: field_value(r, name) in values
    if isinstance(expr, ast.Not):
        inner = compile_condition(expr.operand)
        return lambda r: not inner(r)
    parts = tuple(compile_condition(e) for e in expr.operands)
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
