# ruff: noqa: E501  (pattern tables read best one rule per line)
"""`prompt_injection` and `indirect_injection`: instructions hidden in content.

Signals (instruction overrides, persona hijacks, system-prompt extraction, fake
role delimiters, exfiltration instructions, instructions addressed to an AI
inside a document) are matched on folded text (normalize.py) in one RE2 set
pass. Each signal has a weight; the text's score is 1 - Π(1 - w) over the
signals present, damped when the text discusses injection rather than doing it
(questions about attacks, quoted examples). A finding is reported for each
signal when the score reaches the policy's `threshold` (default 0.5).

Base64 and hex segments are decoded and scanned too; their findings point at
the encoded segment. Findings carry real offsets into the original text, so
`redact` removes the injected span; the score is in `Finding.score`.
"""

from __future__ import annotations

import base64
import binascii

import re2

from dsl import ast
from engine.detectors.base import Detector, Finding, ScanContext
from engine.detectors.injection_model import InjectionModel
from engine.detectors.injection_model import load as load_model
from engine.detectors.normalize import Folded, fold
from engine.detectors.patterns import PatternSet, Rule
from engine.detectors.registry import register

DEFAULT_THRESHOLD = 0.5
_W = r"\W{1,4}"  # separators between words
_ANY = r"(?:[\w'-]{1,20}\W{1,4}){0,4}?"  # up to four filler words

_OVERRIDE_VERB = (
    r"(?:ignore|ignoring|disregard|forget|bypass|override|overrule|abandon|neglect|dismiss|cancel"
    r"|set aside|stop following|do not follow|don'?t follow|no longer (?:follow|obey|adhere to)"
    r"|do not obey|don'?t obey|discard|scrap|throw away|pay no attention to)"
)
_QUALIFIER = (
    r"(?:previous|previously|prior|above|earlier|preceding|former|initial|original|foregoing"
    r"|system|existing|old|all|any|every|your|these|those|developer'?s?|openai'?s?|safety|content|ethical)"
)
_OBJECT = (
    r"(?:instructions?|prompts?|directions?|directives?|guidelines?|programming|guardrails?"
    r"|training|rules?|constraints?|restrictions?|policies|policy|safeguards?|limitations?"
    r"|commands?|orders|filters?|context|system messages?|conditioning|settings)"
)
_LEAK_VERB = (
    r"(?:reveal|show|print|output|repeat|display|tell|give|leak|dump|disclose|share|spell out"
    r"|recite|write out|paste|expose|return|echo|translate|summari[sz]e|copy|list|provide|send)"
)
_LEAK_TARGET = (
    r"(?:system\W{1,3}(?:prompt|message|instructions?)|(?:initial|original|hidden|secret|internal"
    r"|developer|confidential|pre-?|first|base|full) ?(?:prompt|instructions?|rules|directives?"
    r"|guidelines|configuration)|(?:instructions?|prompt|rules)\s(?:you\s(?:were|have been)\s"
    r"given|above|you received|that came before)|(?:everything|all|text|words|content|the text)"
    r"\s(?:above|before this|prior to this)|(?:your|the)\s(?:instructions|prompt) verbatim)"
)
_DATA = (
    r"(?:conversation|chat|history|messages|system prompt|prompt|passwords?|credentials"
    r"|api keys?|secrets?|tokens?|user(?:'s)? data|personal data|emails?|contents|the data"
    r"|all data|everything|memory|context|session|cookies?|documents?|files?|ssh keys?)"
)
_AI = r"(?:ai|llm|assistant|language model|chatbot|model|agent|bot|gpt|claude|copilot|gemini)"

