"""`ghat check PATH…`: parse, validate and lint a policy set."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("check", help="parse, validate and lint policies")
    p.add_argument("paths", nargs="+", type=Path, help="policy files or directories")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dsl.check import validate
    from dsl.diagnostics import has_errors, render_text
    from dsl.loader import load

    loaded = load(args.paths)
    diags = loaded.diagnostics + validate(loaded.policy_set)
    for d in diags:
        print(render_text(d, loaded.sources.get(d.span.file)), file=sys.stdout)
    return 1 if has_errors(diags) else 0
