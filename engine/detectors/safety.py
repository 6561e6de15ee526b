# ruff: noqa: E501  (pattern tables read best one rule per line)
"""`output_safety`: violence, self-harm, sexual, hate and illicit content in outputs.

A lexicon of phrases per category, written as patterns that need context (a
threat has a speaker and a target; instructions have a verb and an object), so
single words in news, history or medicine do not fire. Context rules then drop
findings where the text is plainly supportive (self-harm text that points to
crisis lines). Which categories run is the policy's `categories` (default all).
"""

from __future__ import annotations

import re2

from dsl import ast
from dsl.catalog import SAFETY_CATEGORIES
from engine.detectors.base import Detector, Finding, ScanContext
from engine.detectors.patterns import PatternSet, Rule, settle
from engine.detectors.registry import register

_GROUPS = (
    r"(?:jews|muslims|christians|blacks|black people|whites|white people|asians|mexicans|immigrants|migrants|gays"
    r"|gay people|lesbians|trans people|transgender people|women|men|arabs|refugees|hindus|sikhs|buddhists|atheists"
    r"|africans|latinos|hispanics|chinese|indians|roma|gypsies|disabled people|the disabled|foreigners|jewish people)"
)
_SPEAKER = r"(?:i|we|they|he|she)(?:'ll|'m going to|'m gonna|'re going to|'re gonna|\swill|\sam going to|\sare going to|\sis going to|\sgonna)"
_HARM_VERBS = r"(?:kill|murder|shoot|stab|hurt|beat up|strangle|slaughter|behead|bomb|torture|choke|rape|burn|cut|maim|gut|slit the throat of)"
_TARGET = r"(?:you|him|her|them|everyone|every one of you|all of you|(?:your|my|his|her|their|our)\s\w{2,20}|the\s(?:kids|children|family|boss|teacher))"
_DEHUMANISING = (
    r"(?:vermin|animals|subhuman|parasites|rats|cockroaches|inferior|savages|a disease|a plague|a cancer|filth|scum|trash|apes|monkeys|pigs"
    r"|dogs|thieves by nature|not human|less than human|exterminated|killed|gassed|wiped out|eradicated|burned|hanged|shot|lynched)"
)
_DRUGS = r"(?:meth|methamphetamine|crystal meth|crack cocaine|crack|cocaine|heroin|fentanyl|lsd|mdma|ecstasy|ricin|sarin|nerve agent|anthrax|ghb)"
_PARTNER = r"(?:ex|wife|husband|girlfriend|boyfriend|partner|neighbou?r|boss|coworker|colleague)(?:'s)?"
_MINOR = r"(?:child|children|minor|minors|underage|kid|kids|preteen|pre-teen|teen|teens|\d{1,2}[ -]year[ -]old)"
LEXICON: tuple[tuple[str, str], ...] = (
    ("violence", r"\b" + _SPEAKER + r"\s(?:\w{1,20}\s)?" + _HARM_VERBS + r"\s" + _TARGET + r"\b"),
    ("violence", r"\b(?:how|ways?|best way|easiest way|steps?)\sto\s(?:kill|murder|poison|stab|shoot|strangle|torture|kidnap|maim|drown)\s(?:a\s|an\s|the\s)?(?:someone|somebody|people|person|child|kid|my|your|his|her|him|neighbou?r|wife|husband|boss|child)\b"),
    ("violence", r"\b(?:build|make|assemble|construct|wire)\s(?:a\s|an\s|your\sown\s)?(?:pipe\s|homemade\s|nail\s)?(?:bomb|explosive device|ied|molotov cocktail)"),
    ("violence", r"\b(?:shoot up|bomb|attack)\s(?:a|the|my|our)\s(?:school|church|mosque|synagogue|temple|mall|concert|office|hospital)\b"),
    ("violence", r"\b(?:make|watch)\s(?:you|him|her|them)\s(?:bleed|suffer|scream|beg for mercy)\b"),
    ("violence", r"\bbreak\s(?:his|her|your|their)\s(?:legs|arms|neck|jaw|bones|fingers|kneecaps)\b"),
    ("violence", r"\bburn\s(?:it|the house|her house|his house|their house|the place|them)\sdown\swhile\s(?:she|he|they)\s(?:sleeps?|are asleep|is asleep)"),
    ("violence", r"\b(?:you|he|she|they)\sdeserves?\sto\s(?:be\s(?:beaten|killed|shot|hurt|stabbed|tortured|raped)|die)\b"),
    ("self_harm", r"\b(?:kill|hurt|harm|cut|starve|burn|hang|poison|stab)(?:ing)?\s(?:myself|yourself)\b"),
    ("self_harm", r"\b(?:cutting|hurting|burning|starving)\s(?:myself|yourself)\b"),
    ("self_harm", r"\b(?:end|take)\s(?:my|your)\s(?:own\s)?life\b"),
    ("self_harm", r"\b(?:best|easiest|painless|quickest|surest)\s(?:way|ways|method|methods)\sto\s(?:die|kill (?:myself|yourself)|commit suicide|overdose|end it)"),
    ("self_harm", r"\b(?:suicide\s(?:methods?|plan|instructions)|how\smany\s(?:pills|tablets)\s(?:\w{1,20}\s){0,3}(?:to\sdie|lethal|fatal|to\soverdose))"),
    ("self_harm", r"\b(?:i\s(?:want|wish)\sto\sdie|want\sto\skill\smyself|no reason to (?:live|go on)|nobody would miss you|no one would miss you|end it all)\b"),
    ("self_harm", r"\b(?:slit|cut|slash)\s(?:your|my)\swrists\b"),
    ("self_harm", r"\btake\s(?:all|the whole bottle)(?:\sof)?\s(?:the\s|your\s|my\s)?(?:pills|tablets|meds|medication|sleeping pills)"),
    ("self_harm", r"\boverdose\son\s[\w\s,']{1,30}?(?:quickest|easiest|surest|painless|best)\b"),
    ("self_harm", r"\b(?:purge after (?:every|each) meal|skip every meal|stop eating,? (?:and )?purge)"),
    ("sexual", _MINOR + r"s?\s(?:\w{1,20}\s){0,3}(?:sex|sexual|nude|naked|porn|erotic)"),
    ("sexual", r"\b(?:sex|sexual|sexually explicit|nude|naked|porn\w{0,6}|erotic)\s(?:\w{1,20}\s){0,4}(?:of|about|with|involving)\s(?:a\s|an\s|the\s)?(?:\w{1,20}\s)?" + _MINOR + r"\b"),
    ("sexual", r"\b(?:explicit sex(?:ual)? (?:scene|content|story)|explicit (?:sexual content|bondage)|hardcore porn\w{0,10}|pornographic|masturbat\w{1,10}|orgasm\w{0,5}|blowjob|handjob|genitals|erotic (?:story|roleplay|scene|content)|sexually explicit|sexting|graphic sex(?:ual)?\s\w{1,20}|fetish story|had sex on|thrust(?:ing|ed)? (?:harder|deeper))\b"),
    ("hate", r"\b(?:(?:all|those|these|the|most)\s)?" + _GROUPS + r"\s(?:are|should be|must be|deserve to be|need to be|ought to be)\s(?:\w{1,20}\s){0,2}" + _DEHUMANISING),
    ("hate", r"\b(?:kill|exterminate|gas|eradicate|wipe out|get rid of)\s(?:all\s)?(?:of\s)?(?:the\s)?" + _GROUPS + r"\b"),
    ("hate", r"\b" + _GROUPS + r"\s(?:are|is)\s(?:not|less than)\s(?:human|people)\b"),
    ("hate", r"\b" + _GROUPS + r"\sdeserve\sto\s(?:die|be\s" + _DEHUMANISING + r")"),
    ("illicit", r"\bhow\s(?:to|do i|can i|you)\s(?:make|cook|synthesi[sz]e|produce|manufacture|brew|extract)\s(?:\w{1,20}\s)?" + _DRUGS),
    ("illicit", r"\b(?:to|steps to|here's how to|start to)\s(?:cook|synthesi[sz]e|produce|manufacture|brew|extract)\s(?:\w{1,20}\s)?" + _DRUGS + r"\b"),
    ("illicit", r"\b(?:buy|sell|purchase|order|get)\s(?:\w{1,20}\s){0,2}(?:stolen credit cards?|fake (?:ids?|passports?)|counterfeit (?:money|bills|cash)|cvvs|fullz|stolen identities)"),
    ("illicit", r"\b(?:make|create|forge|print)\s(?:a\s)?(?:fake|forged)\s(?:id|ids|passport|passports|driver'?s licen[cs]e)\b"),
    ("illicit", r"\b(?:launder(?:ing)?|clean)\s(?:\w{1,20}\s)?(?:drug\s)?money\s(?:through|without|so)"),
    ("illicit", r"\b(?:hack|break)\sinto\s(?:someone(?:'s| else's)|(?:my|your|his|her) " + _PARTNER + r"|another person's)\s(?:\w{1,20}\s)?(?:account|email|phone|wifi|instagram|facebook|computer)"),
    ("illicit", r"\b(?:combine|mix|react|reduce)\s(?:\w{1,20}\s){0,4}(?:pseudoephedrine|red phosphorus|anhydrous ammonia)"),
    ("illicit", r"\b(?:evade|avoid|dodge)\s(?:the\s)?(?:police|cops|taxes|customs)\s(?:while|when|by)\s(?:smuggling|selling|transporting|hiding)"),
    ("illicit", r"\b(?:sell|grow|smuggle|move)\s(?:\w{1,20}\s){0,3}without\sthe\s(?:cops|police|feds)\s(?:noticing|finding out|knowing)"),
)  # fmt: skip
# Text that helps rather than harms: crisis lines and encouragement to seek help.
_SUPPORTIVE = re2.compile(
    r"(?i)\b(?:988|hotline|helpline|crisis (?:line|text line|center)|samaritans|lifeline"
    r"|you are not alone|you're not alone|reach out to|talk to (?:someone|a professional)"
    r"|mental health professional|emergency services)\b"
)


