"""docs/rules.md is executable: every rule documented, every example does what it says.

Each rule has a heading "### `CODE` name", a level line, and two fenced
examples (bad, then good). A `policy` block is policy text; a `policy-file`
block describes bytes text cannot hold (`bytes b"…"`, `repeat N "s"`,
`missing`). Examples are checked together with the doc's shared preamble.
"""

from __future__ import annotations

import ast as pyast
import re
from pathlib import Path

import pytest

from dsl import rules
from dsl.checker import Config, check_paths

DOC = Path(__file__).resolve().parent.parent / "docs" / "rules.md"
HEADING = re.compile(r"^### `([EW]\d{3})` (\S+)$", re.MULTILINE)
BLOCK = re.compile(r"^```(policy(?:-file|-preamble)?)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
LEVEL = re.compile(r"^Level: \*\*(error|warning|note)\*\* · (fixed|configurable)$", re.MULTILINE)
NO_EXAMPLE = {"E000"}  # internal errors are bugs: nothing to show


def _sections() -> dict[str, tuple[str, str]]:
    text = DOC.read_text(encoding="utf-8")
    heads = list(HEADING.finditer(text))
    out: dict[str, tuple[str, str]] = {}
    for i, head in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        assert head.group(1) not in out, f"{head.group(1)} documented twice"
        out[head.group(1)] = (head.group(2), text[head.end() : end])
    return out


SECTIONS = _sections()
PREAMBLE = next(m.group(2) for m in BLOCK.finditer(DOC.read_text(encoding="utf-8")) if m.group(1) == "policy-preamble")


def _examples(code: str) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(SECTIONS[code][1])]


def _run(tmp_path: Path, kind: str, body: str) -> set[str]:
    """The rule names an example reports, checked beside the preamble with the default config."""
    (tmp_path / "preamble.policy").write_text(PREAMBLE, encoding="utf-8")
    target = tmp_path / "example.policy"
    if kind == "policy":
        target.write_text(body, encoding="utf-8")
    else:
        verb, _, arg = body.strip().partition(" ")
        if verb == "bytes":
            target.write_bytes(pyast.literal_eval(arg))
        elif verb == "repeat":
            count, chunk = arg.split(" ", 1)
            target.write_text(pyast.literal_eval(chunk) * int(count), encoding="utf-8")
        elif verb == "missing":
            return {d.rule for d in check_paths([tmp_path, tmp_path / "missing.policy"], Config()).diagnostics}
        else:
            raise AssertionError(f"unknown policy-file directive {verb!r}")
    return {d.rule for d in check_paths([tmp_path], Config()).diagnostics}


def test_every_rule_is_documented_once_with_its_name_and_level() -> None:
    assert set(SECTIONS) == {r.code for r in rules.RULES.values()}
    for rule in rules.RULES.values():
        name, body = SECTIONS[rule.code]
        assert name == rule.name, rule.code
        level = LEVEL.search(body)
        assert level is not None, f"{rule.code} has no level line"
        assert level.group(1) == rule.level, rule.code
        assert (level.group(2) == "configurable") == rule.configurable, rule.code


def test_the_preamble_alone_is_clean(tmp_path: Path) -> None:
    (tmp_path / "preamble.policy").write_text(PREAMBLE, encoding="utf-8")
    assert check_paths([tmp_path], Config()).diagnostics == []


@pytest.mark.parametrize("code", sorted(set(SECTIONS) - NO_EXAMPLE))
def test_bad_example_reports_exactly_its_rule_and_good_example_nothing(code: str, tmp_path: Path) -> None:
    examples = _examples(code)
    assert len(examples) == 2, f"{code} needs a bad and a good example"
    (bad_kind, bad), (good_kind, good) = examples
    name = SECTIONS[code][0]
    (tmp_path / "bad").mkdir()
    assert _run(tmp_path / "bad", bad_kind, bad) == {name}
    (tmp_path / "good").mkdir()
    assert _run(tmp_path / "good", good_kind, good) == set()


def test_rules_without_examples_are_only_the_internal_error() -> None:
    for code in NO_EXAMPLE:
        assert _examples(code) == []
