"""App-scoped API keys: `ghat_<env>_<random>`, stored only as hashes in one JSON file.

Why plain SHA-256 and not a password KDF (bcrypt, argon2): a key carries 238
bits of randomness from `secrets`, so there is no dictionary to attack and a
preimage search is out of reach whatever the hash's speed. A slow KDF would
only cost milliseconds on every request. Hashing still means a leaked store
file grants nothing, and lookup by hash is a dict hit, so no secret-dependent
comparison leaks timing.

The store is written atomically (temp file, fsync, rename), so a server
reading it while `ghat keys` writes sees the old or the new file, never half.
A server reloads it when its mtime changes: creation and revocation take
effect without a restart.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import string
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from dsl.catalog import ENV_NAME  # `ghat check` refuses an app whose env no key could carry

PREFIX = "ghat"
_ALPHABET = string.ascii_letters + string.digits  # no "_" or "-": the env stays parseable
RANDOM_LEN = 40  # 40 × log2(62) ≈ 238 bits
DISPLAY_CHARS = 4


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One key as stored: its hash and what it may do, never the key itself."""

    id: str  # stable, public: used in logs, per-key rate limits and `ghat keys revoke`
    hash: str  # sha256 hex of the whole key
    app: str
    env: str
    display: str  # ghat_prod_ab12…
    created: float
    revoked: float | None = None

    @property
    def active(self) -> bool:
        return self.revoked is None


def hash_key(key: str) -> str:
    """The stored form of a key (see the module docstring for why SHA-256 suffices)."""
    return hashlib.sha256(key.encode()).hexdigest()


def display_form(key: str) -> str:
    """`ghat_prod_ab12…`: enough to recognise a key in a log, useless to an attacker."""
    env, random_part = split_key(key) or ("?", key)
    return f"{PREFIX}_{env}_{random_part[:DISPLAY_CHARS]}…"


def split_key(key: str) -> tuple[str, str] | None:
    """(env, random) for a well-formed key, else None."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def new_key(env: str) -> str:
    """A fresh key for `env`; the env must be a policy name without "_" so the key stays parseable."""
    if not ENV_NAME.fullmatch(env):
        raise ValueError(f"invalid environment name {env!r}: use letters, digits and '-' (like prod, eu-dev)")
    return f"{PREFIX}_{env}_{''.join(secrets.choice(_ALPHABET) for _ in range(RANDOM_LEN))}"


class KeyStoreError(ValueError):
    """The key file exists but cannot be read as a key store (corrupt, or another program's file)."""


class KeyStore:
    """The key file: load, look up by key, create, revoke. Not thread-safe; one writer at a time."""

    def __init__(self, path: Path, records: list[KeyRecord] | None = None) -> None:
        self.path = path
        self.records = records or []
        self._by_hash = {r.hash: r for r in self.records}
        self.mtime_ns = 0

    @classmethod
    def load(cls, path: Path) -> KeyStore:
        """The store at `path`; a missing file is an empty store."""
        try:
            stat = path.stat()
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(path)
        except (ValueError, UnicodeDecodeError) as exc:
            raise KeyStoreError(f"{path} is not a ghat key store: {exc}") from exc
        try:
            records = [KeyRecord(**r) for r in raw.get("keys", [])]
        except (AttributeError, TypeError) as exc:
            raise KeyStoreError(f"{path} is not a ghat key store: {exc}") from exc
        store = cls(path, records)
        store.mtime_ns = stat.st_mtime_ns
        return store

    def lookup(self, key: str) -> KeyRecord | None:
        """The active record for a presented key, or None (unknown, malformed or revoked)."""
        if split_key(key) is None:
            return None
        rec = self._by_hash.get(hash_key(key))
        return rec if rec is not None and rec.active else None

    def create(self, app: str, env: str, now: float | None = None) -> tuple[str, KeyRecord]:
        """A new key (returned whole, once) and its record, saved."""
        key = new_key(env)
        digest = hash_key(key)
        rec = KeyRecord(id=f"key_{digest[:12]}", hash=digest, app=app, env=env,
                        display=display_form(key), created=now if now is not None else time.time())  # fmt: skip
        self.records.append(rec)
        self._by_hash[rec.hash] = rec
        self.save()
        return key, rec

    def revoke(self, ref: str, now: float | None = None) -> KeyRecord | None:
        """Revoke by id, display form or whole key; returns the record, or None if nothing matched."""
        wanted = hash_key(ref) if split_key(ref) and not ref.endswith("…") else None
        for i, rec in enumerate(self.records):
            if rec.id == ref or rec.display == ref or rec.hash == wanted:
                if rec.revoked is None:
                    rec = replace(rec, revoked=now if now is not None else time.time())
                    self.records[i] = rec
                    self._by_hash[rec.hash] = rec
                    self.save()
                return rec
        return None

    def save(self) -> None:
        """Atomic replace: readers see the old file or the new one, never a torn write."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps({"version": 1, "keys": [asdict(r) for r in self.records]}, indent=2, ensure_ascii=False)
        fd, tmp = tempfile.mkstemp(prefix=".keys-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(data + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.mtime_ns = self.path.stat().st_mtime_ns


def data_dir(explicit: str | Path | None) -> Path:
    """`--data-dir`, else `GHAT_DATA_DIR`, else the user's data directory."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("GHAT_DATA_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_data_dir("ghat"))


def keys_path(keys: str | Path | None, data: str | Path | None) -> Path:
    """`--keys FILE`, else `keys.json` in the data directory."""
    return Path(keys) if keys else data_dir(data) / "keys.json"
