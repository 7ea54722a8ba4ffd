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

An *arm* is an objective with optional CUTConfig settings, written ``objective:key=value,...``
(:func:`parse_arm`): ``"cut:unflagged=ignore,align_n=false"`` trains CUT with two of the research
levers of docs/method.md §6. The arm's spec is its name in every table.

Every summary states n (held-out pairs / records per run), the seeds, and a 95% interval over the
seeds (Student t); a difference to the base model inside the interval is marked a tie.

>>> parse_arm("cut:unflagged=ignore,align_n=false")
('cut', {'unflagged': 'ignore', 'align_n': False})
>>> # frame = compare(["sft", "hindsight", "cut"], train, test, seeds=[0, 1], steps=20)
>>> # summarize(frame)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from cutkit._checks import check_number
from cutkit.data.atomic_write import write_text_atomic
from cutkit.data.records import JudgmentRecord, RecordError, refuse_missing_refinements
from cutkit.eval.metrics import evaluate
from cutkit.models.loading import load_model
from cutkit.models.lora import apply_lora
from cutkit.train.grpo import refuse_records_without_tasks
from cutkit.train.settings import TrainSettings, scoring_kwargs
from cutkit.train.tracking import log_figures
from cutkit.train.vocabulary import LEARNS_FROM_NEGATIVES, OBJECTIVES, TRL_OBJECTIVES

logger = logging.getLogger(__name__)

COMPARABLE = (*OBJECTIVES, *TRL_OBJECTIVES)
"""Objectives an arm may name: CUTConfig's objectives, DPO, KTO and GRPO (through TRL; an arm of
theirs takes only ``learning_rate``), named in :mod:`cutkit.train.vocabulary`. GRPO also needs a
verifier (:func:`train_objective`'s ``verify``), so :func:`compare` refuses it."""

HEADLINE = [
    "pref_accuracy",
    "pref_margin",
    "logp_good",
    "logp_error_tokens",
    "logp_other_tokens",
    "detect_f1",
    "gen_accuracy",
]
"""The figures :func:`summarize` reports by default (see :mod:`cutkit.eval.metrics`)."""


