"""One answer for repeats: a once-per-scope statement written twice is an error at the repeat,
naming the first; several guard blocks of one direction mean all of their rules, and every tool
(check, fmt, the engine through `ghat test`, explain) agrees on that."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.main import main
from dsl import ast
from dsl.formatter import FormatError, format_text
from dsl.parser import parse_text

HEAD = """provider openai { kind openai; api_key env.OPENAI_API_KEY }
model openai/gpt-4o { price in 2.50 out 10.00 per 1M; context 128k }
"""


def _repeats(text: str) -> list[tuple[int, str]]:
    _, diags = parse_text(text, "t.policy")
    return [(d.span.line, d.message) for d in diags if d.code == "E012"]


# (text, line of the repeat, what the message names): one case per kind of scope.
ONCE = [
    ("app a {\n env dev\n models openai/gpt-4o\n env prod\n}\n", 4, "`env`"),
    ("app a {\n env dev\n models openai/gpt-4o\n models openai/gpt-4o\n}\n", 4, "`models`"),
    ("app a {\n env dev\n providers openai\n providers openai\n}\n", 4, "`providers`"),
    ("app a {\n env dev\n max_tokens 10\n max_tokens 10 reject\n}\n", 4, "`max_tokens`"),
    ("app a {\n env dev\n rate_limit 1/s\n rate_limit 60/min per key\n}\n", 4, "`rate_limit`"),
    ("app a {\n env dev\n timeout 1s\n timeout 2s\n}\n", 4, "`timeout`"),
    ("app a {\n env dev\n capture prompts\n capture responses\n}\n", 4, "`capture`"),
    ("app a {\n env dev\n shadow\n shadow\n}\n", 4, "`shadow`"),
    ('app a {\n env dev\n input { secrets block; message "a"\n message "b" }\n}\n', 4, "`message`"),
    ('app a {\n env dev\n input { message "a" }\n input { message "b" }\n}\n', 4, "`message`"),
    ("app a {\n env dev\n input { pii redact types email types phone }\n}\n", 3, "`types`"),
    ("app a {\n env dev\n input { prompt_injection block threshold 0.5 threshold 0.9 }\n}\n", 3, "`threshold`"),
    ('app a {\n env dev\n input { pii block message "a" message "b" }\n}\n', 3, "`message`"),
    ("app a {\n env dev\n when operation == \"x\" { timeout 1s\n timeout 2s }\n}\n", 4, "`timeout`"),
    ("provider p {\n kind mock\n kind openai\n}\n", 3, "`kind`"),
    ('provider p {\n kind openai\n base_url "a"\n base_url "b"\n}\n', 4, "`base_url`"),
    ("provider p {\n kind openai\n api_key env.A\n api_key env.B\n}\n", 4, "`api_key`"),
    ("provider p {\n kind openai\n timeout 1s\n timeout 2s\n}\n", 4, "`timeout`"),
    ('provider p {\n kind openai\n header "X-A" env.A\n header "x-a" env.B\n}\n', 4, '`header "x-a"`'),
    ("model p/m {\n price in 1 per 1M\n price in 2 per 1M\n}\n", 3, "`price`"),
    ("model p/m {\n price in 1 in 2\n}\n", 2, "`in`"),
    ("model p/m {\n context 8k\n context 16k\n}\n", 3, "`context`"),
    ('model p/m {\n upstream "a"\n upstream "b"\n}\n', 3, "`upstream`"),
    ("model p/m {\n kind chat\n kind embedding\n}\n", 3, "`kind`"),
    ("alias s {\n route p/m\n route p/n\n}\n", 3, "`route`"),
    ("alias s {\n split { p/m weight 1 }\n split { p/n weight 1 }\n}\n", 3, "`split`"),
    ("alias s {\n split { p/m weight 1\n p/m weight 2 }\n}\n", 3, "split member 'p/m'"),
    ("alias s {\n route p/m timeout 1s timeout 2s\n}\n", 2, "`timeout`"),
    ("alias s {\n route p/m\n fallback p/n retries 1 retries 2\n}\n", 3, "`retries`"),
    ("detector d pattern /x/ type a type b\n", 1, "`type`"),
    ('test "t" {\n app a\n app b\n}\n', 3, "`app`"),
    ('test "t" {\n app a\n request { user "x" }\n request { user "y" }\n}\n', 4, "`request`"),
    ('test "t" {\n app a\n request {\n model "a"\n model "b"\n }\n}\n', 5, "`model`"),
    ('test "t" {\n app a\n request {\n max_tokens 1\n max_tokens 2\n }\n}\n', 5, "`max_tokens`"),
    ('test "t" {\n app a\n request {\n metadata { operation "a"\n operation "b" }\n }\n}\n', 5, "`operation`"),
    ('test "t" {\n app a\n request {\n metadata { operation "a" }\n metadata { workspace_id "b" }\n }\n}\n', 5,
     "`metadata`"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "line", "named"), ONCE, ids=[c[2] + f"@{i}" for i, c in enumerate(ONCE)])
def test_a_repeat_is_an_error_at_the_repeat_naming_the_first(text: str, line: int, named: str) -> None:
    found = _repeats(text)
    assert len(found) == 1, found
    at, message = found[0]
    assert at == line and message.startswith(named + " is repeated")
    assert "the first is at t.policy:" in message


REPEATABLE = [
    'provider p {\n kind openai\n header "X-A" env.A\n header "X-B" env.B\n}\n',
    "alias s {\n route p/m\n fallback p/n\n fallback p/o\n}\n",
    "app a {\n env dev\n input { pii redact; pii block types credit_card }\n}\n",
    "app a {\n env dev\n input { pii redact }\n output { pii redact }\n input { secrets block }\n}\n",
    'app a {\n env dev\n when operation == "a" { timeout 1s }\n when operation == "b" { timeout 2s }\n}\n',
    'test "t" {\n app a\n request {\n user "a"\n assistant "b"\n user "c"\n }\n expect allow\n expect fired pii\n}\n',
    'app a {\n env dev\n test "x" { expect allow }\n test "y" { expect allow }\n}\n',
]


@pytest.mark.parametrize("text", REPEATABLE)
def test_statements_with_a_meaning_when_repeated_are_not_errors(text: str) -> None:
    assert _repeats(text) == []


def test_the_ast_keeps_the_first_value_and_its_span_alike() -> None:
    """`ghat explain` cites `span_of`; the value it cites must be the one the AST holds."""
    pf, _ = parse_text(HEAD + "app a {\n env dev\n models openai/gpt-4o\n max_tokens 100\n max_tokens 200\n}\n")
    app = pf.items[-1]
    assert isinstance(app, ast.App)
    assert app.settings.max_tokens == ast.MaxTokens(100)
    span = app.settings.span_of("max_tokens")
    assert span is not None and span.line == 6  # the first, where 100 is written
    assert app.env == "dev" and app.span_of("env").line == 4


def test_several_blocks_of_one_direction_mean_all_of_their_rules() -> None:
    text = HEAD + (
        "app a {\n env dev\n models openai/gpt-4o\n"
        '  input { pii redact }\n  output { pii redact }\n  input { secrets block; message "no" }\n}\n'
    )
    pf, diags = parse_text(text)
    assert diags == []
    app = pf.items[-1]
    assert isinstance(app, ast.App) and app.input is not None and app.output is not None
    assert [(g.detector, g.action) for g in app.input.guards] == [("pii", "redact"), ("secrets", "block")]
    assert app.input.message == "no" and app.input.span.line == 6
    assert [b.direction for b in app.guard_blocks] == ["input", "output", "input"]


def test_the_engine_enforces_every_block(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The second block used to be dropped: its `secrets block; pii block` let a key and an email through."""
    (tmp_path / "p.policy").write_text(
        """provider local { kind mock }
model local/echo { price in 0 per 1M }
app a {
  env dev
  models local/echo
  max_tokens 100
  rate_limit 60/min
  input { prompt_injection detect }
  input { secrets block; pii block }

  test "a key is blocked by the second block" {
    request { model "local/echo"; user "my key is AKIAZ3MQ7R4TUV2WX9YB" }
    expect deny guardrail_secrets_blocked
  }

  test "an email is blocked by the second block" {
    request { model "local/echo"; user "write to jane.doe@example.com" }
    expect deny guardrail_pii_blocked
  }
}
""",
        encoding="utf-8",
    )
    assert main(["test", str(tmp_path)]) == 0, capsys.readouterr().out
    assert "2 passed" in capsys.readouterr().out


