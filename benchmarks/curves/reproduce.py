"""Does the current code train what an earlier commit trained? A bitwise check of the curves.

Rows of one table may come from runs of different commits. This script retrains the first
``--steps`` optimizer steps (a budget of the preset) of a finished run with the code it is run
from, and compares the LoRA adapter tensor by tensor with the one the run saved at that budget.
The schedule is constant after warm-up, so the first steps of a shorter run are the first steps
of the longer one. Equal tensors mean the training path (data, batching, loss, optimizer, seeds)
did not change between the two commits; the result is appended to ``--results``.

    OMP_NUM_THREADS=1 python benchmarks/curves/reproduce.py --out runs/curves --arm sft --seed 1
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import learning_curves as curves


def compare_adapters(stored: Path, fresh: Path) -> dict:
    """Tensor-by-tensor comparison of two saved adapters (``adapter_model.safetensors``)."""
    from safetensors.torch import load_file

    old = load_file(stored / "adapter_model.safetensors")
    new = load_file(fresh / "adapter_model.safetensors")
    if old.keys() != new.keys():
        return {"tensors": len(old), "bitwise_equal": False, "max_abs_diff": None}
    diff = max((old[k].float() - new[k].float()).abs().max().item() for k in old)
    equal = all(torch.equal(old[k], new[k]) for k in old)
    return {"tensors": len(old), "bitwise_equal": equal, "max_abs_diff": diff}


def reproduce(out: Path, preset, arm: str, seed: int, steps: int, condition: str = "full") -> dict:
    """Retrain ``steps`` steps of ``out/<condition>/<arm>/seed<seed>-lr<chosen>`` and compare."""
    lr = json.loads((out / "full" / arm / "chosen.json").read_text())["lr"]
    folder = out / condition / arm / f"seed{seed}-lr{lr:g}"
    stored = folder / f"step-{steps}"
    if not (stored / "adapter_model.safetensors").exists():
        raise FileNotFoundError(f"{stored}: no saved adapter at {steps} steps to compare with")
    evaluation = next(folder.glob(f"*-step{steps}.json"), None)
    stored_commit = json.loads(evaluation.read_text())["commit"] if evaluation else "unknown"
    prepared = json.loads((out / "prepared.json").read_text())
    with tempfile.TemporaryDirectory() as scratch:
        fresh = Path(scratch)
        curves.train_run(prepared, replace(preset, budgets=(steps,)), arm, seed, lr, fresh,
                         condition)  # fmt: skip
        result = compare_adapters(stored, fresh / f"step-{steps}")
    return {"condition": condition, "arm": arm, "seed": seed, "steps": steps, "lr": lr,
            "stored_commit": stored_commit[:10], "current_commit": curves.COMMIT[:10],
            **result}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/curves"))
    parser.add_argument("--results", type=Path, default=Path("benchmarks/curves/reproduce.json"))
    parser.add_argument("--preset", choices=sorted(curves.PRESETS), default="cpu")
    parser.add_argument("--arm", required=True, choices=sorted(curves.ARMS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=6, help="A budget of the preset.")
    parser.add_argument("--condition", choices=["full", "scarce"], default="full")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    row = reproduce(args.out, curves.PRESETS[args.preset], args.arm, args.seed, args.steps,
                    args.condition)  # fmt: skip
    rows = json.loads(args.results.read_text()) if args.results.exists() else []
    rows.append(row)
    args.results.write_text(json.dumps(rows, indent=1) + "\n")
    print(json.dumps(row))


if __name__ == "__main__":
    main()
