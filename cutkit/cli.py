"""Command line: ``cutkit <command>`` or ``python -m cutkit <command>``.

Commands:
    demo      the main job: CUT on the bundled default model and data, before/after figures
    train     CUT-train a LoRA adapter on a judgment file (every CUTConfig / TrainingArguments
              option is accepted, e.g. --threshold 1.2 --ul_weight 0.5 --max_steps 100)
    inspect   score which response tokens the judgments flag, write an HTML token report
    online    answer new instructions, judge them (rules, a local model or an API), train a
              fresh LoRA with CUT (or sft / hindsight), repeat; resumable
    compare   train CUT and the baselines from the same start and budget over several seeds;
              write the per-run table and the mean / spread per objective

Run ``cutkit <command> --help`` for the options of each.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field, fields

from cutkit.models import DEFAULT_MODEL


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

    from cutkit.evaluation import evaluate
    from cutkit.loaders import load_records
    from cutkit.models import apply_lora, load_model
    from cutkit.trainer import CUTConfig, CUTTrainer

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


def demo_main(argv: list[str]) -> dict:
    """``cutkit demo``: the main job (see :mod:`cutkit.demo`)."""
    from transformers import HfArgumentParser

    from cutkit.demo import DemoSettings, run_demo

    (settings,) = HfArgumentParser(DemoSettings, prog="cutkit demo").parse_args_into_dataclasses(
        argv
    )
    return run_demo(settings)


def inspect_main(argv: list[str]) -> None:
    """``cutkit inspect``: an HTML report of the tokens each judgment flags."""
    parser = argparse.ArgumentParser(prog="cutkit inspect", description=inspect_main.__doc__)
    parser.add_argument("--data", required=True, help="Judgment file (.json/.jsonl).")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="Model name or path.")
    parser.add_argument(
        "--adapter",
        default=None,
        help="A trained LoRA adapter folder (e.g. a cutkit train run directory).",
    )
    parser.add_argument(
        "--out", default="token_report.html", help="Where to write the HTML report."
    )
    parser.add_argument("--template", default="alpaca", choices=["alpaca", "chat"])
    parser.add_argument("--threshold", type=float, default=1.1, help="Detection lambda.")
    parser.add_argument("--limit", type=int, default=50, help="At most this many negative records.")
    parser.add_argument(
        "--lenient", action="store_true", help="Skip junk records instead of stopping."
    )
    parser.add_argument(
        "--ul_weight",
        type=float,
        default=1.0,
        help="Unlikelihood weight alpha for the push balance (CUTConfig.ul_weight).",
    )
    args = parser.parse_args(argv)

    from cutkit.inspection import write_report
    from cutkit.loaders import load_records
    from cutkit.models import load_model

    records = [r for r in load_records(args.data, lenient=args.lenient) if r.is_negative][
        : args.limit
    ]
    model, tokenizer = load_model(args.model)
    if args.adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, args.adapter)
    scores = write_report(
        model, tokenizer, records, args.out, template=args.template, threshold=args.threshold
    )
    print(f"[cutkit] wrote {args.out} ({len(records)} records)")
    print(_mechanism_text(scores, records, args.threshold, args.ul_weight))


def _mechanism_text(scores, records, threshold: float, ul_weight: float) -> str:
    """``cutkit inspect``'s printout: detection quality against gold spans (overall and per
    group, when the records have spans) and the push balance of CUT's plain-prompt term."""
    import math

    from cutkit.inspection import detection_quality, push_balance, record_groups

    lines = []
    quality = detection_quality(scores, threshold, groups=record_groups(records))
    if quality.loc[0, "n_tokens"] > 0:
        lines += [
            "[cutkit] detection against the gold error spans (auc: of the log ratio for gold "
            "tokens, 0.5 = chance, independent of λ; base_rate: share of tokens in gold spans; "
            f"precision / recall / f1 / flagged_frac at λ = {threshold:g}):",
            quality.to_string(index=False, float_format=lambda x: f"{x:.3f}"),
        ]
    else:
        lines.append(
            "[cutkit] no gold error spans in these records: detection quality not measured"
        )
    push = push_balance(scores, threshold, ul_weight=ul_weight)
    if push["n_tokens"] == 0:
        return "\n".join(lines)
    if math.isnan(push["push_ratio"]):
        verdict = "undefined: every token is flagged"
    elif push["push_ratio"] < 1:
        verdict = "below 1: this term raises the bad responses on balance"
    else:
        verdict = "at least 1: this term lowers the bad responses on balance"
    lines.append(
        f"[cutkit] push balance of CUT's plain-prompt term at λ = {threshold:g}, α = {ul_weight:g}: "
        f"push-down {push['push_down']:.1f} ({push['n_flagged']} flagged tokens, α p/(1-p) each) "
        f"vs push-up {push['push_up']:.0f} (unflagged tokens, 1 each) of {push['n_tokens']}; "
        f"ratio {push['push_ratio']:.3f}, {verdict}"
    )
    if "push_down_error" in push:
        lines.append(
            f"[cutkit] on the gold error tokens alone: push-down {push['push_down_error']:.1f} "
            f"vs push-up {push['push_up_error']:.0f}"
        )
    return "\n".join(lines)


@dataclass
class CompareScriptArguments:
    """What ``cutkit compare`` runs; the shared budget is CompareSettings'."""

    objectives: list[str] = field(
        default_factory=lambda: ["sft", "hindsight", "ul_all", "cut"],
        metadata={"help": "Objectives: cut, sft, hindsight, forward, ilf, ul_all, dpo."},
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
    from transformers import HfArgumentParser

    from cutkit.bundled import load_bundled_or_path
    from cutkit.comparison import CompareSettings, compare, save_comparison, summary_markdown

    parser = HfArgumentParser((CompareScriptArguments, CompareSettings), prog="cutkit compare")
    script, settings = parser.parse_args_into_dataclasses(argv)
    train, test = load_bundled_or_path(script.train), load_bundled_or_path(script.test)
    print(
        f"[cutkit] comparing {script.objectives} over seeds {script.seeds}: {len(train)} training "
        f"records, {len(test)} held-out, {settings.budget(len(train))} steps of "
        f"{settings.batch_size} records each"
    )
    frame = compare(script.objectives, train, test, seeds=script.seeds, settings=settings)
    out = save_comparison(frame, settings.output)
    print(summary_markdown(frame))
    print(f"[cutkit] wrote {out}/runs.csv, summary.csv, summary.md")
    return frame


def online_main(argv: list[str]):
    """``cutkit online``: judged online rounds (see :mod:`cutkit.online`)."""
    from cutkit.online import online_main as run

    return run(argv)


COMMANDS = {
    "demo": demo_main,
    "train": train_main,
    "inspect": inspect_main,
    "compare": compare_main,
    "online": online_main,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print(__doc__.strip())
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    COMMANDS[argv[0]](argv[1:])
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
