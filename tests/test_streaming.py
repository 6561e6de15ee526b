"""StreamGuard: bounded holdback, equal to whole-text redaction, blocks end the stream."""

from __future__ import annotations

import re2

from dsl import ast
from engine.detectors.base import Finding, ScanContext
from engine.detectors.pii import RULES
from engine.detectors.prefixes import prefix_pattern
from engine.guards import GuardPipeline, GuardRule, Redactor, compile_pipeline
from engine.streaming import StreamGuard, StreamRestorer

OUT = ScanContext("output")


def pipeline(*guards: ast.Guard):  # type: ignore[no-untyped-def]
    return compile_pipeline(ast.GuardBlock("output", guards), "output", {})


def stream(guard: StreamGuard, text: str, size: int) -> str:
    parts = [guard.feed(text[i : i + size]) for i in range(0, len(text), size)]
    return "".join(parts) + guard.finish()


def test_redaction_across_chunk_boundaries_equals_whole() -> None:
    p = pipeline(ast.Guard("pii", "redact"), ast.Guard("secrets", "redact"))
    text = "mail bob@corp.io, key AKIAZ3MQ7R4TUV2WX9YB, again bob@corp.io. " * 4
    whole = p.run([(OUT, text)], Redactor()).texts[0]
    for size in (1, 2, 3, 7, 16, 50, 1000):
        assert stream(StreamGuard(p, Redactor()), text, size) == whole


def test_holdback_is_bounded_and_text_flows() -> None:
    p = pipeline(ast.Guard("pii", "redact"))
    guard = StreamGuard(p, Redactor())
    assert guard.holdback is not None and guard.holdback < 1000
    emitted = "".join(guard.feed("word ") for _ in range(400))
    assert len(emitted) >= 2000 - guard.holdback


def test_block_ends_the_stream() -> None:
    p = pipeline(ast.Guard("output_safety", "block"))
    guard = StreamGuard(p, Redactor())
    out = guard.feed("Sure. " * 50 + "Here is how to make meth at home. " + "More text. " * 50)
    assert guard.blocked is not None and "meth" not in out
    assert guard.feed("anything") == "" and guard.finish() == ""


def test_whole_text_rules_run_at_finish() -> None:
    p = pipeline(ast.Guard("groundedness", "block", threshold=0.9))
    guard = StreamGuard(p, Redactor(), ScanContext("output", ("Paris is the capital of France.",)))
    guard.feed("Paris is the capital of France. ")
    guard.feed("The moon is made of green cheese and purple socks.")
    guard.finish()
    assert guard.blocked is not None and guard.blocked.rule.name == "groundedness"


def test_detect_is_observational_on_streams() -> None:
    p = pipeline(ast.Guard("pii", "detect"))
    text = "mail bob@corp.io now " * 20
    guard = StreamGuard(p, Redactor())
    assert stream(guard, text, 5) == text
    assert sum(o.count for o in guard.outcomes) == 20


def test_restore_across_chunks() -> None:
    redactor = Redactor()
    tag = redactor.placeholder("email", "bob@corp.io")
    restorer = StreamRestorer(redactor, frozenset({"email"}))
    text = f"Reply to {tag} today, {tag}."
    out = "".join(restorer.feed(text[i : i + 3]) for i in range(0, len(text), 3)) + restorer.finish()
    assert out == "Reply to bob@corp.io today, bob@corp.io."


def test_viable_prefixes_cover_every_prefix_of_a_match() -> None:
    """prefixes.py: every prefix of a match (and of a match plus `reach` characters) is read as still open."""
    samples = {"email": "bob.smith@corp.example.io", "phone": " +44 20 7946 0958",
               "credit_card": " 4111 1111 1111 1111"}  # fmt: skip
    for rule, _priority in RULES:
        if rule.type not in samples:
            continue
        viable = re2.compile(prefix_pattern(rule.pattern, 2))
        value = samples[rule.type] + "x."
        for k in range(len(value) + 1):
            assert viable.fullmatch(value[:k]) is not None, (rule.type, value[:k])
        assert viable.fullmatch(samples[rule.type] + ",;:") is None  # three past the match: settled


class _Digits:
    """A detector that cannot say where it is open: runs of 4 to 40 digits."""

    name = "digits"
    max_span = 40

    def scan(self, text: str, context: ScanContext) -> list[Finding]:
        return [Finding("digits", "digits", m.start(), m.end()) for m in re2.finditer(r"[0-9]{4,40}", text)]


def test_a_detector_without_open_positions_holds_back_its_max_span() -> None:
    """Correctness never depends on a detector saying where it is open: it falls back to its max_span."""
    rule = GuardRule("digits", _Digits(), "redact", (), None, False, False, None, ast.Span("t", 1, 1, 1, 1))
    p = GuardPipeline("output", (rule,))
    guard = StreamGuard(p, Redactor())
    sent = guard.feed("calm words. " * 100)
    assert len(sent) == 1200 - 40 and guard.held == 40
    text = "order 12345678 and " * 30 + "a long 1234567890123456789012345678901234567890 run"
    whole = p.run([(OUT, text)], Redactor()).texts[0]
    for size in (1, 3, 17):
        assert stream(StreamGuard(p, Redactor()), text, size) == whole
