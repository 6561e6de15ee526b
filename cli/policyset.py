"""The policy set of a review command (`test`, `explain`, `replay`), built as the server builds it.

One place turns the pipeline's refusals into what a person reads: diagnostics
with their source lines (exit 1), or a usage error such as an unknown env or
a broken `ghat.toml` (exit 2). Never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.compiler import CompiledPolicy


def compiled(
    command: str, paths: Sequence[Path], env: str | None, *, env_must_exist: bool = True
) -> CompiledPolicy | int:
    """The compiled set, or the exit status after saying why there is none."""
    from dsl.diagnostics import PolicyError, render_text
    from engine.detectors.registry import UnavailableDetector
    from engine.pipeline import CheckFailed, PolicySetError, build

    try:
        policy = build(paths, env, env_must_exist=env_must_exist).policy
    except CheckFailed as exc:
        for d in exc.diagnostics:
            print(render_text(d, exc.sources.get(d.span.file)), file=sys.stderr)
        print(f"ghat {command}: the policy set does not compile", file=sys.stderr)
        return 1
    except PolicyError as exc:  # raised by the compiler itself: no sources at hand
        for d in exc.diagnostics:
            print(render_text(d, None), file=sys.stderr)
        return 1
    except PolicySetError as exc:
        print(f"ghat {command}: {exc}", file=sys.stderr)
        return 2
    except (UnavailableDetector, OSError) as exc:
        print(f"ghat {command}: cannot compile the policy set: {exc}", file=sys.stderr)
        return 1
    assert policy is not None
    return policy
