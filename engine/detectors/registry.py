"""Build a configured detector for a guard rule.

Built-in families register a factory here (`BUILTIN_FACTORIES`); custom
pattern detectors come from the policy. The compiler calls `build` once per
rule, so nothing here runs per request.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Callable
from dataclasses import replace

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


# Built detectors by their options, shared while any compiled policy holds them. Two thousand apps that
# copy one guard block would otherwise compile the same patterns two thousand times (8 s and ~400 MB at
# 2,000 apps, bench/RESULTS.md "Large policy sets"); a reload finds the detectors of the version it replaces.
_BUILT: weakref.WeakValueDictionary[tuple[ast.Guard, ast.CustomDetector | None], Detector] = (
    weakref.WeakValueDictionary()
)
_BUILT_LOCK = threading.Lock()


def build(guard: ast.Guard, custom: dict[str, ast.CustomDetector]) -> Detector:
    """The detector for a rule's options, built once for every rule that has the same options.

    A detector never depends on the action (P4), the message or the enforcement level, so those are left
    out of the key; spans are ignored by equality. Detectors keep no per-request state, so sharing is safe.
    """
    spec = custom.get(guard.detector)
    key = (replace(guard, action="detect", shadow=False, restore=False, message=None), spec)
    with _BUILT_LOCK:
        found = _BUILT.get(key)
    if found is not None:
        return found
    detector = _build(guard, spec)
    with _BUILT_LOCK, contextlib.suppress(TypeError):  # a class without weak references: built per rule
        _BUILT[key] = detector
    return detector


def _build(guard: ast.Guard, spec: ast.CustomDetector | None) -> Detector:
    if spec is not None:
        return PatternDetector(spec)
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
