"""`holdback 400ms 2000 chars`: the language form, its checks, and what a forced cut does to a stream."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsl import ast
from dsl.checker import Config, check_paths
from dsl.formatter import format_text
from dsl.parser import parse_text
from engine.detectors.base import ScanContext
from engine.guards import Redactor, compile_pipeline
from engine.streaming import StreamGuard

HEAD = """provider local { kind mock }
model local/echo { price in 0 per 1M }
"""
OUT = ScanContext("output")


def _app(block: str) -> str:
    return HEAD + f"app a {{\n  env dev; models local/echo; max_tokens 100; rate_limit 60/min\n  {block}\n}}\n"


def _output(text: str) -> ast.GuardBlock | None:
    pf, diags = parse_text(_app(text), "t.policy")
    assert [d.code for d in diags] == []
    app = next(i for i in pf.items if isinstance(i, ast.App))
    return app.output


@pytest.mark.parametrize(
    ("statement", "seconds", "chars"),
    [("holdback 400ms", 0.4, None), ("holdback 2000 chars", None, 2000), ("holdback 2k chars 1s", 1.0, 2000),
     ("holdback 250ms 80 chars", 0.25, 80)],
)  # fmt: skip
def test_the_bound_is_read_in_either_order(statement: str, seconds: float | None, chars: int | None) -> None:
    block = _output(f"output {{ pii redact; {statement} }}")
    assert block is not None and block.holdback == ast.Holdback(seconds, chars)


@pytest.mark.parametrize(
    ("block", "codes"),
    [
        ("output { pii redact; holdback 400 }", ["E010"]),  # no unit
        ("output { pii redact; holdback 0 chars }", ["E010"]),
        ("output { pii redact; holdback 0ms }", ["E010"]),
        ("output { pii redact; holdback 1.5 chars }", ["E010"]),
        ("output { pii redact; holdback 1s 2s }", ["E010"]),
        ("output { pii redact; holdback 1s; holdback 9 chars }", ["E012"]),
        ("output { pii redact; holdback 1s }\n  output { holdback 2s }", ["E012"]),
        ("input { pii redact; holdback 1s }", ["E310"]),
        ("output { pii redact; holdback 1s 10 chars }", []),
    ],
)
def test_bad_bounds_are_reported(tmp_path: Path, block: str, codes: list[str]) -> None:
    (tmp_path / "a.policy").write_text(_app(block))
    found = [d.code for d in check_paths([tmp_path], Config()).diagnostics if d.level == "error"]
    assert found == codes


def test_fmt_keeps_the_bound() -> None:
    text = _app("output { pii redact\n    holdback   2000 chars    400ms }")
    once = format_text(text, "t.policy")
    assert "holdback 400ms 2000 chars" in once and format_text(once, "t.policy") == once
    assert parse_text(once)[0] == parse_text(text)[0]


def test_the_character_bound_sends_a_scanned_open_block_and_redacts_its_rest() -> None:
    pipeline = compile_pipeline(ast.GuardBlock("output", (ast.Guard("secrets", "redact"),),
                                               holdback=ast.Holdback(None, 40)), "output", {})  # fmt: skip
    guard = StreamGuard(pipeline, Redactor(), OUT)
    body = "MIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgHcTz6sE2I2yPB\n"
    sent = [guard.feed("Key: "), guard.feed("-----BEGIN RSA PRIVATE KEY-----\n")]
    assert "BEGIN" not in "".join(sent)  # open block, under the bound: held
    sent.append(guard.feed(body))  # over 40 held characters: scanned as if the stream ended here
    assert "[PRIVATE_KEY_1]" in sent[-1] and guard.held == 0
    sent.append(guard.feed(body + "-----END RSA PRIVATE KEY-----\nDone."))
    rest = sent[-1] + guard.finish()
    assert "MIIE" not in rest and rest.startswith("[PRIVATE_KEY_2]") and rest.endswith("Done.")


def test_a_forced_cut_inside_a_value_lets_out_its_beginning_never_its_end() -> None:
    """The documented trade: what arrived before the cut is judged alone, the rest is redacted."""
    pipeline = compile_pipeline(ast.GuardBlock("output", (ast.Guard("pii", "redact"),)), "output", {})
    guard = StreamGuard(pipeline, Redactor(), OUT)
    first = guard.feed("Mail bob@co")
    first += guard.flush()  # what the relay's timer does when the provider pauses
    rest = guard.feed("rp.io now.") + guard.finish()
    assert first == "Mail bob@co" and rest == "[EMAIL_1] now."
    unbounded = StreamGuard(pipeline, Redactor(), OUT)
    assert unbounded.feed("Mail bob@co") + unbounded.feed("rp.io now.") + unbounded.finish() == "Mail [EMAIL_1] now."


def test_held_since_is_the_oldest_held_characters_arrival() -> None:
    pipeline = compile_pipeline(ast.GuardBlock("output", (ast.Guard("pii", "redact"),),
                                               holdback=ast.Holdback(0.4, None)), "output", {})  # fmt: skip
    guard = StreamGuard(pipeline, Redactor(), OUT)
    assert guard.max_wait == 0.4 and guard.held_since is None
    guard.feed("Hello the", at=1.0)  # "the" held
    assert guard.held_since == 1.0
    guard.feed("re friend", at=2.0)  # "there " sent, "friend" held: it started arriving at 2.0
    assert guard.held_since == 2.0
    guard.feed("ly. ", at=3.0)
    assert guard.held_since in (None, 3.0)
    assert guard.flush() + guard.finish() in ("", " ")


def test_a_stream_that_buffers_everything_ignores_the_bound() -> None:
    """A whole-text rule at redact (W308): nothing is safe before the end, a bound cannot change that."""
    guards = (ast.Guard("pii", "redact"), ast.Guard("groundedness", "redact"))
    pipeline = compile_pipeline(ast.GuardBlock("output", guards, holdback=ast.Holdback(0.1, 10)), "output", {})
    guard = StreamGuard(pipeline, Redactor(), ScanContext("output", ("Paris is in France.",)))
    assert guard.holdback is None and guard.max_held is None and guard.max_wait is None
    assert guard.feed("Paris is in France. " * 5) == "" and guard.flush() == ""
