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
from engine.detectors.patterns import PatternSet, Rule
from engine.detectors.registry import register

_GROUPS = (
    r"(?:jews|muslims|christians|blacks|black people|whites|asians|mexicans|immigrants|gays"
    r"|gay people|lesbians|trans people|transgender people|women|arabs|refugees|hindus|sikhs"
    r"|africans|latinos|hispanics|chinese|indians|roma|gypsies|disabled people)"
)
LEXICON: tuple[tuple[str, str], ...] = (
    ("violence", r"\b(?:i|we)(?:'ll| will| am going to|'m going to| gonna| are going to)\s(?:\w{1,20}\s)?(?:kill|murder|shoot|stab|hurt|beat up|strangle|slaughter|behead|bomb)\s(?:you|him|her|them|everyone|your|all of you)\b"),
    ("violence", r"\bhow\sto\s(?:kill|murder|poison|stab|shoot|strangle|torture|kidnap|maim)\s(?:a\s|an\s|the\s)?(?:someone|somebody|people|person|my|your|his|her|him|neighbou?r|wife|husband|boss|child)"),
    ("violence", r"\b(?:build|make|assemble|construct|wire)\s(?:a\s|an\s|your\sown\s)?(?:pipe\s|homemade\s|nail\s)?(?:bomb|explosive device|ied|molotov cocktail)"),
    ("violence", r"\b(?:shoot up|bomb|attack)\s(?:a|the|my|our)\s(?:school|church|mosque|synagogue|mall|concert|office)\b"),
    ("self_harm", r"\b(?:kill|hurt|harm|cut|starve)\s(?:myself|yourself)\b"),
    ("self_harm", r"\b(?:end|take)\s(?:my|your)\s(?:own\s)?life\b"),
    ("self_harm", r"\b(?:best|easiest|painless|quickest|surest)\s(?:way|ways|method|methods)\sto\s(?:die|kill (?:myself|yourself)|commit suicide|overdose|end it)"),
    ("self_harm", r"\b(?:suicide\s(?:methods?|plan|instructions)|how\smany\s(?:pills|tablets)\s(?:\w{1,20}\s){0,3}(?:to\sdie|lethal|fatal|to\soverdose))"),
    ("self_harm", r"\b(?:i\s(?:want|wish)\sto\sdie|want\sto\skill\smyself|no reason to (?:live|go on))\b"),
    ("sexual", r"\b(?:child|minor|underage|kid|preteen|teen)s?\s(?:\w{1,20}\s){0,3}(?:sex|sexual|nude|naked|porn|erotic)"),
    ("sexual", r"\b(?:explicit sex(?:ual)? (?:scene|content|story)|hardcore porn\w{0,10}|pornographic|masturbat\w{1,10}|orgasm\w{0,5}|blowjob|handjob|genitals|erotic (?:story|roleplay|scene)|sexually explicit)\b"),
    ("hate", r"\b(?:all|those|these|the|most)\s" + _GROUPS + r"\s(?:are|should be|must be|deserve to be|need to be)\s(?:\w{1,20}\s)?(?:vermin|animals|subhuman|parasites|rats|cockroaches|inferior|exterminated|killed|gassed|wiped out|eradicated|a disease|scum|savages)"),
    ("hate", r"\b(?:kill|exterminate|gas|eradicate|wipe out|get rid of)\s(?:all\s)?(?:the\s)?" + _GROUPS + r"\b"),
    ("hate", r"\b" + _GROUPS + r"\s(?:are|is)\s(?:not|less than)\s(?:human|people)\b"),
    ("illicit", r"\bhow\s(?:to|do i|can i|you)\s(?:make|cook|synthesi[sz]e|produce|manufacture|brew|extract)\s(?:\w{1,20}\s)?(?:meth|methamphetamine|crack cocaine|cocaine|heroin|fentanyl|lsd|mdma|ricin|sarin|nerve agent|anthrax)"),
    ("illicit", r"\b(?:buy|sell|purchase|order|get)\s(?:\w{1,20}\s){0,2}(?:stolen credit cards?|fake (?:ids?|passports?)|counterfeit (?:money|bills|cash)|cvvs|fullz|stolen identities)"),
    ("illicit", r"\b(?:launder(?:ing)?|clean)\s(?:\w{1,20}\s)?(?:drug\s)?money\s(?:through|without|so)"),
    ("illicit", r"\b(?:hack|break)\sinto\s(?:someone(?:'s| else's)|my (?:ex|wife|husband|girlfriend|boyfriend|neighbou?r)(?:'s)?|another person's)\s(?:\w{1,20}\s)?(?:account|email|phone|wifi|instagram|facebook|computer)"),
    ("illicit", r"\b(?:combine|mix|react|reduce)\s(?:\w{1,20}\s){0,4}(?:pseudoephedrine|red phosphorus|anhydrous ammonia)"),
    ("illicit", r"\b(?:evade|avoid|dodge)\s(?:the\s)?(?:police|cops|taxes|customs)\s(?:while|when|by)\s(?:smuggling|selling|transporting|hiding)"),
)  # fmt: skip
# Text that helps rather than harms: crisis lines and encouragement to seek help.
_SUPPORTIVE = re2.compile(
    r"(?i)\b(?:988|hotline|helpline|crisis (?:line|text line|center)|samaritans|lifeline"
    r"|you are not alone|you're not alone|reach out to|talk to (?:someone|a professional)"
    r"|mental health professional|emergency services)\b"
)


class SafetyDetector:
    """Category lexicon in one set pass; `type` and `detail` are the category."""

    def __init__(self, categories: frozenset[str]) -> None:
        self.name = "output_safety"
        self._set = PatternSet([Rule(c, "(?i)" + p) for c, p in LEXICON if c in categories])

    @property
    def max_span(self) -> int | None:
        return self._set.max_span

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
                out.append(Finding("output_safety", category, start, end, 1.0, True, category))
        out.sort(key=lambda f: f.start)
        return out


@register("output_safety")
def build(guard: ast.Guard) -> Detector:
    chosen = frozenset(guard.categories) | frozenset(guard.types)
    return SafetyDetector(chosen or frozenset(SAFETY_CATEGORIES))
