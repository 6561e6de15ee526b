"""`ghat fmt PATH… [--check] [--diff]`: rewrite policy files in the canonical layout.

`--check` changes nothing and exits 1 listing the files that would change (for
CI); `--diff` prints what would change as a unified diff. Without either, files
are rewritten in place, atomically (a temporary file renamed over the old one),
so an interrupted run never leaves half a policy. A file that does not parse is
left alone and its diagnostics are printed; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("fmt", help="format policy files canonically")
    p.add_argument("paths", nargs="+", type=Path, help="policy files or directories")
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file would change")
    p.add_argument("--diff", action="store_true", help="change nothing; print a unified diff of the changes")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import difflib

    from dsl.diagnostics import render_text
    from dsl.formatter import FormatError, format_text
    from dsl.loader import policy_files

    files, problems = policy_files(args.paths)
    for d in problems:
        print(render_text(d, None), file=sys.stderr)
    status = 1 if problems else 0
    for path in files:
        try:
            text = path.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            print(f"{path}:1:1: error: cannot read: {exc}", file=sys.stderr)
            status = 1
            continue
        try:
            formatted = format_text(text, str(path))
        except FormatError as exc:
            for d in exc.diagnostics:
                print(render_text(d, text), file=sys.stderr)
            status = 1
            continue
        if formatted == text:
            continue
        if args.diff:
            sys.stdout.writelines(
                difflib.unified_diff(
                    text.splitlines(keepends=True), formatted.splitlines(keepends=True),
                    fromfile=f"{path} (original)", tofile=f"{path} (formatted)",
                )
            )  # fmt: skip
        if args.check:
            print(f"would reformat {path}")
        if args.check or args.diff:
            status = 1 if args.check else status
            continue
        _write_atomically(path, formatted)
        print(f"reformatted {path}")
    return status


def _write_atomically(path: Path, text: str) -> None:
    """Temp file in the same directory, fsync, rename: readers see the old file or the new one."""
    import os
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        mode = path.stat().st_mode & 0o7777
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
