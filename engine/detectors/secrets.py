# ruff: noqa: E501  (pattern tables read best one rule per line)
"""`secrets`: credentials in prompts and outputs — vendor keys, tokens, PEM keys, passwords.

Vendor formats are matched by their documented prefixes and lengths; the generic
rules (`password_assignment`, `generic_high_entropy`) only fire on values assigned
to key-like names, and only when the value is not a placeholder, a variable
reference or a vendor's documented example key (see placeholders.py).
"""

from __future__ import annotations

import base64
import json

import re2

from dsl import ast
from dsl.catalog import SECRET_TYPES
from engine.detectors.base import Detector, Finding, ScanContext
from engine.detectors.patterns import Confirm, PatternSet, Rule, Span, drop_overlaps, expand, settle, shannon_entropy
from engine.detectors.placeholders import is_placeholder
from engine.detectors.registry import register

_B = r"(?:^|[^\]A-Za-z0-9_])"  # a left boundary RE2 can express without lookbehind
_E = r"\b"  # and a right one that consumes nothing (Rule.right adds "[": not before a placeholder)
_EDGE_DASH = expand("[A-Za-z0-9_-")
_EDGE_B64 = expand("[A-Za-z0-9/+=")


def _value(group: int = 1, min_entropy: float = 0.0) -> Confirm:
    """A confirmer: report `group` unless it is a placeholder or too regular."""

    def confirm(text: str, m: re2._Match) -> tuple[int, int] | None:
        value = m.group(group)
        if value is None or is_placeholder(value):
            return None
        if min_entropy and shannon_entropy(value) < min_entropy:
            return None
        return m.start(group), m.end(group)

    return confirm


def _jwt(text: str, m: re2._Match) -> tuple[int, int] | None:
    token = m.group(1)
    if is_placeholder(token):
        return None
    head = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(header, dict) or not ({"alg", "typ", "kid", "enc"} & header.keys()):
        return None
    return m.start(1), m.end(1)


_PEM_MAX = 8192  # a 4096-bit RSA key in PKCS#8 is about 3.3 K characters
_PEM_END = re2.compile(r"-----END[A-Z0-9 ]{0,24} PRIVATE KEY(?: BLOCK)?-----")
_PEM_BODY = re2.compile(r"(?:[A-Za-z0-9+/=\s:,.]|-[A-Za-z0-9])*")


def _pem(text: str, m: re2._Match) -> tuple[int, int] | None:
    """The whole block up to its END line; a truncated block up to where its body stops."""
    start = m.start()
    # search a bounded slice: the RE2 binding converts the whole string on every call
    rest = text[m.end() : start + _PEM_MAX]
    end = _PEM_END.search(rest)
    if end is not None:
        return start, m.end() + end.end()
    body = _PEM_BODY.match(rest)
    return start, m.end() + (body.end() if body is not None else 0)


_PEM_BEGIN = re2.compile(r"-----BEGIN[A-Z0-9 ]{0,24} PRIVATE KEY(?: BLOCK)?-----")


def _pem_open(text: str) -> int:
    """Where an open PEM block starts: a BEGIN line with no END line yet, fewer than _PEM_MAX
    characters ago (`_pem` reads that far ahead for the END line, so the block may still grow)."""
    n = len(text)
    lo = max(0, n - _PEM_MAX)
    if "-----BEGIN" not in text[lo:]:
        return n
    for m in _PEM_BEGIN.finditer(text, lo):
        if _PEM_END.search(text, m.end(), m.start() + _PEM_MAX) is None:
            return int(m.start())
    return n


_JWT_MAX = 8192  # longer tokens are still reported; streams hold back this much


_CODE_VALUE = re2.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:[.][A-Za-z_][A-Za-z0-9_]*)*$")


# A name that holds something about a secret, not the secret: max_tokens, token_expiry,
# secretName, password_min_length, passwordField, auth_token_url.
_NOT_SECRET_NAME = re2.compile(
    r"(?i)(?:max|min|num|count|limit|expir|ttl|timeout|length|size|type|url|uri|endpoint|path|file|name|header|field"
    r"|ref|prefix|format|policy|rotation|interval|usage|budget|window|bucket|hash|digest|hint|label|placeholder)"
)
_YAML_TAG = re2.compile(r"^![a-z_]+$")  # password: !vault |  (the value is in the block that follows)


