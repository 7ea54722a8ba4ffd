"""One parser style for every command: ``transformers.HfArgumentParser`` over the command's
settings dataclasses.

An option is its field's name (``--lora_r``, or ``--lora-r``), with the field's help text, type and
default, and the aliases in its metadata (``--output``, ``--lr``); the same setting has the same
option in every command because the commands share the dataclasses that declare it
(:mod:`cutkit.train.settings`). On top of HfArgumentParser: ``none`` gives None for an optional
field (``--align_p_ratio none``), a ``dict`` field takes a JSON object, and help texts may contain
``%``.
"""

from __future__ import annotations

import dataclasses
import json
import re
import typing
from typing import Any


def command_parser(prog: str, description: str, *settings_classes: type):
    """The ``HfArgumentParser`` of a command whose options are the fields of
    ``settings_classes`` (``parse_args_into_dataclasses`` returns one instance of each)."""
    from transformers import HfArgumentParser

    parser = HfArgumentParser(settings_classes, prog=prog, description=description)
    actions = {}
    for action in parser._actions:  # the first action of a field is its option (then --no_*)
        actions.setdefault(action.dest, action)
    for settings_class in settings_classes:
        hints = typing.get_type_hints(settings_class)
        for f in dataclasses.fields(settings_class):
            action, hint = actions.get(f.name), hints[f.name]
            if action is None or action.type is None:
                continue
            if typing.get_origin(hint) is dict:
                action.type = json.loads
            elif _is_optional(hint) and not isinstance(action.default, str):
                action.type = _none_or(action.type)  # (argparse parses a str default too)
    for action in parser._actions:
        if action.help:  # a lone % would break argparse's help formatting
            action.help = re.sub(r"(?<!%)%(?![(%])", "%%", action.help)
    return parser


def parse_command(argv: list[str], prog: str, description: str, *settings_classes: type):
    """Parse ``argv`` into one instance of each of ``settings_classes`` (a tuple)."""
    return parse_with(command_parser(prog, description, *settings_classes), argv)


def parse_with(parser, argv: list[str] | None):
    """``parser.parse_args_into_dataclasses(argv)``, with argparse's usage error (exit status 2)
    for an unknown option, and a :class:`~cutkit.cli.checks.CommandError` for a value the settings
    refuse (their ``__post_init__`` checks), so that ``cutkit`` prints it as one line."""
    from cutkit.cli.checks import CommandError

    try:
        *parsed, remaining = parser.parse_args_into_dataclasses(
            argv, look_for_args_file=False, return_remaining_strings=True
        )
    except (ValueError, TypeError) as error:
        raise CommandError(str(error)) from error
    if remaining:
        parser.error(f"unrecognized arguments: {' '.join(remaining)}")
    return tuple(parsed)


def _is_optional(hint) -> bool:
    """True for ``X | None`` (one type or None)."""
    arguments = typing.get_args(hint)
    return len(arguments) == 2 and type(None) in arguments


def _none_or(parse):
    """``parse``, except that ``none`` (or ``null``) gives None."""

    def parse_optional(text: str) -> Any:
        return None if text.strip().lower() in ("none", "null") else parse(text)

    parse_optional.__name__ = getattr(parse, "__name__", "value")  # argparse's error message
    return parse_optional