def test_fmt_keeps_every_block_and_refuses_a_repeat() -> None:
    text = HEAD + (
        "app a {\n  env dev\n  models openai/gpt-4o\n  input { pii redact }\n"
        "  # the second block, with its own comment\n  input { secrets block }\n}\n"
    )
    out = format_text(text)
    assert "  input { pii redact }\n  # the second block, with its own comment\n  input { secrets block }\n" in out
    assert format_text(out) == out
    with pytest.raises(FormatError) as info:  # it used to delete the second `env` and keep its comment
        format_text(HEAD + "app a {\n  env dev\n  models openai/gpt-4o\n  env prod  # which?\n}\n")
    assert info.value.diagnostics[0].code == "E012" and info.value.diagnostics[0].span.line == 6


def test_check_and_explain_refuse_a_repeat(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "p.policy"
    policy.write_text(
        "provider local { kind mock }\nmodel local/echo { price in 0 per 1M }\n"
        "app a {\n  env dev\n  models local/echo\n  max_tokens 100\n  rate_limit 60/min\n  max_tokens 4000\n}\n",
        encoding="utf-8",
    )
    assert main(["check", str(tmp_path)]) == 1
    assert "p.policy:8:3: error[E012] `max_tokens` is repeated" in capsys.readouterr().out
    request = tmp_path / "r.json"
    request.write_text('{"model": "local/echo", "messages": [{"role": "user", "content": "hi"}]}', encoding="utf-8")
    code = main(["explain", "--policies", str(tmp_path), "--env", "dev", "--key-app", "a", str(request)])
    assert code != 0 and "E012" in capsys.readouterr().err


def test_explain_cites_the_line_whose_value_applies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "p.policy").write_text(
        "provider local { kind mock }\nmodel local/echo { price in 0 per 1M }\n"
        "app a {\n  env dev\n  models local/echo\n  max_tokens 100\n  rate_limit 60/min\n"
        '  when operation == "long" {\n    timeout 30s\n    max_tokens 2000\n  }\n}\n',
        encoding="utf-8",
    )
    request = tmp_path / "r.json"
    for operation, cap, line in (("long", 2000, 10), ("short", 100, 6)):
        body = '{"model": "local/echo", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5000, '
        request.write_text(body + f'"ghat": {{"metadata": {{"operation": "{operation}"}}}}}}', encoding="utf-8")
        assert main(["explain", "--policies", str(tmp_path), "--env", "dev", "--key-app", "a", str(request)]) == 0
        out = capsys.readouterr().out
        assert f"5000 → {cap}\n      at {tmp_path / 'p.policy'}:{line}:" in out and f"max_tokens {cap}" in out
