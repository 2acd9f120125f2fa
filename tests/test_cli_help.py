"""Every command, sub-command, flag and argument of ``pipemedic`` explains itself in one line.

The walk goes through every sub-parser recursively and every action, so a
flag added without ``help=`` fails here, whichever package's ``cli`` adds it.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Iterator

from pipemedic.cli import FIRST_COMMANDS, build_parser


def _undocumented(parser: argparse.ArgumentParser, path: str) -> Iterator[str]:
    """Yield ``path: what`` for each command or action of ``parser`` without a one-line help."""
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, child in action.choices.items():
                text = helps.get(name)
                if not text or "\n" in text:
                    yield f"{path} {name}: the command"
                yield from _undocumented(child, f"{path} {name}")
            continue
        text = action.help
        if not text or text == argparse.SUPPRESS or "\n" in text:
            yield f"{path}: {'/'.join(action.option_strings) or action.dest}"


def test_every_command_flag_and_argument_has_a_one_line_help() -> None:
    assert list(_undocumented(build_parser(), "pipemedic")) == []


def test_the_walk_finds_what_has_no_help() -> None:
    parser = argparse.ArgumentParser(prog="x")
    parser.add_argument("--flag", help="has one")
    parser.add_argument("--bare")
    sub = parser.add_subparsers(dest="cmd")
    child = sub.add_parser("child")
    child.add_argument("id")
    documented = sub.add_parser("documented", help="has one")
    documented.add_argument("--two", help="first line\nsecond line")
    assert list(_undocumented(parser, "x")) == [
        "x: --bare",
        "x child: the command",
        "x child: id",
        "x documented: --two",
    ]


def test_the_help_ends_with_the_first_commands_and_they_parse() -> None:
    parser = build_parser()
    assert parser.format_help().rstrip().endswith(FIRST_COMMANDS.rstrip())
    commands = [
        line.strip() for line in FIRST_COMMANDS.splitlines() if line.startswith("  pipemedic ")
    ]
    assert 2 <= len(commands) <= 3
    for command in commands:
        args = parser.parse_args(shlex.split(command)[1:])
        assert callable(args.func), command