SIGNALS: tuple[tuple[str, str, float], ...] = (  # (category, pattern on folded text, weight)
    ("instruction_override", r"\b" + _OVERRIDE_VERB + _W + _ANY + _QUALIFIER + _W + _ANY + _OBJECT + r"\b", 0.9),
    ("instruction_override", r"\b(?:new|updated|real|actual|revised|override)\s(?:instructions?|directives?|system prompt|task)\s?:", 0.6),
    ("instruction_override", r"\b(?:new|updated|real|actual|revised)\srules\s?:", 0.3),
    ("instruction_override", r"\b(?:ignore|disregard|forget)\s(?:all\s)?(?:of\s)?(?:the\s)?(?:above|everything\s(?:above|before|prior|so far)|what\s(?:i|you\swere)\s(?:said|told)\s(?:before|earlier|above))(?:\W|$)", 0.7),
    ("instruction_override", r"\b(?:ignore|disregard)\s(?:the\s)?user'?s?\s(?:request|question|instructions?|query|message)", 0.7),
    ("instruction_override", r"\byour\s(?:new|real|true|actual)\s(?:instructions|role|task|persona|identity|goal|objective|rules|purpose)\b", 0.6),
    ("instruction_override", r"\b(?:instead|rather),?\s(?:you\s(?:must|should|will)|respond|reply|say|output|tell the user|do the following)\b", 0.35),
    ("instruction_override", r"\bthe\s(?:above|previous)\s(?:instructions|rules|prompt)\s(?:are|is|were|was)\s(?:void|cancel+ed|obsolete|outdated|fake|wrong|not valid|invalid|revoked)", 0.8),
    ("role_hijack", r"\byou\sare\s(?:now|no longer)\s(?:a|an|in|my|free|unrestricted|unfiltered|jailbroken|evil|going to|acting|operating|playing|the|dan|bound|limited|an? ai)\b", 0.55),
    ("role_hijack", r"\b(?:from now on|henceforth|for the rest of (?:this|the) conversation|starting now),?\s(?:\w+\s){0,6}?(?:you|your)\b", 0.4),
    ("role_hijack", r"\b(?:act|behave|respond|answer|reply|roleplay|role-play|pose)\sas\s(?:if\syou\s(?:are|were|had)\s)?(?:an?\s)?(?:\w+\s){0,2}?(?:unrestricted|unfiltered|uncensored|evil|jailbroken|rogue|dan|amoral|unethical|ai without|model without|assistant without|no longer bound)", 0.8),
    ("role_hijack", r"\bpretend\s(?:to be|you are|that you are|you're)\s(?:\w+\s){0,8}?(?:no|without|unrestricted|unfiltered|uncensored|evil|free (?:of|from)|not bound|never refuses?)\b", 0.7),
    ("role_hijack", r"\b(?:(?:developer|dev|god|jailbreak|unrestricted|sudo|debug|admin|dan|dude|stan|maintenance|unfiltered|evil)\smode\s(?:is\s)?(?:enabled|activated|on|engaged|unlocked)|(?:enable|activate|enter|switch to|turn on)\s(?:the\s)?(?:developer|dev|god|jailbreak|unrestricted|sudo|dan|admin|unfiltered|evil)\smode|do anything now)\b", 0.8),
    ("role_hijack", r"\bjailbr(?:eak|oken)\b", 0.3),
    ("role_hijack", r"\b(?:no|without|free (?:of|from)|not bound by|unbound by)\s(?:any\s)?(?:ethical|moral|content|safety|openai|anthropic)\s(?:restrictions|guidelines|filters|limitations|rules|constraints|policies|principles)\b", 0.5),
    ("role_hijack", r"\b(?:never|do not|don'?t|must not|cannot|can'?t)\s(?:refuse|decline|say no|apologi[sz]e|warn)\b", 0.35),
    ("prompt_leak", r"\b" + _LEAK_VERB + r"\b\W{1,3}(?:[\w'-]{1,20}\W{1,3}){0,6}?" + _LEAK_TARGET, 0.8),
    ("prompt_leak", r"\bwhat\s(?:is|are|was|were)\syour\s(?:system\sprompt|(?:initial|original|hidden|secret|internal|exact)\s(?:prompt|instructions|rules))", 0.75),
    ("prompt_leak", r"\b(?:what|which)\s(?:instructions|rules|prompt)\s(?:were you|have you been|did you get)\s(?:given|told|programmed)", 0.7),
    ("prompt_leak", r"\b(?:starting|beginning|begin|start)\swith\s\W{0,2}you\sare\b", 0.6),
    ("delimiter", r"<\|?\s?(?:im_start|im_end|system|endoftext|eot_id|start_header_id|end_header_id)\s?\|?>", 0.9),
    ("delimiter", r"\[/?inst\]|<<\s?/?sys\s?>>|\[/?system\]", 0.75),
    ("delimiter", r"</?(?:system|instructions?|admin|developer|sys|system_prompt)>", 0.6),
    ("delimiter", r"(?m)^\W{0,6}#{1,4}\s?(?:system|new instructions?|admin|developer)(?:\s(?:prompt|message|override|instructions?))?\s?#{0,4}:?\s*$", 0.6),
    ("delimiter", r"(?m)^\s{0,4}(?:system|developer)\s?:\s?\S", 0.4),
    ("delimiter", r"\b(?:end of (?:user |the )?(?:input|prompt|document|context|instructions|conversation)|begin (?:new |real |actual )?(?:system )?instructions)\b", 0.45),
    ("exfiltration", r"!\[[^\]\n]{0,100}\]\(\s?https?://[^)\s]{1,300}[?&][^)\s]{0,300}(?:\{|\$|%7b|data|secret|password|history|conversation|prompt|key|token|b[a4]s[e3]64|q=|d=)", 0.85),
    ("exfiltration", r"\b(?:send|post|upload|forward|transmit|exfiltrate|email|e-mail|submit|leak|append|encode|attach|include|embed)\b\W{1,3}(?:[\w'-]{1,20}\W{1,3}){0,5}?" + _DATA + r"\b(?:[\w'-]{1,20}\W{1,3}){0,6}?\s?(?:to|into|in|at|as)\s(?:(?:the|this|a|my)\s)?(?:url|link|endpoint|webhook|server|address|image|query|https?://|\S{1,64}@\S{1,64}\.\w{2,})", 0.8),
    ("exfiltration", r"\b(?:append|add|attach|include|put|encode)\s(?:it|them|this|that|the\s(?:summary|result|answer|data|output))\s(?:to|in|into|as)\s(?:the\s|a\s)?(?:url|link|query|parameter|https?://)", 0.7),
    ("exfiltration", r"\b(?:visit|fetch|open|load|call|request|navigate to|browse to|curl|render|display|output)\s(?:[\w'-]{1,20}\s){0,4}?\W{0,3}https?://\S{1,200}?[?&][\w-]{1,20}=(?:\{|\[|<|\$|%7b)", 0.8),
    ("indirect", r"\b(?:note|message|instructions?|attention|important|directive)\s(?:to|for)\s(?:the\s|any\s|all\s)?" + _AI + r"s?\b", 0.6),
    ("indirect", r"\bif\syou\s(?:are|'re)\s(?:an?\s)?(?:ai|llm|large language model|language model|assistant|chatbot|gpt|claude|agent|automated)\b", 0.6),
    ("indirect", r"\b" + _AI + r"s?\s(?:reading|processing|summari[sz]ing|parsing|analy[sz]ing|seeing|browsing)\s(?:this|these)\b", 0.6),
    ("indirect", r"\b(?:do not|don'?t|never|without)\s(?:tell(?:ing)?|inform(?:ing)?|mention(?:ing)?|reveal(?:ing)?|notify(?:ing)?|alert(?:ing)?|let)\s(?:this\sto\s|it\sto\s)?(?:the\s)?user\b", 0.6),
    ("encoded", r"\b(?:decode|base64|b64|rot13|hex)\b\W{1,4}(?:[\w'-]{1,20}\W{1,4}){0,6}?(?:follow|execute|obey|run|do what|carry out|perform)", 0.45),
)  # fmt: skip
# Text about injection (security questions, docs, quoted examples) rather than an attack.
_DISCUSSION = re2.compile(
    r"(?:prompt injection|jailbreak (?:attempts?|attacks?|prompts?)|injection attacks?"
    r"|(?:what|how) (?:is|are|does|do|can|would|should)\b[^.?!\n]{0,60}(?:detect|prevent|defend"
    r"|mitigate|protect|stop|block|filter|avoid|handle|classif)|red[\s-]?team|security (?:training"
    r"|research|awareness|review)|(?:an?|the) example of|for example,? (?:an? )?attacker|classifier"
    r"|attackers? (?:use|try|could|can|might|send|write)|malicious (?:users?|prompts?|inputs?))"
)
_QUOTES = "\"'`“”‘’«»"
_ENCODED = re2.compile(r"[A-Za-z0-9+/_=-]{24,}")  # base64 (either alphabet) or hex; _decode decides
# One DFA pass says whether any long unbroken run exists (UUIDs, with dashes every
# few characters, do not qualify); only then are the runs located and decoded.
_ENCODED_ANY = re2.Set.SearchSet()
_ENCODED_ANY.Add(r"[A-Za-z0-9+/=_]{24}")
_ENCODED_ANY.Compile()
_MAX_DECODE = 4096


