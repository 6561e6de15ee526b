"""Once-per-scope statements: a repeat is an error at the repeat, naming the first.

The AST keeps one value per setting, so a second `env`, `max_tokens` or
`route` in one block would otherwise be dropped without a word (which one
was kept differed by statement, and `ghat explain` cited another line than
the one that applied). Here every statement of a block may appear once,
except those the language gives a meaning when repeated:

- `header` (once per header name), `fallback` (tried in order), guard rules
  (each evaluated on its own), `when` and `test` blocks, `expect` lines,
  request messages (`user`, `system`… in order), split members (once per
  target);
- `input` / `output` blocks: several blocks of one direction are one block
  written in parts (all of their rules apply), so the block `message` may
  still be set once per direction.

New statements are once-only by default: a grammar change cannot add a
statement whose repeats are silently dropped. The walk runs on the concrete
tree (it has every statement and its position) before the AST is built.
"""

from __future__ import annotations

from collections.abc import Iterator

from lark import Token, Tree

from dsl import ast, rules
from dsl.diagnostics import Diagnostic

# Statements that may repeat in their block, with the meaning the language gives them.
REPEATABLE = frozenset(
    {"fallback_field", "guard", "guard_block", "when_block", "test",
     "expect_allow", "expect_deny", "expect_forwarded", "expect_route", "expect_fired", "expect_max_tokens"}
)  # fmt: skip
# Request fields that are messages, in order; every other request field is set once.
MESSAGE_ROLES = frozenset({"system", "user", "assistant", "tool", "document"})
# Children of a block that are parts of its header or of a statement, not statements.
_PARTS = frozenset(
    {"direction", "compare", "member", "not_member", "not_op", "and_expr", "or_expr",
     "string_list", "compare_op", "field_ref", "token_mode", "rate_scope", "action",
     "negation", "request_key", "holdback_limit", "chars_unit"}
)  # fmt: skip
_WORDS = {
    "test_app": "app", "test_request": "request", "request_metadata": "metadata",
    "detector_type": "type", "detector_ignorecase": "ignorecase", "message_stmt": "message",
    "holdback_stmt": "holdback",
}  # fmt: skip
_HELP = {
    "rate_limit": "one `rate_limit` per scope: a `when` block sets another for the requests it matches",
    "max_tokens": "one `max_tokens` per scope: a `when` block sets another for the requests it matches",
    "timeout": "one `timeout` per scope: a `when` block sets another for the requests it matches",
    "models": "list every model in one statement: `models a, b`",
    "providers": "list every provider in one statement: `providers a, b`",
    "capture": "list both in one statement: `capture prompts, responses`",
    "types": "list every type in one option: `types email, phone`",
    "categories": "list every category in one option: `categories violence, hate`",
    "route": "an alias has one route; add the other model as a `fallback`",
    "split": "put every member in one `split { … }`",
    "message": "one refusal message per block direction; give a rule its own with `… block message \"…\"`",
    "holdback": "one `holdback` per direction, with both bounds in it: `holdback 400ms 2000 chars`",
}


def repeats(tree: Tree[Token], path: str) -> list[Diagnostic]:
    """Every repeated once-per-scope statement in a parsed file, at the repeat."""
    out: list[Diagnostic] = []
    for node in tree.iter_subtrees_topdown():  # type: ignore[no-untyped-call]
        if node.data == "start":
            continue
        seen: dict[str, Tree[Token]] = {}
        for key, stmt in _keyed(node):
            first = seen.setdefault(key, stmt)
            if first is not stmt:
                out.append(_repeat(key, node, first, stmt, path))
        if node.data == "app":  # the block message and holdback are set once per direction, across its blocks
            for data, key in (("message_stmt", "message"), ("holdback_stmt", "holdback")):
                firsts: dict[str, Tree[Token]] = {}
                for block in _children(node, "guard_block"):
                    own = _children(block, data)[:1]  # a repeat inside one block is reported above
                    for stmt in own:
                        first = firsts.setdefault(_direction(block), stmt)
                        if first is not stmt:
                            out.append(_repeat(key, block, first, stmt, path))
    return out


def _keyed(node: Tree[Token]) -> Iterator[tuple[str, Tree[Token]]]:
    """The once-only statements of a block, each with the key that must not repeat."""
    for child in node.children:
        if not isinstance(child, Tree) or child.data in _PARTS or child.data in REPEATABLE:
            continue
        if child.data == "header_field":
            yield f"header {_text(child.children[0]).lower()}", child
        elif child.data == "request_field":
            key = _text(child.children[0])
            if key not in MESSAGE_ROLES:
                yield key, child
        elif child.data in ("meta_field", "price_part"):
            yield _text(child.children[0]), child
        elif child.data == "split_member":
            yield f"member {_text(child.children[0])}", child
        else:
            yield _WORDS.get(child.data, str(child.data).removesuffix("_field").removesuffix("_opt")), child


def _repeat(key: str, scope: Tree[Token], first: Tree[Token], again: Tree[Token], path: str) -> Diagnostic:
    where = f"{path}:{first.meta.line}:{first.meta.column}"
    word = key.removeprefix("member ")
    what = f"split member '{word}'" if key.startswith("member ") else f"`{word}`"
    if key.startswith("member "):
        help = "name each target once, with one weight"
    else:
        help = _HELP.get(key) or f"keep one `{word}`: a repeat has no meaning here"
    return rules.REPEATED.at(
        ast.Span(path, again.meta.line, again.meta.column, again.meta.end_line, again.meta.end_column),
        f"{what} is repeated in {_scope(scope)}; the first is at {where}",
        help,
    )


def _scope(node: Tree[Token]) -> str:
    kind = str(node.data)
    if kind in ("provider", "model", "alias", "app", "detector"):
        return f"{kind} '{_text(node.children[0])}'"
    if kind == "guard_block":
        return f"the `{_direction(node)}` blocks of this app"
    if kind == "guard":
        return f"this '{_text(node.children[0])}' rule"
    names = {
        "when_block": "`when` block", "test": "test", "test_request": "request", "request_metadata": "metadata",
        "price_field": "price", "route_field": "route", "fallback_field": "fallback", "split_member": "split member",
        "split_field": "split",
    }  # fmt: skip
    return "this " + names.get(kind, kind.removesuffix("_field"))


def _direction(block: Tree[Token]) -> str:
    head = block.children[0]
    return _text(head.children[0]) if isinstance(head, Tree) else _text(head)


def _children(node: Tree[Token], rule: str) -> list[Tree[Token]]:
    return [c for c in node.children if isinstance(c, Tree) and c.data == rule]


def _text(part: Tree[Token] | Token | str) -> str:
    if isinstance(part, Tree):
        return _text(part.children[0]) if part.children else ""
    return str(part)
