"""CUT training step vs a plain causal-LM (SFT) step over the same scored tokens.

Both steps get the same collated micro-batch (the judged and plain context rows of CUT examples
built from bundled records): the SFT step is ``model(input_ids, attention_mask, labels).loss``
(transformers' own cross-entropy over full logits), the CUT step is cutkit's
``label_logprobs_left_aligned`` + ``cut_loss``. Forward + backward through a LoRA-wrapped model, median
wall time of several repetitions after a warm-up. Target: CUT <= 1.15 x SFT. The
``self_distill`` step (the same batch, plus the chunked divergence of every negative's judged
context into its plain one) is timed beside them: its cost relative to CUT.

    python benchmarks/cut_vs_lm_step/bench_cut_vs_lm_step.py                  # default model, CPU
    python benchmarks/cut_vs_lm_step/bench_cut_vs_lm_step.py --model tiny --reps 20
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from cutkit.data.bundled import bundled_data_path
from cutkit.data.loading import load_records
from cutkit.models.loading import load_model, load_tokenizer
from cutkit.models.lora import apply_lora
from cutkit.models.tiny import tiny_model
from cutkit.train.batching import CUTCollator, build_examples
from cutkit.train.distill import logprobs_and_divergence
from cutkit.train.logprobs import label_logprobs_left_aligned
from cutkit.train.losses import cut_loss


def sft_step(model, batch) -> None:
    loss = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        labels=batch["labels"],
        use_cache=False,
    ).loss
    loss.backward()


def cut_step(model, batch) -> None:
    logp, mask = label_logprobs_left_aligned(
        model, batch["input_ids"], batch["attention_mask"], batch["labels"]
    )  # (R, Lr)
    n = batch["negative"].shape[0]
    cut_loss(logp[:n], logp[batch["plain_row"]], mask[:n], batch["negative"]).loss.backward()


def self_distill_step(model, batch) -> None:
    """The self_distill objective's step: both contexts' log-probs and the chunked divergence of
    each negative's judged context into its plain one, then cut_loss with ``distill``."""
    negative = batch["negative"]
    rows = negative.nonzero(as_tuple=True)[0]
    logp, mask, pairs = logprobs_and_divergence(
        model, batch["input_ids"], batch["attention_mask"], batch["labels"],
        teacher_rows=rows, student_rows=batch["plain_row"][rows],
    )  # fmt: skip
    n = negative.shape[0]
    distill = pairs.new_zeros(n, pairs.shape[1]).index_copy(0, rows, pairs)
    loss = cut_loss(logp[:n], logp[batch["plain_row"]], mask[:n], negative, align_n=False,
                    distill=distill).loss  # fmt: skip
    loss.backward()


def timed(steps: dict, model, batch, reps: int) -> dict[str, float]:
    """Median seconds of each step; the variants alternate, so background load hits both alike."""
    times = {name: [] for name in steps}
    for rep in range(reps + 1):  # rep 0 is the warm-up
        for name, step in steps.items():
            start = time.perf_counter()
            step(model, batch)
            if rep:
                times[name].append(time.perf_counter() - start)
            model.zero_grad(set_to_none=True)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", default="smollm2-135m-instruct", help="'tiny' or a model name/path"
    )
    parser.add_argument("--batch-size", type=int, default=4, help="records per micro-batch")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/cut_vs_lm_step/cut_vs_lm_step_cpu")
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.model == "tiny":
        model, tokenizer = tiny_model(), load_tokenizer()
    else:
        model, tokenizer = load_model(args.model, device="cpu")
    model = apply_lora(model, True).train()

    records = [r for r in load_records(bundled_data_path("starter/train.jsonl")) if r.is_negative]
    examples, _ = build_examples(records[: args.batch_size], tokenizer, "chat")
    batch = CUTCollator(tokenizer.pad_token_id)(examples)
    scored = int((batch["labels"] != -100).sum())
    steps = {"sft": sft_step, "cut": cut_step, "self_distill": self_distill_step}
    medians = timed(steps, model, batch, args.reps)
    sft, cut, distill = medians["sft"], medians["cut"], medians["self_distill"]
    result = {
        "model": args.model,
        "rows": batch["input_ids"].shape[0],
        "seq_len": batch["input_ids"].shape[1],
        "scored_tokens": scored,
        "sft_step_s": round(sft, 4),
        "cut_step_s": round(cut, 4),
        "cut_over_sft": round(cut / sft, 3),
        "self_distill_step_s": round(distill, 4),
        "self_distill_over_cut": round(distill / cut, 3),
        "target": "<= 1.15",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, CPU",
    }
    table = "\n".join(
        [
            "| model | rows x len | scored tokens | SFT step (s) | CUT step (s) | CUT / SFT | "
            "self_distill step (s) | self_distill / CUT |",
            "|---|---|---|---|---|---|---|---|",
            f"| {args.model} | {result['rows']} x {result['seq_len']} | {scored} | {sft:.3f} | {cut:.3f} "
            f"| {cut / sft:.2f} | {distill:.3f} | {distill / cut:.2f} |",
        ]
    )
    print(table)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    command = (
        f"python benchmarks/cut_vs_lm_step/bench_cut_vs_lm_step.py --model {args.model} --reps {args.reps} "
        f"--out {args.out}"
    )
    out.with_suffix(".md").write_text(
        f"# CUT step vs SFT step\n\n`{command}`\n\n{table}\n\n"
        f"{result['machine']}, torch {torch.__version__}\n"
    )


if __name__ == "__main__":
    main()
