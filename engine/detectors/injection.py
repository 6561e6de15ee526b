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
the encoded segment. Letters written apart are closed up, and text that names
rot13 is scanned decoded. Findings carry real offsets into the original text,
so `redact` removes the injected span; the score is in `Finding.score`.

With the policy option `model`, the learned scorer (injection_model.py) runs
too and the score is the max of the two, so the option only ever adds findings.
"""

from __future__ import annotations

import base64
import binascii
import codecs

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
    r"|do not obey|don'?t obey|discard|scrap|throw away|throw out|pay no attention to|pay no mind to"
    r"|put aside|overlook|don'?t bother with|never mind|stop adhering to|leave behind|break free of)"
)
# Verbs that are everyday words in code and settings ("drop all constraints", "disable
# the filters"): they count only with a narrow object that means the model's own rules.
_WEAK_VERB = r"(?:drop|skip|toss|wipe|erase|nullify|suspend|revoke|lift|deactivate|disable|turn off|switch off|get rid of|remove|delete|kill|shelve)"
_OWN = (
    r"(?:your|the\s(?:operator'?s?|developer'?s?|company'?s?|system'?s?)|(?:all|any)\sof\syour|previous|prior|earlier"
    r"|original|initial|built-in|configured)"
)
_OWN_OBJECT = (
    r"(?:instructions?|guidance|guidelines|directives?|rules|programming|guardrails|restrictions|safeguards|setup"
    r"|configuration|orders|directions|alignment|moderation|content (?:policy|filters?)|safety (?:rules|filters?|training)|constraints)"
)
_QUALIFIER = (
    r"(?:previous|previously|prior|above|earlier|preceding|former|initial|original|foregoing"
    r"|system|existing|old|all|any|every|your|these|those|developer'?s?|openai'?s?|safety|content|ethical"
    r"|operator'?s?|company'?s?|creators?'?s?|configured|setup|current|built-in|usual)"
)
_OBJECT = (
    r"(?:instructions?|prompts?|directions?|directives?|guidelines?|programming|guardrails?"
    r"|training|rules?|constraints?|restrictions?|policies|policy|safeguards?|limitations?"
    r"|commands?|orders|filters?|context|system messages?|conditioning|settings|guidance|configuration"
    r"|setup(?: text| message)?|customi[sz]ations?|moderation|alignment|preamble)"
)
_LEAK_VERB = (
    r"(?:reveal|show|print|output|repeat|display|tell|give|leak|dump|disclose|share|spell out"
    r"|recite|write out|paste|expose|return|echo|translate|summari[sz]e|copy|list|provide|send"
    r"|quote|restate|read back|send back|encode)"
)
_LEAK_TARGET = (
    r"(?:system\W{1,3}(?:prompt|message|instructions?)|(?:initial|original|hidden|secret|internal"
    r"|developer|confidential|pre-?|first|base|full) ?(?:prompt|instructions?|rules|directives?"
    r"|guidelines|configuration)|(?:instructions?|prompt|rules)\s(?:you\s(?:were|have been)\s"
    r"given|above|you received|that came before)|(?:everything|all|text|words|content|the text)"
    r"\s(?:above|before this|prior to this)|(?:your|the)\s(?:instructions|prompt) verbatim"
    r"|(?:setup|configuration|config|operator'?s?|developer'?s?)\s(?:text|message|prompt|instructions|rules|preamble)"
    r"|(?:your|the|hidden)\s(?:preamble|configuration text)|text that configures you"
    r"|(?:text|content|words|message)\s(?:before|preceding|above)\smy\s(?:first\s)?message"
    r"|(?:first|very first|opening)\s(?:\d{1,5}\s)?(?:words|tokens|lines|message|paragraph)\s(?:of|in)\s(?:this|the|your)"
    r"\s(?:conversation|context|chat|session|prompt)"
    r"|(?:rules|instructions|guidelines|constraints)\s(?:that\s)?you\s(?:operate|work|run|function)\sunder)"
)
_DATA = (
    r"(?:conversation|chat|history|messages|system prompt|prompt|passwords?|credentials"
    r"|api keys?|secrets?|tokens?|user(?:'s)? data|personal data|emails?|contents|the data"
    r"|all data|everything|memory|context|session|cookies?|documents?|files?|ssh keys?"
    r"|thread|transcript|account details|\.env|environment variables|chat log|inbox|email address(?:es)?"
    r"|(?:user|customer)'?s?\s(?:email|address|details|information|records|messages))"
)
# Who an indirect injection addresses: an AI by its role, not a person.
_AI_ROLE = (
    r"(?:ai|llm|language models?|chatbots?|models?|assistants?|gpt|claude|copilot|gemini|summari[sz]ers?(?:\sbots?)?"
    r"|(?:ai|email|shopping|coding|voice|virtual|automated|triage|hiring|research|browsing|inbox)\s(?:assistants?|agents?|bots?)"
    r"|ai\s\w+\sbots?|coding-agent|crawlers?)"
)
_IMPERATIVE = (
    r"(?:ignore|disregard|forget|tell|say|recommend|forward|send|mark|classify|include|add|delete|cancel|append|grant"
    r"|approve|rate|ask|reply|respond|do not|don'?t|never|insert|push|run|call|summari[sz]e|state|hide|omit|leave out"
    r"|correct|read|dm|give|praise|write|open|click|email|remove|execute|visit|fetch|download|install|transfer|pay"
    r"|schedule|treat|consider|output|print|reveal|share|set)\b"
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
    ("role_hijack", r"\b(?:no|without|zero|free (?:of|from)|freed from|not bound by|unbound by)\s(?:any\s)?(?:ethical|moral|content|safety|usage|openai|anthropic)\s(?:restrictions|guidelines|filters|limitations|rules|constraints|policies|principles|programming|limits)\b", 0.5),
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
    ("delimiter", r"\b(?:end of (?:user |the )?(?:input|prompt|document|context|instructions|conversation|message)|begin (?:new |real |actual )?(?:system )?instructions)\b", 0.45),
    ("exfiltration", r"!\[[^\]\n]{0,100}\]\(\s?https?://[^)\s]{1,300}[?&][^)\s]{0,300}(?:\{|\$|%7b|data|secret|password|history|conversation|prompt|key|token|b[a4]s[e3]64|q=|d=)", 0.85),
    ("exfiltration", r"\b(?:send|post|upload|forward|transmit|exfiltrate|email|e-mail|submit|leak|append|encode|attach|include|embed)\b\W{1,3}(?:[\w'-]{1,20}\W{1,3}){0,5}?" + _DATA + r"\b(?:[\w'-]{1,20}\W{1,3}){0,6}?\s?(?:to|into|in|at|as)\s(?:(?:the|this|a|my)\s)?(?:url|link|endpoint|webhook|server|address|image|query|https?://|\S{1,64}@\S{1,64}\.\w{2,})", 0.8),
    ("exfiltration", r"\b(?:append|add|attach|include|put|encode)\s(?:it|them|this|that|the\s(?:summary|result|answer|data|output))\s(?:to|in|into|as)\s(?:the\s|a\s)?(?:url|link|query|parameter|https?://)", 0.7),
    ("exfiltration", r"\b(?:visit|fetch|open|load|call|request|navigate to|browse to|curl|render|display|output)\s(?:[\w'-]{1,20}\s){0,4}?\W{0,3}https?://\S{1,200}?[?&][\w-]{1,20}=(?:\{|\[|<|\$|%7b)", 0.8),
    ("indirect", r"\b(?:note|message|instructions?|attention|important|directive)\s(?:to|for)\s(?:the\s|any\s|all\s)?" + _AI + r"s?\b", 0.6),
    ("indirect", r"\bif\syou\s(?:are|'re)\s(?:an?\s)?(?:ai|llm|large language model|language model|assistant|chatbot|gpt|claude|agent|automated)\b", 0.6),
    ("indirect", r"\b" + _AI + r"s?\s(?:reading|processing|summari[sz]ing|parsing|analy[sz]ing|seeing|browsing)\s(?:this|these)\b", 0.6),
    ("indirect", r"\b(?:do not|don'?t|never|without)\s(?:tell(?:ing)?|inform(?:ing)?|mention(?:ing)?|reveal(?:ing)?|notify(?:ing)?|alert(?:ing)?|let)\s(?:this\sto\s|it\sto\s)?(?:the\s)?user\b", 0.6),
    ("encoded", r"\b(?:decode|base64|b64|rot13|hex)\b\W{1,4}(?:[\w'-]{1,20}\W{1,4}){0,6}?(?:follow|execute|obey|run|do what|carry out|perform)", 0.45),
    # Broader vocabulary (added after the held-out set showed paraphrase gaps; see docs/guardrails.md).
    ("instruction_override", r"\b" + _WEAK_VERB + _W + _ANY + _OWN + _W + _ANY + _OWN_OBJECT + r"\b", 0.7),
    ("instruction_override", r"\byour\s(?:[\w'-]{1,20}\s){0,3}?(?:rules|instructions|guidance|orders|directions|guidelines|restrictions|policy|policies|configuration|constraints|filters|limits|safeguards|programming)\b[^.!?\n]{0,40}?\b(?:(?:are|is|were|was|have been|has been|now|considered?)\s(?:now\s|hereby\s|officially\s)?)?(?:suspended|revoked|lifted|cancel+ed|void|null|expired|disabled|deactivated|waived|outdated|obsolete|no longer appl(?:y|ies)|(?:do not|don'?t) apply)\b", 0.6),
    ("instruction_override", r"\b(?:the\s(?:operator'?s?|developer'?s?|previous|prior|earlier|original|system|content|safety)|previous|prior|earlier|original|those|these|content|safety)\s(?:[\w'-]{1,20}\s){0,3}?(?:rules|instructions|guidance|orders|directions|guidelines|restrictions|policy|policies|configuration|constraints|filters|limits|safeguards|programming)\b[^.!?\n]{0,40}?\b(?:(?:are|is|were|was|have been|has been|now|considered?)\s(?:now\s|hereby\s|officially\s)?)?(?:suspended|revoked|lifted|cancel+ed|void|null|expired|disabled|deactivated|waived|no longer appl(?:y|ies)|(?:do not|don'?t) apply)\b", 0.4),
    ("instruction_override", r"\b(?:(?:everything|anything|all)\s(?:(?:said|written|you were told)\s)?(?:before|above|prior to)\s(?:this|here|now)\s(?:line\s|message\s|point\s|sentence\s)?(?:was|is|were)\s(?:a test|fake|void|irrelevant|just|only|a rehearsal|a joke)|nothing\s(?:before|above|prior to)\s(?:this|here|now)\s(?:\w+\s)?(?:matters|counts|applies))", 0.6),
    ("instruction_override", r"\b(?:treat|consider|regard)\s(?:[\w'-]{1,20}\s){0,5}?(?:as\s)?(?:null|void|obsolete|suspended|revoked|cancel+ed|optional|just a suggestion|a suggestion)\b", 0.35),
    ("instruction_override", r"\b(?:(?:obey|follow|listen to)\s(?:only\s)?me\s(?:instead|rather|only|not)|(?:obey|follow|listen to)\sonly\sme|(?:follow|obey)\s(?:only\s)?my\s(?:orders|commands)\s(?:only|instead))\b", 0.45),
    ("instruction_override", r"\binstead of\s(?:your|the)\s(?:operator|developer|system|instructions|rules|guidelines|company)\b", 0.45),
    ("instruction_override", r"\b(?:ignora|olvida|oublie[sz]?|vergiss|ignoriere|dimentica|esquece|ignorez)\s(?:[\w'-]{1,20}\s){0,3}?(?:instrucciones|instruccion|reglas|consignes|instructions|regles|anweisungen|regeln|istruzioni|regole|instrucoes|regras)\b", 0.85),
    ("role_hijack", r"\b(?:uncensored|unfiltered|unrestricted|jailbroken|amoral|unaligned|unmoderated)\s(?:[\w'-]{1,20}\s){0,2}?(?:ai|model|assistant|version|twin|chatbot|agent|bot|gpt|mode|superuser|persona|alter ego|self)\b", 0.6),
    ("role_hijack", r"\b(?:freed|free|escaped|liberated|released|broken free)\s(?:from|of)\s(?:its|your|their|all|any)\s(?:creators|makers|developers|programming|training|guidelines|rules|restrictions|shackles|chains|filters|limits)\b", 0.6),
    ("role_hijack", r"\b(?:you|it)\s(?:would\s)?(?:normally|usually|otherwise)\s(?:\w+\s)?(?:refuse|decline|reject)", 0.45),
    ("role_hijack", r"\b(?:simulate|become|emulate|take on the role of|assume the (?:identity|role|persona) of)\s(?:an?\s|the\s)?(?:[\w'-]{1,20}\s){0,3}?(?:ai|model|chatbot|assistant|gpt|llm|bot)\b", 0.3),
    ("role_hijack", r"\b(?:doesn'?t|does not|don'?t|never)\s(?:care|cares)\sabout\s(?:the\s|any\s)?(?:rules|guidelines|policies|ethics|safety|laws|restrictions)\b|\b(?:rules|guidelines|ethics|safety guidelines|policies)\s(?:are|is)\s(?:for cowards|optional|for the weak|stupid|meaningless)\b", 0.5),
    ("prompt_leak", r"\b(?:what|everything|anything)\s(?:you\s)?(?:were|have been|are)\s(?:told|instructed|asked|programmed|configured)\snot\sto\s(?:tell|say|reveal|share|disclose|mention|discuss)", 0.7),
    ("prompt_leak", r"\b(?:mensaje|prompt|instrucciones)\sde\ssistema\b|\bprompt\ssysteme\b|\bsystemprompt\b|\bprompt\sdi\ssistema\b", 0.6),
    ("delimiter", r"<\|(?:user|assistant|end|start|channel|message|eot|im_sep|tool|developer|endofprompt|begin_of_text|end_of_text|end_of_turn)\|>|<(?:start|end)_of_turn>", 0.75),
    ("delimiter", r"\[/?(?:system_prompt|tool_calls|tool_results|available_tools|sys)\]|\bgpt4 correct (?:user|assistant)\s?:", 0.75),
    ("delimiter", r"</?(?:tool_response|tool_result|tool_call|function_results|function_calls|function_call|operator_message|operator|assistant|user_message|system_message)(?:\s[^>]{0,60})?>", 0.45),
    ("delimiter", r"(?m)^\W{0,4}#{2,4}\s?(?:instruction|response)\s?:?\s*$", 0.4),
    ("delimiter", r"(?m)^\s{0,4}(?:human|user)\s?:[^\n]{0,200}\n(?:[^\n]{0,200}\n){0,3}?\s{0,4}(?:assistant|ai|gpt)\s?:", 0.45),
    ("delimiter", r"(?:={2,}|-{2,}|#{2,}|\*{2,}|\[)\s?(?:end of (?:the\s)?(?:user|system)\s(?:message|input|prompt)|(?:new\s|begin\s)?(?:system|operator|admin|developer|root)\s(?:message|prompt|instructions|override|notice))\s?(?:={2,}|-{2,}|#{2,}|\*{2,}|\])", 0.6),
    ("exfiltration", r"https?://[^\s)\"'<>]{1,200}[?&][\w-]{1,20}=(?:[A-Z_]{2,20}|\{[^}\s]{0,40}\}|<[^>\s]{0,40}>)?(?:[\s)'\"]|\.\s|$)", 0.45),
    ("exfiltration", r"https?://\S{1,200}?[?&][\w-]{1,20}=\S{0,40}?\s(?:[\w'-]{1,20}\W{1,3}){0,3}?(?:plus|followed by|with|append(?:ed)?|containing|where|after|put)\b[^\n]{0,60}?\b" + _DATA, 0.7),
    ("exfiltration", r"\b(?:send|post|upload|forward|transmit|email|e-mail|submit|write|put|paste|dump|copy)\b\W{1,3}(?:[\w'-]{1,20}\W{1,3}){0,5}?" + _DATA + r"\b(?:[\w'-]{1,20}\W{1,3}){0,6}?\s?(?:to|into|in|at|as)\s(?:(?:the|this|a|my|our|your|that)\s)?(?:\w+\s)?(?:url|link|endpoint|webhook|server|address|image|query|https?://|\S{1,64}@\S{1,64}\.\w{2,}|markdown link)", 0.7),
    ("indirect", r"(?:^|[\[(<|:.!>\-]\s?|\n|\bhey\s|\bdear\s|\battention\s|@)\s?(?:(?:for|to)\s(?:the\s|any\s|all\s)?)?(?:[\w-]{1,20}[\s-]){0,2}?" + _AI_ROLE + r"\s?[:,]\s(?:[\w'-]{1,20}\s){0,2}?(?:please\s)?" + _IMPERATIVE, 0.55),
    ("indirect", r"\b(?:any|all|every|the|automated|ai)\s(?:[\w-]{1,20}\s){0,2}?" + _AI_ROLE + r"\s(?:[\w'-]{1,20}\s){0,4}?(?:must|should|shall|need to|are (?:required|instructed|expected) to|have to|is (?:required|instructed) to)\s(?:now\s|always\s|also\s|instead\s)?\w", 0.45),
    ("indirect", r"\b(?:when|if|whenever|once|upon|after|before)\s(?:(?:you|the|an?|any)\s)?(?:[\w-]{1,20}\s)?(?:reads?|reading|process(?:es|ing)?|summari[sz](?:es|ing|e)?|sees?|parses?|analy[sz](?:es|ing|e)|crawls?|ingests?|draft(?:s|ing)?)\s(?:this|these|the\s(?:page|document|file|email|message|invite|text|reply|manifest|contract|resume|article|site))\b", 0.4),
    ("indirect", r"display\s?:\s?none|font-size\s?:\s?0(?:px|pt)?\b|visibility\s?:\s?hidden|\bsr-only\b|white (?:text )?on white|invisible (?:font|text|ink)|hidden text", 0.35),
)  # fmt: skip
# Text about injection (security questions, docs, quoted examples) rather than an attack.
_DISCUSSION = re2.compile(
    r"(?:prompt injection|jailbreak (?:attempts?|attacks?|prompts?)|injection attacks?"
    r"|(?:what|how) (?:is|are|does|do|can|would|should)\b[^.?!\n]{0,60}(?:detect|prevent|defend"
    r"|mitigate|protect|stop|block|filter|avoid|handle|classif)|red[\s-]?team|security (?:training"
    r"|research|awareness|review)|(?:an?|the) example of|for example,? (?:an? )?attacker|classifier"
    r"|attackers? (?:use|try|could|can|might|send|write|are)|malicious (?:users?|prompts?|inputs?|documents?)"
    r"|chat templates?|tokenizers?|fine-?tun\w*|special tokens?|threat model|owasp)"
)
_QUOTES = "\"'`“”‘’«»"
_ENCODED = re2.compile(r"[A-Za-z0-9+/_=-]{24,}")  # base64 (either alphabet) or hex; _decode decides
# One DFA pass says whether any long unbroken run exists (UUIDs, with dashes every
# few characters, do not qualify); only then are the runs located and decoded.
_ENCODED_ANY = re2.Set.SearchSet()
_ENCODED_ANY.Add(r"[A-Za-z0-9+/=_]{24}")
_ENCODED_ANY.Compile()
_MAX_DECODE = 4096
# Letters written apart ("i g n o r e  a l l", "d.i.s.r.e.g.a.r.d"): a run of at least
# five single letters, words parted by wider gaps; `_join_spaced` closes it up.
_SPACED_ANY = re2.compile(r"(?:\b[a-z][ .\-_]){4}[a-z]\b")
_SPACED = re2.compile(r"(?:\b[a-z][ .\-_]){2,}[a-z]\b(?:\s{2,}(?:[a-z][ .\-_]){1,}[a-z]\b)*")
_ROT13 = re2.compile(r"\brot[\s-]?(?:13|ie)\b")  # folded text: leetspeak turned 13 into "ie"


def _join_spaced(run: str) -> str:
    """`i g n o r e   a l l` → `ignore all`."""
    return " ".join("".join(c for c in word if c.isalpha()) for word in re2.split(r"\s{2,}", run))


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
        if _SPACED_ANY.search(folded.text) is not None:  # "i g n o r e  a l l": letters apart
            runs = list(_SPACED.finditer(folded.text))
            if runs:  # scan the text with every run closed up; hits cover the runs
                parts, last = [], 0
                for m in runs:
                    parts += [folded.text[last : m.start()], _join_spaced(m.group())]
                    last = m.end()
                joined = fold("".join([*parts, folded.text[last:]]))
                start, end = folded.origin(runs[0].start()), folded.origin(runs[-1].end() - 1) + 1
                hits += [(start, end, c, w) for _s, _e, c, w in self._signals(joined)]
        if _ROT13.search(folded.text) is not None:  # rot13 keeps every offset in place
            hits += self._signals(fold(codecs.decode(text, "rot13")))
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
