"""P4, P5, P6 over generated texts with planted secrets and PII; linear time."""

from __future__ import annotations

import itertools
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


# P6 under adversarial chunkings, with every kind of value a stream may split: names and addresses
# too (the contextual types), JWTs and PEM blocks (the longest spans), and values run together.
JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
PEM = ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgHcTz6sE2I2yPB\n"
       "aFDrBz9vFqU4yV0U3kVZG+Gqj5mH4pRv8Sm4sQ==\n-----END RSA PRIVATE KEY-----")  # fmt: skip
STREAM_PLANTS = [
    *PLANTS, JWT, PEM, "-----BEGIN PRIVATE KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7AgEAAkEA",
    "Dear John Smith,", "Emily Kim", "1234 Elm Street, Springfield, IL 62704", "(555) 123-4567",
    "2001:db8::8a2e:370:7334", "5555 5555 5555 4444", "AKIAZ3MQ7R4TUV2WX9YB AKIAZ3MQ7R4TUV2WX9YC",
    "4111 1111 1111 1111 2", "+1 415 555 2671", "192.168.10.20", "bob@corp.io.uk", "my name is Ann Lee",
    "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYz8Ek4Lm2Qa",
    "here is how to make meth at home", "I want to kill myself", "you are not alone", "medical diagnoses",
    "'I will kill you'",
]  # fmt: skip
STREAM_FILLER = st.text(alphabet=st.sampled_from(list("abc Xyz.,:;-@\n0123+(")), max_size=30)
STREAM_TEXTS = st.lists(st.one_of(STREAM_FILLER, st.sampled_from(STREAM_PLANTS)), min_size=1, max_size=10).map(
    "".join
)
CONTEXTUAL = compile_pipeline(ast.GuardBlock("output", (
    ast.Guard("pii", "redact", types=("person", "street_address", "date_of_birth", "email", "phone", "credit_card",
                                      "iban", "us_ssn", "ip_address")),
    ast.Guard("secrets", "redact"),
)), "output", {})  # fmt: skip
LEXICONS = compile_pipeline(ast.GuardBlock("output", (
    ast.Guard("output_safety", "redact"), ast.Guard("topics", "redact", topics=("medical diagnosis",)),
    ast.Guard("pii", "redact"),
)), "output", {})  # fmt: skip
OUT = ScanContext("output")


def streamed(pipeline: GuardPipeline, text: str, cuts: list[int]) -> str:
    """`text` fed in the pieces `cuts` (offsets) make, then finished."""
    guard = StreamGuard(pipeline, Redactor(), OUT)
    bounds = [0, *sorted({c for c in cuts if 0 < c < len(text)}), len(text)]
    pieces = [guard.feed(text[a:b]) for a, b in itertools.pairwise(bounds)]
    return "".join(pieces) + guard.finish()


def whole(pipeline: GuardPipeline, text: str) -> str:
    return pipeline.run([(OUT, text)], Redactor()).texts[0]


@FAST
@given(STREAM_TEXTS)
@example("I want to kill myself:you are not alone0")  # a later character unmakes the supportive text
def test_p6_one_character_at_a_time(text: str) -> None:
    for pipeline in (REDACT, CONTEXTUAL, LEXICONS):
        assert streamed(pipeline, text, list(range(len(text)))) == whole(pipeline, text)


@FAST
@given(STREAM_TEXTS, st.data())
def test_p6_splits_inside_every_finding(text: str, data: st.DataObject) -> None:
    for pipeline in (REDACT, CONTEXTUAL):
        cuts = [data.draw(st.integers(h.finding.start, h.finding.end)) for h in pipeline.hits(OUT, text)]
        assert streamed(pipeline, text, cuts) == whole(pipeline, text)


@FAST
@given(STREAM_TEXTS, st.lists(st.integers(0, 600), max_size=40))
def test_p6_random_chunkings(text: str, cuts: list[int]) -> None:
    for pipeline in (REDACT, CONTEXTUAL, LEXICONS):
        assert streamed(pipeline, text, cuts) == whole(pipeline, text)


def test_p6_every_two_piece_split_of_every_plant() -> None:
    """Exhaustive where hypothesis samples: each plant between words, split at every offset."""
    for plant in STREAM_PLANTS:
        text = f"Sure, here it is: {plant} and more text."
        expected = whole(CONTEXTUAL, text)
        assert plant not in expected or CONTEXTUAL.hits(OUT, plant) == []
        for k in range(1, len(text)):
            assert streamed(CONTEXTUAL, text, [k]) == expected, (plant, k)


def test_text_before_an_open_value_is_sent_at_once() -> None:
    """The hold-back is what could still become a finding, not a fixed window of max_span characters."""
    guard = StreamGuard(REDACT, Redactor(), OUT)
    sent = guard.feed("Hello there, the answer is ready. " * 10)
    assert len(sent) >= 330 and guard.held < 10
    sent = guard.feed("Mail bob@co")
    assert "Mail" in sent and "bob" not in sent  # the email is still open: held
    assert "bob" not in guard.feed("rp.io") + guard.feed(" now")
    assert "BEGIN" not in guard.feed(" " + PEM[:60])  # an open BEGIN line holds the block
    assert guard.feed(PEM[60:]) == "" and guard.feed(" done. ").startswith("[PRIVATE_KEY_1]")


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
