"""The engine's answer for one request: a `Deny` or an `Allow`.

Errors are values at the engine boundary: the server turns a Deny into an
OpenAI-shaped error and an Allow into a dispatch. Both carry the trace that
`ghat explain` prints and the guard outcomes the request log records (what
fired and what it did, never the values).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeAlias

from dsl.ast import Span

if TYPE_CHECKING:
    from engine.guards import GuardPipeline, Outcome, Redactor
    from engine.request import GatewayRequest


@dataclass(frozen=True, slots=True)
class Step:
    """One step of evaluation: what was decided there and which policy line decided it."""

    name: str  # authenticate, resolve_app, model_known, … , route
    result: str  # ok | deny | clamp | override | …
    detail: str = ""
    span: Span | None = None


@dataclass(frozen=True, slots=True)
class Candidate:
    """One upstream attempt target, with everything the router needs and nothing it must look up."""

    model: str  # provider/model as declared
    provider: str
    upstream_model: str  # the concrete name sent upstream, never an alias
    timeout_s: float | None
    retries: int
    via: tuple[str, ...]  # the alias path that led here (for logs and explain)
    span: Span | None = None


@dataclass(frozen=True, slots=True)
class Deny:
    code: str
    status: int
    message: str
    param: str | None = None
    retry_after: float | None = None
    app: str | None = None
    step: str = ""
    span: Span | None = None
    outcomes: tuple[Outcome, ...] = ()
    trace: tuple[Step, ...] = ()
    policy_version: str = ""

    @property
    def allowed(self) -> bool:
        return False


@dataclass(frozen=True, slots=True)
class Allow:
    app: str
    request: GatewayRequest  # transformed: redacted texts, capped max_tokens
    candidates: tuple[Candidate, ...]  # in the order the router tries them
    output: GuardPipeline
    redactor: Redactor  # placeholders of this request, for output redaction and restore
    timeout_s: float | None  # the overall deadline for this request
    outcomes: tuple[Outcome, ...] = ()  # input guard findings and actions
    fired: tuple[str, ...] = ()  # names of rules that fired (guards, clamps, overrides)
    shadow: bool = False
    trace: tuple[Step, ...] = field(default=())
    policy_version: str = ""

    @property
    def allowed(self) -> bool:
        return True


Decision: TypeAlias = Allow | Deny