def _secret_name(name: str) -> bool:
    """False when the assigned name describes a secret (a limit, a path, a name) rather than holds one."""
    return _NOT_SECRET_NAME.search(name.lower().replace("username", "").replace("user_name", "")) is None


def _names_a_placeholder(text: str, m: re2._Match, group: int) -> bool:
    """The "name" is ghat's own placeholder (`[GITHUB_TOKEN_1]:2001`): redacting again must find nothing (P5)."""
    start, end = m.start(group), m.end(group)
    return start > 0 and text[start - 1] == "[" and is_placeholder(text[start - 1 : end + 1])


def _password_at(name: int, quote: int, value_group: int) -> Confirm:
    """A password assignment: quoted values unless placeholders; bare ones must look set."""

    def confirm(text: str, m: re2._Match) -> tuple[int, int] | None:
        quote_, value = m.group(quote) if quote else "", m.group(value_group)
        if value is None or is_placeholder(value) or len(value) < 4 or _YAML_TAG.match(value):
            return None
        if name and (not _secret_name(m.group(name)) or _names_a_placeholder(text, m, name)):
            return None
        if not quote_:
            # bare words are prose or code references (`password = get_password()`)
            if _CODE_VALUE.match(value) and not any(c.isdigit() for c in value):
                return None
            if value[-1] in "(:" or "(" in value or value.startswith(("[", "{", "<")):
                return None
        return m.start(value_group), m.end(value_group)

    return confirm


_password = _password_at(1, 2, 3)


def _aws_secret_near_key(text: str, m: re2._Match) -> Span | list[Span] | None:
    """`secret_key = <40 chars>` is AWS's when an AWS name or access key id is close before it (HCL, INI)."""
    window = text[max(0, m.start() - 300) : m.start()].lower()
    if "aws" not in window and "akia" not in window and "asia" not in window:
        return None
    return _value(min_entropy=3.5)(text, m)


def _high_entropy(text: str, m: re2._Match) -> tuple[int, int] | None:
    value = m.group(3)
    if value is None or len(value) < 16 or is_placeholder(value) or not _secret_name(m.group(1)) \
            or _names_a_placeholder(text, m, 1):  # fmt: skip
        return None
    classes = sum((any(c.islower() for c in value), any(c.isupper() for c in value),
                   any(c.isdigit() for c in value)))  # fmt: skip
    if classes < 2 or shannon_entropy(value) < 3.5 or (_CODE_VALUE.match(value) and classes < 3):
        return None
    return m.start(3), m.end(3)


_SCHEME_CHARS = frozenset(expand("A-Za-z0-9+.-"))
_URL_WIDTH = 21 + 450  # the scheme before "://" plus the rest of the pattern
_URL_VALUE = _value()


def _after_scheme(text: str, m: re2._Match) -> Span | list[Span] | None:
    """`scheme://user:password@host`, the scheme a letter and 1-20 more of [A-Za-z0-9+.-].

    The scheme is read back from "://" here rather than matched: a counted run after a
    letter makes RE2's DFA track every letter of the last 21 characters, and 1 MB of hex
    or base64 then built a new DFA state per byte (6.5 s for the secrets set)."""
    colon = m.start()
    if colon < 2 or text[colon - 1] not in _SCHEME_CHARS:
        return None
    for k in range(2, 22):  # the scheme's first letter is k characters before "://"
        if colon - k < 0 or text[colon - k] not in _SCHEME_CHARS:
            return None
        if text[colon - k].isalpha():
            return _URL_VALUE(text, m)
    return None


_ASSIGN = r"""["']?\]?\s{0,8}(?:=|:=|=>|:|\s{1,4}is\s{0,4}:?)\s{0,8}(["'`]?)"""
_PASSWORD_NAMES = r"[A-Za-z0-9_.-]{0,40}?(?i:(?:password|passwd|passphrase|pwd|secret|token)[A-Za-z0-9_]{0,20}|pass\b)"
_KEY_NAMES = r"[A-Za-z0-9_.-]{0,40}?(?i:api[_-]?key|apikey|access[_-]?key|private[_-]?key|auth[_-]?key|client[_-]?key|signing[_-]?key|encryption[_-]?key|credentials?|auth)[A-Za-z0-9_]{0,20}"

