"""Symbol tables of a policy set and the walk from an alias to its models.

Both the checker (closure, cycles, kinds) and the engine's compiler (route
plans) need to follow an alias to the concrete models it can reach; this
module is that one walk.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from dsl import ast


@dataclass
class Index:
    providers: dict[str, ast.Provider] = field(default_factory=dict)
    models: dict[str, ast.Model] = field(default_factory=dict)
    aliases: dict[str, ast.Alias] = field(default_factory=dict)
    detectors: dict[str, ast.CustomDetector] = field(default_factory=dict)
    apps: dict[str, ast.App] = field(default_factory=dict)

    @classmethod
    def of(cls, ps: ast.PolicySet) -> Index:
        """First declaration wins; duplicates are the checker's to report."""
        index = cls()
        for item in ps.items():
            table: dict[str, object] | None = {
                ast.Provider: index.providers,
                ast.Model: index.models,
                ast.Alias: index.aliases,
                ast.CustomDetector: index.detectors,
                ast.App: index.apps,
            }.get(type(item))  # type: ignore[assignment]
            if table is not None:
                table.setdefault(item.name, item)
        return index

    def is_known(self, name: str) -> bool:
        return name in self.models or name in self.aliases

    def targets_of(self, alias: ast.Alias) -> list[ast.Target]:
        """Every candidate an alias names, in declared order: route or split, then fallbacks."""
        head = [alias.route] if alias.route else list(alias.split)
        return [*head, *alias.fallbacks]

    def reachable(self, name: str) -> Iterator[tuple[ast.Model, tuple[ast.Target, ...]]]:
        """Each concrete model reachable from a name, with the path of targets that led there.

        Cycles and unknown names are skipped (the checker reports them).
        """
        yield from self._walk(name, (), frozenset())

    def _walk(
        self, name: str, path: tuple[ast.Target, ...], seen: frozenset[str]
    ) -> Iterator[tuple[ast.Model, tuple[ast.Target, ...]]]:
        if name in self.models:
            yield self.models[name], path
            return
        alias = self.aliases.get(name)
        if alias is None or name in seen:
            return
        for target in self.targets_of(alias):
            yield from self._walk(target.name, (*path, target), seen | {name})

    def kind_of(self, name: str) -> ast.ModelKind | None:
        """chat or embedding; None when unknown or mixed."""
        kinds = {m.kind for m, _ in self.reachable(name)}
        return next(iter(kinds)) if len(kinds) == 1 else None

    def find_cycle(self, name: str) -> list[str] | None:
        """The alias names of a cycle through `name`, if there is one."""

        def visit(current: str, stack: list[str]) -> list[str] | None:
            alias = self.aliases.get(current)
            if alias is None:
                return None
            for target in self.targets_of(alias):
                if target.name == name:
                    return [*stack, current, name]
                if target.name in self.aliases and target.name not in stack and target.name != current:
                    found = visit(target.name, [*stack, current])
                    if found:
                        return found
            return None

        return visit(name, [])
