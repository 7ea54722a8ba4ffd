"""Compare CUT with the paper's baselines: same start, same data, same budget, several seeds.

:func:`compare` trains a fresh LoRA adapter on the same base model for every (objective, seed),
with the same number of optimizer steps, micro-batch size, learning rate and schedule, evaluates it
with :func:`cutkit.evaluate` on the held-out records, and returns a tidy frame: one row per run
(plus one ``base`` row, the untrained model) and one column per figure. :func:`summarize` turns it
into mean and spread per objective (:mod:`cutkit.eval.comparison_report`, whose names are
re-exported here). ``cutkit compare`` is the command-line form; it writes
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
from typing import ClassVar

import pandas as pd

from cutkit._checks import check_number
from cutkit.data.atomic_write import write_text_atomic
from cutkit.data.records import JudgmentRecord
from cutkit.eval.arm_training import train_arm as train_arm
from cutkit.eval.comparison_report import HEADLINE as HEADLINE
from cutkit.eval.comparison_report import save_comparison as save_comparison
from cutkit.eval.comparison_report import seed_interval as seed_interval
from cutkit.eval.comparison_report import summarize as summarize
from cutkit.eval.comparison_report import summary_markdown as summary_markdown
from cutkit.eval.metrics import evaluate
from cutkit.models.loading import load_model
from cutkit.train.entry import check_training_records
from cutkit.train.settings import TrainSettings, scoring_kwargs, setting
from cutkit.train.tracking import log_figures
from cutkit.train.vocabulary import OBJECTIVES, TRL_OBJECTIVES

logger = logging.getLogger(__name__)

COMPARABLE = (*OBJECTIVES, *TRL_OBJECTIVES)
"""Objectives an arm may name: CUTConfig's objectives, DPO, KTO and GRPO (through TRL; an arm of
theirs takes only ``learning_rate``), named in :mod:`cutkit.train.vocabulary`. GRPO also needs a
verifier (:func:`train_arm`'s ``verify``), so :func:`compare` refuses it."""


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


@dataclass
class CompareSettings(TrainSettings):
    """What every run of a comparison shares: the model, LoRA, template, context and budget of
    :class:`~cutkit.train.settings.TrainSettings`, and the evaluation. An arm's levers
    (:func:`parse_arm`) override the shared settings for that arm."""

    PRESET: ClassVar[str] = "compare"

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
    packing: bool = setting("packing", "compare")
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
            model = train_arm(
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
                "not take; train it with train_arm('grpo', ..., "
                "verify=cutkit.online.checkers.verify_honestly)"
            )
        check_training_records(
            train,
            objective,
            source=f"the training records (arm {spec!r})",
            align_p_ratio=overrides.get("align_p_ratio", getattr(settings, "align_p_ratio", None)),
        )


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
