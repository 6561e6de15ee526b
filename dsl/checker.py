"""`ghat check` as a library: parse, validate, lint, then apply config and ignores.

The pipeline in one place: `loader.load` (syntax, E0xx) → `check.PASSES`
(validation) → `lint.PASSES` (warnings) → per-rule levels from `ghat.toml` →
inline `# ghat: ignore[…]` comments → sorted. The CLI, the engine's compiler
and editors call `check_paths` / `check_policy_set`, so all agree on what a
failing policy set is.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeAlias

from dsl import ast, check, lint, rules
from dsl.diagnostics import LEVEL_RANK, Diagnostic, Level
from dsl.loader import load
from dsl.resolve import Index

Setting: TypeAlias = Literal["error", "warning", "note", "off"]
SETTINGS: tuple[Setting, ...] = ("error", "warning", "note", "off")
FailLevel: TypeAlias = Literal["error", "warning", "note", "never"]
FAIL_LEVELS: tuple[FailLevel, ...] = ("error", "warning", "note", "never")
CONFIG_NAMES = ("ghat.toml", ".ghat.toml")
_IGNORE = re.compile(r"#\s*ghat:\s*ignore(?:\[([^\]]*)\])?")


class ConfigError(Exception):
    """A config file that cannot be read or names unknown rules: a usage error (exit 2)."""


@dataclass(frozen=True)
class Config:
    """Per-rule levels (by rule name) and the default fail level; empty means the defaults."""

    levels: dict[str, Setting] = field(default_factory=dict)
    fail_level: FailLevel | None = None
    path: str | None = None

    def level_of(self, diag: Diagnostic) -> Setting:
        return self.levels.get(diag.rule, diag.level)


@dataclass(frozen=True)
class CheckResult:
    policy_set: ast.PolicySet
    diagnostics: list[Diagnostic]
    sources: dict[str, str]  # path → text, for carets; one entry per file checked

    @property
    def has_errors(self) -> bool:
        return has_errors(self.diagnostics)

    def fails(self, fail_level: FailLevel) -> bool:
        """Whether any diagnostic is at or above `fail_level` (`never`: nothing fails)."""
        return fails(self.diagnostics, fail_level)


def has_errors(diagnostics: Iterable[Diagnostic]) -> bool:
    """The compiler's test: a set with any error-level diagnostic must not be served."""
    return any(d.level == "error" for d in diagnostics)


def fails(diagnostics: Iterable[Diagnostic], fail_level: FailLevel) -> bool:
    if fail_level == "never":
        return False
    return any(LEVEL_RANK[d.level] >= LEVEL_RANK[fail_level] for d in diagnostics)


# ── configuration ────────────────────────────────────────────────────────