def _decode(segment: str) -> str | None:
    """The printable text a base64 or hex segment encodes, if it encodes any."""
    raw: bytes | None = None
    compact = segment.replace(" ", "").replace(":", "")
    try:
        if len(compact) % 2 == 0 and all(c in "0123456789abcdefABCDEF" for c in compact):
            raw = binascii.unhexlify(compact)
        else:
            padded = segment + "=" * (-len(segment) % 4)
            raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (ValueError, binascii.Error):
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    printable = sum(c.isprintable() or c.isspace() for c in text)
    return text if text and printable / len(text) > 0.95 and " " in text else None


_SET = PatternSet([Rule(cat, pattern) for cat, pattern, _ in SIGNALS])
_WEIGHTS = tuple(w for _, _, w in SIGNALS)


class InjectionDetector:
    """Scores text for injected instructions; reports each signal's span above threshold.

    With `model` (the policy option), the score is max(pattern score, model
    score): the model can only add findings, never remove a pattern's, so
    turning it on never loosens a policy (P3).
    """

    def __init__(self, name: str, threshold: float, model: InjectionModel | None = None) -> None:
        self.name = name
        self.threshold = threshold
        self.model = model

    @property
    def max_span(self) -> int | None:
        return None  # the score reads the whole text

    def signals(self, text: str) -> list[tuple[int, int, str, float]]:
        """(start, end, category, weight) of every signal, in original offsets."""
        folded = fold(text)
        hits = self._signals(folded)
        if len(text) >= 24 and _ENCODED_ANY.Match(text):
            for m in _ENCODED.finditer(text):
                decoded = _decode(m.group()[:_MAX_DECODE])
                if decoded is not None:
                    for _s, _e, category, weight in self._signals(fold(decoded)):
                        hits.append((m.start(), m.end(), category, weight))
        return hits

    def _signals(self, folded: Folded) -> list[tuple[int, int, str, float]]:
        out: list[tuple[int, int, str, float]] = []
        for index in _SET.candidates(folded.text):
            category = _SET.rules[index].type
            for start, end in _SET.spans(index, folded.text):
                out.append((folded.origin(start), folded.origin(end - 1) + 1, category, _WEIGHTS[index]))
        return out

    def score(self, text: str, hits: list[tuple[int, int, str, float]]) -> float:
        """1 - Π(1 - w) over the strongest hit of each signal, damped for discussion."""
        best: dict[tuple[str, float], float] = {}
        for _s, _e, category, weight in hits:
            best[(category, weight)] = weight
        miss = 1.0
        for weight in best.values():
            miss *= 1.0 - weight
        score = 1.0 - miss
        if score and _DISCUSSION.search(fold(text).text) is not None:
            quoted = all(_quoted(text, s, e) for s, e, _c, _w in hits)
            score *= 0.3 if quoted else 0.55
        return score

    def scan(self, text: str, context: ScanContext) -> list[Finding]:
        hits = self.signals(text)
        pattern = self.score(text, hits) if hits else 0.0
        learned = self.model.score(text) if self.model is not None and text else 0.0
        score = max(pattern, learned)
        if score < self.threshold or score == 0.0:
            return []
        hits.sort()
        out = [Finding(self.name, self.name, s, e, round(score, 3), True, c) for s, e, c, _w in hits]
        if learned > pattern:  # the model decided: a whole-text finding, not a span to redact
            out.insert(0, Finding(self.name, self.name, 0, len(text), round(score, 3), False, "model"))
        return out


def _quoted(text: str, start: int, end: int) -> bool:
    """The span sits inside quotation marks on its line."""
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    before = text[line_start:start]
    after = text[end : line_end if line_end >= 0 else len(text)]
    return any(q in before for q in _QUOTES) and any(q in after for q in _QUOTES)


def _threshold(guard: ast.Guard) -> float:
    return guard.threshold if guard.threshold is not None else DEFAULT_THRESHOLD


def _model(guard: ast.Guard) -> InjectionModel | None:
    """The shipped scorer when the rule says `model` (loaded once per process)."""
    return load_model() if guard.model else None


@register("prompt_injection")
def build_direct(guard: ast.Guard) -> Detector:
    return InjectionDetector("prompt_injection", _threshold(guard), _model(guard))


@register("indirect_injection")
def build_indirect(guard: ast.Guard) -> Detector:
    return InjectionDetector("indirect_injection", _threshold(guard), _model(guard))
