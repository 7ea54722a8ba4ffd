"""Wall time of ``cutkit.score_tokens`` over a judgment file with the default model.

Default input: the official CUT online-round sample beside the repository
(``../shared/data/cut-official-sample/train-alpaca-sample-iter1.json``, 1000 records, loaded
leniently: junk judgments are skipped and reported). Scores every response token under the plain
prompt and, for negatives, the judged prompt (alpaca template, as the official data was made).

    python benchmarks/score_tokens/bench_score_tokens.py
    python benchmarks/score_tokens/bench_score_tokens.py --data my.json --batch-size 16 --template chat
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from cutkit.data.loading import load_records_with_report
from cutkit.eval.tokens import score_tokens
from cutkit.models.loading import load_model

REPO = Path(__file__).resolve().parents[2]
OFFICIAL = REPO.parent / "shared/data/cut-official-sample/train-alpaca-sample-iter1.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(OFFICIAL))
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--template", default="alpaca")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=2048)
    parser.add_argument("--out", default="benchmarks/score_tokens/score_tokens_cpu")
    args = parser.parse_args()

    records, report = load_records_with_report(args.data, lenient=True)
    # the results name the data file, not where it lay on the machine that ran this
    report = str(report).replace(report.source, Path(report.source).name, 1)
    model, tokenizer = load_model(args.model, device="cpu")
    start = time.perf_counter()
    scores = score_tokens(
        model,
        tokenizer,
        records,
        template=args.template,
        batch_size=args.batch_size,
        max_length=args.max_length,
        progress=True,
    )
    seconds = time.perf_counter() - start
    negative = scores["logp_judged"].notna()
    result = {
        "data": Path(args.data).name,
        "load_report": str(report),
        "records": len(records),
        "response_tokens": len(scores),
        "negative_response_tokens": int(negative.sum()),
        "flagged_frac_negative": round(float(scores.loc[negative, "flagged"].mean()), 4),
        "seconds": round(seconds, 1),
        "response_tokens_per_s": round(len(scores) / seconds, 1),
        "batch_size": args.batch_size,
        "template": args.template,
        "model": args.model,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
    }
    print(json.dumps(result, indent=1))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    out.with_suffix(".md").write_text(
        "# score_tokens over the official CUT sample\n\n"
        f"`python benchmarks/score_tokens/bench_score_tokens.py --batch-size {args.batch_size} --template {args.template}`\n\n"
        "| records | response tokens | seconds | response tokens / s | flagged share (negatives) |\n"
        "|---|---|---|---|---|\n"
        f"| {len(records)} | {len(scores)} | {seconds:.0f} | {result['response_tokens_per_s']} | "
        f"{result['flagged_frac_negative']} |\n\n"
        f"{report}\n\n{args.model}, {platform.machine()} CPU, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}\n"
    )


if __name__ == "__main__":
    main()
