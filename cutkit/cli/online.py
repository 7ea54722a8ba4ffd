"""``cutkit online``: judged online rounds (see :mod:`cutkit.online.loop`)."""

from __future__ import annotations

import argparse
import dataclasses

from cutkit.online.config import OnlineConfig, OnlineRun
from cutkit.online.loop import run_online


def _optional_float(text: str) -> float | None:
    return None if text.lower() in ("none", "null", "") else float(text)


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


_ARG_TYPES = {
    "int": int,
    "float": float,
    "str": str,
    "bool": _bool,
    "float | None": _optional_float,
    "str | None": str,
}
_CLI_ALIASES = {"epochs": ["--num-train-epochs"], "batch_size": ["--per-device-train-batch-size"]}


def add_online_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add one option per :class:`OnlineConfig` field (``--instructions-per-round``, ...;
    ``--output`` and ``--lr`` are aliases) to ``parser``; returns it."""
    for f in dataclasses.fields(OnlineConfig):
        if f.name == "training":
            continue
        flags = [f"--{f.name.replace('_', '-')}", *f.metadata.get("aliases", [])]
        flags += _CLI_ALIASES.get(f.name, [])
        if "_" in f.name:
            flags.append(f"--{f.name}")
        default = f.default
        parser.add_argument(
            *flags,
            dest=f.name,
            type=_ARG_TYPES[str(f.type)],
            default=default,
            metavar=f.name.upper(),
            help=f"{f.metadata['help']} (default: {default})".replace("%", "%%"),
        )
    return parser


def run_online_from_args(args: argparse.Namespace) -> OnlineRun:
    """Run :func:`run_online` with the options of :func:`add_online_arguments` and print the
    per-round table."""
    names = {f.name for f in dataclasses.fields(OnlineConfig)}
    config = OnlineConfig(**{k: v for k, v in vars(args).items() if k in names})
    run = run_online(config)
    print(run.table().to_string(float_format=lambda x: f"{x:.3f}"))
    print(f"[cutkit online] run directory: {run.run_dir}/")
    return run


def online_main(argv: list[str] | None = None) -> OnlineRun:
    """``cutkit online``: online alignment rounds with a judge (module docstring)."""
    parser = argparse.ArgumentParser(
        prog="cutkit online",
        description="Online alignment: each round answers new instructions, has them judged, "
        "trains a fresh LoRA on the merged model of the previous round, and evaluates "
        "constraint satisfaction on a fixed held-out set. Resumes an interrupted run.",
    )
    add_online_arguments(parser)
    return run_online_from_args(parser.parse_args(argv))
