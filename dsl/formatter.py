"""`ghat fmt`: print a policy file in its one canonical layout, keeping every comment.

The AST is printed, not the source, so two files that parse to the same AST
print the same text (P11: `parse(fmt(x)) == parse(x)` and `fmt` is
idempotent). Comments are not in the AST: `dsl.comments` attaches them to
the concrete tree, which is walked beside the AST to find each statement's
comments. The layout rules are documented in `docs/language.md`
("Canonical formatting"); in short: two-space indent, one statement per
line, keys aligned within a block, a blank line between top-level items
except between consecutive one-line items of one kind, and `{ a; b }` on one
line for leaf blocks that fit in 100 columns and hold no comment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal

from lark import Token, Tree

from dsl import ast
from dsl.comments import BLOCKS, Comment, CommentMap, attach, collect, statements
from dsl.cst_to_ast import _RATE_UNITS
from dsl.diagnostics import Diagnostic, has_errors
from dsl.parser import parse_text

WIDTH = 100
INDENT = "  "
Cst = Tree[Token] | None
_QUANTITY = re.compile(r"[0-9]+(\.[0-9]+)?[A-Za-z]*")
_ENV_REF = re.compile(r"env\.[A-Za-z_][A-Za-z0-9_]*")


class FormatError(Exception):
    """The file does not parse cleanly, so it is not formatted; carries the diagnostics."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = diagnostics
        super().__init__(f"{diagnostics[0].span}: {diagnostics[0].message}" if diagnostics else "cannot format")


def format_text(text: str, path: str = "<string>") -> str:
    """The canonical text of a policy file; raises FormatError if it has errors."""
    pf, diags = parse_text(text, path)
    if has_errors(diags):
        raise FormatError([d for d in diags if d.level == "error"])
    tree, comments = collect(text)
    cmap = attach(tree, comments)
    printer = _Printer(cmap)
    out = printer.render(pf.items, tree)
    homeless = printer.homeless()
    if homeless:  # comments of statements not printed (a default such as `kind chat`): keep them near
        for nid, kind, comment, host, how in homeless:
            cmap.move(nid, kind, comment, host, how)
        out = _Printer(cmap).render(pf.items, tree)
    return out


def format_ast(policy_file: ast.PolicyFile) -> str:
    """The canonical text of an AST (no comments): how generated policies are rendered."""
    return _Printer(CommentMap(None)).render(policy_file.items, None)


# ── values ───────────────────────────────────────────────────────────────


def quote(s: str) -> str:
    """A STRING token whose value is `s` (see cst_to_ast.unquote)."""
    body = s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{body}"'


def number(x: float) -> str:
    """The shortest plain decimal that reads back as `x` (no exponent: the grammar has none)."""
    if float(x).is_integer():
        return str(int(x))
    s = repr(float(x))
    return format(Decimal(s), "f") if "e" in s or "E" in s else s