def parse_config(text: str, origin: str = "<config>") -> Config:
    """Read `[rules] "name-or-code" = "error|warning|note|off"` and an optional `fail-level`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin}: not valid TOML: {exc}") from None
    unknown = set(data) - {"rules", "fail-level", "fail_level"}
    if unknown:
        raise ConfigError(f"{origin}: unknown key(s) {', '.join(sorted(unknown))}; expected [rules] and fail-level")
    table = data.get("rules", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{origin}: `rules` must be a table")
    levels: dict[str, Setting] = {}
    for key, value in table.items():
        rule = rules.lookup(str(key))
        if rule is None:
            raise ConfigError(f"{origin}: unknown rule {key!r}; see docs/rules.md")
        if value not in SETTINGS:
            raise ConfigError(f"{origin}: rule {key!r}: level must be one of {', '.join(SETTINGS)}, not {value!r}")
        if not rule.configurable and value != rule.level:
            raise ConfigError(f"{origin}: rule {rule.name} ({rule.code}) cannot be changed: the set would not compile")
        levels[rule.name] = value
    fail_level = data.get("fail-level", data.get("fail_level"))
    if fail_level is not None and fail_level not in FAIL_LEVELS:
        raise ConfigError(f"{origin}: fail-level must be one of {', '.join(FAIL_LEVELS)}")
    return Config(levels, fail_level, origin)


def load_config(path: Path) -> Config:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from None
    return parse_config(text, str(path))


def find_config(paths: Sequence[Path]) -> Path | None:
    """`ghat.toml` or `.ghat.toml` in the first policy directory (or a file's directory) that has one."""
    for path in paths:
        folder = path if path.is_dir() else path.parent
        for name in CONFIG_NAMES:
            candidate = folder / name
            if candidate.is_file():
                return candidate
    return None


# ── inline ignores ───────────────────────────────────────────────────────


def ignores(source: str) -> dict[int, frozenset[str] | None]:
    """Line → the rule names/codes ignored there (None: all). A comment alone on a line covers the next."""
    out: dict[int, frozenset[str] | None] = {}
    for number, line in enumerate(source.splitlines(), start=1):
        match = _IGNORE.search(line)
        if match is None:
            continue
        names = None if match.group(1) is None else frozenset(n.strip() for n in match.group(1).split(",") if n.strip())
        target = number + 1 if line.lstrip().startswith("#") else number
        for where in {number, target}:
            before = out.get(where, frozenset())
            out[where] = None if names is None or before is None else before | names
    return out


def _ignored(diag: Diagnostic, table: dict[int, frozenset[str] | None]) -> bool:
    if diag.span.line not in table:
        return False
    names = table[diag.span.line]
    return names is None or diag.rule in names or diag.code in names or diag.code.lower() in names


# ── the pipeline ─────────────────────────────────────────────────────────


def check_policy_set(
    policy_set: ast.PolicySet,
    sources: dict[str, str] | None = None,
    config: Config | None = None,
    parse_diagnostics: Sequence[Diagnostic] = (),
) -> list[Diagnostic]:
    """Every diagnostic of a parsed set after config and ignores, sorted; never raises."""
    config = config or Config()
    found = list(parse_diagnostics)
    try:
        index = Index.of(policy_set)
        for _name, run in [*check.PASSES, *lint.PASSES]:
            found.extend(_guarded(run, policy_set, index))
    except Exception as exc:
        found.append(_internal(policy_set, exc))
    sources = sources if sources is not None else {f.path: f.source for f in policy_set.files}
    tables = {path: ignores(text) for path, text in sources.items()}
    out: list[Diagnostic] = []
    seen: set[Diagnostic] = set()
    for diag in found:
        setting = config.level_of(diag)
        if setting == "off" or diag in seen:
            continue
        seen.add(diag)
        rule = rules.RULES.get(diag.rule)
        if (rule is None or rule.configurable) and _ignored(diag, tables.get(diag.span.file, {})):
            continue
        level: Level = setting
        out.append(_located(diag if level == diag.level else diag.with_level(level)))
    return sorted(out, key=Diagnostic.sort_key)


def check_paths(paths: Sequence[Path], config: Config | None = None) -> CheckResult:
    """Load and check policy files and directories. With no config, `ghat.toml` beside them is used.

    Raises ConfigError only for a discovered config file that is broken.
    """
    if config is None:
        found = find_config(paths)
        config = load_config(found) if found else Config()
    loaded = load(list(paths))
    diagnostics = check_policy_set(loaded.policy_set, loaded.sources, config, loaded.diagnostics)
    return CheckResult(loaded.policy_set, diagnostics, loaded.sources)


def _located(diag: Diagnostic) -> Diagnostic:
    """P12: every diagnostic names a real line and column, even one built from an empty node."""
    span = diag.span
    if span.line >= 1 and span.col >= 1:
        return diag
    line, col = max(span.line, 1), max(span.col, 1)
    fixed = ast.Span(span.file, line, col, max(span.end_line, line), max(span.end_col, col))
    return Diagnostic(diag.code, diag.rule, diag.level, diag.message, fixed, diag.help)


def _guarded(run: check.Pass, policy_set: ast.PolicySet, index: Index) -> list[Diagnostic]:
    try:
        return list(run(policy_set, index))
    except Exception as exc:
        return [_internal(policy_set, exc)]


def _internal(policy_set: ast.PolicySet, exc: BaseException) -> Diagnostic:
    file = policy_set.files[0].path if policy_set.files else "<policy>"
    return rules.INTERNAL.at(
        ast.Span(file, 1, 1, 1, 1),
        f"internal checker error: {type(exc).__name__}: {exc}",
        "please report this with the policy files",
    )
