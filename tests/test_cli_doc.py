"""docs/cli.md describes the real command line: it cannot silently fall behind the parsers.

The parsers are built as `ghat` builds them (`cli.main.build_parser()`) and
walked: every subcommand, nested ones included (`ghat keys create`), must have
its section, and every long flag of it a row in a flag table of that section,
whose default cell shows the parser's default (or "required") and which names
every choice. A flag row for a flag the parser no longer has fails too, as do
an environment variable named in a help text and a Makefile target that the
page does not mention.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.main import build_parser

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
MAKEFILE = (ROOT / "Makefile").read_text(encoding="utf-8")


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    out: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            out.update(action.choices)
    return out


def _walk(prefix: str, parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    for name, sub in _subcommands(parser).items():
        yield f"{prefix} {name}", sub
        yield from _walk(f"{prefix} {name}", sub)


PARSER = build_parser()
COMMANDS = dict(_walk("ghat", PARSER))


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if any(s.startswith("--") for s in a.option_strings) and a.dest != "help"]


def _long(action: argparse.Action) -> str:
    return next(s for s in action.option_strings if s.startswith("--"))


def _sections(text: str, level: str) -> dict[str, str]:
    """Heading `## \\`ghat X\\`` (or `###`) → its text up to the next heading of that level or above."""
    out: dict[str, str] = {}
    for head in re.finditer(rf"^{level} `(ghat [a-z -]+)`$", text, re.MULTILINE):
        rest = text[head.end() :]
        end = re.search(rf"^#{{2,{len(level)}}} ", rest, re.MULTILINE)
        assert head.group(1) not in out, f"docs/cli.md: `{head.group(1)}` has two sections"
        out[head.group(1)] = rest[: end.start()] if end else rest
    return out


TOP = _sections(DOC, "##")
NESTED = _sections(DOC, "###")


def _section(command: str) -> str:
    """The text documenting `command`: its own section; for `ghat keys create`, the part of
    `ghat keys` before its first subsection (flags shared by every action) plus its own subsection."""
    top = " ".join(command.split()[:2])
    if command == top:
        return TOP.get(top, "")
    parent = TOP.get(top, "")
    shared = parent.split("\n### ", 1)[0]
    return shared + NESTED.get(command, "")


def _rows(section: str) -> list[list[str]]:
    """Table rows (header and separator rows dropped) as their cells."""
    rows = []
    for line in section.splitlines():
        if line.startswith("|") and not re.match(r"^\|\s*-", line):
            rows.append([c.strip() for c in line.strip().strip("|").split(" | ")])
    return rows


def _flag_rows(section: str, flag: str) -> list[list[str]]:
    mention = re.compile(rf"`{re.escape(flag)}(?=[ `])")
    return [r for r in _rows(section) if mention.search(r[0])]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_subcommand_has_a_section(command: str) -> None:
    heading = "##" if len(command.split()) == 2 else "###"
    assert command in (TOP if heading == "##" else NESTED), f"docs/cli.md has no section `{heading} \\`{command}\\``"


FLAGS = [(c, a) for c, p in sorted(COMMANDS.items()) for a in _options(p)]


@pytest.mark.parametrize(("command", "action"), FLAGS, ids=[f"{c} {_long(a)}" for c, a in FLAGS])
def test_every_long_flag_has_a_row_with_its_default(command: str, action: argparse.Action) -> None:
    flag = _long(action)
    rows = _flag_rows(_section(command), flag)
    assert rows, f"docs/cli.md: the section of `{command}` has no flag table row for `{flag}`"
    row = rows[0]
    assert len(row) >= 3, f"docs/cli.md: the row of `{command} {flag}` needs flag | default | meaning cells"
    default = row[1]
    if action.required:
        assert "required" in default, f"`{command} {flag}` is required; its default cell says {default!r}"
    elif action.default not in (None, False, [], argparse.SUPPRESS) and "$" not in (action.help or ""):
        # (a default read from the environment, as `smoke --key` from $GHAT_API_KEY, is documented by name)
        shown = f"`{action.default}`"
        assert shown in default, f"`{command} {flag}` defaults to {shown} in the parser; the doc says {default!r}"
    for choice in action.choices or ():
        assert f"`{choice}`" in " | ".join(row), f"`{command} {flag}`: the choice `{choice}` is not in its row"


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_no_row_for_a_flag_the_parser_lacks(command: str) -> None:
    parser = COMMANDS[command]
    if _subcommands(parser):
        return  # `ghat keys`: its shared table belongs to its actions, checked there
    known = {s for a in parser._actions for s in a.option_strings}
    for row in _rows(_section(command)):
        for flag in re.findall(r"`(--[a-z][a-z-]*)", row[0]):
            assert flag in known, f"docs/cli.md documents `{command} {flag}`, which the parser does not define"


def test_environment_variables_in_help_texts_are_documented() -> None:
    env_section = DOC.split("### Environment variables", 1)[-1].split("\n## ", 1)[0]
    named = {
        var
        for parser in COMMANDS.values()
        for action in parser._actions
        for var in re.findall(r"\$([A-Z][A-Z0-9_]+)", action.help or "")
    }
    assert named, "no help text names an environment variable: has the parser changed?"
    for var in sorted(named):
        assert f"`{var}`" in env_section, f"docs/cli.md: environment variable {var} is not in its table"


def test_make_targets_are_documented() -> None:
    phony = re.search(r"^\.PHONY:(.*)$", MAKEFILE, re.MULTILINE)
    assert phony is not None
    section = DOC.split("## Make targets", 1)[-1]
    for target in phony.group(1).split():
        assert f"`make {target}`" in section, f"docs/cli.md: `make {target}` is not in the Make targets section"
