"""A reload's check, run in a child process so the serving process does not pay for it.

Checking 2,000 apps is ~0.15 s of pure Python; in a thread of the server it
holds the interpreter lock that the event loop needs, and latency rises while
it runs. The child (`python -m engine.verdict PATH…`) loads and checks the set
exactly as `engine/pipeline.py` does — the same loader, the same checker, the
same `ghat.toml` — and prints the diagnostics with a digest of every file it
read. The server then loads the files itself (the child has left every file it
parsed in the disk cache) and compiles with those diagnostics, provided each
digest matches the text it read; if a file changed in between, or the child
could not run, the server checks in process as before.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dsl import ast
from dsl.diagnostics import Diagnostic

TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Verdict:
    """What the child found: every diagnostic, and the digest of each file's text it checked."""

    diagnostics: list[Diagnostic]
    digests: dict[str, str]

    def matches(self, sources: dict[str, str]) -> bool:
        """Whether `sources` are the very texts the child checked."""
        return digests(sources) == self.digests


def digests(sources: dict[str, str]) -> dict[str, str]:
    return {path: hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest() for path, text in sources.items()}


def to_json(verdict: Verdict) -> str:
    rows = [[d.code, d.rule, d.level, d.message, [d.span.file, d.span.line, d.span.col, d.span.end_line,
             d.span.end_col], d.help] for d in verdict.diagnostics]  # fmt: skip
    return json.dumps({"diagnostics": rows, "digests": verdict.digests})


def from_json(text: str) -> Verdict:
    data: dict[str, Any] = json.loads(text)
    out = [Diagnostic(code, rule, level, message, ast.Span(*span), help)
           for code, rule, level, message, span, help in data["diagnostics"]]  # fmt: skip
    return Verdict(out, {str(k): str(v) for k, v in data["digests"].items()})


def check_here(paths: Sequence[Path]) -> Verdict:
    """Load and check as the pipeline does (what the child runs)."""
    from dsl.checker import check_policy_set
    from dsl.loader import ParseCache, load
    from dsl.parsecache import DiskCache
    from engine.pipeline import config_for

    config = config_for(paths)
    loaded = load(list(paths), ParseCache(disk=DiskCache.default()))
    diagnostics = check_policy_set(loaded.policy_set, loaded.sources, config, loaded.diagnostics)
    return Verdict(diagnostics, digests(loaded.sources))


def check_in_child(paths: Sequence[Path], timeout_s: float = TIMEOUT_S) -> Verdict | None:
    """The verdict of a child process, or None when it cannot be had (the caller then checks in process)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(os.path.abspath(p or ".") for p in sys.path)}
    try:
        done = subprocess.run([sys.executable, "-m", "engine.verdict", *map(str, paths)], env=env,
                              capture_output=True, timeout=timeout_s, check=False)  # fmt: skip
        if done.returncode != 0:
            return None
        return from_json(done.stdout.decode("utf-8"))
    except (OSError, subprocess.SubprocessError, ValueError, KeyError, TypeError):
        return None


def main(argv: Sequence[str]) -> int:
    from engine.pipeline import PolicySetError

    try:
        verdict = check_here([Path(a) for a in argv])
    except PolicySetError:
        return 1  # the server meets the same error checking in process, and says it there
    sys.stdout.write(to_json(verdict))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
