"""``cutkit inspect``: an HTML report of the tokens each judgment flags."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from cutkit._checks import check_number
from cutkit.models.lora import ModelSettings
from cutkit.train.settings import CUTLevers, TrainSettings, check_setting, setting, shared_field


@dataclass
class InspectArguments:
    """What ``cutkit inspect`` reads, scores and writes; the model, template, lambda and alpha
    are declared with the training settings (same options as the other commands)."""

    data: str = field(metadata={"help": "Judgment file (.json/.jsonl)."})
    model: str = shared_field(ModelSettings, "model")
    adapter: str | None = field(
        default=None,
        metadata={"help": "A trained LoRA adapter folder (e.g. a cutkit train run directory)."},
    )
    output: str = field(
        default="token_report.html",
        metadata={"help": "Where to write the HTML report.", "aliases": ["--out"]},
    )
    PRESET: ClassVar[str] = "train"

    # the template cutkit train uses by default (CUTConfig's), so a trained run is read as trained
    template: str = shared_field(TrainSettings, "template", "train")
    threshold: float = shared_field(TrainSettings, "threshold")
    ul_weight: float = shared_field(CUTLevers, "ul_weight")
    limit: int = field(default=50, metadata={"help": "At most this many negative records."})
    max_length: int = setting("max_length")  # the command says how many response tokens were cut
    lenient: bool = field(
        default=False, metadata={"help": "Skip junk records instead of stopping."}
    )

    def __post_init__(self) -> None:
        check_setting(self, "max_length")
        # the rules of training: a lambda or alpha it would refuse is refused here too
        check_number("limit", self.limit, minimum=1, integer=True, why="negative records to score")
        check_setting(self, "threshold")
        check_setting(self, "ul_weight")


def inspect_main(argv: list[str]) -> None:
    """``cutkit inspect``: an HTML report of the tokens each judgment flags."""
    from cutkit.cli.arguments import parse_command

    (args,) = parse_command(argv, "cutkit inspect", inspect_main.__doc__, InspectArguments)

    from pathlib import Path

    from cutkit.cli.checks import CommandError, check_output_path, check_template
    from cutkit.data.loading import load_records
    from cutkit.eval.tokens import truncation_text
    from cutkit.models.loading import load_model
    from cutkit.viz.report import write_report

    # fail fast, before the model loads and the records are scored
    check_template(args.template)
    output = check_output_path(args.output, folder=False)
    if args.adapter and not Path(args.adapter).is_dir():
        raise CommandError(
            f"--adapter {args.adapter} is not a folder; give a LoRA adapter folder (e.g. a cutkit "
            "train run directory)"
        )
    loaded = load_records(args.data, lenient=args.lenient)
    records = [r for r in loaded if r.is_negative][: args.limit]
    if not records:
        raise CommandError(
            f"--data {args.data}: none of its {len(loaded)} records is negative (has a critical "
            "judgment), so there are no flagged tokens to report; pass judged records"
        )
    model, tokenizer = load_model(args.model)
    if args.adapter:
        from cutkit.train.rundir import load_adapter

        model = load_adapter(
            model,
            args.adapter,
            fix="give a complete adapter folder: retrain the run (cutkit train ... --overwrite "
            "true), or pass one of its complete checkpoint-N folders",
        )
    output.parent.mkdir(parents=True, exist_ok=True)  # missing folders of --output are created
    scores = write_report(
        model,
        tokenizer,
        records,
        args.output,
        template=args.template,
        threshold=args.threshold,
        max_length=args.max_length,
    )
    print(f"[cutkit] wrote {args.output} ({len(records)} records)")
    truncated = truncation_text(scores)
    if truncated:
        print(f"[cutkit] {truncated}; raise --max_length to score them whole")
    print(_mechanism_text(scores, records, args.threshold, args.ul_weight))


def _mechanism_text(scores, records, threshold: float, ul_weight: float) -> str:
    """``cutkit inspect``'s printout: detection quality against gold spans (overall and per
    group, when the records have spans) and the push balance of CUT's plain-prompt term."""
    import math

    from cutkit.eval.detection import detection_quality, push_balance, record_groups

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
