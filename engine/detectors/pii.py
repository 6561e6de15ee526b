# ruff: noqa: E501  (pattern tables read best one rule per line)
"""`pii`: personal data — email, phone, cards, IBAN, US SSN, IP addresses; names,
street addresses and dates of birth when a policy asks for them.

Structured types are found by one RE2 set pass and confirmed by their checksums
or validators (Luhn and issuer ranges, IBAN mod-97 via python-stdnum, phone
numbers via `phonenumbers`, SSN area rules, `ipaddress`). The three contextual
types (`person`, `street_address`, `date_of_birth`, pii_context.py) use shipped
name lists and context rules; they are off unless a policy names them in `types`.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

import phonenumbers
import re2
from stdnum import iban as stdnum_iban
from stdnum import luhn

from dsl import ast
from dsl.catalog import PII_DEFAULT_TYPES
from engine.detectors.base import Detector, Finding, ScanContext
from engine.detectors.patterns import PatternSet, Rule, drop_overlaps, expand, search, settle
from engine.detectors.pii_context import CONTEXT_RULES
from engine.detectors.placeholders import strip_tags
from engine.detectors.registry import register

# National formats are tried in these regions when a number has no `+` prefix.
PHONE_REGIONS = ("US", "GB", "DE", "FR", "IN", "AU", "ES", "IT", "NL", "BR", "JP")
# Phone words in the languages of PHONE_REGIONS (a stem is enough: "llam" for llámenos / llamar).
_PHONE_CONTEXT = re2.compile(
    r"(?i)(?:phone|tel|mobile|cell|call|text|whatsapp|fax|contact|number|reach|ring|sms"
    r"|llam|llám|móvil|movil|celular|número|numero|appel|portable|téléphone|anruf|handy|rufnummer|nummer"
    r"|cellulare|chiama|bel |ligue|telefone|zap|電話|携帯|でんわ)"
)
_SSN_SHAPE = re2.compile(r"^\d{3}-\d{2}-\d{4}$")
_US_SHAPE = re2.compile(r"^(?:1[ .-])?\(?\d{3}\)?[ .-]?\d{3}[ .-]\d{4}$")
_DATE_LIKE = re2.compile(r"^(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4})$")


def _email(text: str, m: re2._Match) -> tuple[int, int] | None:
    """The local part starts at its first letter or digit (read here, not matched: a counted
    run after a restricted first character made RE2's DFA track every possible start of the
    last 64 characters, a new state per byte on `a_B9_…` text)."""
    run, domain = m.group(1), m.group(2).lower()
    skip = next((i for i, c in enumerate(run) if c.isascii() and c.isalnum()), None)
    if skip is None:
        return None  # no letter or digit: not a local part
    local = run[skip:]
    if local.lower() == "git" and domain in ("github.com", "gitlab.com", "bitbucket.org"):
        return None  # an SSH remote, not a person's address
    if domain.endswith((".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp", ".js", ".css")):
        return None  # retina asset names: logo@2x.png
    return m.start(1) + skip, m.end(2)


def _phone(text: str, m: re2._Match) -> tuple[int, int] | None:
    raw = m.group(1)
    start, end = m.start(1), m.end(1)
    # the cheap shape checks first: a dense run of digits makes many candidates
    digits = len(raw.translate(_NOT_DIGITS))
    if digits < 7 or digits > 15 or raw.count(".") > 2:
        return None
    if text[end : end + 1] == "." and text[end + 1 : end + 2].isdigit():
        return None
    if search(_DATE_LIKE, raw) is not None or search(_SSN_SHAPE, raw) is not None:
        return None
    if raw.startswith("00") and raw.isdigit() and not _phone_context(text, start):
        return None  # an unseparated 00… run is an id (SKU 0012345678905), not a dialled number
    if raw.startswith("+") or raw.startswith("00"):
        return (start, end) if _valid_international(raw if raw[0] == "+" else "+" + raw[2:]) else None
    # national numbers without a `+`: trust the shape only when it looks like a phone
    # number (trunk prefix 0, area code in parentheses, US 3-3-4); else ask for context
    shaped = digits >= 9 and (raw[0] in "0(" or search(_US_SHAPE, raw) is not None)
    if not shaped and not _phone_context(text, start):
        return None  # bare digit runs are order numbers, ZIP codes and ids
    return (start, end) if _valid_national(raw) else None


_NOT_DIGITS = str.maketrans("", "", "+() .-")  # the phone pattern's other characters


def _phone_context(text: str, start: int) -> bool:
    """A phone word in the 40 characters before `start` (ghat placeholders do not count)."""
    return search(_PHONE_CONTEXT, strip_tags(text[max(0, start - 40) : start])) is not None


# A parse costs 10-100 µs (a national number is tried in eleven regions); lists repeat
# numbers, so each verdict is kept (the functions are pure).
@lru_cache(maxsize=4096)
def _valid_international(raw: str) -> bool:
    try:
        return bool(phonenumbers.is_valid_number(phonenumbers.parse(raw, None)))
    except phonenumbers.NumberParseException:
        return False


@lru_cache(maxsize=4096)
def _valid_national(raw: str) -> bool:
    for region in PHONE_REGIONS:
        try:
            number = phonenumbers.parse(raw, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return True
    return False


_CARD_LENGTHS = {"34": (15,), "37": (15,), "4": (13, 16, 19), "5": (16,), "2": (16,),
                 "6": (16, 19), "35": (16, 19), "36": (14,), "30": (14,), "38": (14,)}  # fmt: skip


def _card(text: str, m: re2._Match) -> tuple[int, int] | None:
    raw = m.group(1)
    seps = {c for c in raw if not c.isdigit()}
    if len(seps) > 1:
        return None
    number = raw.replace(" ", "").replace("-", "")
    lengths = _CARD_LENGTHS.get(number[:2]) or _CARD_LENGTHS.get(number[:1])
    if lengths is None or len(number) not in lengths or len(set(number)) < 2:
        return None
    if number[0] == "5" and not "51" <= number[:2] <= "55":
        return None
    if number[0] == "2" and not "2221" <= number[:4] <= "2720":
        return None
    return (m.start(1), m.end(1)) if luhn.is_valid(number) else None


def _iban(text: str, m: re2._Match) -> tuple[int, int] | None:
    raw = m.group(1)
    # the candidate may have swallowed a following word; shorten at spaces until valid
    cut = len(raw)
    while cut >= 15:
        if stdnum_iban.is_valid(raw[:cut]):
            return m.start(1), m.start(1) + cut
        space = raw.rfind(" ", 0, cut)
        if space < 0:
            break
        cut = space
    return None


def _ssn(text: str, m: re2._Match) -> tuple[int, int] | None:
    digits = "".join(c for c in m.group(1) if c.isdigit())
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return None
    if digits in ("078051120", "219099999"):  # the SSA's retired advertising numbers
        return None
    return m.start(1), m.end(1)


_VERSION_WORDS = frozenset({"v", "version", "ver", "ver.", "release", "build", "firmware"})


def _ipv4(text: str, m: re2._Match) -> tuple[int, int] | None:
    raw = m.group(1)
    words = text[max(0, m.start(1) - 12) : m.start(1)].lower().split()
    last = words[-1] if words else ""
    if (last.startswith("v") and last[1:2].isdigit()) or last in _VERSION_WORDS:
        return None  # version numbers: v1.2.3.4
    if raw.startswith(("0.", "127.", "255.")) or raw.endswith(".0.0"):
        return None  # unspecified, loopback, netmasks: not anyone's address
    return m.start(1), m.end(1)


def _ipv6(text: str, m: re2._Match) -> tuple[int, int] | None:
    raw = m.group(1)
    if raw.count(":") < 2 or sum(c.isalnum() for c in raw) < 4:
        return None
    try:
        address = ipaddress.IPv6Address(raw)
    except ValueError:
        return None
    if address.is_loopback or address.is_unspecified:
        return None
    return m.start(1), m.end(1)


RULES: tuple[tuple[Rule, int], ...] = (
    (Rule("email", r"([A-Za-z0-9._%+-]{1,64})@((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,24})", _email, right=expand("[A-Za-z0-9.-"), right_dot=expand("[A-Za-z0-9")), 9),
    (Rule("credit_card", r"(?:^|[^\]0-9A-Za-z_.-])((?:\d[ -]?){12,18}\d)\b", _card, right="[-", retry=True, min_digits=13), 8),
    (Rule("iban", r"(?:^|[^\]A-Za-z0-9])([A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30})\b", _iban, right="["), 8),
    (Rule("us_ssn", r"(?:^|[^\]0-9A-Za-z-])(\d{3}-\d{2}-\d{4})\b", _ssn, right="[-"), 7),
    (Rule("us_ssn", r"(?i:ssn|social security(?: number| no\.?)?|ss#)[^0-9\n]{0,20}(\d{3}[ .-]?\d{2}[ .-]?\d{4})", _ssn, right="[0123456789"), 7),
    (Rule("phone", r"(?:^|[^\]0-9A-Za-z_+.-])((?:\+|00)?\(?\d{1,4}\)?(?:[ .-]{0,2}\(?\d{1,5}\)?){1,5}[ .-]?\d{2,5})\b", _phone, right="[", shorter=True, min_digits=7), 5),
    (Rule("ip_address", r"(?:^|[^\]0-9A-Za-z.])((?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d))\b", _ipv4, right="[", right_dot="[0123456789"), 6),
    (Rule("ip_address", r"(?:^|[^\]0-9A-Za-z:])((?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4})", _ipv6, right=expand("[0-9A-Za-z:")), 6),
)  # fmt: skip
RULES += CONTEXT_RULES  # person, street_address, date_of_birth: compiled in only when named


class PiiDetector:
    """Structured PII in one set pass; contextual types only when selected."""

    def __init__(self, types: frozenset[str]) -> None:
        self.name = "pii"
        rules = [(r, p) for r, p in RULES if r.type in types]
        self._set = PatternSet([r for r, _ in rules])
        self._priority = tuple(p for _, p in rules)

    @property
    def max_span(self) -> int | None:
        return self._set.max_span

    def scan(self, text: str, context: ScanContext) -> list[Finding]:
        return [Finding("pii", t, s, e) for s, e, t in drop_overlaps(self._found(text))]

    @property
    def open_patterns(self) -> tuple[tuple[str, int, bool], ...] | None:
        return self._set.open_patterns

    def scan_open(self, text: str, context: ScanContext, open_at: int) -> tuple[list[Finding], int]:
        found = self._found(text)
        return [Finding("pii", t, s, e) for s, e, t in drop_overlaps(found)], settle(open_at, found)

    def _found(self, text: str) -> list[tuple[int, int, str, int]]:
        found: list[tuple[int, int, str, int]] = []
        for index in self._set.candidates(text):
            type_ = self._set.rules[index].type
            for start, end in self._set.spans(index, text):
                found.append((start, end, type_, self._priority[index]))
        return found


@register("pii")
def build(guard: ast.Guard) -> Detector:
    """The default types always; person, street_address, date_of_birth only when named."""
    return PiiDetector(frozenset(PII_DEFAULT_TYPES) | frozenset(guard.types))
