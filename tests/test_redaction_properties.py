"""P4, P5, P6 over generated texts with planted secrets and PII; linear time."""

from __future__ import annotations

import time

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dsl import ast
from engine.detectors.base import ScanContext
from engine.guards import GuardPipeline, Redactor, compile_pipeline
from engine.streaming import StreamGuard

CTX = ScanContext("user")
PLANTS = [
    "bob@corp.io", "alice.smith@example.com", "AKIAZ3MQ7R4TUV2WX9YB", "4111 1111 1111 1111",
    "DE89 3704 0044 0532 0130 00", "123-45-6789", "+44 20 7946 0958", "10.1.2.3",
    "ghp_aB3dE5gH7jK9mN1pQ3rS5tU7vW9xY1zA2bC4", 'password = "hunter22!"',
    "postgres://app:S3cr3tPw9@db:5432/x", "xoxb-123456789012-123456789012-AbCdEfGhIjKlMnOpQrStUvWx",
]  # fmt: skip
FILLER = st.text(alphabet=st.sampled_from(list("abc xyz.,:;-\n0123")), max_size=40)
TEXTS = st.lists(st.one_of(FILLER, st.sampled_from(PLANTS)), min_size=1, max_size=12).map("".join)


def make(action: ast.Action) -> GuardPipeline:
    guards = (ast.Guard("pii", action), ast.Guard("secrets", action))
    return compile_pipeline(ast.GuardBlock("output", guards), "output", {})


DETECT, REDACT = make("detect"), make("redact")
FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(TEXTS)
def test_p4_detect_is_observational(text: str) -> None:
    result = DETECT.run([(CTX, text)], Redactor())
    assert result.texts == [text]
    detect_hits = [(h.finding.type, h.finding.start, h.finding.end) for h in DETECT.hits(CTX, text)]
    redact_hits = [(h.finding.type, h.finding.start, h.finding.end) for h in REDACT.hits(CTX, text)]
    assert detect_hits == redact_hits


@FAST
@given(TEXTS)
@example("ghp_aB3dE5gH7jK9mN1pQ3rS5tU7vW9xY1zA2bC4:2001")  # a placeholder must not read as `token: value`
def test_p5_redaction_sound_and_idempotent(text: str) -> None:
    once = REDACT.run([(CTX, text)], Redactor()).texts[0]
    assert REDACT.hits(CTX, once) == []
    assert REDACT.run([(CTX, once)], Redactor()).texts[0] == once


@FAST
@given(TEXTS, st.lists(st.integers(min_value=1, max_value=30), min_size=1, max_size=20))
def test_p6_every_chunking_equals_whole(text: str, sizes: list[int]) -> None:
    out = ScanContext("output")
    whole = REDACT.run([(out, text)], Redactor()).texts[0]
    guard = StreamGuard(REDACT, Redactor(), out)
    pieces, i, k = [], 0, 0
    while i < len(text):
        n = sizes[k % len(sizes)]
        pieces.append(guard.feed(text[i : i + n]))
        i, k = i + n, k + 1
    pieces.append(guard.finish())
    assert "".join(pieces) == whole


ADVERSARIAL = {
    "pii": "1-" * 50 + "a@" * 50 + "1." * 50 + "DE89 " * 20,
    "secrets": "password=" * 20 + "AKIA" * 20 + "eyJ" * 20 + "-----BEGIN PRIVATE KEY-----" + "A" * 100,
    "prompt_injection": "ignore all all all previous " * 10 + "aGVsbG8g" * 10,
    "topics": "medical medical diagnosis " * 10,
}


def _time(pipeline: GuardPipeline, text: str) -> float:
    """Best of five in this thread's CPU time: other processes on a loaded machine do not count."""
    best = float("inf")
    for _ in range(5):
        start = time.thread_time()
        pipeline.run([(CTX, text)], Redactor())
        best = min(best, time.thread_time() - start)
    return best


def test_linear_time_on_adversarial_inputs() -> None:
    for name, unit in ADVERSARIAL.items():
        guard = ast.Guard(name, "redact", topics=("medical diagnosis",) if name == "topics" else ())
        pipeline = compile_pipeline(ast.GuardBlock("input", (guard,)), "input", {})
        sizes = [1_000, 10_000, 100_000]
        times = [_time(pipeline, (unit * (n // len(unit) + 1))[:n]) for n in sizes]
        # 10x the input may cost at most ~25x the time (noise, caches); quadratic would be 100x
        assert times[2] / max(times[1], 1e-6) < 25, (name, times)
        assert times[1] / max(times[0], 1e-6) < 40, (name, times)
