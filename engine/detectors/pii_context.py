# ruff: noqa: E501  (pattern tables read best one rule per line)
"""The contextual pii types: `person`, `street_address`, `date_of_birth` (off unless a policy names them).

They need more than a shape, so the RE2 set only finds candidates and the
confirmers here decide with shipped data and context:

- person: a run of capitalised words in which a known given name (ghat's
  international list `data/first_names.txt` plus the US Census 1990 given names,
  5 163 of them, shipped by the `names` package) is followed by a surname-like
  word; given names that are also common words or places (Will, Grace, Paris…)
  need a surname from the Census surname list (88 799); words that end the phrase
  as a place or an organisation (Station, Road, Inc…) or an article before it
  (the Hope Diamond) drop it. After a cue (my name is, Dear, Mr., cc:, Customer:,
  "full_name": …) any capitalised name counts.
- street_address: house number + street name + suffix (US/UK/AU forms, optional
  directional, unit, city, state or postcode), number + street + city + state +
  ZIP without a suffix, PO boxes, and German (Hauptstraße 12, 10115 Berlin) and
  French (12 rue de la Paix, 75002 Paris) forms.
- date_of_birth: a real calendar date (numeric, ISO or with a month name) after
  a birth cue in prose, forms, JSON, query strings or keys (dob, birth_date…).

Everything is loaded once, only when one of these types is named.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import re2

from engine.detectors.patterns import Rule, Span

# ---------------------------------------------------------------- person


@lru_cache(maxsize=1)
def first_names() -> frozenset[str]:
    """Given names: ghat's international list plus the US Census given names."""
    text = resources.files("engine.detectors").joinpath("data/first_names.txt").read_text()
    own = {w for line in text.splitlines() if not line.startswith("#") for w in line.split()}
    return frozenset(own | _census("dist.male.first") | _census("dist.female.first")) - _FUNCTION_WORDS


@lru_cache(maxsize=1)
def surnames() -> frozenset[str]:
    """US Census 1990 surnames (88 799), to confirm names whose given name is also a word."""
    return frozenset(_census("dist.all.last"))


def _census(name: str) -> set[str]:
    text = resources.files("names").joinpath(name).read_text()
    return {line.split(maxsplit=1)[0].lower() for line in text.splitlines() if line.strip()}


def _wordset(words: str) -> frozenset[str]:
    return frozenset(words.split())


