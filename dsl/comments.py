"""Comments for the formatter: collected from the lexer, attached to CST statements.

The grammar ignores `# …` comments, so the AST has none; the formatter must
still keep every one. A second parser instance reports COMMENT tokens through
a lexer callback (so `#` inside strings and patterns is never mistaken for a
comment), and each comment is attached to a statement of the concrete tree by
line: a whole-line comment leads the next statement of its block, a comment
after code trails the statement that ends on its line, a comment on a block's
opening line stays on that line, and a whole-line comment with no statement
after it in its block dangles before the closing brace.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import lru_cache

from lark import Lark, Token, Tree

from dsl.parser import GRAMMAR_PATH

# Rules whose children are statements, each printed on a line of its own.
BLOCKS = frozenset(
    {"start", "provider", "model", "alias", "split_field", "app", "guard_block",
     "when_block", "test", "test_request", "request_metadata"}
)  # fmt: skip
# Tree children of a block that are parts of its header or of a statement, not statements.
_NOT_STATEMENTS = frozenset(
    {"direction", "compare", "member", "not_member", "not_op", "and_expr", "or_expr",
     "string_list", "compare_op", "field_ref", "token_mode", "rate_scope", "action",
     "negation", "request_key"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Comment:
    line: int
    text: str  # from '#' to the end of the line, trailing blanks dropped
    own_line: bool  # nothing but blanks before it on its line
    blank_after: bool  # the source line after it is empty


@dataclass(slots=True)
class Attached:
    leading: list[Comment] = field(default_factory=list)  # whole-line comments before the statement
    trailing: list[Comment] = field(default_factory=list)  # after the statement's last line
    header: list[Comment] = field(default_factory=list)  # after a block's opening brace
    dangling: list[Comment] = field(default_factory=list)  # before a block's closing brace


_EMPTY = Attached()


class CommentMap:
    """Which comments belong to which CST node, and which blocks hold comments inside."""

    def __init__(self, root: Tree[Token] | None) -> None:
        self.root = root
        self.nodes: dict[int, Attached] = {}
        self.paths: dict[int, tuple[int, ...]] = {}  # node id → ids of its enclosing blocks
        self.inner: set[int] = set()  # blocks that may not collapse to one line

    def of(self, node: Tree[Token] | None) -> Attached:
        return self.nodes.get(id(node), _EMPTY) if node is not None else _EMPTY

    def has_inner(self, node: Tree[Token] | None) -> bool:
        return node is not None and id(node) in self.inner

    def add(self, node: Tree[Token], path: tuple[int, ...], kind: str, comment: Comment) -> None:
        getattr(self.nodes.setdefault(id(node), Attached()), kind).append(comment)
        self.paths[id(node)] = path
        self.inner.update(path)
        if kind in ("header", "dangling"):
            self.inner.add(id(node))

    def all_comments(self) -> list[tuple[int, str, Comment]]:
        kinds = ("leading", "trailing", "header", "dangling")
        return [(nid, k, c) for nid, a in self.nodes.items() for k in kinds for c in getattr(a, k)]

    def move(self, nid: int, kind: str, comment: Comment, host: Tree[Token], how: str) -> None:
        """Re-home a comment whose statement the formatter does not print (a duplicate)."""
        getattr(self.nodes[nid], kind).remove(comment)
        path = self.paths.get(id(host), ()) if how == "leading" else (*self.paths.get(id(host), ()), id(host))
        self.add(host, path, how, Comment(comment.line, comment.text, True, False))


_lock = threading.Lock()
_sink: list[Token] = []


@lru_cache(maxsize=1)
def _comment_parser() -> Lark:
    return Lark(
        GRAMMAR_PATH.read_text(encoding="utf-8"),
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        maybe_placeholders=False,
        lexer_callbacks={"COMMENT": _sink.append},
    )


def collect(text: str) -> tuple[Tree[Token], list[Comment]]:
    """Parse text that is known to be valid; return its CST and its comments in order."""
    lines = text.split("\n")
    with _lock:
        _sink.clear()
        tree = _comment_parser().parse(text)
        tokens = list(_sink)
        _sink.clear()
    comments = []
    for tok in tokens:
        line, col = tok.line or 1, tok.column or 1
        own = not lines[line - 1][: col - 1].strip()
        blank = line < len(lines) and not lines[line].strip()
        comments.append(Comment(line, str(tok).rstrip(), own, blank))
    return tree, comments


def statements(block: Tree[Token]) -> list[Tree[Token]]:
    return [c for c in block.children if isinstance(c, Tree) and c.data not in _NOT_STATEMENTS]


def _lines(node: Tree[Token]) -> tuple[int, int]:
    meta = node.meta
    return (0, 0) if getattr(meta, "empty", True) else (meta.line, meta.end_line)


def attach(root: Tree[Token], comments: list[Comment]) -> CommentMap:
    """Attach every comment to the statement it belongs to (see the module docstring)."""
    cmap = CommentMap(root)
    for c in comments:
        block = root
        path: tuple[int, ...] = (id(root),)
        while True:  # descend to the innermost block whose lines hold the comment
            inside = [k for k in statements(block) if k.data in BLOCKS and _lines(k)[0] <= c.line <= _lines(k)[1]]
            if not inside:
                break
            block = inside[-1]
            path = (*path, id(block))
        kids = statements(block)
        start, end = _lines(block) if block is not root else (0, 1 << 60)
        parent_path = path[:-1]
        if c.own_line:
            nxt = next((k for k in kids if _lines(k)[0] > c.line), None)
            if nxt is not None:
                cmap.add(nxt, path, "leading", c)
            else:
                cmap.add(block, parent_path, "dangling", c)
            continue
        ending = [k for k in kids if _lines(k)[1] == c.line]
        holding = [k for k in kids if _lines(k)[0] <= c.line <= _lines(k)[1]]
        if block is not root and end == c.line:
            cmap.add(block, parent_path, "trailing", c)
        elif ending:
            cmap.add(ending[-1], path, "trailing", c)
        elif block is not root and start == c.line:
            cmap.add(block, parent_path, "header", c)
        elif holding:
            cmap.add(holding[-1], path, "trailing", c)
        else:
            cmap.add(block, parent_path, "dangling", Comment(c.line, c.text, True, False))
    return cmap
