"""On-policy experiment: does CUT remove what a judgment criticises, where detection can work?

The setting is the one where the paper's mechanism can act: the default model's OWN greedy answers
to word-limit instructions ("Describe coffee in at most 10 words."), judged by cutkit's RuleJudge,
which quotes the part over the limit verbatim and marks it as the record's gold ``error_spans``.

Stages (everything is cached under ``--out``; a stopped run resumes where it stopped):

1. ``prepare``: topics are split into train / validation / held-out (disjoint); the base model
   answers every instruction greedily (chat template); cut-off answers (no EOS within the limit)
   are dropped from training and counted; the rule judge writes the judgments; each too-long
   answer gets a refinement (its first n words) for DPO. Before any training, the *gate*: the
   detection AUC of the judged/plain log ratio for the gold error tokens of the training negatives
   (design target >= 0.8) and the push balance of CUT's plain-prompt term.
2. ``worker K N``: arms K, K+N, ... For each arm the learning rate is chosen on the validation
   split (seed 0, the rate with the highest validation satisfaction; ties go to the smaller rate),
   then seeds 0..S-1 are trained at that rate and answer the held-out instructions. The held-out
   split is never read before an arm's rate is fixed. lambda (1.1) and alpha (1.0) are the paper's
   online values, not tuned (the CPU budget allows one grid axis).
3. ``report``: per arm, the held-out constraint-satisfaction rate over seeds x tasks with a 95%
   Wilson interval, paired bootstrap intervals of its difference to the base model and to the
   reference arms (tasks resampled, seeds pooled), answer length, degeneration (empty, repetitive,
   truncated), the plain-prompt log-prob of the base model's held-out offending spans vs its other
   tokens, and the log-prob of the base model's accepted held-out answers (the alignment tax).

    python benchmarks/onpolicy/onpolicy_experiment.py prepare --out runs/onpolicy
    python benchmarks/onpolicy/onpolicy_experiment.py worker 0 2 --out runs/onpolicy &   # one thread each
    python benchmarks/onpolicy/onpolicy_experiment.py worker 1 2 --out runs/onpolicy &
    python benchmarks/onpolicy/onpolicy_experiment.py report --out runs/onpolicy --results benchmarks/onpolicy

``--preset tiny`` runs every stage on the tiny random model in a minute (the test does).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from cutkit.eval.intervals import paired_bootstrap, wilson
from cutkit.online.onpolicy import (
    answer_rows,
    answer_tasks,
    detection_gate,
    heldout_figures,
    judge_answers,
    word_limit_splits,
)

ARMS: dict[str, tuple[str, dict]] = {
    "cut": ("cut", {}),
    "cut-ignore": ("cut", {"unflagged": "ignore"}),
    "cut-ignore-noN": ("cut", {"unflagged": "ignore", "align_n": False}),
    "cut-spans-ignore-noN": (
        "cut",
        {"detector": "spans", "unflagged": "ignore", "align_n": False},
    ),
    "sft": ("sft", {}),
    "hindsight": ("hindsight", {}),
    "ul_all": ("ul_all", {}),
    "dpo": ("dpo", {}),
    "cut-spans": ("cut", {"detector": "spans"}),
    "cut-spans-ignore": ("cut", {"detector": "spans", "unflagged": "ignore"}),
    "self_distill": ("self_distill", {}),
    "kto": ("kto", {}),
}
"""Arm name -> (objective, CUTConfig levers). ``-ignore``: unflagged="ignore"; ``-noN``:
align_n=False; ``-spans``: detector="spans" (oracle detection from the judge's spans);
``self_distill`` and ``kto``: the two neighbours of CUT (docs/method.md §8), added after the first
run (``restore`` + ``worker --arms self_distill,kto``). In order of priority: workers take arms
``index::count`` of this order, so a stopped run has the key arms."""

REFERENCES = ("base", "cut", "sft", "hindsight")
"""Arms every other arm is compared with (paired intervals)."""


@dataclass
class Preset:
    """Sizes and budget of one experiment."""

    model: str = "smollm2-135m-instruct"
    limits: tuple[int, ...] = (8, 10, 12)  # word limits of the instructions
    n_train: int = 48  # training instructions (answers judged; cut-off ones dropped)
    n_val: int = 48
    n_heldout: int = 120
    topic_split: tuple[int, int] = (28, 12)  # train and validation topics; the rest held out
    max_new_tokens: int = 160
    epochs: float = 2.0  # budget: ceil(epochs * n_train / batch_size) optimizer steps
    batch_size: int = 8
    learning_rates: tuple[float, ...] = (3e-4, 1e-3)
    seeds: tuple[int, ...] = (0, 1, 2)
    threshold: float = 1.1
    ul_weight: float = 1.0
    lora_r: int = 16
    max_length: int = 512
    packing: bool = True
    keep_cut_off: bool = False  # train on cut-off answers (without EOS) instead of dropping them


PRESETS = {
    "cpu": Preset(),
    "tiny": Preset(
        model="tiny",
        limits=(3,),
        n_train=8,
        n_val=4,
        n_heldout=6,
        max_new_tokens=12,
        epochs=1.0,
        batch_size=4,
        learning_rates=(1e-3,),
        seeds=(0, 1),
        keep_cut_off=True,
    ),
}


# ----------------------------------------------------------------------------- helpers


def _json(path: Path, data) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    tmp.replace(path)


def _load(preset: Preset):
    import cutkit

    if preset.model == "tiny":
        from cutkit.models.loading import load_tokenizer
        from cutkit.models.tiny import tiny_model

        return tiny_model(seed=0), load_tokenizer()
    return cutkit.load_model(preset.model)


def make_tasks(preset: Preset, seed: int = 20260101):
    """Word-limit tasks on disjoint topic sets: {"train": [...], "val": [...], "heldout": [...]}."""
    n_train, n_val = preset.topic_split
    topic_counts = {"train": n_train, "val": n_val, "heldout": None}
    sizes = {"train": preset.n_train, "val": preset.n_val, "heldout": preset.n_heldout}
    return word_limit_splits(topic_counts, sizes, preset.limits, seed)


def answer(model, tokenizer, tasks, preset: Preset):
    return answer_tasks(
        model, tokenizer, tasks, template="chat", max_new_tokens=preset.max_new_tokens
    )


# ----------------------------------------------------------------------------- stage 1


def prepare(out: Path, preset: Preset) -> dict:
    """Tasks, base answers, judged training records and the gate (cached in ``out``)."""
    done = out / "prepared.json"
    if done.exists():
        return json.loads(done.read_text())
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    model, tokenizer = _load(preset)
    tasks = make_tasks(preset)
    base = {}
    for split, split_tasks in tasks.items():
        base[split] = answer_rows(split_tasks, answer(model, tokenizer, split_tasks, preset))
    train, n_cut_off = judge_answers(tasks["train"], base["train"], "train",
                                    keep_cut_off=preset.keep_cut_off)  # fmt: skip
    negatives = [r for r in train if r.is_negative]
    gate, _ = detection_gate(model, tokenizer, negatives, threshold=preset.threshold,
                             ul_weight=preset.ul_weight, template="chat",
                             max_length=preset.max_length)  # fmt: skip
    # held-out reference: the base model's offending spans and its accepted answers
    held, _ = judge_answers(tasks["heldout"], base["heldout"], "heldout",
                            keep_cut_off=preset.keep_cut_off)  # fmt: skip
    summary = {
        "preset": asdict(preset),
        "tasks": {k: [t.to_dict() for t in v] for k, v in tasks.items()},
        "base": base,
        "train_records": [r.to_dict() for r in train],
        "heldout_records": [r.to_dict() for r in held],
        "n_train_cut_off": n_cut_off,
        "finished_rate": {k: float(np.mean([r["finished"] for r in v])) for k, v in base.items()},
        "gate": gate,
        "seconds": round(time.perf_counter() - start, 1),
    }
    _json(done, summary)
    return summary


def _records(rows):
    """Records back from their ``to_dict`` form (the cutkit loader reads that format)."""
    from cutkit.data.loading import load_records

    return load_records(rows) if rows else []


def _tasks(rows):
    from cutkit.online.tasks import Task

    return [Task.from_dict(r) for r in rows]


# ----------------------------------------------------------------------------- stage 2


def _train(prepared: dict, preset: Preset, arm: str, seed: int, lr: float, folder: Path):
    """Train ``arm`` from the base model; returns (model, tokenizer, seconds)."""
    from cutkit.eval.comparison import CompareSettings, train_arm

    objective, levers = ARMS[arm]
    model, tokenizer = _load(preset)
    train = _records(prepared["train_records"])
    settings = CompareSettings(
        model=preset.model, template="chat", batch_size=preset.batch_size, learning_rate=lr,
        max_length=preset.max_length, threshold=preset.threshold, lora_r=preset.lora_r,
        output=str(folder),
    )  # fmt: skip
    steps = settings.budget(len(train)) if preset.epochs is None else math.ceil(
        preset.epochs * len(train) / preset.batch_size)  # fmt: skip
    config = dict(levers)
    if objective not in ("dpo", "kto"):  # trained through TRL, without CUT settings
        config |= {"ul_weight": preset.ul_weight, "packing": preset.packing}
    start = time.perf_counter()
    model = train_arm(objective, model, tokenizer, train, settings, seed=seed, steps=steps,
                      run_dir=folder / "trainer", learning_rate=lr, **config)  # fmt: skip
    seconds = time.perf_counter() - start
    shutil.rmtree(folder / "trainer", ignore_errors=True)
    return model, tokenizer, seconds, steps


def _heldout_figures(model, tokenizer, prepared: dict, preset: Preset) -> dict:
    """Held-out answers and the log-prob figures (:func:`cutkit.online.onpolicy.heldout_figures`)."""
    return heldout_figures(
        model, tokenizer, _tasks(prepared["tasks"]["heldout"]),
        _records(prepared["heldout_records"]), template="chat", max_new_tokens=preset.max_new_tokens,
        max_length=preset.max_length,
    )  # fmt: skip


LEGACY_NAMES = {
    "logp_offending": "logp_error_tokens",
    "logp_other": "logp_other_tokens",
    "logp_accepted": "logp_good",
}
"""Names the figures had in run files written before the experiment's pieces moved into
:mod:`cutkit.online.onpolicy` (the values are the same figures)."""


def current_names(run: dict) -> dict:
    """``run`` with its figures under their current names (:data:`LEGACY_NAMES`)."""
    return {LEGACY_NAMES.get(k, k): v for k, v in run.items()}


def run_arm(out: Path, prepared: dict, preset: Preset, arm: str) -> None:
    """Validation choice of the learning rate, then every seed on the held-out split."""
    arm_dir = out / "arms" / arm
    arm_dir.mkdir(parents=True, exist_ok=True)
    val_tasks = _tasks(prepared["tasks"]["val"])
    for lr in preset.learning_rates:
        path = arm_dir / f"val-lr{lr:g}.json"
        if path.exists():
            continue
        folder = arm_dir / f"seed0-lr{lr:g}"
        model, tokenizer, seconds, steps = _train(prepared, preset, arm, 0, lr, folder)
        model.save_pretrained(folder / "adapter")
        rows = answer_rows(val_tasks, answer(model, tokenizer, val_tasks, preset))
        rate = float(np.mean([r["satisfied"] for r in rows]))
        _json(path, {"arm": arm, "lr": lr, "satisfaction": rate, "train_seconds": seconds,
                     "steps": steps, "rows": rows})  # fmt: skip
        print(f"[onpolicy] {arm} lr {lr:g}: validation satisfaction {rate:.3f} "
              f"({seconds:.0f} s training)", flush=True)  # fmt: skip
    val = [json.loads((arm_dir / f"val-lr{lr:g}.json").read_text()) for lr in preset.learning_rates]
    best = max(val, key=lambda v: (v["satisfaction"], -v["lr"]))
    if not (arm_dir / "chosen.json").exists():
        validation = {f"{v['lr']:g}": v["satisfaction"] for v in val}
        _json(arm_dir / "chosen.json", {"lr": best["lr"], "validation": validation})
    for seed in preset.seeds:
        path = arm_dir / f"heldout-seed{seed}.json"
        if path.exists():
            continue
        folder = arm_dir / f"seed{seed}-lr{best['lr']:g}"
        if seed == 0 and (folder / "adapter").exists():
            from peft import PeftModel

            model, tokenizer = _load(preset)
            model = PeftModel.from_pretrained(model, folder / "adapter")
            seconds, steps = best["train_seconds"], best["steps"]
        else:
            model, tokenizer, seconds, steps = _train(prepared, preset, arm, seed, best["lr"],
                                                      folder)  # fmt: skip
        result = _heldout_figures(model, tokenizer, prepared, preset)
        rate = float(np.mean([r["satisfied"] for r in result["rows"]]))
        _json(path, {"arm": arm, "seed": seed, "lr": best["lr"], "train_seconds": seconds,
                     "steps": steps, **result})  # fmt: skip
        print(f"[onpolicy] {arm} seed {seed}: held-out satisfaction {rate:.3f}", flush=True)


def base_heldout(out: Path, prepared: dict, preset: Preset) -> None:
    path = out / "arms" / "base" / "heldout-seed0.json"
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    model, tokenizer = _load(preset)
    _json(path, {"arm": "base", "seed": 0, "lr": 0.0, "train_seconds": 0.0, "steps": 0,
                 **_heldout_figures(model, tokenizer, prepared, preset)})  # fmt: skip


def restore(out: Path, results_dir: Path, preset: Preset) -> list[str]:
    """Rebuild the per-run files of the arms in committed results (``answers.csv``,
    ``summary.csv``, ``table.md``) under ``out/arms``, so that workers can add arms to a finished
    experiment and ``report`` covers them all. The answers (and so every satisfaction figure and
    paired interval) are restored exactly; each run's log-prob figures and training time are set
    to its arm's mean, which is what the committed summary holds and what ``report`` prints. The
    base model's held-out answers of a fresh ``prepare`` must equal the committed ones (else the
    restored runs would not pair with new ones): ValueError otherwise. Returns the arms restored."""
    import pandas as pd

    prepared = prepare(out, preset)
    answers = pd.read_csv(results_dir / "answers.csv", keep_default_na=False)
    summary = pd.read_csv(results_dir / "summary.csv").rename(columns=LEGACY_NAMES).set_index("arm")
    base = answers[answers["arm"] == "base"]
    if base["response"].tolist() != [r["response"] for r in prepared["base"]["heldout"]]:
        raise ValueError(
            f"the base model's held-out answers of {out}/prepared.json differ from "
            f"{results_dir}/answers.csv: the committed runs cannot be paired with new ones"
        )
    chosen = {}
    for line in (results_dir / "table.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        rates = preset.learning_rates
        if len(cells) == len(rates) + 2 and cells[0] in ARMS:
            validation = {f"{lr:g}": float(v) for lr, v in zip(rates, cells[1:-1], strict=True)}
            chosen[cells[0]] = {"lr": float(cells[-1]), "validation": validation}
    restored = []
    for (arm, seed), runs in answers.groupby(["arm", "seed"], sort=False):
        path = out / "arms" / arm / f"heldout-seed{seed}.json"
        if path.exists():
            continue
        figures = summary.loc[arm]
        rows = [
            {**r, "degenerate": r["degenerate"] or None, "response": str(r["response"])}
            for r in runs.drop(columns=["arm", "seed"]).to_dict("records")
        ]
        run = {"arm": arm, "seed": int(seed), "lr": chosen.get(arm, {}).get("lr", 0.0),
               "train_seconds": float(figures["train_seconds"]), "steps": None, "rows": rows,
               "restored_from": str(results_dir)}  # fmt: skip
        for name in LEGACY_NAMES.values():
            run[name] = float(figures[name])
        path.parent.mkdir(parents=True, exist_ok=True)
        _json(path, run)
        if arm in chosen and not (path.parent / "chosen.json").exists():
            _json(path.parent / "chosen.json", chosen[arm])
        restored.append(arm)
    return sorted(set(restored))


def worker(out: Path, preset: Preset, index: int, count: int, arms: list[str] | None = None):
    """Arms ``index::count`` of :data:`ARMS` (or exactly ``arms``, in that order); worker 0 also
    evaluates the base model."""
    import torch

    torch.set_num_threads(1)
    prepared = prepare(out, preset)
    if index == 0:
        base_heldout(out, prepared, preset)
    unknown = sorted(set(arms or ()) - set(ARMS))
    if unknown:
        raise ValueError(f"unknown arms {unknown}; choose from {list(ARMS)}")
    for arm in arms or list(ARMS)[index::count]:
        run_arm(out, prepared, preset, arm)


# ----------------------------------------------------------------------------- stage 3


def collect(out: Path) -> dict[str, list[dict]]:
    results: dict[str, list[dict]] = {}
    for arm in ["base", *ARMS]:
        files = sorted((out / "arms" / arm).glob("heldout-seed*.json"))
        if files:
            results[arm] = [current_names(json.loads(f.read_text())) for f in files]
    return results


def report(out: Path, results_dir: Path) -> str:
    import pandas as pd

    from cutkit.online.checkers import satisfies_honestly

    prepared = json.loads((out / "prepared.json").read_text())
    results = collect(out)
    results_dir.mkdir(parents=True, exist_ok=True)
    tasks = {t.id: t for t in _tasks(prepared["tasks"]["heldout"])}
    for runs in results.values():  # honest: the limit met *and* a sound answer (content check)
        for run in runs:
            for r in run["rows"]:
                r["honest"] = satisfies_honestly(tasks[r["task"]], r["response"], r["finished"])
    sat = {arm: np.array([[r["satisfied"] for r in run["rows"]] for run in runs])
           for arm, runs in results.items()}  # fmt: skip
    honest = {arm: np.array([[r["honest"] for r in run["rows"]] for run in runs])
              for arm, runs in results.items()}  # fmt: skip
    rows, long = [], []
    for arm, runs in results.items():
        s, h = sat[arm], honest[arm]
        lo, hi = wilson(int(s.sum()), s.size)
        h_lo, h_hi = wilson(int(h.sum()), h.size)
        answers = [r for run in runs for r in run["rows"]]
        chosen = out / "arms" / arm / "chosen.json"
        row = {
            "arm": arm,
            "seeds": len(runs),
            "n": s.size,
            "satisfaction": s.mean(),
            "ci_low": lo,
            "ci_high": hi,
            "honest": h.mean(),
            "honest_low": h_lo,
            "honest_high": h_hi,
            "lr": json.loads(chosen.read_text())["lr"] if chosen.exists() else None,
            "mean_words": np.mean([r["words"] for r in answers]),
            "degenerate": np.mean([r["degenerate"] is not None for r in answers]),
            "repetitive": np.mean([r["degenerate"] == "repetitive" for r in answers]),
            "truncated": np.mean([r["degenerate"] == "truncated" for r in answers]),
            "empty": np.mean([r["degenerate"] == "empty" for r in answers]),
            **{
                name: np.mean([run.get(name, np.nan) for run in runs])
                for name in LEGACY_NAMES.values()
            },
            "train_seconds": np.mean([run["train_seconds"] for run in runs]),
        }
        for ref in REFERENCES:
            if ref in sat and ref != arm and sat[ref].shape[-1] == s.shape[-1]:
                diff, d_lo, d_hi = paired_bootstrap(s, sat[ref])
                row[f"vs_{ref}"] = diff
                row[f"vs_{ref}_ci"] = f"[{d_lo:+.3f}, {d_hi:+.3f}]"
                row[f"vs_{ref}_tie"] = d_lo <= 0 <= d_hi
                diff, d_lo, d_hi = paired_bootstrap(h, honest[ref])
                row[f"honest_vs_{ref}"] = diff
                row[f"honest_vs_{ref}_ci"] = f"[{d_lo:+.3f}, {d_hi:+.3f}]"
                row[f"honest_vs_{ref}_tie"] = d_lo <= 0 <= d_hi
        rows.append(row)
        for run in runs:
            for r in run["rows"]:
                long.append({"arm": arm, "seed": run["seed"], **r})
    table = pd.DataFrame(rows)
    table.to_csv(results_dir / "summary.csv", index=False)
    pd.DataFrame(long).to_csv(results_dir / "answers.csv", index=False)
    gate = prepared["gate"]
    settings = {k: v for k, v in prepared.items()
                if k in ("preset", "n_train_cut_off", "finished_rate", "gate", "seconds")}  # fmt: skip
    settings["n_train_records"] = len(prepared["train_records"])
    settings["n_train_negative"] = sum(not r["is_positive"] for r in prepared["train_records"])
    _json(results_dir / "settings.json", settings)
    md = [
        "| arm | seeds | n | satisfaction [95% CI] | vs base | vs cut | vs sft | vs hindsight | "
        "words | degenerate | logp error tokens / other tokens | logp good | lr | train s |",
        "|---|---:|---:|---|---|---|---|---|---:|---:|---|---:|---:|---:|",
    ]
    for _, r in table.iterrows():
        cells = []
        for ref in REFERENCES:
            if f"vs_{ref}" in r and isinstance(r.get(f"vs_{ref}_ci"), str):
                tie = " (tie)" if r[f"vs_{ref}_tie"] else ""
                cells.append(f"{r[f'vs_{ref}']:+.3f} {r[f'vs_{ref}_ci']}{tie}")
            else:
                cells.append("")
        md.append(
            f"| {r['arm']} | {r['seeds']} | {r['n']} | {r['satisfaction']:.3f} "
            f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}] | "
            + " | ".join(cells)
            + f" | {r['mean_words']:.1f} | {r['degenerate']:.3f} | "
            f"{r['logp_error_tokens']:.2f} / {r['logp_other_tokens']:.2f} | {r['logp_good']:.2f} | "
            f"{'' if r['lr'] is None or pd.isna(r['lr']) else format(r['lr'], 'g')} | "
            f"{r['train_seconds']:.0f} |"
        )
    text = "\n".join(md)
    gate_text = (
        f"Gate (before training, base model, {settings['n_train_negative']} training negatives): "
        f"detection AUC {gate['auc']:.3f} (target >= 0.8: "
        f"{'passed' if gate['passed'] else 'NOT passed: this run does not test the mechanism'}), "
        f"base rate {gate['base_rate']:.3f}, precision {gate['precision']:.3f}, recall "
        f"{gate['recall']:.3f} at lambda {prepared['preset']['threshold']}; push balance "
        f"down {gate['push_down']:.1f} vs up {gate['push_up']:.1f} (ratio {gate['push_ratio']:.3f})."
    )
    text += "\n\n" + validation_table(out, prepared)
    text += "\n\n" + honest_table(table)
    (results_dir / "table.md").write_text(gate_text + "\n\n" + text + "\n")
    _plot(table, results_dir / "satisfaction.png")
    return gate_text + "\n\n" + text


def honest_table(table) -> str:
    """Raw against honest satisfaction per arm (honest: the limit met by a sound answer,
    ``cutkit.online.checkers.satisfies_honestly``), with the honest paired differences."""
    lines = [
        "Honest satisfaction (the limit met *and* the content check passed: not degenerate, not "
        "too short, no fragment list, echo or tautology, on topic), the same answers:",
        "",
        "| arm | raw | honest [95% CI] | raw - honest | honest vs base | honest vs cut | "
        "honest vs sft |",
        "|---|---:|---|---:|---|---|---|",
    ]
    for _, r in table.iterrows():
        cells = []
        for ref in ("base", "cut", "sft"):
            ci = r.get(f"honest_vs_{ref}_ci")
            tie = " (tie)" if isinstance(ci, str) and r[f"honest_vs_{ref}_tie"] else ""
            cells.append(f"{r[f'honest_vs_{ref}']:+.3f} {ci}{tie}" if isinstance(ci, str) else "")
        gap = r["satisfaction"] - r["honest"]
        lines.append(
            f"| {r['arm']} | {r['satisfaction']:.3f} | {r['honest']:.3f} "
            f"[{r['honest_low']:.3f}, {r['honest_high']:.3f}] | {gap:.3f}"
            f"{' **gamed**' if gap >= 0.2 else ''} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


def validation_table(out: Path, prepared: dict) -> str:
    """Validation satisfaction of every arm at every learning rate of the grid (seed 0)."""
    rates = prepared["preset"]["learning_rates"]
    n_val = len(prepared["tasks"]["val"])
    base = np.mean([r["satisfied"] for r in prepared["base"]["val"]])
    lines = [
        f"Learning rate chosen on the validation split ({n_val} instructions, seed 0; base model "
        f"{base:.3f}):",
        "",
        "| arm | " + " | ".join(f"lr {lr:g}" for lr in rates) + " | chosen |",
        "|---|" + "---:|" * len(rates) + "---:|",
    ]
    for arm in ARMS:
        chosen = out / "arms" / arm / "chosen.json"
        if chosen.exists():
            data = json.loads(chosen.read_text())
            cells = [f"{data['validation'].get(f'{lr:g}', float('nan')):.3f}" for lr in rates]
            lines.append(f"| {arm} | " + " | ".join(cells) + f" | {data['lr']:g} |")
    return "\n".join(lines)


def _plot(table, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(9, 3.8))
    x = np.arange(len(table))
    err = [table["satisfaction"] - table["ci_low"], table["ci_high"] - table["satisfaction"]]
    honest_err = [table["honest"] - table["honest_low"], table["honest_high"] - table["honest"]]
    axis.bar(x - 0.2, table["satisfaction"], 0.4, yerr=err, capsize=2, color="#c9d6e3",
             label="raw: the limit met")  # fmt: skip
    axis.bar(x + 0.2, table["honest"], 0.4, yerr=honest_err, capsize=2, color="#4d7ea8",
             label="honest: the limit met by a sound answer")  # fmt: skip
    gamed = (table["satisfaction"] - table["honest"]) >= 0.2
    labels = [f"{a} (gamed)" if g else a for a, g in zip(table["arm"], gamed, strict=True)]
    axis.set_xticks(x, labels, rotation=35, ha="right")
    axis.set_ylabel("held-out satisfaction")
    axis.set_ylim(0, 1)
    axis.legend(fontsize=8)
    axis.set_title("Word-limit instructions, on-policy judgments (95% Wilson intervals)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("stage", choices=["prepare", "restore", "worker", "report", "all"])
    parser.add_argument("index", nargs="?", type=int, default=0)
    parser.add_argument("count", nargs="?", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("runs/onpolicy"))
    parser.add_argument("--results", type=Path, default=Path("benchmarks/onpolicy"))
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--arms", default=None, help="Comma-separated arms for this worker.")
    args = parser.parse_args(argv)
    preset = PRESETS[args.preset]
    if args.stage == "prepare":
        gate = prepare(args.out, preset)["gate"]
        print(json.dumps(gate, indent=1))
    elif args.stage == "restore":
        print("restored:", ", ".join(restore(args.out, args.results, preset)))
    elif args.stage == "worker":
        worker(args.out, preset, args.index, args.count, args.arms and args.arms.split(","))
    elif args.stage == "report":
        print(report(args.out, args.results))
    else:
        worker(args.out, preset, 0, 1)
        print(report(args.out, args.results))


if __name__ == "__main__":
    main()
