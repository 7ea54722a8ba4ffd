"""Learning curves at equal optimizer steps, scored by honest satisfaction.

The on-policy word-limit setting of ``benchmarks/onpolicy/onpolicy_experiment.py`` (the default
model's own greedy answers, judged by the rule judge), with three changes:

- **the judge criticises content as well** (``RuleJudge(content_check=True)``): an answer that
  meets the limit but is degenerate, a fragment list, an echo, a tautology or off topic is a
  negative with a quoting critique, so every arm learns from the verdicts it is scored by;
- **every arm is evaluated at several budgets** (:attr:`Preset.budgets` optimizer steps of
  :attr:`Preset.batch_size` records) from one run: constant learning rate after a short warm-up,
  the adapter saved at each budget;
- **the metric is honest satisfaction** (:func:`cutkit.online.checkers.satisfies_honestly`): the
  constraint met *and* a sound answer (:mod:`cutkit.eval.content`). Raw satisfaction is reported
  beside it.

Learning rate: for each arm, the grid is searched from the largest rate down on the validation
split (seed 0); the search stops below the first rate that scores worse than the rate above it.
A rate's score is its validation honest satisfaction averaged over the budgets (ties go to the
smaller rate). Seeds 0..S-1 are then trained at the chosen rate and answer the held-out
instructions at every budget (seed 0 reuses the validation run's checkpoints). The held-out split
is read only after the arm's rate is fixed.

``--condition scarce`` keeps at most :attr:`Preset.scarce_positives` accepted answers in the
training set (the rest unchanged) and trains each arm at the rate chosen in the full condition.

Work is split into units (an arm's rate, an arm's seed) claimed through files under ``--out``, so
any number of workers (one thread each) share it, and a stopped run resumes where it stopped:

    python benchmarks/curves/learning_curves.py prepare --out runs/curves
    OMP_NUM_THREADS=1 python benchmarks/curves/learning_curves.py worker --out runs/curves &
    OMP_NUM_THREADS=1 python benchmarks/curves/learning_curves.py worker --out runs/curves &
    python benchmarks/curves/curves_report.py --out runs/curves --results benchmarks/curves

``--preset tiny`` runs every stage on the tiny random model in a minute (the test does); the
report is ``benchmarks/curves/curves_report.py``, which also packs the result files into
``state.tar.gz`` beside the tables; on a new machine ``restore`` unpacks them and the workers go on
from there (``python benchmarks/curves/learning_curves.py restore --out runs/curves``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

# the shared on-policy set-up: benchmarks/onpolicy/onpolicy_experiment.py
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "onpolicy"))
import onpolicy_experiment as onpolicy

ARMS = {**onpolicy.ARMS, "grpo": ("grpo", {})}
"""The on-policy arms and GRPO from the verifiable reward (the rule checker and the content check:
``cutkit.online.checkers.verify_honestly``)."""

PRIORITY = (
    "cut-ignore-noN",
    "sft",
    "cut",
    "kto",
    "grpo",
    "cut-spans-ignore-noN",
    "hindsight",
    "ul_all",
    "dpo",
    "self_distill",
)
"""Arms (names of :data:`ARMS`) in the order workers take them."""

SCARCE_ARMS = ("cut-ignore-noN", "sft", "cut", "kto")
"""Arms also trained in the scarce condition, after every arm of the full one."""

REFERENCES = ("base", "cut", "cut-ignore-noN", "sft", "kto", "grpo")
"""Arms every other arm is compared with at each budget (paired intervals); the lever setting
among them, so that each later arm is compared with the targeted one."""


@dataclass
class Preset(onpolicy.Preset):
    """The on-policy preset plus the curve's budgets, grid and schedule."""

    budgets: tuple[int, ...] = (6, 12, 24, 48)  # optimizer steps at which the adapter is scored
    learning_rates: tuple[float, ...] = (3e-3, 1e-3, 3e-4, 1e-4)  # searched from the top down
    warmup_steps: int = 2  # then constant
    scarce_positives: int = 2


PRESETS = {
    "cpu": Preset(),
    "tiny": Preset(
        **{k: v for k, v in asdict(onpolicy.PRESETS["tiny"]).items() if k != "learning_rates"},
        budgets=(1, 2),
        learning_rates=(3e-3, 1e-3),
        warmup_steps=0,
        scarce_positives=1,
    ),
}


def _json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    onpolicy._json(path, data)


