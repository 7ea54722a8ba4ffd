"""``cutkit train``: CUT-train a LoRA adapter on a judgment file."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from cutkit.models.registry import DEFAULT_MODEL


@dataclass
class TrainScriptArguments:
    """What ``cutkit train`` loads; training options are CUTConfig's."""

    data: str = field(
        metadata={"help": "Training judgment file (.json/.jsonl; any supported format)."}
    )
    model: str = field(
        default=DEFAULT_MODEL,
        metadata={"help": "Model name, checkpoint folder, .gguf file or hub id."},
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
        default=False,
        metadata={
            "help": "Skip junk records (e.g. '$ERROR$' judgments) with a report instead of stopping."
        },
    )
    lora_r: int = field(
        default=16, metadata={"help": "LoRA rank (paper: 16); 0 trains the full model."}
    )
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha (paper: 16)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout (paper: 0.05)."})
    resume: str | None = field(
        default=None,
        metadata={
            "help": "Checkpoint folder to resume from ('last' = newest in the run directory)."
        },
    )


def train_main(argv: list[str]) -> dict:
    """``cutkit train``: load records and model, train with CUT, save the run directory."""
    from transformers import HfArgumentParser

    from cutkit.data.loading import load_records
    from cutkit.eval.metrics import evaluate
    from cutkit.models.loading import load_model
    from cutkit.models.lora import apply_lora
    from cutkit.train.config import CUTConfig
    from cutkit.train.trainer import CUTTrainer

    parser = HfArgumentParser((TrainScriptArguments, CUTConfig), prog="cutkit train")
    script, config = parser.parse_args_into_dataclasses(argv)
    records, report = load_records(
        script.data, format=script.format, lenient=script.lenient, report=True
    )
    print(f"[cutkit] {report}")
    held_out = None
    if script.eval_data:
        held_out, eval_report = load_records(
            script.eval_data, format=script.format, lenient=script.lenient, report=True
        )
        print(f"[cutkit] held-out: {eval_report}")
    model, tokenizer = load_model(script.model)
    if script.lora_r > 0:
        model = apply_lora(
            model,
            {
                "r": script.lora_r,
                "lora_alpha": script.lora_alpha,
                "lora_dropout": script.lora_dropout,
            },
        )
    figures = {}

    def evaluate_held_out(when: str) -> None:
        if held_out:
            figures[when] = evaluate(
                model,
                tokenizer,
                held_out,
                template=config.template,
                threshold=config.threshold,
                max_length=config.max_length,
            )
            print(f"[cutkit] held-out {when} training: {_short(figures[when])}")

    evaluate_held_out("before")
    trainer = CUTTrainer(model, config, train_dataset=records, processing_class=tokenizer)
    print(f"[cutkit] {trainer.build_reports['train']}")
    resume = True if script.resume == "last" else script.resume
    trainer.train(resume_from_checkpoint=resume)
    evaluate_held_out("after")
    out = trainer.save_run(
        script={f.name: getattr(script, f.name) for f in fields(script)},
        load_report=str(report),
        **figures,
    )
    print(f"[cutkit] saved the run to {out}/")
    return figures


def _short(figures: dict) -> str:
    return ", ".join(f"{k}={v:.3f}" for k, v in figures.items() if isinstance(v, float))
