"""First parser pass: text → Lark tree, with recovery and friendly errors.

The whole file is parsed at once; when that fails, the file is cut at its
top-level items (a line that starts with a declaration keyword) and each piece
is parsed on its own with the rest blanked out, so positions stay exact and one
run reports every broken item. No raw Lark error ever reaches a user.
"""

from __future__ import annotations

import hashlib
import re
import sys
from functools import lru_cache
from pathlib import Path

from lark import Lark, Token, Tree
from lark.exceptions import (
    LarkError,
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
    VisitError,
)

from dsl import ast
from dsl.cst_to_ast import CstToAst
from dsl.diagnostics import Diagnostic
from dsl.parsecache import cache_dir

GRAMMAR_PATH = Path(__file__).with_name("grammar.lark")
_ITEM_START = re.compile(r"^(provider|model|alias|detector|app|test)\b", re.MULTILINE)
MAX_POLICY_BYTES = 5_000_000


@lru_cache(maxsize=1)
def lark_parser() -> Lark:
    """The LALR parser, built once per process and its tables cached on disk across processes.

    Building the LALR tables costs 120-370 ms (the larger on a loaded machine) at every
    `ghat` start; loading them back costs a few ms. Lark checks the grammar's hash before
    it uses a cache file, and carries on without one if it cannot read or write it.
    """
    grammar = GRAMMAR_PATH.read_text(encoding="utf-8")
    return Lark(
        grammar,
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        maybe_placeholders=False,
        cache=_cache_file(grammar),
    )


def _cache_file(grammar: str) -> str | bool:
    """A cache path in a directory only this user can write, never the shared temp dir.

    Lark's default (`cache=True`) writes a pickle to the system temp directory, which
    another local user could plant; `GHAT_CACHE_DIR` (or the user cache dir) is ours.
    """
    import lark

    root = cache_dir()
    if root is None:
        return False
    tag = hashlib.sha256(grammar.encode()).hexdigest()[:16]
    return str(root / f"grammar-{tag}-lark{lark.__version__}-py{sys.version_info[0]}{sys.version_info[1]}.cache")


def parse_text(text: str, path: str = "<string>") -> tuple[ast.PolicyFile, list[Diagnostic]]:
    """Parse one file's text. Never raises: problems come back as diagnostics."""
    if len(text) > MAX_POLICY_BYTES:
        span = ast.Span(path, 1, 1, 1, 1)
        return ast.PolicyFile(path, (), text), [
            Diagnostic("E005", "syntax/file-too-large", "error",
                       f"policy file is larger than {MAX_POLICY_BYTES} bytes", span)
        ]  # fmt: skip
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        span = ast.Span(path, line, 1, line, 2)
        return ast.PolicyFile(path, (), text), [
            Diagnostic("E004", "syntax/binary-content", "error",
                       "policy file contains NUL bytes: is this a text file?", span)
        ]  # fmt: skip
    try:
        tree = lark_parser().parse(text)
    except UnexpectedInput:
        return _parse_pieces(text, path)
    except LarkError as exc:  # a grammar-level failure: still a diagnostic
        return ast.PolicyFile(path, (), text), [_internal(path, exc)]
    items, diags = _to_ast(tree, path)
    return ast.PolicyFile(path, tuple(items), text), diags


def parse_file(path: Path) -> tuple[ast.PolicyFile, list[Diagnostic]]:
    """Read and parse a file; unreadable or non-UTF-8 files become diagnostics."""
    name = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return ast.PolicyFile(name, ()), [
            Diagnostic("E006", "syntax/unreadable-file", "error",
                       f"cannot read file: {exc.strerror or exc}", ast.Span(name, 1, 1, 1, 1))
        ]  # fmt: skip
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return ast.PolicyFile(name, ()), [
            Diagnostic("E003", "syntax/invalid-utf8", "error",
                       f"file is not valid UTF-8 (byte {exc.start})", ast.Span(name, line, 1, line, 2),
                       "save policy files as UTF-8")
        ]  # fmt: skip
    return parse_text(text, name)


def _to_ast(tree: Tree[Token], path: str) -> tuple[list[ast.Item], list[Diagnostic]]:
    builder = CstToAst(path)
    try:
        items = builder.transform(tree)
    except VisitError as exc:  # a bug of ours: report it as a diagnostic, not a traceback
        return [], [_internal(path, exc.orig_exc)]
    return list(items), builder.diagnostics


def _parse_pieces(text: str, path: str) -> tuple[ast.PolicyFile, list[Diagnostic]]:
    starts = [m.start() for m in _ITEM_START.finditer(text)]
    if not starts or starts[0] != 0:
        starts.insert(0, 0)
    bounds = list(zip(starts, [*starts[1:], len(text)], strict=True))
    items: list[ast.Item] = []
    diags: list[Diagnostic] = []
    parser = lark_parser()
    for lo, hi in bounds:
        piece = _blank(text[:lo]) + text[lo:hi]
        if not piece.strip():
            continue
        try:
            tree = parser.parse(piece)
        except UnexpectedInput as exc:
            diags.append(friendly_error(exc, piece, path))
            continue
        except LarkError as exc:
            diags.append(_internal(path, exc))
            continue
        more, more_diags = _to_ast(tree, path)
        items.extend(more)
        diags.extend(more_diags)
    return ast.PolicyFile(path, tuple(items), text), diags


