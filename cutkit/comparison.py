"""Compare CUT with the paper's baselines: same start, same data, same budget, several seeds.

:func:`compare` trains a fresh LoRA adapter on the same base model for every (objective, seed),
with the same number of optimizer steps, micro-batch size, learning rate and schedule, evaluates it
with :func:`cutkit.evaluate` on the held-out records, and returns a tidy frame: one row per run
(plus one ``base`` row, the untrained model) and one column per figure. :func:`summarize` turns it
into mean and spread per objective. ``cutkit compare`` is the command-line form; it writes
``runs.csv``, ``summary.csv``, ``summary.md`` and ``settings.json`` to the output folder and, when
run again with the same settings, skips the runs already there.

The budget is counted in optimizer steps, not epochs: objectives build different numbers of rows
from the same records (``sft`` drops the negatives, CUT adds a plain row per negative), so equal
steps of equal record batches is the comparison the paper makes (same data, same schedule).

>>> # frame = compare(["sft", "hindsight", "cut"], train, test, seeds=[0, 1], steps=20)
>>> # summarize(frame)
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from cutkit.evaluation import evaluate
from cutkit.models import DEFAULT_MODEL, apply_lora, load_model
from cutkit.objectives import OBJECTIVES
from cutkit.records import JudgmentRecord

COMPARABLE = (*OBJECTIVES, "dpo")
"""Objectives :func:`compare` trains: CUTConfig's objectives and DPO (through TRL)."""

HEADLINE = [
    "pref_accuracy",
    "pref_margin",
    "logp_good",
    "logp_error_tokens",
    "logp_other_tokens",
    "detect_f1",
    "gen_accuracy",
]
"""The figures :func:`summarize` reports by default (see :mod:`cutkit.evaluation`)."""


@dataclass
class CompareSettings:
    """What every run of a comparison shares (the budget and the evaluation)."""

    model: str = field(default=DEFAULT_MODEL, metadata={"help": "Base model name or path."})
    template: str = field(default="chat", metadata={"help": "Prompt template: alpaca or chat."})
    steps: int | None = field(
        default=None,
        metadata={
            "help": "Optimizer steps per run (the budget); None: `epochs` over the training "
            "records at `batch_size` records per step."
        },
    )
    epochs: float = field(default=1.0, metadata={"help": "Budget when `steps` is None."})
    batch_size: int = field(default=8, metadata={"help": "Records per optimizer step."})
    learning_rate: float = field(default=1e-3, metadata={"help": "Peak learning rate (LoRA)."})
    warmup_ratio: float = field(default=0.1, metadata={"help": "Linear warm-up share of steps."})
    max_length: int = field(default=512, metadata={"help": "Longest context in tokens."})
    threshold: float = field(default=1.1, metadata={"help": "Detection lambda (CUT, evaluation)."})
    align_p_ratio: float | None = field(
        default=0.25, metadata={"help": "Positives kept per negative (None keeps all)."}
    )
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    dpo_beta: float = field(default=0.1, metadata={"help": "DPO temperature."})
    max_new_tokens: int = field(
        default=64, metadata={"help": "Longest greedy answer for gen_accuracy."}
    )
    generate: bool = field(
        default=True, metadata={"help": "Evaluate greedy answers (gen_accuracy)."}
    )
    output: str = field(default="runs/compare", metadata={"help": "Output folder."})

    def budget(self, n_train: int) -> int:
        """Optimizer steps of every run for ``n_train`` training records."""
        if self.steps is not None:
            return self.steps
        return max(1, math.ceil(self.epochs * n_train / self.batch_size))


def compare(
    objectives: Sequence[str],
    train: Sequence[JudgmentRecord],
    test: Sequence[JudgmentRecord],
    *,
    seeds: Sequence[int] = (0,),
    settings: CompareSettings | None = None,
    resume: bool = True,
    verbose: bool = True,
    **overrides,
) -> pd.DataFrame:
    """Train every objective from the same base model with every seed; evaluate each on ``test``.

    Args:
        objectives: names from :data:`COMPARABLE` ("cut", "sft", "hindsight", "forward", "ilf",
            "ul_all", "dpo").
        train, test: judgment records (``ilf`` and ``dpo`` need refinements on the negatives).
        seeds: one run per objective and seed (the seed fixes the LoRA initialisation, the data
            order, dropout and the Align-P downsampling).
        settings: the shared budget and evaluation; keyword ``overrides`` replace its fields.
        resume: skip (objective, seed) runs already in ``<output>/runs.csv`` from the same
            settings (a changed setting starts afresh).
        verbose: print one line per run.

    Returns:
        one row per run: ``objective``, ``seed``, ``steps``, ``train_seconds``, the
        :func:`cutkit.evaluate` figures; the first row is ``objective="base"`` (the untrained
        model, ``seed`` -1, ``steps`` 0).
    """
    settings = dataclasses.replace(settings or CompareSettings(), **overrides)
    unknown = [name for name in objectives if name not in COMPARABLE]
    if unknown:
        raise ValueError(f"unknown objectives {unknown}; choose from {list(COMPARABLE)}")
    out = Path(settings.output)
    out.mkdir(parents=True, exist_ok=True)
    runs = _previous_runs(out, settings) if resume else []
    (out / "settings.json").write_text(json.dumps(dataclasses.asdict(settings), indent=1))

    def done(objective: str, seed: int) -> bool:
        return any(r["objective"] == objective and r["seed"] == seed for r in runs)

    def record(row: dict) -> None:
        runs.append(row)
        pd.DataFrame(runs).to_csv(out / "runs.csv", index=False)
        if verbose:
            shown = {k: row[k] for k in ("pref_accuracy", "gen_accuracy") if k in row}
            print(
                f"[compare] {row['objective']:<9} seed {row['seed']:>2}: "
                + ", ".join(f"{k} {v:.3f}" for k, v in shown.items())
                + f" ({row['train_seconds']:.0f} s training)"
            )

    if not done("base", -1):
        model, tokenizer = load_model(settings.model)
        record({"objective": "base", "seed": -1, "steps": 0, "train_seconds": 0.0}
               | _evaluate(model, tokenizer, test, settings))  # fmt: skip
    steps = settings.budget(len(train))
    for seed in seeds:
        for objective in objectives:
            if done(objective, seed):
                continue
            model, tokenizer = load_model(settings.model)
            start = time.perf_counter()
            model = train_objective(
                objective, model, tokenizer, train, settings, seed=seed, steps=steps
            )
            seconds = time.perf_counter() - start
            record(
                {"objective": objective, "seed": seed, "steps": steps, "train_seconds": seconds}
                | _evaluate(model, tokenizer, test, settings)
            )
    return pd.DataFrame(runs)


