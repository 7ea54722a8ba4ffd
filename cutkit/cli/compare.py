"""``cutkit compare``: CUT and the baselines from the same start, budget and seeds."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field

from cutkit.train.vocabulary import OBJECTIVES, TRL_OBJECTIVES


@dataclass
class CompareScriptArguments:
    """What ``cutkit compare`` runs; the shared settings and budget are CompareSettings'."""

    objectives: list[str] = field(
        default_factory=lambda: ["sft", "hindsight", "ul_all", "cut"],
        metadata={
            "help": f"Objectives: {', '.join((*OBJECTIVES, *TRL_OBJECTIVES))}; "
            "an arm may set CUTConfig fields, e.g. cut:unflagged=ignore."
        },
    )
    seeds: list[int] = field(default_factory=lambda: [0, 1], metadata={"help": "Seeds."})
    train: str = field(
        default="judgments/train.jsonl",
        metadata={
            "help": "Training records (a bundled name such as judgments/train.jsonl, or a path)."
        },
    )
    test: str = field(
        default="judgments/test.jsonl",
        metadata={"help": "Held-out records (bundled name or path)."},
    )


def compare_main(argv: list[str]):
    """``cutkit compare``: :func:`cutkit.compare` from the command line."""
    from cutkit.cli.arguments import command_parser, given_settings, parse_command, write_config
    from cutkit.cli.checks import CommandError, check_output_path, check_template
    from cutkit.data.bundled import load_bundled_or_path
    from cutkit.eval import comparison
    from cutkit.eval.comparison import (
        CompareSettings,
        check_comparison,
        compare,
        parse_arm,
        save_comparison,
        summary_markdown,
    )

    script, settings = parse_command(
        argv, "cutkit compare", compare_main.__doc__, CompareScriptArguments, CompareSettings
    )
    classes = (CompareScriptArguments, CompareSettings)
    effective = given_settings(command_parser("cutkit compare", "", *classes), argv)
    # fail fast, before any model loads or folder is made (compare() checks the records again)
    check_template(settings.template)
    check_output_path(settings.output, folder=True)
    arms = {spec: parse_arm(spec) for spec in script.objectives}
    train, test = load_bundled_or_path(script.train), load_bundled_or_path(script.test)
    if not train:
        raise CommandError(
            f"--train {script.train} holds no records to train on; pass a judgment file with "
            "records"
        )
    if not test:
        raise CommandError(
            f"--test {script.test} holds no records: every run is evaluated on them; pass a "
            "held-out judgment file with records"
        )
    check_comparison(arms, train, test, settings)
    print(
        f"[cutkit] comparing {script.objectives} over seeds {script.seeds}: {len(train)} training "
        f"records, {len(test)} held-out, {settings.budget(len(train))} steps of "
        f"{settings.records_per_step} records each"
    )
    progress = logging.StreamHandler(sys.stdout)  # compare()'s one line per run
    progress.setFormatter(logging.Formatter("%(message)s"))
    comparison.logger.addHandler(progress)
    level = comparison.logger.level
    comparison.logger.setLevel(logging.INFO)
    try:
        frame = compare(script.objectives, train, test, seeds=script.seeds, settings=settings)
    finally:
        comparison.logger.removeHandler(progress)
        comparison.logger.setLevel(level)
    out = save_comparison(frame, settings.output)
    write_config(out, effective)
    print(summary_markdown(frame))
    print(f"[cutkit] wrote {out}/runs.csv, summary.csv, summary.md, cutkit_config.yaml")
    return frame
