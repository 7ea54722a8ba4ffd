"""``cutkit online``: judged online rounds (see :mod:`cutkit.online.loop`)."""

from __future__ import annotations

from cutkit.online.config import OnlineConfig, OnlineRun
from cutkit.online.loop import run_online

DESCRIPTION = (
    "Online alignment: each round answers new instructions, has them judged, trains a fresh LoRA "
    "on the merged model of the previous round, and evaluates constraint satisfaction on a fixed "
    "held-out set. Resumes an interrupted run."
)


def online_parser():
    """The parser of ``cutkit online``: one option per :class:`OnlineConfig` field
    (``--instructions_per_round`` or ``--instructions-per-round``, ...; ``--output`` and ``--lr``
    are aliases)."""
    from cutkit.cli.arguments import command_parser

    return command_parser("cutkit online", DESCRIPTION, OnlineConfig)


def online_main(argv: list[str] | None = None) -> OnlineRun:
    """``cutkit online``: online alignment rounds with a judge (module docstring)."""
    from cutkit.cli.arguments import given_settings, parse_with, write_config
    from cutkit.cli.checks import check_output_path, check_template

    (config,) = parse_with(online_parser(), argv)
    check_template(config.template)
    check_output_path(config.output_dir, folder=True)
    effective = given_settings(online_parser(), argv)
    run = run_online(config)
    write_config(run.run_dir, effective)
    print(run.table().to_string(float_format=lambda x: f"{x:.3f}"))
    print(f"[cutkit online] run directory: {run.run_dir}/")
    return run
