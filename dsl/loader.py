"""Load a policy set: every `.policy` file under the given paths, parsed.

A `ParseCache` keeps each file's text and parse; loading again with it
parses only the files whose text changed, and hands back the very same
`PolicyFile` objects for the others, so later stages can tell an unchanged
file by identity (a reload of 2,000 apps re-parses the one team file edited).
With a `DiskCache` (dsl/parsecache.py) a file parsed by an earlier run is read
back instead of parsed, as Python does with `.pyc` files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dsl import ast
from dsl.diagnostics import Diagnostic
from dsl.parsecache import DiskCache
from dsl.parsemany import parse_many, parse_one
from dsl.parser import parse_file


@dataclass(frozen=True)
class Loaded:
    policy_set: ast.PolicySet
    diagnostics: list[Diagnostic]
    sources: dict[str, str]  # path → text, for rendering carets


@dataclass
class ParseCache:
    """Path → (text, parsed file, its diagnostics) of the last load; replaced whole by each load."""

    files: dict[str, tuple[str, ast.PolicyFile, tuple[Diagnostic, ...]]] = field(default_factory=dict)
    parsed: int = 0  # files parsed (not reused) by the last load: what a reload actually paid for
    read_back: int = 0  # files the last load found in the disk cache
    disk: DiskCache | None = None


def policy_files(paths: list[Path]) -> tuple[list[Path], list[Diagnostic]]:
    """Expand directories into their `.policy` files, in a stable order.

    A directory with no `.policy` file is an error, not an empty set: a typo in a
    path must not make `ghat check` pass or `ghat test` report full coverage.
    """
    files: list[Path] = []
    diags: list[Diagnostic] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*.policy") if p.is_file())
            if not found:
                diags.append(
                    Diagnostic("E006", "syntax/unreadable-file", "error", f"no .policy file in directory {path}",
                               ast.Span(str(path), 1, 1, 1, 1), "point at the directory that holds the policies")
                )  # fmt: skip
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            diags.append(
                Diagnostic("E006", "syntax/unreadable-file", "error", "no such file or directory",
                           ast.Span(str(path), 1, 1, 1, 1))
            )  # fmt: skip
    return files, diags


def load(paths: list[Path], cache: ParseCache | None = None, pace: Callable[[], None] | None = None) -> Loaded:
    """Parse every file; names are global across the files of one set.

    With a cache, a file whose text is what the cache holds is not parsed
    again; the cache is then updated to this load's files. `pace` is called
    after each file (a server reloading steps aside for its requests there).
    """
    files, diags = policy_files(paths)
    disk = cache.disk if cache is not None else None
    entries: list[tuple[str, ast.PolicyFile, tuple[Diagnostic, ...]] | None] = []
    texts: list[str | None] = []
    misses: list[int] = []  # indexes of the files to parse now
    stored = 0
    for file in files:
        name = str(file)
        text = _text(file)
        texts.append(text)
        entry = cache.files.get(name) if cache is not None and text is not None else None
        if text is None:
            pf, more = parse_file(file)  # it says why the file cannot be read
            entry = (pf.source, pf, tuple(more))
        elif entry is None or entry[0] != text:
            found = disk.get(name, text) if disk is not None else None
            if found is not None:
                stored += 1
                entry = (text, found[0], found[1])
            else:
                entry = None
                misses.append(len(entries))
        entries.append(entry)
    if pace is None:  # a start-up or a CLI run: use every core
        fresh = parse_many([(str(files[i]), texts[i] or "") for i in misses])
    else:  # a serving process reloading: one file at a time, stepping aside between them
        fresh = []
        for i in misses:
            fresh.append(parse_one(str(files[i]), texts[i] or ""))
            pace()
    for i, found in zip(misses, fresh, strict=True):
        text = texts[i] or ""
        entries[i] = (text, found[0], found[1])
        if disk is not None:
            disk.put(str(files[i]), text, found)
    if disk is not None and misses:
        disk.prune()
    parsed: list[ast.PolicyFile] = []
    seen: dict[str, tuple[str, ast.PolicyFile, tuple[Diagnostic, ...]]] = {}
    for file, text, entry in zip(files, texts, entries, strict=True):
        assert entry is not None
        if text is not None:
            seen[str(file)] = entry
        parsed.append(entry[1])
        diags.extend(entry[2])
    if cache is not None:
        cache.files, cache.parsed, cache.read_back = seen, len(misses), stored
    sources = {pf.path: pf.source for pf in parsed}
    return Loaded(ast.PolicySet(tuple(parsed)), diags, sources)


def _text(file: Path) -> str | None:
    """The file's text as `parse_file` reads it, or None when it cannot (parse_file reports why)."""
    try:
        return file.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None
