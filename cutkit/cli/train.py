"""``cutkit train``: CUT-train a LoRA adapter on a judgment file."""

from __future__ import annotations

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
            "help": "Checkpoint folder to resume from ('last' = newest in the run directory)."
        },
    )


def train_main(argv: list[str]) -> dict:
    """``cutkit train``: load records and model, train with CUT, save the run directory."""
    from cutkit.cli.arguments import parse_command
    from cutkit.data.loading import load_records_with_report
    from cutkit.eval.metrics import evaluate
    from cutkit.models.loading import load_model
    from cutkit.models.lora import apply_lora
    from cutkit.train.config import CUTConfig
    from cutkit.train.settings import scoring_kwargs
    from cutkit.train.trainer import CUTTrainer

    script, config = parse_command(
        argv, "cutkit train", train_main.__doc__, TrainScriptArguments, CUTConfig
    )

    def load(path: str, what: str) -> tuple[list, object]:
        records, report = load_records_with_report(
            path, format=script.format, lenient=script.lenient
        )
        print(f"[cutkit] {what}{report}")
        return records, report

    records, report = load(script.data, "")
    held_out = load(script.eval_data, "held-out: ")[0] if script.eval_data else None
    model, tokenizer = load_model(script.model)
    if script.lora_r > 0:
        model = apply_lora(model, script.lora_config())
    figures = {}

    def evaluate_held_out(when: str) -> None:
        if held_out:
            figures[when] = evaluate(model, tokenizer, held_out, **scoring_kwargs(config))
            print(f"[cutkit] held-out {when} training: {_short(figures[when])}")

    evaluate_held_out("before")
    trainer = CUTTrainer(model, config, train_dataset=records, processing_class=tokenizer)
    print(f"[cutkit] {trainer.build_reports['train']}")
    resume = True if script.resume == "last" else script.resume
    trainer.train(resume_from_checkpoint=resume)
    evaluate_held_out("after")
    out = trainer.save_run(script=asdict(script), load_report=str(report), **figures)
    print(f"[cutkit] saved the run to {out}/")
    return figures


def _short(figures: dict) -> str:
    return ", ".join(f"{k}={v:.3f}" for k, v in figures.items() if isinstance(v, float))
