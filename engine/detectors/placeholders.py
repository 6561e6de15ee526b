"""What is obviously not a secret: placeholders, variable references, vendor examples.

A gateway that redacts `YOUR_API_KEY` teaches users to ignore its findings, so
values that only stand in for a secret are dropped before a finding is made.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import re2

# Words that mark a value as a stand-in, matched anywhere in the lower-cased value.
_MARKERS = (
    "your", "xxxx", "****", "....", "<", ">", "example", "placeholder", "changeme",
    "change_me", "replace", "dummy", "redacted", "insert", "todo", "fixme", "sample",
    "fake", "notreal", "not_real", "not-a-real", "secret_here", "key_here", "token_here",
    "0000000000", "1234567890", "abcdef123456", "abc123", "foobar", "lorem",
)  # fmt: skip
# Whole values that are only words or settings in the context of assignments.
_WORDS = frozenset({
    "password", "passwd", "secret", "token", "none", "null", "nil", "true", "false",
    "undefined", "string", "str", "required", "optional", "empty", "test", "testing",
    "admin", "user", "username", "pass", "value", "key", "apikey", "api_key", "xxx",
    "hidden", "masked", "default", "bearer", "basic", "env", "secret123", "password123",
})  # fmt: skip
# Variable and template references: ${X}, {{x}}, %(x)s, $X, env.X, os.environ[...].
_REFERENCE = re2.compile(
    r"^(?:\$\{?[A-Za-z_]|\{\{|\{%|%\(|%s$|env\.|os\.(?:environ|getenv)|process\.env|"
    r"getenv|secrets\.|vault:|ENC\[|\[REDACTED|[A-Z]+_\d+\]$|\$\(|<%|@\{|!Ref|!Sub)"
)
# ghat's own placeholders: a redacted text must not be redacted again (P5).
_OUR_TAG = re2.compile(r"\[[A-Z0-9_]+_[0-9]+\]")
# A run of mask characters (sk-xxxxxxxx…, ********, 00000000).
_RUN = re2.compile(r"x{5,}|\*{4,}|#{4,}|\.{4,}|0{8,}|-{5,}|_{5,}|X{5,}")


@lru_cache(maxsize=1)
def example_keys() -> frozenset[str]:
    """The vendor-documented example keys shipped in data/example_keys.txt."""
    text = resources.files("engine.detectors").joinpath("data/example_keys.txt").read_text()
    return frozenset(
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


def is_placeholder(value: str) -> bool:
    """True when `value` stands in for a secret rather than being one."""
    if value in example_keys() or _OUR_TAG.search(value) is not None:
        return True
    low = value.lower()
    if low in _WORDS or len(set(low)) <= 2:
        return True
    if any(m in low for m in _MARKERS):
        return True
    if _REFERENCE.search(value) is not None:
        return True
    return _RUN.search(value) is not None


def strip_tags(text: str) -> str:
    """`text` without ghat placeholders, so `[PHONE_1]` is not read as context."""
    return str(_OUR_TAG.sub("", text)) if "[" in text else text
