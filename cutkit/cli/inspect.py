"""``cutkit inspect``: an HTML report of the tokens each judgment flags."""

from __future__ import annotations

import argparse

from cutkit.models.registry import DEFAULT_MODEL


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

    from cutkit.data.loading import load_records
    from cutkit.models.loading import load_model
    from cutkit.viz.report import write_report

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
