"""Build a configured detector for a guard rule.

Built-in families register a factory here (`BUILTIN_FACTORIES`); custom
pattern detectors come from the policy. The compiler calls `build` once per
rule, so nothing here runs per request.
"""

from __future__ import annotations

from collections.abc import Callable

from dsl import ast
from engine.detectors.base import Detector
from engine.detectors.custom import PatternDetector

# name → factory(guard) -> Detector. Each built-in family module adds itself.
BUILTIN_FACTORIES: dict[str, Callable[[ast.Guard], Detector]] = {}


def register(name: str) -> Callable[[Callable[[ast.Guard], Detector]], Callable[[ast.Guard], Detector]]:
    """Decorator for a built-in family's factory."""

    def deco(factory: Callable[[ast.Guard], Detector]) -> Callable[[ast.Guard], Detector]:
        BUILTIN_FACTORIES[name] = factory
        return factory

    return deco


class UnavailableDetector(Exception):
    """A guard names a built-in with no registered factory: the catalogue and the detectors disagree (a bug)."""


def build(guard: ast.Guard, custom: dict[str, ast.CustomDetector]) -> Detector:
    if guard.detector in custom:
        return PatternDetector(custom[guard.detector])
    _load_builtins()
    factory = BUILTIN_FACTORIES.get(guard.detector)
    if factory is None:
        raise UnavailableDetector(f"detector '{guard.detector}' is not available")
    return factory(guard)


def _load_builtins() -> None:
    """Import the built-in family modules once (lazily: `ghat check` needs none); each registers its factory."""
    import importlib

    for module in ("pii", "secrets", "injection", "topics", "safety", "groundedness"):
        importlib.import_module(f"engine.detectors.{module}")