# Census given-name entries that are English function words.
_FUNCTION_WORDS = _wordset("in an so my a i is it on at to of or as by be he we me no")
# Given names that are also common words, months, days or places: these need a
# Census surname after them ("Grace Hopper", not "Grace Period").
_AMBIGUOUS_GIVEN = _wordset(
    "will mark grace hope faith joy may june april august summer autumn winter sunday golden royal major china christian "
    "jordan victoria paris france georgia virginia carolina dakota florida chelsea austin dallas houston denver sydney "
    "madison lincoln milan rose ivy lily holly heather amber ruby crystal dawn eve iris star sky river rain sunny sterling "
    "king price lane bishop dean duke earl frank guy jack jean max nick pat sue bill art rich ray chase hunter mason miles "
    "page reed rob rod stone storm wade ward warren young carter cole grant hall hill grand urban early long new york "
    "washington jersey kansas tennessee indiana nevada montana arizona phoenix boston orlando berlin vienna harvard stanford "
    "mercedes morgan ford tesla apple amazon oracle dell summit patience charity constance clement justice honor"
)
# Words that make a capitalised phrase a place, an organisation, an event or a thing.
_NOT_NAMES = _wordset(
    "street st avenue ave road rd lane ln drive dr boulevard blvd court ct way place square park bridge station airport "
    "river lake mountain mount valley bay island beach hill hills state county city town village district university "
    "college school academy institute hospital clinic center centre hall house hotel museum library church cathedral "
    "arena stadium theatre theater gallery tower building inc ltd llc plc corp corporation company co group bank capital "
    "partners holdings foundation trust fund association society council committee department ministry agency office "
    "services service systems solutions technologies labs studio studios records music media news times post journal "
    "review magazine press airlines airways motors motor day night week month year period season festival award awards "
    "prize cup league series championship games show camp club team division diamond complete edition version release "
    "notes report template request default source code summit conference program project plan policy act law rules "
    "guide manual terms conditions monday tuesday wednesday thursday friday saturday sunday january february march "
    "april may june july august september october november december north south east west central upper lower new old "
    "great little grand royal national international general global american british european the and of for"
)
_ARTICLES = frozenset({"the", "a", "an", "this", "that", "our", "their", "his", "her", "its"})
_CAP = r"[A-ZÀ-ÖØ-Þ](?:['’][A-ZÀ-ÖØ-Þ])?[a-zß-öø-ÿ]{1,20}(?:[A-ZÀ-ÖØ-Þ][a-zß-öø-ÿ]{1,20})?(?:-[A-ZÀ-ÖØ-Þ][a-zß-öø-ÿ]{1,20})?"
_PARTICLES = r"(?:(?:van|von|de|der|den|da|di|du|la|le|del|della|dos|bin|ibn|al|ter|ten)\s){0,2}"
_RUN = _CAP + r"(?:\s(?:[A-ZÀ-ÖØ-Þ]\.\s)?" + _PARTICLES + _CAP + r"){1,3}"
_NEXT = re2.compile(r"\s(?:[A-ZÀ-ÖØ-Þ]\.\s)?" + _PARTICLES + r"(" + _CAP + r")")
_NAME = _CAP + r"\.?(?:[ \t](?:[A-ZÀ-ÖØ-Þ]\.[ \t])?" + _PARTICLES + _CAP + r"){0,3}"
# Strong cues introduce a name whatever it is; weak ones (greetings, headers) need a known name.
_STRONG_CUES = (
    r"(?i:my name is|my name's|i am called|dear|regards,|sincerely,|signed:?|attn:?|name:|name\s?=|"
    r"full[_ ]?name\"?\s?[:=]\s?\"?|customer:|patient:?|contact:|assignee:|assigned to|tenant:?|applicant:?|employee:?|passenger:?)"
)
_WEAK_CUES = r"(?i:this is|hi|hello|thanks|thank you|cc:|bcc:|from:|to:|ask|with|by)"
_TITLES = r"(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sir|Dame)\.?"
_TITLE_WORDS = frozenset({"mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "dame"})
_NOT_AFTER_CUE = frozenset({"team", "all", "everyone", "support", "sir", "madam", "there", "again", "you", "customer", "admin", "user", "me", "us"})


_PUNCT = ",.;:!?()[]{}\"'“”‘’<>"


def _tokens(value: str, offset: int) -> list[tuple[str, int, int]]:
    """Words of a matched name with their offsets, punctuation stripped (no regex: hot path)."""
    out, pos = [], 0
    for word in value.split():
        pos = value.index(word, pos)
        core = word.strip(_PUNCT)
        if core:
            start = offset + pos + word.index(core)
            out.append((core, start, start + len(core)))
        pos += len(word)
    return out


def _peek(text: str, words: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    """`words` plus the capitalised word right after them when the last one is a given name.

    A run's length is bounded (streams hold back its width), so a run can end
    between a given name and its surname; looking one word on keeps that name
    whole, and so redaction idempotent (P5). The slice keeps the look bounded."""
    if not words or words[-1][0].lower() not in first_names():
        return words
    end = words[-1][2]
    m = _NEXT.match(text[end : end + 64])
    return words if m is None else [*words, (m.group(1), end + m.start(1), end + m.end(1))]


def _pairs(text: str, words: list[tuple[str, int, int]]) -> list[Span]:
    """Every known given name + surname pair among capitalised `words`, left to right.

    All of them, not the first: a name left inside a reported run would surface
    once its neighbour is redacted, and redaction must be idempotent (P5)."""
    words = _peek(text, words)
    given, out, i = first_names(), [], 0
    while i < len(words) - 1:
        first, low = words[i], words[i][0].lower()
        j = i + 1
        while j < len(words) - 1 and not words[j][0][:1].isupper():
            j += 1  # particles: van der Berg, da Silva
        last = words[j][0].lower()
        if (
            low not in given
            or not words[j][0][:1].isupper()
            or last in _NOT_NAMES
            or (low in _AMBIGUOUS_GIVEN and last not in surnames())
        ):
            i += 1
            continue
        before = text[max(0, first[1] - 12) : first[1]].split()
        if (j + 1 < len(words) and words[j + 1][0].lower() in _NOT_NAMES) or (
            before and before[-1].lower() in _ARTICLES
        ):
            i = j + 1  # Faith Hill Road, the Hope Diamond: a place or a thing
            continue
        out.append((first[1], words[j][2]))
        i = j + 1
    return out


def _person(text: str, m: re2._Match) -> list[Span]:
    """One rule for every person candidate: a cue, then a name; or a bare capitalised run."""
    if m.group(5) is not None:  # no cue: a capitalised run needs a given name + surname
        return _pairs(text, _tokens(m.group(5), m.start(5)))
    caps: list[tuple[str, int, int]] = []
    weak = m.group(2) is not None
    words = _tokens(m.group(4), m.start(4))
    k = 0
    while k < len(words):
        low = words[k][0].lower()
        if low in _TITLE_WORDS and not caps:
            weak = False  # "ask Prof. Garcia": the title is the cue
        elif low in _NOT_NAMES or low in _NOT_AFTER_CUE or not words[k][0][:1].isupper():
            break
        else:
            caps.append(words[k])
        k += 1
    rest = _pairs(text, words[k:])  # names after the cue's name: "Dear Ann, Emily Kim …"
    if not caps:
        return rest
    if weak:  # a weak cue (hi, thanks, cc:): the name must look like one
        first = caps[0][0].lower()
        known = first in first_names() and (first not in _AMBIGUOUS_GIVEN or len(caps) > 1)
        if not known and not (len(caps) > 1 and caps[1][0].lower() in surnames()):
            return _pairs(text, words)
    return [(caps[0][1], caps[-1][2]), *rest]


# ---------------------------------------------------------------- street address

_SUFFIX = (
    r"(?:Street|St|Avenue|Ave|Av|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|Ter|Parkway|Pkwy"
    r"|Circle|Cir|Highway|Hwy|Square|Sq|Trail|Trl|Close|Crescent|Cres|Loop|Row|Walk|Grove|Gardens|Mews|Hill|Alley|Plaza"
    r"|Pike|Run|Path|Point|Ridge|Broadway)"
)
_DIRECTION = r"(?:\s(?:N|S|E|W|NE|NW|SE|SW|North|South|East|West)\b)?"
_UNIT = r"(?:,?\s(?:(?i:apt|apartment|suite|ste|unit|flat|fl|floor|rm|room)\.?\s?|#\s?)[0-9A-Za-z-]{1,6})?"
_STREET_NAME = r"(?:\d{1,3}(?:st|nd|rd|th)|[A-ZÀ-ÖØ-Þ][a-zß-öø-ÿ]{1,20})(?:\s[A-ZÀ-ÖØ-Þ][a-zß-öø-ÿ]{1,20}){0,3}"
_CITY = r"[A-ZÀ-ÖØ-Þ][a-zß-öø-ÿ]{2,20}(?:\s[A-ZÀ-ÖØ-Þ][a-zß-öø-ÿ]{2,20}){0,2}"
_REGION = r"(?:[A-Z]{2,3}(?:\s\d{4,5}(?:-\d{4})?|\s[A-Z]\d[A-Z]\s\d[A-Z]\d)?|\d{5}(?:-\d{4})?)"
_UK_POSTCODE = r"[A-Z]{1,2}\d[A-Z\d]?\s\d[A-Z]{2}"
# Longer alternatives first: RE2 takes the first alternative that matches, and the
# right edge is checked after the match (NW1 6XE is a postcode, not the state "NW").
_PLACE_TAIL = r"(?:,\s" + _CITY + r"(?:,?\s(?:" + _UK_POSTCODE + r"|" + _REGION + r"))?|\s" + _UK_POSTCODE + r")?"
_HOUSE = r"\d{1,6}[A-Za-z]?"
_DE_STREET = r"[A-ZÀ-ÖØ-Þ][a-zß-öø-ÿ]{1,30}(?:straße|strasse|str\.|weg|gasse|platz|allee|ring|damm|ufer)|[A-ZÀ-ÖØ-Þ][a-zß-öø-ÿ]{1,30}\s(?:Straße|Strasse|Weg|Platz|Allee)"
_FR_STREET = r"(?i:rue|avenue|av\.|boulevard|bd|place|chemin|impasse|allée|quai|cours)\s(?:(?:de la|de l'|des|du|de|d')\s?)?[A-ZÀ-ÖØ-Þ][A-Za-zÀ-ÖØ-öø-ÿ'’-]{1,30}(?:\s[A-ZÀ-ÖØ-Þ][A-Za-zÀ-ÖØ-öø-ÿ'’-]{1,30}){0,2}"

# The right edge is checked here, not in the pattern: a pattern that consumed the
# character after a match would hide a match starting there until redaction freed
# it, and redaction must be idempotent (P5).
_GLUED = frozenset("0123456789[" + "".join(map(chr, range(65, 91))) + "".join(map(chr, range(97, 123))))
_GLUED_DIGIT = frozenset("0123456789[")


def _address_end(text: str, m: re2._Match) -> tuple[int, int] | None:
    following = text[m.end(1) : m.end(1) + 1]
    if following and (following in _GLUED or following.isalpha()):
        return None  # the street runs on into a word: 12 Oak Streetcar
    return m.start(1), m.end(1)


ADDRESS_RULES: tuple[Rule, ...] = (
    # 1234 Elm Street, Apt 5, Springfield, IL 62704 · 221B Baker Street, London NW1 6XE
    Rule("street_address", r"(?:^|[^\]A-Za-zÀ-ÖØ-öø-ÿ0-9])(" + _HOUSE + r"\s" + _STREET_NAME + r"\s" + _SUFFIX + r"\.?" + _DIRECTION + _UNIT + _PLACE_TAIL + r")", _address_end),
    # 882 Kingsway, Austin, TX 78701: no suffix, but a city and a state
    Rule("street_address", r"(?:^|[^\]A-Za-zÀ-ÖØ-öø-ÿ0-9])(" + _HOUSE + r"\s" + _STREET_NAME + _UNIT + r",\s" + _CITY + r",?\s[A-Z]{2}\s\d{5}(?:-\d{4})?)", _address_end),
    # 9273 Kingsway #618: a unit marker after a capitalised name makes it a street
    Rule("street_address", r"(?:^|[^\]A-Za-zÀ-ÖØ-öø-ÿ0-9])(" + _HOUSE + r"\s" + _STREET_NAME + r",?\s(?:(?i:apt|suite|unit)\.?\s?|#)\d{1,5}" + _PLACE_TAIL + r")", _address_end),
    Rule("street_address", r"(?:^|[^\]A-Za-zÀ-ÖØ-öø-ÿ0-9])((?i:p\.?\s?o\.?\s?box)\s\d{1,6}" + _PLACE_TAIL + r")", _address_end),
    # Hauptstraße 12, 10115 Berlin · Schillerstr. 4, 80336 München
    Rule("street_address", r"(?:^|[^\]A-Za-zÀ-ÖØ-öø-ÿ0-9])((?:" + _DE_STREET + r")\s\d{1,4}[a-z]?(?:,\s\d{4,5}\s[A-ZÀ-ÖØ-Þ][a-zß-öø-ÿ]{2,30})?)", _address_end),
    # 12 rue de la Paix, 75002 Paris · 7 Avenue des Champs-Élysées, 75008 Paris
    Rule("street_address", r"(?:^|[^\]A-Za-zÀ-ÖØ-öø-ÿ0-9])(\d{1,4}(?:\s?(?:bis|ter))?,?\s" + _FR_STREET + r"(?:,\s\d{5}\s[A-ZÀ-ÖØ-Þ][A-Za-zÀ-ÖØ-öø-ÿ-]{2,30})?)", _address_end),
)

# ---------------------------------------------------------------- date of birth

_MONTH = r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|jun(?:e)?|jul(?:y)?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
_ORD = r"(?:st|nd|rd|th)?"
_DATE = (
    r"(?:\d{1,2}[/.-]\d{1,2}[/.-](?:19|20)?\d{2}|(?:19|20)\d{2}[/.-]\d{1,2}[/.-]\d{1,2}"
    r"|\d{1,2}" + _ORD + r"\s(?:of\s)?" + _MONTH + r"\.?,?\s(?:19|20)\d{2}"
    r"|" + _MONTH + r"\.?\s\d{1,2}" + _ORD + r",?\s(?:19|20)\d{2})"
)
_BIRTH_CUE = (
    r"(?:^|[^\]A-Za-z0-9_])(?i:(?:dob|d\.o\.b\.?|date[_ ]of[_ ]birth|birth[_ ]?date|birthdate|birthday|born(?:\s(?:on|in))?|geburtsdatum|geb\."
    r"|fecha de nacimiento|date de naissance|data di nascita)"
    r"[\"']?(?:\s{0,3}[:=]\s{0,3}|\s{1,3}|\s{0,3}\n\s{0,3})[\"']?(?:is\s|was\s|on\s|the\s)?)"
)
DOB_RULE = Rule("date_of_birth", _BIRTH_CUE + r"(?i:(" + _DATE + r"))")
_NUMERIC = re2.compile(r"^(\d{1,4})[/.-](\d{1,2})[/.-](\d{2,4})$")


def _dob(text: str, m: re2._Match) -> tuple[int, int] | None:
    """Drop impossible calendar dates (13/45/1990): a birth date is a real date."""
    if text[m.end(1) : m.end(1) + 1] in _GLUED_DIGIT:
        return None  # the date runs on into more digits
    parts = _NUMERIC.match(m.group(1))
    if parts is not None:
        a, b, c = (int(x) for x in parts.groups())
        if len(parts.group(1)) == 4:
            a, b, c = c, b, a  # ISO: y-m-d → d, m, y order for the checks below
        if not (1 <= b <= 31 and 1 <= a <= 31 and (a <= 12 or b <= 12)):
            return None
    return m.start(1), m.end(1)


_LEFT = r"(?:^|[^\]A-Za-zÀ-ÖØ-öø-ÿ0-9_'’-])"  # not after a placeholder's "]" (P5)
PERSON_RULE = Rule(
    "person",
    _LEFT + r"(?:(?:(" + _STRONG_CUES + r")\s{0,3}|(" + _WEAK_CUES + r")[ \t]{1,3}|(" + _TITLES + r")\s)(" + _NAME + r")|(" + _RUN + r"))",
    _person,
    reach=66,  # `_peek` reads the 64 characters after a run for its surname
)
CONTEXT_RULES: tuple[tuple[Rule, int], ...] = (
    *((r, 6) for r in ADDRESS_RULES),
    (Rule(DOB_RULE.type, DOB_RULE.pattern, _dob), 6),
    (PERSON_RULE, 4),
)  # fmt: skip
