"""What crosses a module boundary is an immutable value (GUIDE §4 habits, STYLE: frozen dataclasses).

Compiled plans, limits, guard rules and decisions are shared between
requests and across threads; a mutable one could be changed by one request
under another. Each is a frozen, slotted dataclass, and this pins it.
"""

from __future__ import annotations

import dataclasses
import inspect
from types import ModuleType

import pytest

from engine import compiler, decision, guards

SHARED = (compiler, decision, guards)
MUTABLE_ON_PURPOSE = {"Redactor", "Tally", "GuardResult", "_State"}  # per-request accumulators


def _dataclasses(module: ModuleType) -> list[type]:
    return [c for _, c in inspect.getmembers(module, inspect.isclass)
            if dataclasses.is_dataclass(c) and c.__module__ == module.__name__]  # fmt: skip


@pytest.mark.parametrize("module", SHARED, ids=lambda m: m.__name__)
def test_shared_values_are_frozen_and_slotted(module: ModuleType) -> None:
    for cls in _dataclasses(module):
        if cls.__name__ in MUTABLE_ON_PURPOSE:
            continue
        params = cls.__dataclass_params__  # type: ignore[attr-defined]
        assert params.frozen, f"{cls.__name__} is not frozen"
        assert "__slots__" in cls.__dict__, f"{cls.__name__} is not slotted"