def price(x: float) -> str:
    """Prices: `0` for free, otherwise at least two decimals (0.60, 10.00, 0.075)."""
    if x == 0:
        return "0"
    s = number(x)
    whole, _, frac = s.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def size(n: int) -> str:
    """Token counts: `128k`, `1M` when exact, digits otherwise."""
    for suffix, unit in (("M", 1_000_000), ("k", 1_000)):
        if n and n % unit == 0 and int(float(n // unit) * unit) == n:
            return f"{n // unit}{suffix}"
    return str(n)


def duration(x: float) -> str:
    """Whole hours as `1h`, whole seconds as `20s`, below that `500ms`, else decimal seconds."""
    for suffix, unit in (("h", 3600.0), ("s", 1.0)):
        n = x / unit
        if n >= 1 and n.is_integer() and float(int(n)) * unit == x:
            return f"{int(n)}{suffix}"
    ms = round(x * 1000)
    if ms >= 1 and float(ms) * 0.001 == x:
        return f"{ms}ms"
    return number(x) + "s"


def rate(r: ast.RateLimit) -> str:
    """As written when the text still says the same limit (it is part of the AST), else canonical."""
    n, _, unit = r.text.partition("/")
    if n.isdigit() and int(n) == r.limit and _RATE_UNITS.get(unit) == r.period_s:
        return r.text
    units = {1.0: "s", 60.0: "min", 3600.0: "h", 86400.0: "d"}
    return f"{r.limit}/{units.get(r.period_s, 'min')}"


def expr(e: ast.Expr) -> str:
    """A condition, with parentheses exactly where the AST nests and/or/not."""
    if isinstance(e, ast.Compare):
        return f"{e.field} {e.op} {quote(e.value)}"
    if isinstance(e, ast.Member):
        values = ", ".join(quote(v) for v in e.values)
        return f"{e.field} {'not in' if e.negated else 'in'} [{values}]"
    if isinstance(e, ast.Not):
        return "not " + _wrap(e.operand, (ast.And, ast.Or))
    if isinstance(e, ast.And):
        return " and ".join(_wrap(o, (ast.And, ast.Or)) for o in e.operands)
    return " or ".join(_wrap(o, (ast.Or,)) for o in e.operands)


def _wrap(e: ast.Expr, needs: tuple[type, ...]) -> str:
    return f"({expr(e)})" if isinstance(e, needs) else expr(e)


def _join(*parts: str) -> str:
    return " ".join(p for p in parts if p)


# ── the document: statements and blocks ───────────────────────────────────


@dataclass
class Stmt:
    key: str  # aligned with the keys of neighbouring statements of the same group
    rest: str = ""
    cst: Cst = None
    block: list[Stmt] | None = None  # a `{ … }` after key and rest
    one_line: bool = True  # the block may be printed `{ a; b }` when it fits
    group: str | None = None
    blank_before: bool = False


@dataclass
class _Printer:
    cmap: CommentMap
    lines: list[tuple[int, str, str]] = field(default_factory=list)  # level, code, comment
    used: dict[int, Tree[Token]] = field(default_factory=dict)  # CST nodes whose comments were printed
    blocks_used: set[int] = field(default_factory=set)  # … printed as multi-line blocks

    def render(self, items: tuple[ast.Item, ...], tree: Cst) -> str:
        kids = statements(tree) if tree is not None else []
        csts: list[Cst] = list(kids) if len(kids) == len(items) else [None] * len(items)
        stmts = [_item(i, c) for i, c in zip(items, csts, strict=True)]
        if tree is not None:
            self.used[id(tree)] = tree
            self.blocks_used.add(id(tree))
        self.block(stmts, 0, top=True)
        dangling = self.cmap.of(tree).dangling
        if dangling and self.lines:
            self.lines.append((0, "", ""))
        self.lines.extend((0, c.text, "") for c in dangling)
        return _layout(self.lines)

    def homeless(self) -> list[tuple[int, str, Comment, Tree[Token], str]]:
        """Comments of statements that were not printed (a default such as `kind chat`) and a new home:
        before the closing brace of the innermost block printed as a block, else before the
        innermost printed statement that encloses them."""
        out = []
        for nid, kind, comment in self.cmap.all_comments():
            if nid in self.used:
                continue
            path = self.cmap.paths.get(nid, ())
            home = next((p for p in reversed(path) if p in self.used), None)
            if home is None or self.cmap.root is None:
                host, how = self.cmap.root, "dangling"
            else:
                host, how = self.used[home], "dangling" if home in self.blocks_used else "leading"
            if host is not None:
                out.append((nid, kind, comment, host, how))
        return out

    def inline(self, s: Stmt, level: int) -> str | None:
        """The statement on one line, or None when it must span several."""
        if s.block is None:
            return _join(s.key, s.rest)
        if self.cmap.has_inner(s.cst) or (s.block and not s.one_line):
            return None
        parts = [self.inline(c, level + 1) for c in s.block]
        if any(p is None for p in parts):
            return None
        body = "{ " + "; ".join(p for p in parts if p) + " }" if parts else "{}"
        text = _join(s.key, s.rest, body)
        return text if len(INDENT) * level + len(text) <= WIDTH else None

    def block(self, stmts: list[Stmt], level: int, top: bool = False) -> None:
        inl = [self.inline(s, level) for s in stmts]
        width = _key_widths(stmts, inl)
        for i, s in enumerate(stmts):
            together = i > 0 and inl[i] is not None and inl[i - 1] is not None and s.group is not None
            together = together and stmts[i - 1].group == s.group
            if i > 0 and ((top and not together) or s.blank_before):
                self.lines.append((0, "", ""))
            att = self.cmap.of(s.cst)
            if s.cst is not None:
                self.used[id(s.cst)] = s.cst
            for c in att.leading:
                self.lines.append((level, c.text, ""))
                if c.blank_after:
                    self.lines.append((0, "", ""))
            text = inl[i]
            if text is not None:
                body = text[len(s.key) :]
                code = s.key.ljust(width[i]) + body if body else s.key
                self.lines.append((level, code, " ".join(c.text for c in att.header + att.trailing)))
                continue
            assert s.block is not None
            if s.cst is not None:
                self.blocks_used.add(id(s.cst))
            self.lines.append((level, _join(s.key, s.rest, "{"), " ".join(c.text for c in att.header)))
            self.block(s.block, level + 1)
            self.lines.extend((level + 1, c.text, "") for c in att.dangling)
            self.lines.append((level, "}", " ".join(c.text for c in att.trailing)))


def _key_widths(stmts: list[Stmt], inl: list[str | None]) -> list[int]:
    """Per statement, the width its key is padded to: the widest key of its run."""
    widths = [0] * len(stmts)
    i = 0
    while i < len(stmts):
        j = i + 1
        if stmts[i].group is not None and inl[i] is not None:
            while j < len(stmts) and stmts[j].group == stmts[i].group and inl[j] is not None:
                j += 1
        w = max(len(s.key) for s in stmts[i:j])
        for k in range(i, j):
            widths[k] = w
        i = j
    return widths


def _layout(lines: list[tuple[int, str, str]]) -> str:
    """Indent, and align trailing comments of consecutive lines at one column."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        j = i
        while j < len(lines) and lines[j][2] and lines[j][1] and lines[j][0] == lines[i][0]:
            j += 1
        if j > i:
            col = max(len(code) for _, code, _ in lines[i:j]) + 2
            out.extend(INDENT * lv + code.ljust(col) + com for lv, code, com in lines[i:j])
            i = j
            continue
        lv, code, com = lines[i]
        text = _join(code, com) if code else com
        out.append(INDENT * lv + text if text else "")
        i += 1
    while out and not out[-1]:
        out.pop()
    return "\n".join(out) + "\n" if out else ""


# ── the AST, statement by statement, beside its concrete tree ────────────


def _find(cst: Cst, rule: str, nth: int = -1) -> Cst:
    found = _all(cst, rule)
    return found[nth] if found and -len(found) <= nth < len(found) else None


def _all(cst: Cst, rule: str) -> list[Tree[Token]]:
    return [] if cst is None else [c for c in statements(cst) if c.data == rule]


def _nth(found: list[Tree[Token]], i: int) -> Cst:
    return found[i] if i < len(found) else None


def _item(item: ast.Item, cst: Cst) -> Stmt:
    if isinstance(item, ast.Provider):
        return _provider(item, cst)
    if isinstance(item, ast.Model):
        return _model(item, cst)
    if isinstance(item, ast.Alias):
        return _alias(item, cst)
    if isinstance(item, ast.CustomDetector):
        pattern = "/" + item.pattern.replace("/", "\\/") + "/"
        rest = _join("pattern", pattern, f"type {item.type}" if item.type else "", "ignorecase" * item.ignorecase)
        return Stmt(f"detector {item.name}", rest, cst, group="detector")
    if isinstance(item, ast.App):
        return _app(item, cst)
    return _test(item, cst)


def _provider(p: ast.Provider, cst: Cst) -> Stmt:
    body: list[Stmt] = []
    if p.kind:
        body.append(Stmt("kind", p.kind, _find(cst, "kind_field"), group="f"))
    if p.base_url is not None:
        body.append(Stmt("base_url", quote(p.base_url), _find(cst, "base_url_field"), group="f"))
    key = f"env.{p.api_key_env}" if p.api_key_env else quote(p.api_key_literal) if p.api_key_literal else None
    if key is not None:
        body.append(Stmt("api_key", key, _find(cst, "api_key_field"), group="f"))
    headers = _all(cst, "header_field")
    for i, (name, value) in enumerate(p.headers):
        shown = value if _ENV_REF.fullmatch(value) else quote(value)
        body.append(Stmt("header", f"{quote(name)} {shown}", _nth(headers, i), group="f"))
    if p.timeout_s is not None:
        body.append(Stmt("timeout", duration(p.timeout_s), _find(cst, "timeout_field"), group="f"))
    return Stmt(f"provider {p.name}", "", cst, body, one_line=len(body) <= 2, group="provider")


def _model(m: ast.Model, cst: Cst) -> Stmt:
    body: list[Stmt] = []
    if m.kind != "chat":
        body.append(Stmt("kind", m.kind, _find(cst, "kind_field"), group="f"))
    if m.price is not None:
        pr = m.price
        text = _join(
            f"in {price(pr.input)}",
            f"out {price(pr.output)}" if pr.output else "",
            f"cached {price(pr.cached_input)}" if pr.cached_input is not None else "",
            f"per {size(pr.per)}",
        )
        body.append(Stmt("price", text, _find(cst, "price_field"), group="f"))
    if m.context is not None:
        body.append(Stmt("context", size(m.context), _find(cst, "context_field"), group="f"))
    if m.upstream is not None:
        body.append(Stmt("upstream", quote(m.upstream), _find(cst, "upstream_field"), group="f"))
    if not body:
        return Stmt(f"model {m.name}", "", cst, group="model")
    return Stmt(f"model {m.name}", "", cst, body, group="model")


def _target(t: ast.Target) -> str:
    return _join(
        f"timeout {duration(t.timeout_s)}" if t.timeout_s is not None else "",
        f"retries {t.retries}" if t.retries is not None else "",
    )


def _alias(a: ast.Alias, cst: Cst) -> Stmt:
    body: list[Stmt] = []
    if a.route is not None:
        body.append(Stmt("route", _join(a.route.name, _target(a.route)), _find(cst, "route_field", 0), group="f"))
    if a.split:
        split_cst = _find(cst, "split_field", 0)
        members = _all(split_cst, "split_member")
        rows = [
            Stmt(t.name, _join(f"weight {number(t.weight or 0.0)}", _target(t)), _nth(members, i), group="m")
            for i, t in enumerate(a.split)
        ]
        body.append(Stmt("split", "", split_cst, rows, group="f"))
    fallbacks = _all(cst, "fallback_field")
    for i, t in enumerate(a.fallbacks):
        body.append(Stmt("fallback", _join(t.name, _target(t)), _nth(fallbacks, i), group="f"))
    return Stmt(f"alias {a.name}", "", cst, body, one_line=False)


def _settings(s: ast.Settings, cst: Cst) -> list[Stmt]:
    out: list[Stmt] = []
    if s.max_tokens is not None:
        mode = "reject" if s.max_tokens.mode == "reject" else ""
        out.append(Stmt("max_tokens", _join(str(s.max_tokens.limit), mode), _find(cst, "max_tokens_field"), group="f"))
    if s.rate_limit is not None:
        per = "per key" if s.rate_limit.per == "key" else ""
        text = _join(rate(s.rate_limit), per, "raise" if s.rate_limit.raises else "")
        out.append(Stmt("rate_limit", text, _find(cst, "rate_limit_field"), group="f"))
    if s.timeout_s is not None:
        out.append(Stmt("timeout", duration(s.timeout_s), _find(cst, "timeout_field"), group="f"))
    return out


def _guard(g: ast.Guard, cst: Cst) -> Stmt:
    rest = _join(
        "[" + ", ".join(quote(t) for t in g.topics) + "]" if g.topics else "",
        g.action,
        "types " + ", ".join(g.types) if g.types else "",
        "categories " + ", ".join(g.categories) if g.categories else "",
        f"threshold {number(g.threshold)}" if g.threshold is not None else "",
        "model" * g.model,
        "shadow" * g.shadow,
        "restore" * g.restore,
        f"message {quote(g.message)}" if g.message is not None else "",
    )
    return Stmt(g.detector, rest, cst)


def _as_written(a: ast.App) -> tuple[ast.GuardBlock, ...]:
    """The app's guard blocks as the source has them; its combined blocks when it has no such
    record (a generated AST) or the record disagrees with them: what is enforced is printed."""
    written = a.guard_blocks
    if (ast.combine(written, "input"), ast.combine(written, "output")) == (a.input, a.output):
        return written
    return a.blocks()


def _guard_block(b: ast.GuardBlock, cst: Cst) -> Stmt:
    found = _all(cst, "guard")
    body = [_guard(g, _nth(found, i)) for i, g in enumerate(b.guards)]
    if b.message is not None:
        body.append(Stmt("message", quote(b.message), _find(cst, "message_stmt")))
    if b.holdback is not None:
        h = b.holdback
        bounds = [duration(h.seconds)] if h.seconds is not None else []
        bounds += [f"{h.chars} chars"] if h.chars is not None else []
        body.append(Stmt("holdback", " ".join(bounds), _find(cst, "holdback_stmt")))
    return Stmt(b.direction, "", cst, body, group="io")


def _app(a: ast.App, cst: Cst) -> Stmt:
    body: list[Stmt] = []
    if a.env is not None:
        body.append(Stmt("env", a.env, _find(cst, "env_field"), group="f"))
    if a.models:
        body.append(Stmt("models", ", ".join(t.name for t in a.models), _find(cst, "models_field"), group="f"))
    if a.providers is not None:
        body.append(Stmt("providers", ", ".join(a.providers), _find(cst, "providers_field"), group="f"))
    if a.capture:
        body.append(Stmt("capture", ", ".join(a.capture), _find(cst, "capture_field"), group="f"))
    body += _settings(a.settings, cst)
    if a.max_scan is not None:
        body.append(Stmt("max_scan", size(a.max_scan), _find(cst, "max_scan_field"), group="f"))
    if a.shadow:
        body.append(Stmt("shadow", "", _find(cst, "shadow_field")))
    blocks = _all(cst, "guard_block")
    written = _as_written(a)
    for direction in ("input", "output"):
        mine = [b for b in blocks if str(b.children[0].children[0]) == direction]  # type: ignore[union-attr]
        for i, block in enumerate(b for b in written if b.direction == direction):
            body.append(_guard_block(block, _nth(mine, i)))
    whens = _all(cst, "when_block")
    for i, w in enumerate(a.whens):
        wcst = _nth(whens, i)
        body.append(Stmt("when", expr(w.condition), wcst, _settings(w.settings, wcst)))
    tests = _all(cst, "test")
    for i, t in enumerate(a.tests):
        stmt = _test(t, _nth(tests, i))
        stmt.blank_before = True
        body.append(stmt)
    return Stmt(f"app {a.name}", "", cst, body, one_line=False)


def _expect(e: ast.Expectation, cst: Cst) -> Stmt:
    value = e.value or ""
    if e.kind == "forwarded":
        return Stmt("expect", _join("forwarded", "not" * e.negated, "contains", quote(value)), cst)
    return Stmt("expect", _join(e.kind, value), cst)


def _test(t: ast.TestCase, cst: Cst) -> Stmt:
    body: list[Stmt] = []
    if t.app is not None:
        body.append(Stmt("app", t.app, _find(cst, "test_app")))
    if t.request != ast.TestRequest():
        rcst = _find(cst, "test_request", 0)
        found = _all(rcst, "request_field")
        rows = [Stmt(k, _value(k, v), _nth(found, i), group="f") for i, (k, v) in enumerate(t.request.fields)]
        if t.request.metadata:
            blocks = _all(rcst, "request_metadata")
            metas = [m for b in blocks for m in statements(b)]
            meta_rows = [Stmt(k, quote(v), _nth(metas, i)) for i, (k, v) in enumerate(t.request.metadata)]
            rows.append(Stmt("metadata", "", blocks[0] if blocks else None, meta_rows))
        body.append(Stmt("request", "", rcst, rows))
    expects = [c for c in statements(cst)] if cst is not None else []
    expects = [c for c in expects if str(c.data).startswith("expect_")]
    body += [_expect(e, _nth(expects, i)) for i, e in enumerate(t.expectations)]
    return Stmt(f"test {quote(t.name)}", "", cst, body, one_line=False)


def _value(key: str, value: str) -> str:
    return value if key == "max_tokens" and _QUANTITY.fullmatch(value) else quote(value)


__all__ = ["BLOCKS", "FormatError", "Stmt", "format_ast", "format_text"]
