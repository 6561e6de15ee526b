"""The house's one rule: dependencies flow server/cli → adapters → engine → dsl, never back."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {"engine": ("adapters", "server", "cli"), "dsl": ("engine", "adapters", "server", "cli"),
             "adapters": ("server", "cli")}  # fmt: skip


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_flows_back(package: str) -> None:
    bad = {str(p.relative_to(ROOT)): sorted(_imports(p) & set(FORBIDDEN[package]))
           for p in (ROOT / package).rglob("*.py")}  # fmt: skip
    assert {k: v for k, v in bad.items() if v} == {}