def _blank(prefix: str) -> str:
    """Keep line structure (so positions stay exact) and drop everything else."""
    return re.sub(r"[^\n]", " ", prefix)


# ── friendly messages ────────────────────────────────────────────────────

_TERMINAL_NAMES = {
    "NAME": "a name",
    "MODEL_REF": "a model name like openai/gpt-4o",
    "STRING": 'a "string"',
    "QUANTITY": "a number",
    "RATE": "a rate like 600/min",
    "REGEX": "a /pattern/",
    "ENV_REF": "env.VARIABLE",
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "LSQB": "'['",
    "RSQB": "']'",
    "LPAR": "'('",
    "RPAR": "')'",
    "COMMA": "','",
    "SEMICOLON": "';'",
    "_NL": "end of line",
    "$END": "end of file",
}


def _describe(expected: set[str]) -> str:
    words: list[str] = []
    for name in sorted(expected):
        if name.startswith("__ANON") or name in ("SEMICOLON", "_NL"):
            continue
        label = _TERMINAL_NAMES.get(name)
        if label is None:
            label = f"'{name.lower()}'"
        if label not in words:
            words.append(label)
    if not words:
        return "end of statement"
    if len(words) > 8:
        return ", ".join(words[:8]) + ", …"
    return ", ".join(words)


def friendly_error(exc: UnexpectedInput, text: str, path: str) -> Diagnostic:
    """Turn a Lark error into a diagnostic a policy author can act on."""
    line, col = max(exc.line, 1), max(exc.column, 1)
    end_col = col + 1
    help: str | None = None
    if isinstance(exc, UnexpectedCharacters):
        pos = exc.pos_in_stream or 0
        ch = text[pos] if pos < len(text) else ""
        message = f"unexpected character {ch!r}"
        if ch == '"':
            message, help = "unterminated string", 'close the string with " on the same line'
        elif ch == "=":
            message, help = "'=' is not an operator here", "compare with '==' or '!='"
        elif ch == ":":
            message, help = "fields take no ':'", "write `max_tokens 1024`, not `max_tokens: 1024`"
        elif ch == "/":
            help = "a pattern is written /like this/ and a rate as 600/min"
        elif ch in "'`":
            help = 'strings use double quotes: "like this"'
        return Diagnostic("E007", "syntax/unexpected-character", "error", message,
                          ast.Span(path, line, col, line, end_col), help)  # fmt: skip
    if isinstance(exc, UnexpectedEOF):
        expected: set[str] = {str(t) for t in exc.expected}
        message = "unexpected end of file"
        if "RBRACE" in expected:
            message, help = "unexpected end of file: a block is not closed", "add the missing '}'"
        span = _eof_span(text, path)
        return Diagnostic("E002", "syntax/unexpected-eof", "error", message, span, help)
    if isinstance(exc, UnexpectedToken):
        tok = exc.token
        expected = {str(t) for t in (exc.accepts or exc.expected)}
        if tok.type == "$END":
            span = _eof_span(text, path)
            help = "add the missing '}'" if "RBRACE" in expected else None
            return Diagnostic("E002", "syntax/unexpected-eof", "error",
                              "unexpected end of file: a block is not closed", span, help)  # fmt: skip
        shown = "end of line" if tok.type == "_NL" else repr(str(tok))
        message = f"unexpected {shown}; expected {_describe(expected)}"
        if tok.type == "_NL" and "RBRACE" in expected and len(expected) < 4:
            help = "this statement is not finished"
        elif str(tok) in ("=",):
            help = "compare with '=='"
        elif tok.type == "NAME" and "RBRACE" in expected:
            help = f"'{tok}' is not a field here; see docs/language.md for the fields of this block"
        end_col = (tok.end_column or col + 1) if tok.end_line == tok.line else col + 1
        return Diagnostic("E001", "syntax/unexpected-token", "error", message,
                          ast.Span(path, line, col, line, end_col), help)  # fmt: skip
    return Diagnostic("E001", "syntax/unexpected-token", "error", "syntax error",
                      ast.Span(path, line, col, line, end_col))  # fmt: skip


def _eof_span(text: str, path: str) -> ast.Span:
    lines = text.split("\n")
    line = len(lines)
    col = len(lines[-1]) + 1
    return ast.Span(path, line, col, line, col + 1)


def _internal(path: str, exc: BaseException) -> Diagnostic:
    return Diagnostic("E000", "syntax/internal-error", "error",
                      f"internal parser error: {type(exc).__name__}: {exc}",
                      ast.Span(path, 1, 1, 1, 1), "please report this with the policy file")  # fmt: skip