def _value(text: str):
    """``true``/``false`` -> bool, numbers -> int/float, ``none`` -> None, else the string."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "none":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text.strip()


def parse_arm(spec: str) -> tuple[str, dict]:
    """``"objective[:key=value,...]"`` -> (objective, CUTConfig overrides); checks both, so a typo
    fails before any training."""
    from cutkit.train.config import CUTConfig

    objective, _, rest = spec.partition(":")
    if objective not in COMPARABLE:
        raise ValueError(
            f"unknown objective {objective!r} in arm {spec!r}; choose from {list(COMPARABLE)}"
        )
    overrides = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"arm {spec!r}: expected key=value, got {item!r}")
        overrides[key.strip()] = _value(value)
    known = {f.name for f in dataclasses.fields(CUTConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"arm {spec!r}: {unknown} are not CUTConfig fields")
    if objective in TRL_OBJECTIVES and set(overrides) - {"learning_rate"}:
        raise ValueError(f"arm {spec!r}: {objective.upper()} takes only learning_rate")
    if objective not in TRL_OBJECTIVES:  # validate the values the way CUTConfig will
        CUTConfig(output_dir="unused", objective=objective, **overrides)
    return objective, overrides


def check_training_records(
    records: Sequence[JudgmentRecord],
    objective: str,
    *,
    source: str = "the training records",
    align_p_ratio: float | None = None,
) -> None:
    """Refuse records ``objective`` cannot train on, before the model loads: none at all (an empty
    file, or only junk skipped by ``--lenient``), no negatives for the objectives that learn from
    judged mistakes (or whose Align-P downsampling keeps positives in proportion to negatives), no
    positives for ``sft`` and ``kto``, negatives without refinements for ``ilf`` and ``dpo``."""
    if not records:
        raise ValueError(
            f"{source} holds no trainable records (an empty file, or every record skipped as "
            "junk); pass a file with judged records"
        )
    n_negative = sum(r.is_negative for r in records)
    n_positive = len(records) - n_negative
    if objective == "sft" and not n_positive:
        raise ValueError(
            f"{source}: objective 'sft' trains on positive records only, and none of the "
            f"{len(records)} records is positive; use 'ilf' to train on refinements, or another "
            "objective"
        )
    if objective == "grpo":  # its prompts and reward come from the tasks, not the judgments
        refuse_records_without_tasks(records, source=source)
        return
    if objective == "kto" and not n_positive:
        raise ValueError(
            f"{source}: objective 'kto' weighs desirable (positive) against undesirable "
            f"(negative) responses, and none of the {len(records)} records is positive; add "
            "positive records, or choose another objective"
        )
    needs_negatives = objective in LEARNS_FROM_NEGATIVES or (
        objective != "sft" and align_p_ratio is not None
    )
    if needs_negatives and not n_negative:
        why = (
            "learns from judged mistakes"
            if objective in LEARNS_FROM_NEGATIVES
            else f"keeps align_p_ratio={align_p_ratio:g} positives per negative"
        )
        raise ValueError(
            f"{source}: objective {objective!r} {why}, and none of the {len(records)} records is "
            "negative (has a critical judgment); add negative records, or use objective 'sft'"
        )
    if objective in ("ilf", "dpo"):
        try:
            refuse_missing_refinements(
                records, needed_by=f"objective {objective!r} trains on the refinements"
            )
        except RecordError as error:
            raise RecordError(
                error.problem, source=source, index=error.index, field=error.field, fix=error.fix
            ) from None


@dataclass
class CompareSettings(TrainSettings):
    """What every run of a comparison shares: the model, LoRA, template, context and budget of
    :class:`~cutkit.train.settings.TrainSettings`, and the evaluation. An arm's levers
    (:func:`parse_arm`) override the shared settings for that arm."""

    steps: int | None = field(
        default=None,
        metadata={
            "help": "Optimizer steps per run (the budget); None: `epochs` over the training "
            "records at `batch_size` x `gradient_accumulation_steps` records per step."
        },
    )
    dpo_beta: float = field(default=0.1, metadata={"help": "DPO temperature."})
    kto_beta: float = field(default=0.1, metadata={"help": "KTO temperature."})
    max_new_tokens: int = field(
        default=64, metadata={"help": "Longest greedy answer for gen_accuracy."}
    )
    generate: bool = field(
        default=True, metadata={"help": "Evaluate greedy answers (gen_accuracy)."}
    )
    packing: bool = field(
        default=False,
        metadata={"help": "Padding-free micro-batches for the CUT-family objectives (same loss)."},
    )
    output: str = field(default="runs/compare", metadata={"help": "Output folder."})

    def __post_init__(self) -> None:
        parent = getattr(super(), "__post_init__", None)
        if parent is not None:
            parent()  # the shared settings' checks
        for name in ("dpo_beta", "kto_beta"):
            check_number(
                name,
                getattr(self, name),
                minimum=0,
                min_open=True,
                why="the temperature of the implied reward; 0, nan or inf make the loss meaningless",
            )
        check_number(
            "steps",
            self.steps,
            minimum=1,
            integer=True,
            optional=True,
            why="optimizer steps per run",
        )
        check_number(
            "max_new_tokens", self.max_new_tokens, minimum=1, integer=True, why="answer tokens"
        )

    def budget(self, n_train: int) -> int:
        """Optimizer steps of every run for ``n_train`` training records."""
        if self.steps is not None:
            return self.steps
        return max(1, math.ceil(self.epochs * n_train / self.records_per_step))


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
        objectives: arms: names from :data:`COMPARABLE` ("cut", "sft", "hindsight", "forward",
            "ilf", "ul_all", "dpo"), optionally with settings (:func:`parse_arm`).
        train, test: judgment records (``ilf`` and ``dpo`` need refinements on the negatives).
        seeds: one run per objective and seed (the seed fixes the LoRA initialisation, the data
            order, dropout and the Align-P downsampling).
        settings: the shared budget and evaluation; keyword ``overrides`` replace its fields.
        resume: skip (objective, seed) runs already in ``<output>/runs.csv`` from the same
            settings (a changed setting starts afresh).
        verbose: log one line per run at INFO level (module logger ``cutkit.eval.comparison``;
            ``cutkit compare`` shows them), else at DEBUG.

    Returns:
        one row per run: ``objective``, ``seed``, ``steps``, ``train_seconds``, the
        :func:`cutkit.evaluate` figures; the first row is ``objective="base"`` (the untrained
        model, ``seed`` -1, ``steps`` 0).
    """
    settings = dataclasses.replace(settings or CompareSettings(), **overrides)
    arms = {spec: parse_arm(spec) for spec in objectives}
    check_comparison(arms, train, test, settings)  # before any model loads or folder is made
    out = Path(settings.output)
    out.mkdir(parents=True, exist_ok=True)
    runs = _previous_runs(out, settings) if resume else []
    settings_json = json.dumps(dataclasses.asdict(settings), indent=1)
    write_text_atomic(out / "settings.json", settings_json)

    def done(objective: str, seed: int) -> bool:
        return any(r["objective"] == objective and r["seed"] == seed for r in runs)

    def record(row: dict) -> None:
        runs.append(row)
        pd.DataFrame(runs).to_csv(out / "runs.csv", index=False)
        shown = {k: row[k] for k in ("pref_accuracy", "gen_accuracy") if k in row}
        logger.log(
            logging.INFO if verbose else logging.DEBUG,
            "[compare] %-9s seed %2d: %s (%.0f s training)",
            row["objective"],
            row["seed"],
            ", ".join(f"{k} {v:.3f}" for k, v in shown.items()),
            row["train_seconds"],
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
            name, overrides = arms[objective]
            run_dir = Path(settings.output) / f"{objective.replace(':', '-')}-seed{seed}"
            model = train_objective(
                name, model, tokenizer, train, settings, seed=seed, steps=steps,
                run_dir=run_dir, **overrides,
            )  # fmt: skip
            seconds = time.perf_counter() - start
            figures = _evaluate(model, tokenizer, test, settings)
            log_figures(figures, run_dir / "runs" / "heldout", settings.report_to, step=steps)
            record(
                {"objective": objective, "seed": seed, "steps": steps, "train_seconds": seconds}
                | figures
            )
    return pd.DataFrame(runs)


def check_comparison(
    arms: dict[str, tuple[str, dict]],
    train: Sequence[JudgmentRecord],
    test: Sequence[JudgmentRecord],
    settings: CompareSettings,
) -> None:
    """Refuse a comparison that would fail or mean nothing only after its training: no held-out
    records, or training records some arm (``{spec: parse_arm(spec)}``) cannot train on
    (:func:`check_training_records`)."""
    if not test:
        raise ValueError(
            "the test (held-out) records are empty: every run is evaluated on them; pass a "
            "held-out judgment file with records"
        )
    for spec, (objective, overrides) in arms.items():
        if objective == "grpo":
            raise ValueError(
                f"arm {spec!r}: GRPO's reward needs a verifier of the tasks, which compare() does "
                "not take; train it with train_objective('grpo', ..., "
                "verify=cutkit.online.checkers.verify_honestly)"
            )
        check_training_records(
            train,
            objective,
            source=f"the training records (arm {spec!r})",
            align_p_ratio=overrides.get("align_p_ratio", getattr(settings, "align_p_ratio", None)),
        )


def train_objective(
    objective: str,
    model,
    tokenizer,
    train: Sequence[JudgmentRecord],
    settings: CompareSettings,
    *,
    seed: int,
    steps: int,
    run_dir: str | Path | None = None,
    callbacks: Sequence = (),
    lr_scheduler_type: str = "cosine",
    verify=None,
    **config,
):
    """A fresh LoRA on ``model`` trained with ``objective`` for ``steps`` optimizer steps of
    ``settings.batch_size`` records; returns the trained (PEFT) model.

    ``callbacks`` are ``transformers.TrainerCallback`` objects given to the trainer (for example
    one that saves the adapter at intermediate steps: a learning curve from one run, best with
    ``lr_scheduler_type="constant_with_warmup"``); ``lr_scheduler_type`` is any transformers
    schedule name.

    ``run_dir`` is the trainer's output folder (default ``<settings.output>/<objective>-seed<seed>``);
    further keyword arguments are :class:`~cutkit.train.config.CUTConfig` fields that override the
    shared settings for this run (an arm's levers, e.g. ``unflagged="ignore"``, ``detector="spans"``,
    ``learning_rate=3e-4``); DPO and KTO take ``learning_rate`` only (KTO sees the records after
    the same Align-P downsampling, and its micro-batch is the shared batch size).

    GRPO (:func:`cutkit.train.grpo.train_grpo`) samples ``settings.batch_size`` completions per
    step (4 per prompt) of the records' tasks (``meta["task"]``) and needs ``verify``, its
    reward's verifier: ``cutkit.online.checkers.verify_honestly`` (constraints met and content
    sound). Its trainer's timing (generation vs total seconds) is kept as ``model.cutkit_timing``."""
    import torch
    from transformers import set_seed

    if objective == "grpo" and verify is None:
        raise ValueError(
            "GRPO rewards completions that pass a verifier of their task: pass verify="
            "cutkit.online.checkers.verify_honestly (or a (task dict, completion, finished) -> "
            "bool of your own)"
        )

    set_seed(seed)  # the LoRA A matrices are drawn at random
    model = apply_lora(model, settings.lora_config())
    run_dir = Path(run_dir or Path(settings.output) / f"{objective}-seed{seed}")
    # the budget is counted in steps here, so a warm-up fraction becomes a step count (rounded
    # down; passed as a fraction of a step, transformers would read it as a fraction once more)
    warmup_steps = int(settings.warmup * steps) if settings.warmup < 1 else settings.warmup
    shared = settings.training_kwargs() | dict(
        output_dir=str(run_dir),
        max_steps=steps,
        lr_scheduler_type=lr_scheduler_type,
        warmup_steps=warmup_steps,
        seed=seed,
        save_strategy="no",
        logging_steps=max(1, steps // 10),
        disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(),
        bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
    )
    if "learning_rate" in config:
        shared["learning_rate"] = config.pop("learning_rate")
    if objective in TRL_OBJECTIVES:
        if config:
            raise ValueError(f"{objective.upper()} takes no CUT settings, got {sorted(config)}")
        if objective == "grpo":
            from cutkit.train.grpo import train_grpo

            trainer = train_grpo(model, tokenizer, train, template=settings.template,
                                 verify=verify, callbacks=list(callbacks), **shared)  # fmt: skip
            model.cutkit_timing = trainer.cutkit_timing
            return model
        if objective == "dpo":
            from cutkit.train.dpo import train_dpo as train_trl

            extra = dict(beta=settings.dpo_beta)
        else:
            from cutkit.train.kto import train_kto as train_trl

            extra = dict(beta=settings.kto_beta, align_p_ratio=settings.align_p_ratio)
        train_trl(model, tokenizer, train, template=settings.template,
                  max_length=settings.max_length, callbacks=list(callbacks), **extra,
                  **shared)  # fmt: skip
        return model
    from cutkit.train.config import CUTConfig
    from cutkit.train.trainer import CUTTrainer

    cut = dict(objective=objective, packing=settings.packing)
    args = CUTConfig(**(settings.cut_config_kwargs() | shared | cut | config))
    trainer = CUTTrainer(
        model, args, train_dataset=train, processing_class=tokenizer, callbacks=list(callbacks)
    )
    from transformers import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # with disable_tqdm it prints every log line
    trainer.train()
    return model


def _evaluate(model, tokenizer, test, settings: CompareSettings) -> dict:
    return evaluate(
        model,
        tokenizer,
        test,
        **scoring_kwargs(settings),
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


_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)
"""Student t 97.5% quantiles for 1..10 degrees of freedom (1.96 beyond)."""


def seed_interval(values: Sequence[float]) -> tuple[float, float]:
    """95% interval of the mean over seeds (Student t; NaN with fewer than two values)."""
    values = [v for v in values if not pd.isna(v)]
    if len(values) < 2:
        return (math.nan, math.nan)
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    t = _T975[len(values) - 2] if len(values) - 1 <= len(_T975) else 1.96
    half = t * sd / math.sqrt(len(values))
    return (mean - half, mean + half)


def summarize(frame: pd.DataFrame, figures: Sequence[str] = HEADLINE) -> pd.DataFrame:
    """Per arm (base first, then in the order they appear): for each figure its mean, standard
    deviation and 95% interval over seeds (``low``/``high``, :func:`seed_interval`), plus
    ``seeds``, ``n`` (held-out pairs, else records, per run) and mean ``train_seconds``."""
    figures = [f for f in figures if f in frame.columns]
    order = list(dict.fromkeys(frame["objective"]))
    grouped = frame.groupby("objective", sort=False)
    table = grouped[figures].agg(["mean", "std"])
    for figure in figures:
        bounds = grouped[figure].apply(lambda v: seed_interval(list(v)))
        table[(figure, "low")] = bounds.map(lambda b: b[0])
        table[(figure, "high")] = bounds.map(lambda b: b[1])
    table = table[[(f, stat) for f in figures for stat in ("mean", "std", "low", "high")]]
    table[("seeds", "")] = grouped["seed"].nunique()
    size = "n_pairs" if "n_pairs" in frame.columns else "n_records"
    if size in frame.columns:
        table[("n", "")] = grouped[size].max()
    table[("train_seconds", "mean")] = grouped["train_seconds"].mean()
    return table.loc[order]


def summary_markdown(frame: pd.DataFrame, figures: Sequence[str] = HEADLINE) -> str:
    """:func:`summarize` as a Markdown table: each figure as ``mean [95% interval]`` over seeds
    (3 decimals), ``(tie)`` where the base model's value lies inside the interval; a note under
    the table states n and the seeds."""
    table = summarize(frame, figures)
    names = [f for f in figures if f in frame.columns]
    base = table.loc["base"] if "base" in table.index else None
    lines = [
        "| objective | seeds | train s | " + " | ".join(names) + " |",
        "|---|---:|---:|" + "---:|" * len(names),
    ]
    for objective, row in table.iterrows():
        cells = []
        for name in names:
            mean, low, high = row[(name, "mean")], row[(name, "low")], row[(name, "high")]
            cell = f"{mean:.3f}"
            if not pd.isna(low):
                cell += f" [{low:.3f}, {high:.3f}]"
                reference = None if base is None else base[(name, "mean")]
                if objective != "base" and reference is not None and low <= reference <= high:
                    cell += " (tie)"
            cells.append(cell)
        lines.append(
            f"| {objective} | {int(row[('seeds', '')])} | {row[('train_seconds', 'mean')]:.0f} | "
            + " | ".join(cells)
            + " |"
        )
    seeds = sorted(int(s) for s in frame.loc[frame["objective"] != "base", "seed"].unique())
    n = f"n = {int(table[('n', '')].max())} held-out pairs per run; " if ("n", "") in table else ""
    lines.append("")
    lines.append(
        f"{n}seeds {seeds}; [low, high]: 95% interval of the mean over seeds (Student t); "
        "(tie): the base model's value lies inside it."
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
