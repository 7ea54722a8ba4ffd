"""One parser style for every command: ``transformers.HfArgumentParser`` over the command's
settings dataclasses.

An option is its field's name (``--lora_r``, or ``--lora-r``), with the field's help text, type and
default, and the aliases in its metadata (``--output``, ``--lr``); the same setting has the same
option in every command because the commands share the dataclasses that declare it
(:mod:`cutkit.train.settings`). On top of HfArgumentParser: ``none`` gives None for an optional
field (``--align_p_ratio none``), an ``int | str | None`` field takes an integer, a word or
``none`` (``--chunk_size 512``, ``auto``, ``none``), a ``dict`` field takes a JSON object, and help
texts may contain ``%``.

Every command also takes ``--config FILE.yaml``: a mapping of the same option names (without the
dashes) to values, read before the flags, so flags given on the command line override the file.
A run saves the settings it was given (:func:`given_settings`) with :func:`write_config` as
``cutkit_config.yaml``; passed back with ``--config``, that file reproduces the run.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import json
import re
import typing
from pathlib import Path
from typing import Any

CONFIG_FILE = "cutkit_config.yaml"
"""The name of the effective-settings file a run saves (:func:`write_config`)."""


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
            elif set(typing.get_args(hint)) == {int, str, type(None)}:
                action.type = _none_or(_int_or_word)  # chunk_size: 512, auto or none
            elif _is_optional(hint) and not isinstance(action.default, str):
                action.type = _none_or(action.type)  # (argparse parses a str default too)
    for action in parser._actions:
        if action.help:  # a lone % would break argparse's help formatting
            action.help = re.sub(r"(?<!%)%(?![(%])", "%%", action.help)
    parser.add_argument(
        "--config",
        metavar="FILE.yaml",
        help="Read settings from a YAML file of option: value lines (the names of these options, "
        f"without dashes); flags on the command line override it. A run saves {CONFIG_FILE}, "
        "which reproduces it.",
    )
    return parser


def parse_command(argv: list[str], prog: str, description: str, *settings_classes: type):
    """Parse ``argv`` into one instance of each of ``settings_classes`` (a tuple)."""
    return parse_with(command_parser(prog, description, *settings_classes), argv)


def parse_with(parser, argv: list[str] | None):
    """``parser.parse_args_into_dataclasses(argv)``, with argparse's usage error (exit status 2)
    for an unknown option, and a :class:`~cutkit.cli.checks.CommandError` for a value the settings
    refuse (their ``__post_init__`` checks), so that ``cutkit`` prints it as one line."""
    from cutkit.cli.checks import CommandError

    argv = list(argv) if argv is not None else None
    config = _config_path(argv)
    if config is not None:
        values = read_config(config, parser)
        parser.set_defaults(**values)
        for action in parser._actions:  # a required option the file gives is given
            if action.dest in values:
                action.required = False
    try:
        *parsed, remaining = parser.parse_args_into_dataclasses(
            argv, look_for_args_file=False, return_remaining_strings=True
        )
    except (ValueError, TypeError) as error:
        raise CommandError(str(error)) from error
    if remaining:
        parser.error(f"unrecognized arguments: {' '.join(remaining)}")
    # HfArgumentParser returns the options of no dataclass (--config) as a last Namespace
    return tuple(p for p in parsed if not isinstance(p, argparse.Namespace))


def _config_path(argv: list[str] | None) -> str | None:
    """The value of ``--config`` in ``argv`` (the last one given), if any."""
    import sys

    found = None
    args = sys.argv[1:] if argv is None else argv
    for i, arg in enumerate(args):
        if arg == "--config" and i + 1 < len(args):
            found = args[i + 1]
        elif arg.startswith("--config="):
            found = arg.split("=", 1)[1]
    return found


def read_config(path: str | Path, parser) -> dict[str, Any]:
    """The settings of a YAML config file as ``{dest: value}`` for ``parser.set_defaults``;
    :class:`~cutkit.cli.checks.CommandError` naming the file (and the key) when it is missing,
    not YAML, not a mapping, or names an option the command does not have."""
    import difflib

    import yaml

    from cutkit.cli.checks import CommandError

    path = Path(path).expanduser()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CommandError(f"--config {path}: no such file") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise CommandError(f"--config {path}: not a readable YAML file ({error})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise CommandError(
            f"--config {path}: expected a mapping of option: value lines, got a "
            f"{type(data).__name__}"
        )
    dests = {}
    for action in parser._actions:
        for option in action.option_strings:
            if option.startswith("--") and action.dest not in ("help", "config"):
                dests.setdefault(option[2:].replace("-", "_"), action.dest)
    values = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name not in dests:
            close = difflib.get_close_matches(name, list(dests), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise CommandError(f"--config {path}: unknown setting {key!r}{hint}")
        values[dests[name]] = value
    return values


def given_settings(
    parser, argv: list[str] | None, *, exclude: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The settings this command line gives, from ``--config`` and its flags (flags win), as
    YAML-ready ``{name: value}``, less the ``exclude`` names: what a config file needs to
    reproduce the run (:func:`write_config`). ``parser`` must be a fresh :func:`command_parser`
    (not the one that parsed ``argv``). Nothing is instantiated: building a second
    ``TrainingArguments`` would reset the distributed state the first one set up."""
    import sys

    argv = sys.argv[1:] if argv is None else list(argv)
    config = _config_path(argv)
    values = read_config(config, parser) if config is not None else {}
    for action in parser._actions:  # an option absent from argv stays out of the namespace
        action.default, action.required = argparse.SUPPRESS, False
    namespace, _ = parser.parse_known_args(argv)
    values |= {k: v for k, v in vars(namespace).items() if k != "config"}
    return {k: _plain(v) for k, v in sorted(values.items()) if k not in exclude}


def write_config(path: str | Path, values: dict[str, Any]) -> Path:
    """Write ``values`` (:func:`given_settings`) as YAML to ``path`` (a folder gets
    :data:`CONFIG_FILE`); passed back with ``--config``, it reproduces the same settings."""
    import yaml

    path = Path(path)
    if path.is_dir() or not path.suffix:
        path = path / CONFIG_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(values, sort_keys=True, allow_unicode=True)
    path.write_text(text, encoding="utf-8")
    return path


def _plain(value: Any) -> Any:
    """Enums to their values, tuples to lists, recursively: what yaml.safe_dump writes."""
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value


def _is_optional(hint) -> bool:
    """True for ``X | None`` (one type or None)."""
    arguments = typing.get_args(hint)
    return len(arguments) == 2 and type(None) in arguments


def _int_or_word(text: str) -> int | str:
    """An integer written as one (``512``), else the word itself (``auto``), for the settings'
    own check to accept or refuse."""
    try:
        return int(text)
    except ValueError:
        return text


def _none_or(parse):
    """``parse``, except that ``none`` (or ``null``) gives None."""

    def parse_optional(text: str) -> Any:
        return None if text.strip().lower() in ("none", "null") else parse(text)

    parse_optional.__name__ = getattr(parse, "__name__", "value")  # argparse's error message
    return parse_optional
