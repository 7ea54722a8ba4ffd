"""Write the token-length profile of the official CUT sample (``data/official_lengths.json``).

The GPU step benchmark draws its synthetic micro-batches from this profile so that their lengths,
and their share of negatives, are those of real CUT training data. Only lengths are kept (no text,
no records): for each example built from the released online-round sample with the paper's recipe
(alpaca template, cutoff 2048, Align-P downsampling 0.25, seed 42), its plain-prompt, judged-prompt
(0 for positives) and response token counts under the default model's tokenizer.

    python benchmarks/step/make_length_profile.py ../shared/data/cut-official-sample/train-alpaca-sample-iter1.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import warnings
from pathlib import Path

from cutkit.data.loading import load_records_with_report
from cutkit.models.loading import load_tokenizer
from cutkit.train.batching import build_examples

OUT = Path(__file__).parent / "data" / "official_lengths.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sample", help="the released train-alpaca-sample-iter1.json")
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the junk judgments are counted in the report instead
        records, report = load_records_with_report(args.sample, lenient=True)
    examples, build = build_examples(
        records, load_tokenizer(), "alpaca", max_length=2048, align_p_ratio=0.25, seed=42
    )
    rows = [
        [
            len(ex["plain_prompt_ids"]),
            len(ex["judged_prompt_ids"] or ()),
            len(ex["response_ids"]),
        ]
        for ex in examples
    ]
    tokens = [p + r + ((j + r) if j else 0) for p, j, r in rows]
    profile = {
        "source": "CUT released online-round sample train-alpaca-sample-iter1.json (1000 records)",
        "recipe": "alpaca template, max_length 2048, align_p_ratio 0.25, seed 42, SmolLM2 tokenizer",
        "records_loaded": len(records),
        "records_skipped_as_junk": report.n_skipped,
        "examples": len(rows),
        "negative": sum(1 for _, j, _ in rows if j),
        "mean_tokens_per_example": round(statistics.mean(tokens), 1),
        "max_tokens_per_example": max(tokens),
        "columns": ["plain_prompt", "judged_prompt", "response"],
        "lengths": rows,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(profile, separators=(",", ":")) + "\n")
    print(f"{OUT}: {len(rows)} examples, {profile['negative']} negative, {build}")


if __name__ == "__main__":
    main()