RULES: tuple[tuple[Rule, int], ...] = (  # (rule, priority: specific vendor formats first)
    (Rule("aws_access_key_id", _B + r"((?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16})" + _E, _value(), right="["), 9),
    (Rule("aws_secret_access_key", r"(?i:aws.{0,20}?secret.{0,20}?|secret.?access.?key)[\"']?\s{0,8}(?:=|:|=>)\s{0,8}[\"']?([A-Za-z0-9/+]{40})", _value(min_entropy=3.5), right=_EDGE_B64), 9),
    (Rule("github_token", _B + r"((?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{82})" + _E, _value(), right="["), 9),
    (Rule("gitlab_token", _B + r"((?:glpat|gldt|glrt|glptt|glcbt|glimt|gloas|glsoat|glffct|glagent)-[A-Za-z0-9_-]{20,64}(?:\.[0-9a-z]{2}\.[a-z0-9]{8,12})?)", _value(), right=_EDGE_DASH), 9),
    (Rule("slack_token", _B + r"(xox[abposre]-[0-9]{6,14}-[A-Za-z0-9-]{8,120}|xapp-[0-9]-[A-Z0-9]{8,14}-[0-9]{8,14}-[a-z0-9]{32,80})", _value()), 9),
    (Rule("slack_webhook", r"(https://hooks\.slack\.com/(?:services|workflows|triggers)/T[A-Z0-9]{6,12}/[A-Z0-9]{6,14}/[A-Za-z0-9]{16,40})", _value()), 9),
    (Rule("stripe_key", _B + r"((?:sk|rk)_(?:live|test|prod)_[A-Za-z0-9]{16,128})" + _E, _value(), right="["), 9),
    (Rule("anthropic_key", _B + r"(sk-ant-(?:api|admin|oat|sid)[0-9]{2}-[A-Za-z0-9_-]{32,120})", _value()), 9),
    (Rule("openai_key", _B + r"(sk-(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_-]{20,200}T3BlbkFJ[A-Za-z0-9_-]{16,200}|sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,200}|sk-[A-Za-z0-9]{48})", _value(min_entropy=3.5), right=_EDGE_DASH), 8),
    (Rule("google_api_key", _B + r"(AIza[0-9A-Za-z_-]{35})", _value(), right=_EDGE_DASH), 9),
    (Rule("private_key", r"-----BEGIN[A-Z0-9 ]{0,24} PRIVATE KEY(?: BLOCK)?-----", _pem, width=_PEM_MAX), 10),
    (Rule("jwt", _B + r"(eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})", _jwt, width=_JWT_MAX), 9),
    (Rule("url_credentials", r"://[^\s:/@\"'<>]{1,64}:([^\s@/\"'<>]{3,128})@[A-Za-z0-9.-]{1,253}", _after_scheme, width=_URL_WIDTH), 7),
    (Rule("url_credentials", r"(?i:(?:user id|uid|user|username)\s{0,8}=\s{0,8}[^;\"']{1,64};\s{0,8}(?:password|pwd)\s{0,8}=\s{0,8})([^;\"'\s]{3,128})", _value()), 7),
    (Rule("azure_storage_key", r"(?i:AccountKey\s{0,8}=|azure[A-Za-z_ ]{0,30}key[\"']?\s{0,8}[:=])\s{0,8}[\"']?([A-Za-z0-9+/]{86}==)", _value(min_entropy=4.0)), 9),
    (Rule("twilio_key", _B + r"(SK[0-9a-f]{32})" + _E, _value(min_entropy=3.0), right="["), 9),
    (Rule("twilio_key", r"(?i:twilio.{0,30}?(?:auth|token|secret).{0,10}?)[\"']?\s{0,8}[:=]?\s{0,8}[\"']?([0-9a-f]{32})" + _E, _value(min_entropy=3.0), right="["), 9),
    (Rule("sendgrid_key", _B + r"(SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43})", _value(), right=_EDGE_DASH), 9),
    (Rule("npm_token", _B + r"(npm_[A-Za-z0-9]{36})" + _E, _value(), right="["), 9),
    (Rule("npm_token", r"_authToken\s{0,8}=\s{0,8}([A-Za-z0-9_-]{36,64})", _value()), 9),
    (Rule("huggingface_token", _B + r"(hf_[A-Za-z0-9]{34,40})" + _E, _value(), right="["), 9),
    (Rule("password_assignment", r"(" + _PASSWORD_NAMES + r")" + _ASSIGN + r"([^\s\"'`,;]{1,128})", _password), 5),
    (Rule("generic_high_entropy", r"(" + _KEY_NAMES + r")" + _ASSIGN + r"([A-Za-z0-9+/=_.~-]{1,256})", _high_entropy), 4),
    # the same assignments in other shapes: a name/value pair (k8s env lists, <property name= value=>),
    # an XML element, a Terraform variable's default, a CLI flag
    (Rule("aws_secret_access_key", r"(?i:name)[\"']?\s{0,4}[:=]\s{0,4}[\"']?(?i:aws_secret_access_key|aws_secret_key)[\"']?[\s,]{1,12}(?:-\s{1,4})?[\"']?(?i:value)[\"']?\s{0,4}[:=]\s{0,4}[\"']?([A-Za-z0-9/+]{40})", _value(min_entropy=3.5), right=_EDGE_B64), 9),
    (Rule("aws_secret_access_key", r"(?i:secret[_-]?key)[\"']?\s{0,8}(?:=|:|=>)\s{0,8}[\"']?([A-Za-z0-9/+]{40})", _aws_secret_near_key, right=_EDGE_B64), 8),
    (Rule("password_assignment", r"(?i:name)[\"']?\s{0,4}[:=]\s{0,4}[\"']?(" + _PASSWORD_NAMES + r")[\"']?[\s,]{1,12}(?:-\s{1,4})?[\"']?(?i:value)[\"']?\s{0,4}[:=]\s{0,4}([\"']?)([^\s\"'`,;<>]{1,128})", _password), 5),
    (Rule("password_assignment", r"<(" + _PASSWORD_NAMES + r")>()([^<\s]{1,128})</", _password), 5),
    (Rule("password_assignment", r"variable\s{1,4}\"(" + _PASSWORD_NAMES + r")\"\s{0,4}\{[^}]{0,200}?default\s{0,8}=\s{0,8}(\")([^\"\s]{1,128})", _password), 5),
    (Rule("password_assignment", r"--(" + _PASSWORD_NAMES + r")(?:=|\s{1,4})([\"']?)([^\s\"'`,;]{1,128})", _password), 5),
    (Rule("azure_storage_key", r"(?i:--account-key|AZURE_STORAGE_KEY)(?:=|\s{1,4})[\"']?([A-Za-z0-9+/]{86}==)", _value(min_entropy=4.0)), 9),
)  # fmt: skip
_ALL = PatternSet([r for r, _ in RULES])
_PRIORITY = tuple(p for _, p in RULES)


