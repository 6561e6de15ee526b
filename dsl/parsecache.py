"""Parsed policy files kept on disk between runs, as Python keeps `.pyc` files.

Parsing is most of what a large set costs to load: Lark's pure-Python LALR
parser reads about 0.6 MB/s, so 2,000 apps take ~2.5 s to parse and ~0.3 s to
unpickle (bench/RESULTS.md, "Large policy sets"). An entry is addressed by the
hash of the parser's own code and grammar, the file's path (spans carry it) and
its text, so any change to either misses; a file that cannot be read back is
parsed again. Entries live in a directory only this user can write (the same
one as the Lark tables), because unpickling runs code.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import os
import pickle
import tempfile
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from dsl import ast
from dsl.diagnostics import Diagnostic

ENV_VAR = "GHAT_CACHE_DIR"  # a directory, or "off" to keep nothing on disk
KEEP = 20_000  # entries kept; past it the least recently used are removed
_CODE = ("grammar.lark", "parser.py", "cst_to_ast.py", "ast.py", "diagnostics.py", "parsecache.py")

Entry = tuple[ast.PolicyFile, tuple[Diagnostic, ...]]


def cache_dir() -> Path | None:
    """`$GHAT_CACHE_DIR`, else the user cache dir; None when off or not private to this user."""
    raw = os.environ.get(ENV_VAR, "")
    if raw.lower() in ("off", "none", "0"):
        return None
    import platformdirs

    root = Path(raw or platformdirs.user_cache_dir("ghat"))
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = root.stat()
        if info.st_uid != os.getuid() or info.st_mode & 0o022:
            return None  # someone else could plant entries: do without
    except (OSError, AttributeError):  # a read-only home, or no getuid (Windows)
        return None
    return root


@lru_cache(maxsize=1)
def _code_hash() -> bytes:
    here = Path(__file__).parent
    digest = hashlib.sha256()
    for name in _CODE:
        digest.update((here / name).read_bytes())
    return digest.digest()


@cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


class Pickler(pickle.Pickler):
    """AST nodes as (class, field values): read back through the constructor, 2x faster than the
    per-field `__setstate__` that frozen slotted dataclasses get (which calls `fields()` on every node)."""

    def reducer_override(self, obj: Any) -> Any:
        cls = type(obj)
        if cls.__module__ in ("dsl.ast", "dsl.diagnostics") and dataclasses.is_dataclass(cls):
            return cls, tuple(getattr(obj, name) for name in _field_names(cls))
        return NotImplemented


class DiskCache:
    """Entries in `root/parsed/`, one file each, written atomically."""

    def __init__(self, root: Path) -> None:
        self.folder = root / "parsed"
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.written = 0

    @classmethod
    def default(cls) -> DiskCache | None:
        root = cache_dir()
        if root is None:
            return None
        try:
            return cls(root)
        except OSError:
            return None

    def _file(self, path: str, text: str) -> Path:
        digest = hashlib.sha256(_code_hash())
        digest.update(path.encode("utf-8", "surrogatepass") + b"\0")
        digest.update(text.encode("utf-8", "surrogatepass"))
        return self.folder / f"{digest.hexdigest()}.pickle"

    def get(self, path: str, text: str) -> Entry | None:
        file = self._file(path, text)
        try:
            with file.open("rb") as f:
                pf, diags = pickle.load(f)
            os.utime(file)  # recently used: kept by `prune`
        except FileNotFoundError:
            return None
        except Exception:  # a truncated or foreign entry: parse again
            return None
        if not isinstance(pf, ast.PolicyFile) or pf.path != path:
            return None
        return ast.PolicyFile(pf.path, pf.items, text), tuple(diags)

    def put(self, path: str, text: str, entry: Entry) -> None:
        pf, diags = entry
        buffer = io.BytesIO()
        Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump((ast.PolicyFile(pf.path, pf.items), diags))
        data = buffer.getvalue()
        tmp: str | None = None
        try:
            fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, self._file(path, text))
            self.written += 1
        except OSError:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)

    def prune(self, keep: int = KEEP) -> None:
        """Remove the least recently used entries past `keep` (called after a load that wrote some)."""
        try:
            entries = list(os.scandir(self.folder))
            if len(entries) <= keep:
                return
            entries.sort(key=lambda e: e.stat().st_mtime)
            for old in entries[: len(entries) - keep]:
                os.unlink(old.path)
        except OSError:
            return
