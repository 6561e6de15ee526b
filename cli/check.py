"""`ghat check PATH…`: parse, validate and lint a policy set for people and for CI.

Exit status: 0 when nothing reaches `--fail-level` (default error), 1 when
something does, 2 for usage errors (bad flags, a broken config file). It
never prints a traceback: a bug becomes an E000 diagnostic. The check is the
first half of the pipeline `ghat serve` loads with (engine/pipeline.py), and
a set without errors is compiled too, so what passes here the server loads.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

FORMATS = ("text", "json", "sarif", "github", "junit")
FAIL_LEVELS = ("error", "warning", "note", "never")


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "check",
        help="parse, validate and lint policies",
        description="Parse, validate and lint a policy set. Rules: docs/rules.md.",
    )
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="policy files or directories")
    p.add_argument("--format", choices=FORMATS, default="text", help="output format (default: text)")
    p.add_argument(
        "--fail-level",
        choices=FAIL_LEVELS,
        default=None,
        help="lowest level that makes the exit status 1 (default: the config's fail-level, else error)",
    )
    p.add_argument(
        "--config", type=Path, default=None, help="a ghat.toml (default: ghat.toml or .ghat.toml beside the policies)"
    )
    p.add_argument("--output", "-o", type=Path, default=None, help="write the report here instead of stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except Exception as exc:  # the last net: a bug of ours is reported, never a traceback
        print(f"ghat check: internal error: {type(exc).__name__}: {exc} (please report this)", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    from dsl.checker import Config, ConfigError, find_config, load_config
    from dsl.reporters import REPORTERS, summary
    from engine.pipeline import check

    try:
        path = args.config if args.config is not None else find_config(args.paths)
        if args.config is not None and not args.config.is_file():
            raise ConfigError(f"{args.config}: no such config file")
        config = load_config(path) if path is not None else None
    except ConfigError as exc:
        print(f"ghat check: {exc}", file=sys.stderr)
        return 2
    result = check(args.paths, config or Config()).result  # the server's pipeline: what passes here loads there
    fail_level = args.fail_level or (config.fail_level if config else None) or "error"
    report = REPORTERS[args.format](result, fail_level)
    if args.output is not None:
        try:
            args.output.write_text(report, encoding="utf-8")
        except OSError as exc:
            print(f"ghat check: cannot write {args.output}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        if args.format != "text":  # still tell a person at the terminal how it went
            print(summary(result.diagnostics, len(result.sources)), file=sys.stderr)
    else:
        sys.stdout.write(report)
    return 1 if result.fails(fail_level) else 0
