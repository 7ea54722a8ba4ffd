"""Where do ``self_distill``'s "### " loops come from? The first response token, two contexts.

``self_distill`` trains the plain context towards the judged context's whole next-token
distribution (docs/method.md §8), and the judged chat prompt writes the instruction and the
critique under markdown headers ("### Instruction:", "### Judgment:"). This script measures, on
the curves' training negatives, the probability that the first response token is a header token
(its text starts with "#") under the judged and under the plain context: for the base model, and
for each saved adapter of the given runs (one per budget). The teacher is the same model as the
student, so what the judged context adds to the first token can feed back on itself.

    OMP_NUM_THREADS=2 python benchmarks/curves/first_token.py --out runs/curves \
        --runs full/self_distill/seed0-lr0.0003

Writes ``--results`` (default ``benchmarks/curves/first_token.json``): per model, the mean and
largest probability in each context and how many negatives' judged argmax is a header token.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import learning_curves as curves  # its import puts the on-policy helpers on the path
from onpolicy_experiment import _records

import cutkit


def header_token_ids(tokenizer) -> list[int]:
    """Ids of the vocabulary entries whose text starts with "#" (after leading spaces)."""
    return [
        i
        for token, i in tokenizer.get_vocab().items()
        if tokenizer.convert_tokens_to_string([token]).lstrip().startswith("#")
    ]


@torch.no_grad()
def first_token_header_mass(model, tokenizer, template, records, header_ids) -> dict:
    """Mean and largest probability of a header token as the first response token, per context,
    and the count of records whose judged-context argmax is one; over ``records`` (negatives)."""
    mass = {"judged": [], "plain": []}
    judged_argmax = 0
    header_set = set(header_ids)
    for record in records:
        instruction = record.prompt_instruction
        for context in mass:
            prompt = (
                template.judged(instruction, record.judgment)
                if context == "judged"
                else template.plain(instruction)
            )
            ids = torch.tensor([template.prompt_ids(tokenizer, prompt)])
            probs = model(ids).logits[0, -1].float().softmax(-1)
            mass[context].append(probs[header_ids].sum().item())
            if context == "judged":
                judged_argmax += int(int(probs.argmax()) in header_set)
    row = {"n": len(records), "judged_argmax_header": judged_argmax}
    for context, values in mass.items():
        row[f"{context}_mean"] = round(statistics.mean(values), 4)
        row[f"{context}_max"] = round(max(values), 4)
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/curves"))
    parser.add_argument("--runs", nargs="*", default=[],
                        help="Run folders under --out whose step-<budget> adapters to probe.")  # fmt: skip
    parser.add_argument("--results", type=Path, default=Path(__file__).parent / "first_token.json")
    args = parser.parse_args(argv)
    from peft import PeftModel

    prepared = json.loads((args.out / "prepared.json").read_text())
    negatives = [r for r in _records(prepared["train_records"]) if not r.is_positive]
    preset = curves.PRESETS["cpu"]
    model, tokenizer = cutkit.load_model(preset.model)
    model.eval()
    template = cutkit.get_template("chat", tokenizer)
    header_ids = header_token_ids(tokenizer)
    results = {"base": first_token_header_mass(model, tokenizer, template, negatives, header_ids)}
    print("base", results["base"], flush=True)
    for run in args.runs:
        for budget in preset.budgets:
            adapter = args.out / run / f"step-{budget}"
            tuned = PeftModel.from_pretrained(cutkit.load_model(preset.model)[0], adapter)
            tuned.eval()
            key = f"{run}/step-{budget}"
            results[key] = first_token_header_mass(
                tuned, tokenizer, template, negatives, header_ids
            )
            print(key, results[key], flush=True)
    args.results.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
