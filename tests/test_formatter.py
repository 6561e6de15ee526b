"""The formatter: canonical layout per construct, comments kept, P11 and P12."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsl import ast
from dsl.comments import collect
from dsl.formatter import FormatError, duration, format_text, number, price, size
from dsl.parser import parse_text
from tests.strategies import policy_files, render_policy

ROOT = Path(__file__).resolve().parent.parent
FAST = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))

GUIDE_SAMPLE = """\
# policies/models.policy
provider openai {
  kind     openai                 # wire protocol: openai | anthropic | mock
  base_url "https://api.openai.com/v1"
  api_key  env.OPENAI_API_KEY     # read from the environment at start; never logged
}
provider local { kind mock }      # answers without a network: demos and tests
model openai/gpt-4o-mini  { price in 0.15 out 0.60 per 1M  context 128k }
model local/echo          { price in 0 out 0 per 1M }
alias smart-default {
  route    openai/gpt-4o-mini  timeout 20s retries 2
  fallback local/echo
}
alias cheap-fast {
  split { openai/gpt-4o-mini weight 80; local/echo weight 20 }
}
detector ticket-id pattern /TICKET-[0-9]{6}/   # custom detector
app support-prod {
  env        prod
  models     smart-default, cheap-fast
  providers  openai, local        # optional
  max_tokens 1024                 # clamp
  rate_limit 600/min
  input  { pii redact; secrets redact; prompt_injection detect; ticket-id redact
           topics ["medical diagnosis", "legal advice"] block
           message "This assistant can't help with {{ topic }}." }
  output { pii redact; output_safety detect; groundedness detect threshold 0.6 }
  when operation == "bulk-summarize" { max_tokens 4096; timeout 120s }
  test "secrets never reach the provider" {
    request { model "smart-default"; user "my key is AKIAZ3MQ7R4TUV2WX9YB" }
    expect allow; expect forwarded not contains "AKIA"
  }
}
"""


def comments_of(text: str) -> list[str]:
    """Comment texts in order, as the lexer sees them ('#' in strings is no comment)."""
    return [c.text for c in collect(text)[1]]


def fmt(text: str) -> str:
    return format_text(text, "t.policy")


def assert_p11(text: str) -> str:
    out = fmt(text)
    assert parse_text(out, "t.policy")[0].items == parse_text(text, "t.policy")[0].items
    assert fmt(out) == out
    return out


# ── values: each canonical spelling reads back as the same value ─────────


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (3600.0, "1h"),
        (120.0, "120s"),
        (90.0, "90s"),
        (20.0, "20s"),
        (0.5, "500ms"),
        (1.5, "1500ms"),
        (0.0005, "0.0005s"),
    ],
)
def test_durations_in_hours_seconds_or_milliseconds(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_sizes_prices_and_numbers() -> None:
    assert (size(128_000), size(1_000_000), size(4096), size(0)) == ("128k", "1M", "4096", "0")
    assert (price(0.6), price(10.0), price(0.075), price(0.0)) == ("0.60", "10.00", "0.075", "0")
    assert (number(80.0), number(0.6), number(1e-7)) == ("80", "0.6", "0.0000001")


# ── constructs ────────────────────────────────────────────────────────────


def test_guide_sample_layout() -> None:
    out = assert_p11(GUIDE_SAMPLE)
    assert comments_of(out) == comments_of(GUIDE_SAMPLE)
    assert "provider local { kind mock }  # answers without a network: demos and tests\n" in out
    assert "model openai/gpt-4o-mini { price in 0.15 out 0.60 per 1M; context 128k }\n" in out
    assert "model local/echo         { price in 0 per 1M }\n" in out  # braces aligned in a run
    assert "  route    openai/gpt-4o-mini timeout 20s retries 2\n" in out
    assert "  split { openai/gpt-4o-mini weight 80; local/echo weight 20 }\n" in out
    assert '  when operation == "bulk-summarize" { max_tokens 4096; timeout 120s }\n' in out
    assert "  input {\n    pii redact\n" in out  # too long for one line: one guard per line
    assert '    expect allow\n    expect forwarded not contains "AKIA"\n' in out
    assert '\n\n  test "secrets never reach the provider" {\n' in out


def test_every_construct_round_trips() -> None:
    text = """
provider p { kind openai; base_url "https://x/v1"; api_key "lit\\"eral"; header "X-A" env.A_B
  header "X-B" "v"; timeout 1500ms }
