"""``cutkit train``: CUT-train a LoRA adapter on a judgment file."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

from cutkit.models.lora import ModelSettings


@dataclass
class TrainScriptArguments(ModelSettings):
    """What ``cutkit train`` loads: the data, and the model and LoRA adapter of
    :class:`~cutkit.models.lora.ModelSettings`; the training options are CUTConfig's."""

    data: str = field(
        kw_only=True,
        metadata={"help": "Training judgment file (.json/.jsonl; any supported format)."},
    )
    eval_data: str | None = field(
        default=None,
        metadata={"help": "Held-out judgment file, evaluated before and after training."},
    )
    format: str = field(
        default="auto",
        metadata={"help": "Data format: auto, cut, shepherd, summarization, ultrafeedback."},
    )
    lenient: bool = field(
        default=False, metadata={"help": "Skip junk records ('$ERROR$' judgments) with a report."}
    )
    resume: str | None = field(
        default=None,
        metadata={
            "help": "Checkpoint folder to resume from ('last' = the newest complete checkpoint "
            "in the run directory); the settings and data must be the run's own."
        },
    )
    overwrite: bool = field(
        default=False,
        metadata={
            "help": "Start a new run in an --output that holds another run, deleting it "
            "(without it such a run is refused)."
        },
    )


def train_main(argv: list[str]) -> dict:
    """``cutkit train``: load records and model, train with CUT, save the run directory."""
    from cutkit.cli.arguments import command_parser, given_settings, parse_command, write_config
    from cutkit.cli.checks import CommandError, check_output_path, check_template
    from cutkit.data.loading import load_records_with_report
    from cutkit.eval.metrics import evaluate
    from cutkit.models.loading import load_model
    from cutkit.train.config import CUTConfig
    from cutkit.train.entry import check_training_records, seed_everything, train_objective
    from cutkit.train.settings import scoring_kwargs

    script, config = parse_command(
        argv, "cutkit train", train_main.__doc__, TrainScriptArguments, CUTConfig
    )
    effective = given_settings(
        command_parser("cutkit train", "", TrainScriptArguments, CUTConfig),
        argv,
        exclude=("resume", "overwrite"),
    )

    def load(path: str, what: str) -> tuple[list, object]:
        records, report = load_records_with_report(
            path, format=script.format, lenient=script.lenient
        )
        print(f"[cutkit] {what}{report}")
        return records, report

    # fail fast: everything that can refuse the run is checked before the model loads and before
    # the run directory exists (cutkit.cli.checks)
    check_template(config.template)
    check_output_path(config.output_dir, folder=True)
    records, report = load(script.data, "")
    check_training_records(
        records, config.objective, source=script.data, align_p_ratio=config.align_p_ratio
    )
    held_out = load(script.eval_data, "held-out: ")[0] if script.eval_data else None
    if script.eval_data and not held_out:
        raise CommandError(
            f"--eval_data {script.eval_data} holds no records to evaluate; pass a held-out "
            "judgment file with records, or leave --eval_data out"
        )
    run_dir, checkpoint = _check_run_directory(script, config, records)
    seed_everything(config)  # as before any run: loading may draw random numbers too
    model, tokenizer = load_model(script.model)
    figures = {}

    def evaluate_held_out(when: str) -> None:
        if held_out:
            figures[when] = evaluate(model, tokenizer, held_out, **scoring_kwargs(config))
            print(f"[cutkit] held-out {when} training: {_short(figures[when])}")

    evaluate_held_out("before")

    def claim_run_directory(trainer) -> None:  # once the examples are built, just before training
        print(f"[cutkit] {trainer.build_reports['train']}")
        if run_dir.main:  # under DDP (torchrun / accelerate launch) rank 0 owns the folder
            run_dir.claim()
            write_config(run_dir.path, effective)

    trainer = train_objective(
        model, tokenizer, records, config, lora=script.lora_config() if script.lora_r > 0 else None,
        before_training=claim_run_directory, resume_from_checkpoint=checkpoint, source=script.data,
    )  # fmt: skip
    model = trainer.model
    evaluate_held_out("after")
    out = trainer.save_run(script=asdict(script), load_report=str(report), **figures)
    print(f"[cutkit] saved the run to {out}/")
    return figures


class _RunDirectory:
    """The checked run directory of ``cutkit train``; :meth:`claim` clears it (``--overwrite``)
    and records this run as its owner, just before training."""

    def __init__(self, path, identity: dict, resume: bool, overwrite: bool, main: bool = True):
        self.path, self.identity, self.resume, self.overwrite = path, identity, resume, overwrite
        self.main = main  # the process that checks and claims the folder (rank 0)

    def claim(self) -> None:
        from cutkit.train.rundir import claim_run_directory

        claim_run_directory(self.path, self.identity, resume=self.resume, overwrite=self.overwrite)


def _check_run_directory(script, config, records) -> tuple[_RunDirectory, str | None]:
    """Check that this run may use ``--output`` (cutkit.train.rundir: a new run needs a new or
    empty directory or ``--overwrite``; a resume needs the run's own settings and data) and find
    the checkpoint to resume: ``(run directory, checkpoint or None)``."""
    from pathlib import Path

    from cutkit._version import __version__
    from cutkit.train.rundir import (
        check_run_directory,
        describe_skipped,
        latest_complete_checkpoint,
        records_fingerprint,
        run_identity,
    )

    settings = {**asdict(script), **config.to_dict()}
    identity = run_identity(settings, records_fingerprint(records), __version__)
    out = Path(config.output_dir).expanduser().resolve()
    # under torchrun / accelerate launch only rank 0 (RANK=0) checks and claims the folder
    main = int(os.environ.get("RANK", "0")) == 0
    check = check_run_directory if main else (lambda *args, **kwargs: None)
    if not script.resume:
        check(out, identity, resume=False, overwrite=script.overwrite)
        return _RunDirectory(out, identity, False, script.overwrite, main), None
    if script.resume == "last":
        check(out, identity, resume=True, overwrite=script.overwrite)
        checkpoint, skipped = latest_complete_checkpoint(out)
        if skipped:
            print(f"[cutkit] {describe_skipped(skipped)}")
        print(f"[cutkit] resuming from {checkpoint}")
        return _RunDirectory(out, identity, True, False, main), str(checkpoint)
    checkpoint = Path(script.resume).expanduser().resolve()
    if not checkpoint.is_dir():
        from cutkit.train.rundir import CheckpointError

        raise CheckpointError(f"--resume {script.resume}: no checkpoint folder there")
    source = checkpoint.parent
    check(source, identity, resume=True, overwrite=False)
    same = source == out
    if not same:  # a new run in --output, started from another run's checkpoint
        check(out, identity, resume=False, overwrite=script.overwrite)
    elif script.overwrite:
        check(out, identity, resume=True, overwrite=True)  # refuses the pair
    print(f"[cutkit] resuming from {checkpoint}")
    return _RunDirectory(out, identity, same, script.overwrite and not same, main), str(checkpoint)


def _short(figures: dict) -> str:
    return ", ".join(f"{k}={v:.3f}" for k, v in figures.items() if isinstance(v, float))
