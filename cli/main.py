"""The `ghat` command: one subcommand per module under `cli/`.

Each module exposes `register(subparsers)`, which adds its parser and sets
`func` to a `run(args) -> int`. Modules keep heavy imports inside `run`, so
`ghat --help` and `ghat check` start fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# In the order `ghat --help` lists them.
COMMANDS = (
    "serve", "check", "fmt", "test", "explain", "scan", "keys",
    "logs", "usage", "replay", "smoke", "bench",
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ghat", description="ghat: a policy-as-code AI gateway."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:  # a file named on the command line that cannot be read or written
        where = f": {exc.filename}" if exc.filename else ""
        print(f"ghat {args.command}: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except UnicodeDecodeError as exc:
        print(f"ghat {args.command}: input is not UTF-8 text ({exc.reason} at byte {exc.start})", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
