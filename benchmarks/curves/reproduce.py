"""Does the current code train what an earlier commit trained? A bitwise check of the curves.

Rows of one table may come from runs of different commits. This script retrains the first
``--steps`` optimizer steps (a budget of the preset) of a finished run with the code it is run
from, and compares the LoRA adapter tensor by tensor with the one the run saved at that budget.
The schedule is constant after warm-up, so the first steps of a shorter run are the first steps
of the longer one. Equal tensors mean the training path (data, batching, loss, optimizer, seeds)
did not change between the two commits. ``--evaluate heldout`` instead answers the held-out
split again with the stored adapter and compares answers, verdicts and the tax's log-probs with
the stored evaluation (the evaluation path). Each result is appended to ``--results``.

    OMP_NUM_THREADS=1 python benchmarks/curves/reproduce.py --out runs/curves --arm sft --seed 1
    OMP_NUM_THREADS=1 python benchmarks/curves/reproduce.py --out runs/curves --arm sft --seed 1 \
        --evaluate heldout
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


def compare_evaluations(stored: dict, fresh: dict) -> dict:
    """Row by row (the same tasks in the same order): identical answers and verdicts, and the
    largest difference of the numeric figures (the log-probs of the tax)."""
    rows = list(zip(stored["rows"], fresh["rows"], strict=True))
    numbers = [k for k, v in fresh.items() if isinstance(v, float) and k in stored]
    return {
        "rows": len(rows),
        "same_answers": sum(a["response"] == b["response"] for a, b in rows),
        "same_verdicts": sum(
            (a["satisfied"], a["honest"], a["content_problem"])
            == (b["satisfied"], b["honest"], b["content_problem"])
            for a, b in rows
        ),
        "figures_max_abs_diff": max((abs(stored[k] - fresh[k]) for k in numbers), default=None),
    }


def _run_folder(out: Path, arm: str, seed: int, condition: str) -> tuple[float, Path]:
    """The arm's chosen rate and the folder of its ``seed`` run in ``condition``."""
    lr = json.loads((out / "full" / arm / "chosen.json").read_text())["lr"]
    return lr, out / condition / arm / f"seed{seed}-lr{lr:g}"


def reevaluate(out: Path, preset, arm: str, seed: int, steps: int, split: str = "heldout",
               condition: str = "full") -> dict:  # fmt: skip
    """Evaluate the stored adapter at ``steps`` again with the current code and compare with
    the stored ``<split>-step<steps>.json``."""
    import onpolicy_experiment as onpolicy

    _, folder = _run_folder(out, arm, seed, condition)
    stored = onpolicy.current_names(json.loads((folder / f"{split}-step{steps}.json").read_text()))
    prepared = json.loads((out / "prepared.json").read_text())
    fresh = curves.evaluate_adapter(prepared, preset, folder / f"step-{steps}", split)
    return {"check": "evaluation", "condition": condition, "arm": arm, "seed": seed,
            "steps": steps, "split": split, "stored_commit": stored["commit"][:10],
            "current_commit": curves.COMMIT[:10], **compare_evaluations(stored, fresh)}  # fmt: skip


def reproduce(out: Path, preset, arm: str, seed: int, steps: int, condition: str = "full") -> dict:
    """Retrain ``steps`` steps of ``out/<condition>/<arm>/seed<seed>-lr<chosen>`` and compare."""
    lr, folder = _run_folder(out, arm, seed, condition)
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
    return {"check": "training", "condition": condition, "arm": arm, "seed": seed,
            "steps": steps, "lr": lr,
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
    parser.add_argument("--evaluate", choices=["heldout", "val"], default=None,
                        help="Evaluate the stored adapter again on this split instead of "
                        "retraining it.")  # fmt: skip
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    preset = curves.PRESETS[args.preset]
    if args.evaluate:
        row = reevaluate(args.out, preset, args.arm, args.seed, args.steps, args.evaluate,
                         args.condition)  # fmt: skip
    else:
        row = reproduce(args.out, preset, args.arm, args.seed, args.steps, args.condition)
    rows = json.loads(args.results.read_text()) if args.results.exists() else []
    rows.append(row)
    args.results.write_text(json.dumps(rows, indent=1) + "\n")
    print(json.dumps(row))


if __name__ == "__main__":
    main()
