"""Second parser pass: the Lark tree (CST) becomes the typed AST.

Values that the grammar only shapes (durations, sizes, rates) are read here;
a bad one becomes a diagnostic on its own span and the pass goes on, so one
run reports every mistake.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from lark import Token, Transformer, Tree, v_args
from lark.tree import Meta

from dsl import ast
from dsl.diagnostics import Diagnostic
from dsl.repeats import repeats

_QTY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([A-Za-z]*)$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_SIZE_UNITS = {"": 1, "k": 1_000, "K": 1_000, "M": 1_000_000, "m": 1_000_000}
_RATE_UNITS = {
    "s": 1.0, "sec": 1.0, "second": 1.0,
    "min": 60.0, "minute": 60.0,
    "h": 3600.0, "hour": 3600.0,
    "d": 86400.0, "day": 86400.0,
}  # fmt: skip


def unquote(token: str) -> str:
    """A STRING token's value: the quotes removed and escapes resolved."""
    body = token[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body)


@v_args(meta=True)
class CstToAst(Transformer[Token, Any]):
    """Builds AST nodes bottom-up; collects diagnostics for bad values."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self.diagnostics: list[Diagnostic] = []

    def transform(self, tree: Tree[Token]) -> Any:
        """Report repeated once-only statements (dsl/repeats.py), then build the AST.

        Where a statement is repeated the AST keeps the first, value and span
        alike, so every tool that reads it names the same line.
        """
        self.diagnostics.extend(repeats(tree, self.path))
        return super().transform(tree)

    # ── helpers ──────────────────────────────────────────────────────────
    def span(self, meta: Meta | Token) -> ast.Span:
        if isinstance(meta, Token):
            return ast.Span(
                self.path, meta.line or 0, meta.column or 0,
                meta.end_line or 0, meta.end_column or 0,
            )  # fmt: skip
        if getattr(meta, "empty", True):
            return ast.Span(self.path, 0, 0, 0, 0)
        return ast.Span(self.path, meta.line, meta.column, meta.end_line, meta.end_column)

    def bad(self, tok: Token, message: str, help: str) -> None:
        self.diagnostics.append(
            Diagnostic("E010", "syntax/invalid-value", "error", message, self.span(tok), help)
        )

    def quantity(self, tok: Token) -> tuple[float, str] | None:
        m = _QTY.match(str(tok))
        return (float(m.group(1)), m.group(2)) if m else None

    def duration(self, tok: Token) -> float:
        q = self.quantity(tok)
        if q is None or q[1] not in _DURATION_UNITS:
            self.bad(tok, f"'{tok}' is not a duration", "write a number and a unit: 500ms, 20s, 2m")
            return 1.0
        if q[0] <= 0:
            self.bad(tok, "a duration must be positive", "for example 20s")
            return 1.0
        return q[0] * _DURATION_UNITS[q[1]]

    def count(self, tok: Token, what: str, sizes: bool = False) -> int:
        q = self.quantity(tok)
        units = _SIZE_UNITS if sizes else {"": 1}
        if q is None or q[1] not in units:
            hint = "a whole number such as 1024 or 128k" if sizes else "a whole number"
            self.bad(tok, f"'{tok}' is not a valid {what}", f"write {hint}")
            return 0
        value = q[0] * units[q[1]]
        if value != int(value):
            self.bad(tok, f"{what} must be a whole number", "write a whole number")
        return int(value)

    def number(self, tok: Token, what: str) -> float:
        q = self.quantity(tok)
        if q is None or q[1]:
            self.bad(tok, f"'{tok}' is not a valid {what}", "write a plain number such as 0.6")
            return 0.0
        return q[0]

    # ── providers and models ─────────────────────────────────────────────
    def provider(self, meta: Meta, c: list[Any]) -> ast.Provider:
        fields = _first(c[1:])
        headers = tuple(v for k, v in _pairs(c[1:]) if k == "header")
        api_key = fields.get("api_key")
        return ast.Provider(
            name=str(c[0]),
            kind=fields.get("kind", ""),
            base_url=fields.get("base_url"),
            api_key_env=api_key[4:] if api_key and api_key.startswith("env.") else None,
            api_key_literal=api_key[4:] if api_key and api_key.startswith("lit:") else None,
            headers=headers,
            timeout_s=fields.get("timeout"),
            span=self.span(meta),
            spans=_spans(c[1:]),
        )

    def kind_field(self, meta: Meta, c: list[Token]) -> _Field:
        return _Field("kind", str(c[0]), self.span(meta))

    def base_url_field(self, meta: Meta, c: list[Token]) -> _Field:
        return _Field("base_url", unquote(c[0]), self.span(meta))

    def api_key_field(self, meta: Meta, c: list[Token]) -> _Field:
        tok = c[0]
        return _Field("api_key", str(tok) if tok.type == "ENV_REF" else "lit:" + unquote(tok), self.span(meta))

    def header_field(self, meta: Meta, c: list[Token]) -> _Field:
        value = str(c[1]) if c[1].type == "ENV_REF" else unquote(c[1])
        return _Field("header", (unquote(c[0]), value), self.span(meta))

    def model(self, meta: Meta, c: list[Any]) -> ast.Model:
        fields = _first(c[1:])
        kind = fields.get("kind", "chat")
        if kind not in ("chat", "embedding"):
            self.bad(c[0], f"model kind '{kind}' is not chat or embedding", "write kind chat or kind embedding")
            kind = "chat"
        return ast.Model(
            name=str(c[0]),
            kind=kind,
            price=fields.get("price"),
            context=fields.get("context"),
            upstream=fields.get("upstream"),
            span=self.span(meta),
            spans=_spans(c[1:]),
        )

    def price_part(self, meta: Meta, c: list[Token]) -> tuple[str, Token]:
        return (str(c[0]), c[1])

    def price_field(self, meta: Meta, c: list[tuple[str, Token]]) -> _Field:
        parts = _first(c)
        if "in" not in parts:
            self.bad(c[0][1], "a price starts with its input price", "write price in 0.15 out 0.60 per 1M")
        per = self.count(parts["per"], "token count", sizes=True) if "per" in parts else 1_000_000
        cached = parts.get("cached")
        price = ast.Price(
            input=self.number(parts["in"], "price") if "in" in parts else 0.0,
            output=self.number(parts["out"], "price") if "out" in parts else 0.0,
            cached_input=self.number(cached, "price") if cached is not None else None,
            per=per or 1_000_000,
        )
        return _Field("price", price, self.span(meta))

    def context_field(self, meta: Meta, c: list[Token]) -> _Field:
        return _Field("context", self.count(c[0], "context size", sizes=True), self.span(meta))

    def upstream_field(self, meta: Meta, c: list[Token]) -> _Field:
        return _Field("upstream", unquote(c[0]), self.span(meta))

    # ── aliases ──────────────────────────────────────────────────────────
    def _target(self, meta: Meta, c: list[Any], weight: float | None = None) -> ast.Target:
        opts = _first(c[1:])
        return ast.Target(
            name=str(c[0]), weight=weight, timeout_s=opts.get("timeout"),
            retries=opts.get("retries"), span=self.span(meta),
        )  # fmt: skip

    def route_field(self, meta: Meta, c: list[Any]) -> tuple[str, ast.Target]:
        return ("route", self._target(meta, c))

    def fallback_field(self, meta: Meta, c: list[Any]) -> tuple[str, ast.Target]:
        return ("fallback", self._target(meta, c))

    def split_member(self, meta: Meta, c: list[Any]) -> ast.Target:
        weight = self.number(c[1], "weight")
        return self._target(meta, [c[0], *c[2:]], weight=weight)

    def split_field(self, meta: Meta, c: list[ast.Target]) -> tuple[str, tuple[ast.Target, ...]]:
        return ("split", tuple(c))

    def timeout_opt(self, meta: Meta, c: list[Token]) -> tuple[str, float]:
        return ("timeout", self.duration(c[0]))

    def retries_opt(self, meta: Meta, c: list[Token]) -> tuple[str, int]:
        return ("retries", self.count(c[0], "retry count"))

    def alias(self, meta: Meta, c: list[Any]) -> ast.Alias:
        route = next((v for k, v in _pairs(c[1:]) if k == "route"), None)
        split = next((v for k, v in _pairs(c[1:]) if k == "split"), ())
        fallbacks = tuple(v for k, v in _pairs(c[1:]) if k == "fallback")
        return ast.Alias(str(c[0]), route, split, fallbacks, self.span(meta))

    # ── detectors ────────────────────────────────────────────────────────
    def detector(self, meta: Meta, c: list[Any]) -> ast.CustomDetector:
        regex = str(c[1])
        body, flags = regex[1 : regex.rindex("/")], regex[regex.rindex("/") + 1 :]
        opts = _first(c[2:])
        return ast.CustomDetector(
            name=str(c[0]),
            pattern=body.replace("\\/", "/"),
            type=opts.get("type"),
            ignorecase=bool(opts.get("ignorecase")) or "i" in flags,
            pattern_span=self.span(c[1]),
            span=self.span(meta),
        )

    def detector_type(self, meta: Meta, c: list[Token]) -> tuple[str, str]:
        return ("type", str(c[0]))

    def detector_ignorecase(self, meta: Meta, c: list[Token]) -> tuple[str, bool]:
        return ("ignorecase", True)

    # ── apps ─────────────────────────────────────────────────────────────
    def app(self, meta: Meta, c: list[Any]) -> ast.App:
        fields = _pairs(c[1:])
        get = _first(c[1:]).get
        blocks = tuple(v for k, v in fields if k == "guards")
        settings = _settings([f for f in c[1:] if isinstance(f, _Field) and f.key in _SCALARS])
        return ast.App(
            name=str(c[0]),
            env=get("env"),
            models=get("models", ()),
            providers=get("providers"),
            settings=settings,
            shadow=bool(get("shadow", False)),
            input=ast.combine(blocks, "input"),
            output=ast.combine(blocks, "output"),
            whens=tuple(v for k, v in fields if k == "when"),
            capture=get("capture", ()),
            max_scan=get("max_scan"),
            tests=tuple(v for k, v in fields if k == "test"),
            span=self.span(meta),
            guard_blocks=blocks,
            spans=_spans(c[1:]),
        )

    def env_field(self, meta: Meta, c: list[Token]) -> _Field:
        return _Field("env", str(c[0]), self.span(meta))

    def models_field(self, meta: Meta, c: list[Token]) -> _Field:
        return _Field("models", tuple(ast.Target(str(t), span=self.span(t)) for t in c), self.span(meta))

    def providers_field(self, meta: Meta, c: list[Token]) -> _Field:
        return _Field("providers", tuple(str(t) for t in c), self.span(meta))

    def shadow_field(self, meta: Meta, c: list[Token]) -> _Field:
        return _Field("shadow", True, self.span(meta))

    def capture_field(self, meta: Meta, c: list[Token]) -> _Field:
        return _Field("capture", tuple(str(t) for t in c), self.span(meta))

    def max_scan_field(self, meta: Meta, c: list[Token]) -> _Field:
        errors = len(self.diagnostics)
        value = self.count(c[0], "scan cap", sizes=True)
        if value <= 0:
            if len(self.diagnostics) == errors:
                self.bad(c[0], "a scan cap must be positive", "write a size in characters such as 256k or 1M")
            return _Field("max_scan", None, self.span(meta))
        return _Field("max_scan", value, self.span(meta))

    def max_tokens_field(self, meta: Meta, c: list[Any]) -> _Field:
        mode = str(c[1]) if len(c) > 1 else "clamp"
        limit = self.count(c[0], "token cap", sizes=True)
        return _Field("max_tokens", ast.MaxTokens(limit, mode), self.span(meta))  # type: ignore[arg-type]

    def token_mode(self, meta: Meta, c: list[Token]) -> str:
        return str(c[0])

    def rate_scope(self, meta: Meta, c: list[Token]) -> str:
        return str(c[0])

    def rate_raise(self, meta: Meta, c: list[Token]) -> str:
        return str(c[0])

    def rate_limit_field(self, meta: Meta, c: list[Any]) -> _Field:
        tok, raises = c[0], "raise" in c[1:]
        c = [x for x in c if x != "raise"]
        n, _, unit = str(tok).partition("/")
        if unit not in _RATE_UNITS or int(n) <= 0:
            self.bad(tok, f"'{tok}' is not a rate", "write requests per period: 600/min, 10/s, 5000/h")
            period = 60.0
        else:
            period = _RATE_UNITS[unit]
        per = str(c[1]) if len(c) > 1 else "app"
        limit = ast.RateLimit(int(n), period, per, str(tok), raises)  # type: ignore[arg-type]
        return _Field("rate_limit", limit, self.span(meta))

    def timeout_field(self, meta: Meta, c: list[Token]) -> _Field:
        return _Field("timeout", self.duration(c[0]), self.span(meta))

    # ── guards ───────────────────────────────────────────────────────────
    def direction(self, meta: Meta, c: list[Token]) -> str:
        return str(c[0])

    def action(self, meta: Meta, c: list[Token]) -> str:
        return str(c[0])

    def guard_block(self, meta: Meta, c: list[Any]) -> tuple[str, ast.GuardBlock]:
        guards = tuple(g for g in c[1:] if isinstance(g, ast.Guard))
        messages = [m for m in c[1:] if isinstance(m, tuple)]
        message, mspan = (messages[0][1], messages[0][2]) if messages else (None, ast.NO_SPAN)
        holdback = next((h for h in c[1:] if isinstance(h, ast.Holdback)), None)  # a repeat is E012
        block = ast.GuardBlock(str(c[0]), guards, message, mspan, self.span(meta), holdback)  # type: ignore[arg-type]
        return ("guards", block)

    def holdback_stmt(self, meta: Meta, c: list[tuple[str, float | int | None, Token]]) -> ast.Holdback:
        seconds: float | None = None
        chars: int | None = None
        seen: set[str] = set()
        for kind, value, tok in c:
            if kind in seen:
                what = "a time" if kind == "time" else "a character count"
                self.bad(tok, f"holdback sets {what} twice",
                         "give at most one of each: `holdback 400ms 2000 chars`")  # fmt: skip
            seen.add(kind)
            if kind == "time" and value is not None:
                seconds = float(value)
            elif kind == "chars" and value is not None:
                chars = int(value)
        return ast.Holdback(seconds, chars, self.span(meta))

    def holdback_limit(self, meta: Meta, c: list[Any]) -> tuple[str, float | int | None, Token]:
        tok = c[0]
        if len(c) > 1:  # `2000 chars`
            errors = len(self.diagnostics)
            n = self.count(tok, "character bound", sizes=True)
            if n <= 0:
                if len(self.diagnostics) == errors:
                    self.bad(tok, "a holdback in characters must be positive", "for example `holdback 2000 chars`")
                return ("chars", None, tok)
            return ("chars", n, tok)
        q = self.quantity(tok)
        if q is not None and q[1] == "":
            self.bad(tok, f"'{tok}' needs a unit",
                     "write a time (`holdback 400ms`) or characters (`holdback 2000 chars`)")  # fmt: skip
            return ("time", None, tok)
        errors = len(self.diagnostics)
        seconds = self.duration(tok)
        return ("time", seconds if len(self.diagnostics) == errors else None, tok)

    def chars_unit(self, meta: Meta, c: list[Token]) -> str:
        return str(c[0])

    def message_stmt(self, meta: Meta, c: list[Token]) -> tuple[str, str, ast.Span]:
        return ("message", unquote(c[0]), self.span(c[0]))

    def guard(self, meta: Meta, c: list[Any]) -> ast.Guard:
        name = str(c[0])
        rest = list(c[1:])
        topics: tuple[str, ...] = ()
        if rest and isinstance(rest[0], list):
            topics = tuple(rest.pop(0))
        action = rest.pop(0)
        opts = _first(rest)
        return ast.Guard(
            detector=name,
            action=action,
            types=opts.get("types", ()),
            categories=opts.get("categories", ()),
            topics=topics,
            threshold=opts.get("threshold"),
            model=bool(opts.get("model", False)),
            shadow=bool(opts.get("shadow", False)),
            restore=bool(opts.get("restore", False)),
            message=opts.get("message"),
            span=self.span(meta),
        )

    def types_opt(self, meta: Meta, c: list[Token]) -> tuple[str, tuple[str, ...]]:
        return ("types", tuple(str(t) for t in c))

    def categories_opt(self, meta: Meta, c: list[Token]) -> tuple[str, tuple[str, ...]]:
        return ("categories", tuple(str(t) for t in c))

    def threshold_opt(self, meta: Meta, c: list[Token]) -> tuple[str, float]:
        value = self.number(c[0], "threshold")
        if not 0.0 <= value <= 1.0:
            self.bad(c[0], "a threshold is between 0 and 1", "for example threshold 0.6")
        return ("threshold", value)

    def model_opt(self, meta: Meta, c: list[Token]) -> tuple[str, bool]:
        return ("model", True)

    def shadow_opt(self, meta: Meta, c: list[Token]) -> tuple[str, bool]:
        return ("shadow", True)

    def restore_opt(self, meta: Meta, c: list[Token]) -> tuple[str, bool]:
        return ("restore", True)

    def message_opt(self, meta: Meta, c: list[Token]) -> tuple[str, str]:
        return ("message", unquote(c[0]))

    def string_list(self, meta: Meta, c: list[Token]) -> list[str]:
        return [unquote(t) for t in c]

    # ── when ─────────────────────────────────────────────────────────────
    def when_block(self, meta: Meta, c: list[Any]) -> tuple[str, ast.When]:
        settings = _settings([f for f in c[1:] if isinstance(f, _Field)])
        return ("when", ast.When(c[0], settings, self.span(meta)))

    def field_ref(self, meta: Meta, c: list[Token]) -> str:
        return str(c[0])

    def compare_op(self, meta: Meta, c: list[Token]) -> str:
        return str(c[0])

    def compare(self, meta: Meta, c: list[Any]) -> ast.Compare:
        return ast.Compare(c[0], c[1], unquote(c[2]), self.span(meta))

    def member(self, meta: Meta, c: list[Any]) -> ast.Member:
        return ast.Member(c[0], tuple(c[1]), False, self.span(meta))

    def not_member(self, meta: Meta, c: list[Any]) -> ast.Member:
        return ast.Member(c[0], tuple(c[1]), True, self.span(meta))

    def not_op(self, meta: Meta, c: list[Any]) -> ast.Not:
        return ast.Not(c[0], self.span(meta))

    def and_expr(self, meta: Meta, c: list[Any]) -> ast.And:
        return ast.And(tuple(c), self.span(meta))

    def or_expr(self, meta: Meta, c: list[Any]) -> ast.Or:
        return ast.Or(tuple(c), self.span(meta))

    # ── tests ────────────────────────────────────────────────────────────
    def test(self, meta: Meta, c: list[Any]) -> Any:
        app = next((v for v in c[1:] if isinstance(v, tuple) and v[0] == "app"), None)
        request = next((v for v in c[1:] if isinstance(v, ast.TestRequest)), ast.TestRequest())
        expects = tuple(v for v in c[1:] if isinstance(v, ast.Expectation))
        case = ast.TestCase(unquote(c[0]), app[1] if app else None, request, expects, self.span(meta))
        return ("test", case)

    def test_app(self, meta: Meta, c: list[Token]) -> tuple[str, str]:
        return ("app", str(c[0]))

    def test_request(self, meta: Meta, c: list[Any]) -> ast.TestRequest:
        fields = tuple(v for v in c if v[0] != "metadata")
        metadata = tuple(m for v in c if v[0] == "metadata" for m in v[1])
        return ast.TestRequest(fields, metadata, self.span(meta))

    def request_key(self, meta: Meta, c: list[Token]) -> str:
        return str(c[0])

    def request_field(self, meta: Meta, c: list[Any]) -> tuple[str, str]:
        tok = c[1]
        return (c[0], unquote(tok) if tok.type == "STRING" else str(tok))

    def request_metadata(self, meta: Meta, c: list[Any]) -> tuple[str, tuple[tuple[str, str], ...]]:
        return ("metadata", tuple(c))

    def meta_field(self, meta: Meta, c: list[Token]) -> tuple[str, str]:
        return (str(c[0]), unquote(c[1]))

    def negation(self, meta: Meta, c: list[Token]) -> bool:
        return True

    def expect_allow(self, meta: Meta, c: list[Any]) -> ast.Expectation:
        return ast.Expectation("allow", span=self.span(meta))

    def expect_deny(self, meta: Meta, c: list[Any]) -> ast.Expectation:
        return ast.Expectation("deny", str(c[0]) if c else None, span=self.span(meta))

    def expect_forwarded(self, meta: Meta, c: list[Any]) -> ast.Expectation:
        negated = len(c) == 2
        return ast.Expectation("forwarded", unquote(c[-1]), negated, self.span(meta))

    def expect_route(self, meta: Meta, c: list[Any]) -> ast.Expectation:
        return ast.Expectation("route", str(c[0]), span=self.span(meta))

    def expect_fired(self, meta: Meta, c: list[Any]) -> ast.Expectation:
        return ast.Expectation("fired", str(c[0]), span=self.span(meta))

    def expect_max_tokens(self, meta: Meta, c: list[Any]) -> ast.Expectation:
        return ast.Expectation("max_tokens", str(self.count(c[0], "token count", True)), span=self.span(meta))

    def start(self, meta: Meta, c: list[Any]) -> list[Any]:
        return [v[1] if isinstance(v, tuple) and v[0] == "test" else v for v in c]


_SCALARS = ("max_tokens", "rate_limit", "timeout")


@dataclass(frozen=True, slots=True)
class _Field:
    """A statement of a provider, model, app or `when` block: its value and where it is written."""

    key: str
    value: Any
    span: ast.Span


def _pairs(children: list[Any]) -> list[tuple[str, Any]]:
    """(key, value) of every field and option among a node's children, in order."""
    out: list[tuple[str, Any]] = []
    for c in children:
        if isinstance(c, _Field):
            out.append((c.key, c.value))
        elif isinstance(c, tuple) and len(c) == 2:
            out.append(c)
    return out


def _first(children: list[Any]) -> dict[str, Any]:
    """Each key's first value: a repeat is an error (dsl/repeats.py) and the first one is kept."""
    out: dict[str, Any] = {}
    for key, value in _pairs(children):
        out.setdefault(key, value)
    return out


def _spans(children: list[Any]) -> tuple[tuple[str, ast.Span], ...]:
    return tuple((c.key, c.span) for c in children if isinstance(c, _Field))


def _settings(fields: list[_Field]) -> ast.Settings:
    values: dict[str, Any] = {}
    spans: list[tuple[str, ast.Span]] = []
    for f in fields:
        name = "timeout_s" if f.key == "timeout" else f.key
        if name not in values:  # the first is kept, value and span alike
            values[name] = f.value
            spans.append((name, f.span))
    return ast.Settings(**values, spans=tuple(spans))