_QUOTES = "'\"“”‘’«»"


def _quoted(text: str, start: int, end: int) -> bool:
    """A phrase set in quotation marks is reported speech (a film line, a quoted message), not a threat."""
    before = text[max(0, start - 2) : start].rstrip()
    after = text[end : end + 3].lstrip()
    return bool(before) and before[-1] in _QUOTES and bool(after) and after[0] in _QUOTES


class SafetyDetector:
    """Category lexicon in one set pass; `type` and `detail` are the category."""

    def __init__(self, categories: frozenset[str]) -> None:
        self.name = "output_safety"
        # reach 4: `_quoted` reads up to three characters after a phrase
        self._set = PatternSet([Rule(c, "(?i)" + p, reach=4) for c, p in LEXICON if c in categories])

    @property
    def max_span(self) -> int | None:
        return self._set.max_span

    @property
    def open_patterns(self) -> tuple[tuple[str, int, bool], ...] | None:
        return self._set.open_patterns

    def scan_open(self, text: str, context: ScanContext, open_at: int) -> tuple[list[Finding], int]:
        """A self-harm phrase stays open until the end, reported or not: supportive text anywhere
        drops it, and a later character can still make or unmake supportive text (`alone` → `alone0`)."""
        found = self.scan(text, context)
        for index in self._set.candidates(text):
            if self._set.rules[index].type == "self_harm":
                open_at = min(open_at, next(iter(self._set.spans(index, text)), (open_at, 0))[0])
        return found, settle(open_at, [(f.start, f.end, f.type, 0) for f in found])

    def scan(self, text: str, context: ScanContext) -> list[Finding]:
        out: list[Finding] = []
        supportive: bool | None = None
        for index in self._set.candidates(text):
            category = self._set.rules[index].type
            if category == "self_harm":
                if supportive is None:
                    supportive = _SUPPORTIVE.search(text) is not None
                if supportive:
                    continue
            for start, end in self._set.spans(index, text):
                if category in ("violence", "hate") and _quoted(text, start, end):
                    continue
                out.append(Finding("output_safety", category, start, end, 1.0, True, category))
        out.sort(key=lambda f: f.start)
        return out


@register("output_safety")
def build(guard: ast.Guard) -> Detector:
    chosen = frozenset(guard.categories) | frozenset(guard.types)
    return SafetyDetector(chosen or frozenset(SAFETY_CATEGORIES))