def _commit() -> str:
    """The commit of the code that runs (each result file records it)."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True, cwd=Path(__file__).parent).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


COMMIT = _commit()

# ----------------------------------------------------------------------------- stage 1


def prepare(out: Path, preset: Preset) -> dict:
    """The on-policy preparation (tasks, base answers), judged again with the content check;
    the gate on the new training negatives (cached in ``out/prepared.json``)."""
    from cutkit.online.onpolicy import detection_gate

    done = out / "prepared.json"
    if done.exists():
        return json.loads(done.read_text())
    start = time.perf_counter()
    base = onpolicy.prepare(out / "onpolicy", preset)  # base answers, the rule judge's gate
    tasks = {k: onpolicy._tasks(v) for k, v in base["tasks"].items()}
    train, n_cut_off = judged(tasks["train"], base["base"]["train"], "train", preset)
    held, _ = judged(tasks["heldout"], base["base"]["heldout"], "heldout", preset)
    model, tokenizer = onpolicy._load(preset)
    negatives = [r for r in train if r.is_negative]
    gate, _ = detection_gate(model, tokenizer, negatives, threshold=preset.threshold,
                             ul_weight=preset.ul_weight, template="chat",
                             max_length=preset.max_length)  # fmt: skip
    summary = {
        **{k: base[k] for k in ("tasks", "base", "finished_rate")},
        "preset": asdict(preset),
        "train_records": [r.to_dict() for r in train],
        "heldout_records": [r.to_dict() for r in held],
        "n_train_cut_off": n_cut_off,
        "content_negatives": sum("content" in r.meta for r in train),
        "gate": gate,
        "seconds": round(time.perf_counter() - start, 1),
        "commit": COMMIT,
    }
    _json(done, summary)
    return summary


def judged(tasks, rows, split: str, preset: Preset):
    """The on-policy judged records with the content-checking rule judge
    (:func:`cutkit.online.onpolicy.judge_answers` with ``content_check=True``): a record whose
    answer meets the limit but fails the content check becomes a negative (``meta["content"]``
    names the problem; no refinement, since its first n words are no fix)."""
    from cutkit.online.onpolicy import judge_answers

    return judge_answers(tasks, rows, split, keep_cut_off=preset.keep_cut_off, content_check=True)


def training_records(prepared: dict, preset: Preset, condition: str):
    """The training records of ``condition``: all, or ("scarce") with at most
    ``preset.scarce_positives`` accepted answers (the first in record order)."""
    records = onpolicy._records(prepared["train_records"])
    if condition == "full":
        return records
    kept = {r.id for r in records if r.is_positive}
    kept = set(sorted(kept, key=[r.id for r in records].index)[: preset.scarce_positives])
    return [r for r in records if r.is_negative or r.id in kept]


# ----------------------------------------------------------------------------- stage 2


def _checkpoint_callback(folder: Path, budgets: tuple[int, ...]):
    from transformers import TrainerCallback

    class SaveAtBudgets(TrainerCallback):
        """Saves the adapter at each budget (and the seconds since training began)."""

        def __init__(self):
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step in budgets:
                target = folder / f"step-{state.global_step}"
                model.save_pretrained(target)
                seconds = round(time.perf_counter() - self.start, 1)
                (target / "seconds.txt").write_text(f"{seconds}\n")

    return SaveAtBudgets()


def train_run(prepared, preset: Preset, arm: str, seed: int, lr: float, folder: Path, condition):
    """Train ``arm`` for ``max(budgets)`` steps, saving the adapter at every budget."""
    from cutkit.eval.comparison import CompareSettings, train_arm

    if all((folder / f"step-{b}" / "seconds.txt").exists() for b in preset.budgets):
        return
    objective, levers = ARMS[arm]
    model, tokenizer = onpolicy._load(preset)
    settings = CompareSettings(
        model=preset.model, template="chat", batch_size=preset.batch_size, learning_rate=lr,
        max_length=preset.max_length, threshold=preset.threshold, lora_r=preset.lora_r,
        warmup=preset.warmup_steps, output=str(folder),
    )  # fmt: skip
    config = dict(levers)
    if objective == "grpo":
        from cutkit.online.checkers import verify_honestly

        config["verify"] = verify_honestly
    elif objective not in ("dpo", "kto"):
        config |= {"ul_weight": preset.ul_weight, "packing": preset.packing}
    records = training_records(prepared, preset, condition)
    if objective in ("dpo", "ilf"):  # they train on refinements: content-only negatives have none
        records = [r for r in records if r.is_positive or r.refinement]
    model = train_arm(
        objective, model, tokenizer, records, settings,
        seed=seed, steps=max(preset.budgets), run_dir=folder / "trainer", learning_rate=lr,
        callbacks=[_checkpoint_callback(folder, preset.budgets)],
        lr_scheduler_type="constant_with_warmup", **config,
    )  # fmt: skip
    import shutil

    shutil.rmtree(folder / "trainer", ignore_errors=True)
    timing = getattr(model, "cutkit_timing", None)  # GRPO: sampling time apart from the rest
    if timing:
        (folder / "timing.json").write_text(json.dumps(timing) + "\n")


def evaluate_adapter(prepared, preset: Preset, adapter: Path, split: str) -> dict:
    """One saved adapter's answers on ``split`` (val: answers only; heldout: also the log-prob
    figures of :func:`onpolicy_experiment._heldout_figures`)."""
    from peft import PeftModel

    model, tokenizer = onpolicy._load(preset)
    model = PeftModel.from_pretrained(model, adapter)
    model.eval()
    if split == "heldout":
        return onpolicy._heldout_figures(model, tokenizer, prepared, preset)
    tasks = onpolicy._tasks(prepared["tasks"][split])
    return {"rows": onpolicy.answer_rows(tasks, onpolicy.answer(model, tokenizer, tasks, preset))}


def evaluate_checkpoints(prepared, preset: Preset, folder: Path, split: str) -> list[dict]:
    """Per budget: :func:`evaluate_adapter` of the adapter saved there, cached in
    ``<split>-step<budget>.json`` with the training seconds and the commit."""
    results = []
    for budget in preset.budgets:
        path = folder / f"{split}-step{budget}.json"
        if not path.exists():
            figures = evaluate_adapter(prepared, preset, folder / f"step-{budget}", split)
            seconds = float((folder / f"step-{budget}" / "seconds.txt").read_text())
            timing = folder / "timing.json"
            if timing.exists():  # of the whole run (max(budgets) steps)
                figures["run_timing"] = json.loads(timing.read_text())
            _json(path, {"steps": budget, "train_seconds": seconds, "commit": COMMIT, **figures})
        results.append(json.loads(path.read_text()))
    return results


def _score(evaluations: list[dict]) -> float:
    """Mean over budgets of the share of honestly satisfied answers."""
    return float(np.mean([np.mean([r["honest"] for r in e["rows"]]) for e in evaluations]))


class Claims:
    """Units of work claimed by creating ``<out>/claims/<unit>`` exclusively (a claim whose
    process is gone is taken over)."""

    def __init__(self, out: Path):
        self.folder = out / "claims"
        self.folder.mkdir(parents=True, exist_ok=True)

    def take(self, unit: str) -> bool:
        path = self.folder / unit
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                os.kill(int(path.read_text() or 0), 0)
                return False
            except (ProcessLookupError, ValueError):
                path.unlink(missing_ok=True)
                return self.take(unit)
            except PermissionError:
                return False
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        return True

    def release(self, unit: str) -> None:
        (self.folder / unit).unlink(missing_ok=True)


def choose_rate(out: Path, prepared, preset: Preset, arm: str, claims: Claims):
    """Search the grid for ``arm`` (module docstring); returns the chosen rate, or None when
    another worker holds the next unit."""
    arm_dir = out / "full" / arm
    chosen = arm_dir / "chosen.json"
    if chosen.exists():
        return json.loads(chosen.read_text())["lr"]
    scores: dict[float, float] = {}
    for lr in preset.learning_rates:
        folder = arm_dir / f"seed0-lr{lr:g}"
        if not all((folder / f"val-step{b}.json").exists() for b in preset.budgets):
            unit = f"full-{arm}-lr{lr:g}"
            if not claims.take(unit):
                return None
            try:
                print(f"[curves] {arm} lr {lr:g}: training (validation)", flush=True)
                train_run(prepared, preset, arm, 0, lr, folder, "full")
                evaluate_checkpoints(prepared, preset, folder, "val")
            finally:
                claims.release(unit)
        scores[lr] = _score(evaluate_checkpoints(prepared, preset, folder, "val"))
        print(f"[curves] {arm} lr {lr:g}: validation honest satisfaction {scores[lr]:.3f}",
              flush=True)  # fmt: skip
        rates = list(scores)
        if len(rates) >= 2 and scores[rates[-1]] < scores[rates[-2]]:
            break
    best = max(scores, key=lambda lr: (scores[lr], -lr))
    _json(chosen, {"lr": best, "validation": {f"{k:g}": v for k, v in scores.items()}})
    return best


def run_seed(out: Path, prepared, preset: Preset, arm: str, seed: int, lr: float, condition):
    """Train (or reuse seed 0's validation run) and evaluate the held-out split at every
    budget."""
    folder = out / condition / arm / f"seed{seed}-lr{lr:g}"
    train_run(prepared, preset, arm, seed, lr, folder, condition)
    evaluate_checkpoints(prepared, preset, folder, "heldout")


def units(preset: Preset):
    """(condition, arm) in the order workers take them."""
    yield from (("full", arm) for arm in PRIORITY)
    yield from (("scarce", arm) for arm in SCARCE_ARMS)


def worker(out: Path, preset: Preset, arms: list[str] | None = None) -> None:
    """Take units until none is left (waiting while another worker holds the one needed)."""
    import torch

    torch.set_num_threads(1)
    prepared = prepare(out, preset)
    claims = Claims(out)
    base_heldout(out, prepared, preset, claims)
    while True:
        waiting = False
        for condition, arm in units(preset):
            if arms and arm not in arms:
                continue
            lr = choose_rate(out, prepared, preset, arm, claims)
            if lr is None:
                waiting = True
                continue
            for seed in preset.seeds:
                folder = out / condition / arm / f"seed{seed}-lr{lr:g}"
                if all((folder / f"heldout-step{b}.json").exists() for b in preset.budgets):
                    continue
                unit = f"{condition}-{arm}-seed{seed}"
                if not claims.take(unit):
                    waiting = True
                    continue
                try:
                    print(f"[curves] {condition} {arm} seed {seed} (lr {lr:g})", flush=True)
                    run_seed(out, prepared, preset, arm, seed, lr, condition)
                finally:
                    claims.release(unit)
        if not waiting:
            return
        time.sleep(30)


def base_heldout(out: Path, prepared, preset: Preset, claims: Claims) -> None:
    path = out / "base" / "heldout.json"
    if path.exists() or not claims.take("base"):
        return
    try:
        model, tokenizer = onpolicy._load(preset)
        figures = onpolicy._heldout_figures(model, tokenizer, prepared, preset)
        _json(path, {"steps": 0, "train_seconds": 0.0, "commit": COMMIT, **figures})
    finally:
        claims.release("base")


STATE = ("prepared.json", "onpolicy/prepared.json", "base/heldout.json", "full/*/chosen.json",
         "*/*/seed*/val-step*.json", "*/*/seed*/heldout-step*.json")  # fmt: skip
"""The files that hold an experiment's results (adapters and claims are not kept)."""


def export_state(out: Path, archive: Path) -> int:
    """Pack the result files of ``out`` (:data:`STATE`) into ``archive`` (.tar.gz), so a later
    machine resumes the experiment from the committed results; returns the number of files."""
    import tarfile

    files = sorted({p for pattern in STATE for p in out.glob(pattern)})
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        for path in files:
            info = tar.gettarinfo(path, arcname=str(path.relative_to(out)))
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            with path.open("rb") as handle:
                tar.addfile(info, handle)
    return len(files)


def restore(out: Path, archive: Path) -> int:
    """Unpack ``archive`` (:func:`export_state`) into ``out``, keeping files already there;
    returns the number of files written."""
    import tarfile

    written = 0
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            target = out / member.name
            if member.isfile() and not target.exists() and ".." not in Path(member.name).parts:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tar.extractfile(member).read())
                written += 1
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("stage", choices=["prepare", "worker", "restore"])
    parser.add_argument("--out", type=Path, default=Path("runs/curves"))
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--arms", default=None, help="Comma-separated arms for this worker.")
    parser.add_argument("--state", type=Path, default=Path("benchmarks/curves/state.tar.gz"),
                        help="restore: the committed results to resume from.")  # fmt: skip
    args = parser.parse_args(argv)
    preset = PRESETS[args.preset]
    if args.stage == "prepare":
        prepared = prepare(args.out, preset)
        print(json.dumps(prepared["gate"], indent=1))
        print("content negatives:", prepared["content_negatives"])
    elif args.stage == "restore":
        print(f"restored {restore(args.out, args.state)} result files from {args.state}")
    else:
        worker(args.out, preset, args.arms and args.arms.split(","))


if __name__ == "__main__":
    main()