model p/e { kind embedding; price in 0.02 cached 0.01 per 1k; context 8191; upstream "e-3" }
model p/m
alias a { route p/m timeout 1h retries 0; fallback p/m retries 3 }
alias s { split { p/m weight 2.5 timeout 5s; a weight 1 } }
detector d pattern /a\\/b[0-9]+/i type ticket
detector d2 pattern /x+/ ignorecase
app x {
  shadow
  env dev; models a, p/m; providers p; capture prompts, responses
  max_tokens 4k reject; rate_limit 10/minute per key; timeout 30s
  input { topics ["a", "b\\\\c"] block shadow message "no {{ topic }}"; d redact
          pii redact types email, phone restore }
  output { output_safety block categories violence, hate; groundedness detect threshold 0.75 }
  when not (model == "p/m" or endpoint != "chat") and operation in ["a", "b"] { rate_limit 5/s }
  when (operation == "x" and workspace_id not in ["w"]) and source_service == "s" { timeout 2m }
  test "t" { app x; request { model "a"; max_tokens 1k; system "s"; metadata { operation "o" } }
    expect deny guardrail_model_blocked; expect deny; expect route p/m; expect fired pii; expect max_tokens 100 }
}
test "top" { app x; expect allow }
"""
    out = assert_p11(text)
    assert 'api_key  "lit\\"eral"' in out and 'header   "X-A" env.A_B' in out
    assert "pattern /a\\/b[0-9]+/ type ticket ignorecase" in out
    assert "rate_limit 10/minute per key" in out and "max_tokens 4000 reject" in out
    assert 'when not (model == "p/m" or endpoint != "chat") and operation in ["a", "b"]' in out
    assert 'when (operation == "x" and workspace_id not in ["w"]) and source_service == "s"' in out


def test_comments_everywhere_are_kept_and_stable() -> None:
    text = """# head

# about p
provider p {  # opening
  # before kind
  kind mock  # after kind
  # at the end of p
}  # closing
model p/m { price in 1 per 1M }  # one-liner
app x {
  env prod  # the env
  models p/m
  input { pii redact  # trailing in a one-line block
          secrets block }
  # a second input block: its rules apply too, and it is printed where it was
  input { topics ["x"] block }  # after the second block
  when model == "p/m" {
    # inside when
    timeout 5s
  }
}
# tail
"""
    out = assert_p11(text)
    assert sorted(comments_of(out)) == sorted(comments_of(text))
    assert "provider p {  # opening\n" in out and "}  # closing\n" in out
    assert "    pii redact  # trailing in a one-line block\n" in out
    assert out.startswith("# head\n\n# about p\nprovider p {")
    assert out.endswith("}\n\n# tail\n")


def test_hash_inside_strings_and_patterns_is_not_a_comment() -> None:
    text = 'detector h pattern /#[0-9]+/\napp x { env prod; models p/m\n input { topics ["#1"] block } }\n'
    out = assert_p11(text)
    assert "/#[0-9]+/" in out and '["#1"]' in out


def test_file_with_errors_is_not_formatted() -> None:
    with pytest.raises(FormatError) as info:
        fmt("app x {\n  max_tokens: 12\n}\n")
    assert info.value.diagnostics[0].span.line == 2
    with pytest.raises(FormatError):
        fmt("app x { rate_limit 10/fortnight }\n")  # a bad value is an error too


def test_empty_and_comment_only_files() -> None:
    assert fmt("") == ""
    assert fmt("\n\n  # only\n") == "# only\n"


@pytest.mark.parametrize("path", sorted((ROOT / "policies").glob("*.policy")), ids=lambda p: p.name)
def test_shipped_policies_round_trip(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    out = assert_p11(text)
    assert sorted(comments_of(out)) == sorted(comments_of(text))


# ── properties ────────────────────────────────────────────────────────────


@FAST
@given(policy_files())
def test_p11_generated_policies_round_trip_and_are_fixed_points(pf: ast.PolicyFile) -> None:
    text = render_policy(pf)
    back, diags = parse_text(text, "gen.policy")
    assert not diags
    assert back.items == pf.items
    assert fmt(text) == text


@FAST
@given(policy_files(with_tests=False), st.data())
def test_p11_comments_survive_anywhere(pf: ast.PolicyFile, data: st.DataObject) -> None:
    lines = render_policy(pf).split("\n")
    out: list[str] = []
    for i, line in enumerate(lines):
        where = data.draw(st.sampled_from(("none", "none", "own", "trail")))
        if where == "own":
            out.append(f"# c{i}")
        out.append(line + (f"  # t{i}" if where == "trail" and line.strip() else ""))
    text = "\n".join(out)
    formatted = assert_p11(text)
    assert sorted(comments_of(formatted)) == sorted(comments_of(text))


@FAST
@given(st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("utf-8", "replace")))
def test_p12_parser_never_crashes_and_locates_every_diagnostic(text: str) -> None:
    _, diags = parse_text(text, "r.policy")
    for d in diags:
        assert d.span.file == "r.policy" and d.span.line >= 1 and d.span.col >= 1
        assert str(d.span).startswith("r.policy:")


TOKENS = (
    "app", "x", "{", "}", "\n", ";", "env", "prod", "models", "a/b", '"s"', "#c", "input", "pii", "redact",
    "when", "==", "in", "[", "]", "rate_limit", "10/min", "model", "price", "per", "1M", "/re/", "(", ")",
)  # fmt: skip


@FAST
@given(st.lists(st.sampled_from(TOKENS), max_size=40).map(" ".join))
def test_p12_near_miss_token_soup(text: str) -> None:
    _, diags = parse_text(text, "s.policy")
    assert all(d.span.line >= 1 and d.span.col >= 1 for d in diags)
    if not diags:  # whatever parses cleanly also formats to a fixed point
        assert_p11(text)
