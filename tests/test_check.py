"""The checker: broken policies reported at the right place, config levels, inline ignores, P12."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsl.ast import PolicySet
from dsl.checker import Config, ConfigError, check_paths, check_policy_set, fails, has_errors, ignores, parse_config
from dsl.parser import parse_text
from tests.strategies import policy_sets

BROKEN = Path(__file__).parent / "policies" / "broken"
SHIPPED = Path(__file__).resolve().parent.parent / "policies"
EXPECT = re.compile(r"^# expect ([EW]\d{3}) (\d+):(\d+)$", re.MULTILINE)

APP = """provider local { kind mock }
model local/echo { price in 0 out 0 per 1M }
app chat {
  env dev
  models local/echo
  max_tokens 1024
}
"""


def _expected(folder_or_file: Path) -> set[tuple[str, str, int, int]]:
    files = sorted(folder_or_file.glob("*.policy")) if folder_or_file.is_dir() else [folder_or_file]
    return {
        (str(f), m.group(1), int(m.group(2)), int(m.group(3)))
        for f in files
        for m in EXPECT.finditer(f.read_text(encoding="utf-8"))
    }


@pytest.mark.parametrize(
    "target", sorted([*BROKEN.glob("*.policy"), *(p for p in BROKEN.iterdir() if p.is_dir())]), ids=lambda p: p.name
)
def test_broken_policy_reports_each_mistake_at_its_file_line_col(target: Path) -> None:
    expected = _expected(target)
    assert expected, f"{target} declares no `# expect` lines"
    result = check_paths([target], Config())
    got = {(d.span.file, d.code, d.span.line, d.span.col) for d in result.diagnostics}
    assert got == expected


def test_shipped_policies_pass_check() -> None:
    if not SHIPPED.is_dir():
        pytest.skip("no shipped policies in this checkout")
    result = check_paths([SHIPPED])
    assert not result.has_errors, [str(d.span) + " " + d.message for d in result.diagnostics]


def _check(text: str, config: Config | None = None) -> list[tuple[str, str, int]]:
    pf, diags = parse_text(text, "t.policy")
    out = check_policy_set(PolicySet((pf,)), {"t.policy": text}, config, diags)
    return [(d.rule, d.level, d.span.line) for d in out]


def test_default_levels_and_sorting_by_position() -> None:
    assert _check(APP) == [("limits/no-rate-limit", "warning", 3)]
    out = _check(APP + "alias spare { route local/echo }\n")
    assert out == [("limits/no-rate-limit", "warning", 3), ("reference/unused-alias", "warning", 8)]


def test_config_turns_a_rule_off_or_changes_its_level_by_name_or_code() -> None:
    assert _check(APP, parse_config('[rules]\n"limits/no-rate-limit" = "off"\n')) == []
    assert _check(APP, parse_config('[rules]\nW203 = "error"\n')) == [("limits/no-rate-limit", "error", 3)]
    assert _check(APP, parse_config('[rules]\nw203 = "note"\n')) == [("limits/no-rate-limit", "note", 3)]


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ('[rules]\n"limits/no-such-rule" = "off"\n', "unknown rule"),
        ('[rules]\n"limits/no-rate-limit" = "loud"\n', "level must be"),
        ('[rules]\n"reference/unknown-model" = "off"\n', "cannot be changed"),
        ("[rules\n", "not valid TOML"),
        ('rules = "off"\n', "must be a table"),
        ('[ruels]\n"x" = "off"\n', "unknown key"),
        ('fail-level = "sometimes"\n', "fail-level"),
    ],
)
def test_bad_config_is_a_config_error(text: str, complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint):
        parse_config(text, "ghat.toml")


def test_config_is_found_beside_the_policies(tmp_path: Path) -> None:
    (tmp_path / "app.policy").write_text(APP, encoding="utf-8")
    assert [d.rule for d in check_paths([tmp_path]).diagnostics] == ["limits/no-rate-limit"]
    (tmp_path / ".ghat.toml").write_text('[rules]\n"limits/no-rate-limit" = "off"\n', encoding="utf-8")
    assert check_paths([tmp_path]).diagnostics == []
    assert check_paths([tmp_path / "app.policy"]).diagnostics == []
    assert [d.rule for d in check_paths([tmp_path], Config()).diagnostics] == ["limits/no-rate-limit"]


def test_inline_ignore_on_the_line_or_the_line_before() -> None:
    same = APP.replace("app chat {", "app chat {  # ghat: ignore[limits/no-rate-limit]")
    assert _check(same) == []
    before = APP.replace("app chat {", "# ghat: ignore[W203]\napp chat {")
    assert _check(before) == []
    other_rule = APP.replace("app chat {", "app chat {  # ghat: ignore[limits/no-token-cap]")
    assert _check(other_rule) == [("limits/no-rate-limit", "warning", 3)]
    bare = APP.replace("app chat {", "app chat { # ghat: ignore")
    assert _check(bare) == []


def test_a_trailing_ignore_does_not_cover_the_next_line() -> None:
    text = APP + "alias spare { route local/echo }  # ghat: ignore\nalias spare2 { route local/echo }\n"
    assert [r for r, _, line in _check(text)] == ["limits/no-rate-limit", "reference/unused-alias"]


def test_errors_that_break_compilation_cannot_be_ignored() -> None:
    text = APP.replace("models local/echo", "models local/nope  # ghat: ignore")
    assert ("reference/unknown-model", "error", 5) in _check(text)


def test_ignores_table() -> None:
    table = ignores("a # ghat: ignore[W101, limits/no-rate-limit]\n# ghat: ignore\nb\n")
    assert table == {1: frozenset({"W101", "limits/no-rate-limit"}), 2: None, 3: None}


def test_fail_levels() -> None:
    pf, diags = parse_text(APP, "t.policy")
    out = check_policy_set(PolicySet((pf,)), None, None, diags)
    assert not has_errors(out)
    assert not fails(out, "error") and fails(out, "warning") and fails(out, "note") and not fails(out, "never")


# ── P12: the checker never crashes, and every diagnostic has a place ────────

WORDS = st.sampled_from(
    ["app", "alias", "model", "provider", "detector", "test", "when", "route", "split", "fallback", "{", "}",
     ";", "\n", "models", "env", "prod", "local/echo", "x", '"s"', "==", "and", "or", "not", "in", "[", "]",
     "max_tokens", "10", "rate_limit", "5/min", "timeout", "3s", "weight", "input", "pii", "redact", "/a+/",
     "kind", "mock", "price", "0", "per", "1M", "=", ":", "'", "\x00", "é"]
)  # fmt: skip


def _assert_located(result_diags: list[object], folder: Path) -> None:
    for d in result_diags:
        span = d.span  # type: ignore[attr-defined]
        assert span.file.startswith(str(folder)) and span.line >= 1 and span.col >= 1, d


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_random_bytes_never_crash_and_always_report_a_place(tmp_path: Path, data: bytes) -> None:
    (tmp_path / "r.policy").write_bytes(data)
    result = check_paths([tmp_path], Config())
    _assert_located(list(result.diagnostics), tmp_path)
    assert "syntax/internal-error" not in {d.rule for d in result.diagnostics}


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(WORDS, max_size=60).map(" ".join))
def test_random_token_soup_never_crashes_and_always_reports_a_place(tmp_path: Path, text: str) -> None:
    (tmp_path / "r.policy").write_text(text, encoding="utf-8")
    result = check_paths([tmp_path], Config())
    _assert_located(list(result.diagnostics), tmp_path)
    assert "syntax/internal-error" not in {d.rule for d in result.diagnostics}


@settings(max_examples=60, deadline=None)
@given(policy_sets())
def test_generated_valid_sets_lint_without_crashing_or_new_errors(policy_set: PolicySet) -> None:
    """Sets the generator builds pass validation; lint may warn, but adds no error but prod capture."""
    out = check_policy_set(policy_set)
    assert all(d.span.line >= 1 and d.span.col >= 1 for d in out)
    assert {d.rule for d in out if d.level == "error"} <= {"security/capture-in-prod"}