def train_objective(
    objective: str,
    model,
    tokenizer,
    train: Sequence[JudgmentRecord],
    settings: CompareSettings,
    *,
    seed: int,
    steps: int,
):
    """A fresh LoRA on ``model`` trained with ``objective`` for ``steps`` optimizer steps of
    ``settings.batch_size`` records; returns the trained (PEFT) model."""
    import torch
    from transformers import set_seed

    set_seed(seed)  # the LoRA A matrices are drawn at random
    model = apply_lora(model, {"r": settings.lora_r, "lora_alpha": settings.lora_r})
    run_dir = Path(settings.output) / f"{objective}-seed{seed}"
    shared = dict(
        output_dir=str(run_dir),
        max_steps=steps,
        per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=1,
        learning_rate=settings.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=settings.warmup_ratio * steps,
        seed=seed,
        save_strategy="no",
        report_to="none",
        logging_steps=max(1, steps // 10),
        disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(),
        bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
    )
    if objective == "dpo":
        from cutkit.dpo import train_dpo

        train_dpo(
            model,
            tokenizer,
            train,
            template=settings.template,
            beta=settings.dpo_beta,
            max_length=settings.max_length,
            **shared,
        )
        return model
    from cutkit.trainer import CUTConfig, CUTTrainer

    config = CUTConfig(
        objective=objective,
        template=settings.template,
        max_length=settings.max_length,
        threshold=settings.threshold,
        align_p_ratio=settings.align_p_ratio,
        **shared,
    )
    CUTTrainer(model, config, train_dataset=train, processing_class=tokenizer).train()
    return model


def _evaluate(model, tokenizer, test, settings: CompareSettings) -> dict:
    return evaluate(
        model,
        tokenizer,
        test,
        template=settings.template,
        threshold=settings.threshold,
        max_length=settings.max_length,
        generate=settings.generate,
        max_new_tokens=settings.max_new_tokens,
    )


def _previous_runs(out: Path, settings: CompareSettings) -> list[dict]:
    """Rows of ``out/runs.csv`` when ``out/settings.json`` matches ``settings``, else none."""
    try:
        same = json.loads((out / "settings.json").read_text()) == dataclasses.asdict(settings)
        return pd.read_csv(out / "runs.csv").to_dict("records") if same else []
    except (FileNotFoundError, json.JSONDecodeError, pd.errors.EmptyDataError):
        return []


def summarize(frame: pd.DataFrame, figures: Sequence[str] = HEADLINE) -> pd.DataFrame:
    """Mean and standard deviation over seeds of each figure, one row per objective (base first,
    then in the order they appear), plus ``seeds`` and mean ``train_seconds``."""
    figures = [f for f in figures if f in frame.columns]
    order = list(dict.fromkeys(frame["objective"]))
    grouped = frame.groupby("objective", sort=False)
    table = grouped[figures].agg(["mean", "std"])
    table[("seeds", "")] = grouped["seed"].nunique()
    table[("train_seconds", "mean")] = grouped["train_seconds"].mean()
    return table.loc[order]


def summary_markdown(frame: pd.DataFrame, figures: Sequence[str] = HEADLINE) -> str:
    """:func:`summarize` as a Markdown table, each figure as ``mean ± std`` (3 decimals)."""
    table = summarize(frame, figures)
    names = [f for f in figures if f in frame.columns]
    lines = [
        "| objective | seeds | train s | " + " | ".join(names) + " |",
        "|---|---:|---:|" + "---:|" * len(names),
    ]
    for objective, row in table.iterrows():
        cells = []
        for name in names:
            mean, std = row[(name, "mean")], row[(name, "std")]
            cells.append(f"{mean:.3f}" + ("" if pd.isna(std) else f" ± {std:.3f}"))
        lines.append(
            f"| {objective} | {int(row[('seeds', '')])} | {row[('train_seconds', 'mean')]:.0f} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines)


def save_comparison(frame: pd.DataFrame, out: str | Path) -> Path:
    """Write ``runs.csv``, ``summary.csv`` and ``summary.md`` to ``out``; returns the folder."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / "runs.csv", index=False)
    summarize(frame).round(4).to_csv(out / "summary.csv")
    (out / "summary.md").write_text(summary_markdown(frame) + "\n")
    return out
