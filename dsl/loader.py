"""Load a policy set: every `.policy` file under the given paths, parsed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dsl import ast
from dsl.diagnostics import Diagnostic
from dsl.parser import parse_file


@dataclass(frozen=True)
class Loaded:
    policy_set: ast.PolicySet
    diagnostics: list[Diagnostic]
    sources: dict[str, str]  # path → text, for rendering carets


def policy_files(paths: list[Path]) -> tuple[list[Path], list[Diagnostic]]:
    """Expand directories into their `.policy` files, in a stable order."""
    files: list[Path] = []
    diags: list[Diagnostic] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*.policy") if p.is_file()))
        elif path.exists():
            files.append(path)
        else:
            diags.append(
                Diagnostic("E006", "syntax/unreadable-file", "error", "no such file or directory",
                           ast.Span(str(path), 1, 1, 1, 1))
            )  # fmt: skip
    return files, diags


def load(paths: list[Path]) -> Loaded:
    """Parse every file; names are global across the files of one set."""
    files, diags = policy_files(paths)
    parsed: list[ast.PolicyFile] = []
    for file in files:
        pf, more = parse_file(file)
        parsed.append(pf)
        diags.extend(more)
    sources = {pf.path: pf.source for pf in parsed}
    return Loaded(ast.PolicySet(tuple(parsed)), diags, sources)