class SecretsDetector:
    """Every family rule in one RE2 set; confirmers run only on the rules that hit."""

    def __init__(self, types: frozenset[str] | None = None) -> None:
        self.name = "secrets"
        self._wanted = types
        self._max_span = _ALL.max_span

    @property
    def max_span(self) -> int | None:
        return self._max_span

    def scan(self, text: str, context: ScanContext) -> list[Finding]:
        return [Finding("secrets", t, s, e) for s, e, t in drop_overlaps(self._found(text))]

    @property
    def open_patterns(self) -> tuple[tuple[str, int, bool], ...] | None:
        return _ALL.open_patterns

    def scan_open(self, text: str, context: ScanContext, open_at: int) -> tuple[list[Finding], int]:
        found = self._found(text)
        open_at = settle(min(open_at, _pem_open(text)), found)
        return [Finding("secrets", t, s, e) for s, e, t in drop_overlaps(found)], open_at

    def _found(self, text: str) -> list[tuple[int, int, str, int]]:
        found: list[tuple[int, int, str, int]] = []
        for index in _ALL.candidates(text):
            rule = _ALL.rules[index]
            if self._wanted is not None and rule.type not in self._wanted:
                continue
            for start, end in _ALL.spans(index, text):
                found.append((start, end, rule.type, _PRIORITY[index]))
        return found


@register("secrets")
def build(guard: ast.Guard) -> Detector:
    """Scan every type; the guard pipeline applies per-type actions (P4)."""
    return SecretsDetector()


assert {r.type for r, _ in RULES} == set(SECRET_TYPES)
